"""rwproxy's operator surface, one module per concept.

* :mod:`rwproxy.admin.http`     admin HTTP (aiohttp): /metrics /healthz /readyz /status /digests, POST
                               /servers/{name}/drain|undrain and /switchover (bearer token)
* :mod:`rwproxy.admin.sql`      admin SQL interface (mysql-mimic) on ``[admin] sql_listen``
* :mod:`rwproxy.admin.tables`   the admin tables (servers, pools, sessions, query_digest, ...) from live state
* :mod:`rwproxy.observability.digests`  the bounded query digest table the sessions record into
* :mod:`rwproxy.admin.drain`    operator drain / undrain of a replica
"""
