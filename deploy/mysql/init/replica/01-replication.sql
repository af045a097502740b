-- Runs once, on a replica's first start (/docker-entrypoint-initdb.d). docker-compose.yml starts the
-- replicas only after the primary is healthy (depends_on: condition: service_healthy), so the
-- primary already has the repl user and its binlog. Users, the app database and its rows arrive by
-- replication: nothing is created here.

-- Forget what the image's own setup binlogged here, so this replica's GTID set holds only what it
-- replicates from the primary (and it can be promoted cleanly).
RESET BINARY LOGS AND GTIDS;

-- GET_SOURCE_PUBLIC_KEY: repl uses caching_sha2_password and the link is not TLS.
CHANGE REPLICATION SOURCE TO
    SOURCE_HOST = 'mysql-primary',
    SOURCE_PORT = 3306,
    SOURCE_USER = 'repl',
    SOURCE_PASSWORD = 'repl-secret',
    SOURCE_AUTO_POSITION = 1,
    GET_SOURCE_PUBLIC_KEY = 1,
    SOURCE_CONNECT_RETRY = 5;

-- Starts now (the image's temporary init server) and again by itself on every later start.
START REPLICA;
