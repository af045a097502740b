"""Topology discovery from the AWS RDS API (``[topology] source = "rds"``).

* ``rds``: pure mapping of DescribeDBInstances / DescribeDBClusters responses to discovered servers.
* ``aws``: the boto3 client built from ``[aws]`` (boto3 is imported only when AWS is used).
* ``source``: the discovery task (boto3 calls off the event loop, retries with backoff) that hands
  the server list to the monitor (``Monitor.set_servers``).
* ``rds_actions``: RDS failover actions for a failover controller.
"""
