"""Several rwproxy instances of one cluster agree through etcd (``[coordination]``): one leader,
elected on an etcd lease, promotes, fences and switches over; every step is guarded by an etcd
transaction on the leader key; the others follow. See ``coordinator.py``."""

from rwproxy.coordination.coordinator import Coordinator
from rwproxy.coordination.election import Elector, NotLeader, Published

__all__ = ["Coordinator", "Elector", "NotLeader", "Published"]
