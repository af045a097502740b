"""Failover and planned switchover: detection that does not split the brain, promotion of the most
advanced replica, fencing of an old primary, write buffering while the primary moves.

    sql.py         the statements, per server flavour (pure)
    decision.py    is the primary dead? which replica? may the old primary rejoin? (pure)
    buffer.py      statements that need the primary wait here while it moves
    actions.py     the I/O: promote, repoint, fence, positions (aiomysql side connections)
    controller.py  FailoverController: watches the topology, runs failovers and switchovers
    switchover.py  the planned switchover's steps (and its undo)
    rds.py         failover.mode = "rds": FailoverDBCluster, or wait for AWS
    report.py      what both share: the report, its steps, timing, result count, FailoverStats
"""
