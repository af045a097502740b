"""Worker processes (``[proxy] workers = N``): N processes serve clients on the same listeners, one
supervisor runs the monitor, failover, coordination and admin for all of them.

``supervisor`` (the parent: listeners, publishing, restarts, reload, metrics), ``worker`` (a child
process), ``messages`` (the channel's frames, sans-I/O), ``remote`` (a worker's stand-ins for the
monitor and failover controller), ``ids`` (connection ids unique across workers), ``listeners``
(SO_REUSEPORT sockets), ``metrics`` (instance-wide /metrics). ``workers = 1`` (the default) runs
none of this: one process, as before.
"""
