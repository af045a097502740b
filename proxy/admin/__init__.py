"""rwproxy's operator surface, one module per concept.

* :mod:`proxy.admin.http`     admin HTTP (aiohttp): /metrics /healthz /readyz /status /digests, POST
                               /servers/{name}/drain|undrain and /switchover (bearer token)
* :mod:`proxy.admin.sql`      admin SQL interface (mysql-mimic) on ``[admin] sql_listen``
* :mod:`proxy.admin.tables`   the admin tables (servers, pools, sessions, query_digest, ...) from live state
* :mod:`proxy.admin.digests`  the bounded query digest table the sessions record into
* :mod:`proxy.admin.drain`    operator drain / undrain of a replica
"""
