-- Runs once, on the primary's first start (/docker-entrypoint-initdb.d), before the server accepts
-- TCP connections. Everything below is binlogged with GTIDs, so the replicas get the same users and
-- database by replication (their own init script creates nothing).
--
-- Demo passwords: they must match deploy/rwproxy/rwproxy.toml ([[users]] and [monitor]) and the
-- replicas' deploy/mysql/init/replica/01-replication.sql (repl); tests/unit/test_deploy.py checks it.

-- Forget what the image's own setup binlogged (its time-zone tables): the binlog starts here.
RESET BINARY LOGS AND GTIDS;

CREATE DATABASE app;

-- The application account rwproxy logs in with on every server ([[users]] backend_user).
CREATE USER 'app'@'%' IDENTIFIED BY 'app-secret';
GRANT ALL PRIVILEGES ON app.* TO 'app'@'%';

-- rwproxy's health monitor ([monitor] user): read_only, SHOW REPLICA STATUS, GTID positions.
CREATE USER 'rwproxy_monitor'@'%' IDENTIFIED BY 'monitor-secret';
GRANT REPLICATION CLIENT, PROCESS ON *.* TO 'rwproxy_monitor'@'%';

-- rwproxy's failover account ([failover] user): promotes a replica, repoints the others, fences
-- an old primary (read_only / super_read_only), reads GTID positions.
CREATE USER 'rwproxy_failover'@'%' IDENTIFIED BY 'failover-secret';
GRANT REPLICATION_SLAVE_ADMIN, SYSTEM_VARIABLES_ADMIN, REPLICATION CLIENT, RELOAD, PROCESS ON *.* TO 'rwproxy_failover'@'%';

-- The replicas' replication account.
CREATE USER 'repl'@'%' IDENTIFIED BY 'repl-secret';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';

-- Something to read.
CREATE TABLE app.items (
    id INT AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    qty INT NOT NULL DEFAULT 0
);
INSERT INTO app.items (name, qty) VALUES ('apple', 10), ('pear', 5), ('plum', 0);
