"""deploy/ and docker-compose.yml agree with each other and with rwproxy's config.

There is no Docker engine or Kubernetes cluster here, so nothing is built or started: the files are
parsed and cross-checked (ports, hosts, users and passwords, mounted paths, probes, the ConfigMap
copy of the config). The dashboard's metric names are checked against a real /metrics page in
tests/integration/test_dashboard_metrics.py.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from rwproxy.config import Config, load_config
from tests.support.promql import (
    dashboard_expressions,
    exposed_series,
    label_names,
    metric_names,
    missing_metrics,
)

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "docker-compose.yml"
TOML = DEPLOY / "rwproxy" / "rwproxy.toml"
DOCKERFILE = DEPLOY / "Dockerfile"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "rwproxy.json"
K8S = DEPLOY / "k8s"
UNIT = DEPLOY / "systemd" / "rwproxy.service"
PRIMARY_INIT = DEPLOY / "mysql" / "init" / "primary"
CONFIG_IN_IMAGE = "/etc/rwproxy/rwproxy.toml"
MYSQL_PORT = 3306  # the mysql image's port
PROMETHEUS_PORT = 9090  # the prom/prometheus image's port


def yaml_files() -> list[Path]:
    return sorted([COMPOSE, *DEPLOY.rglob("*.yml"), *DEPLOY.rglob("*.yaml")])


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(TOML)


def listen_port(config: Config) -> int:
    (port,) = {p for _, p in config.proxy.listen_addresses}
    return port


def admin_port(config: Config) -> int:
    address = config.admin.http_address
    assert address is not None, "the shipped config must serve admin HTTP (/metrics, probes)"
    return address[1]


# --------------------------------------------------------------------------------------------------
# Everything parses; everything referenced exists


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_parses(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs and all(isinstance(d, dict) for d in docs), path


def test_yaml_files_found() -> None:
    names = {str(p.relative_to(ROOT)) for p in yaml_files()}
    assert {
        "docker-compose.yml",
        "deploy/prometheus/prometheus.yml",
        "deploy/k8s/deployment.yaml",
        "deploy/k8s/configmap.yaml",
    } <= names


def test_shipped_config_passes_check_config() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "rwproxy", "check-config", str(TOML)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert f"{TOML}: OK" in run.stderr
    assert "app-secret" not in run.stdout and "monitor-secret" not in run.stdout  # masked


def test_check_config_would_catch_a_broken_copy(tmp_path: Path) -> None:
    broken = tmp_path / "rwproxy.toml"
    broken.write_text(TOML.read_text().replace("port = 3306", "port = 70000", 1))
    run = subprocess.run(
        [sys.executable, "-m", "rwproxy", "check-config", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and "servers[0].port" in run.stderr, run.stderr


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """container path → host path of a compose service's bind mounts (short syntax)."""
    out: dict[str, Path] = {}
    for v in service.get("volumes", ()):
        source, target, *_ = v.split(":")
        if source.startswith((".", "/")):
            out[target] = (ROOT / source).resolve()
    return out


def test_compose_references_existing_files(compose: dict[str, Any]) -> None:
    checked = 0
    for name, service in compose["services"].items():
        for target, source in bind_mounts(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"
            checked += 1
        build = service.get("build")
        if build:
            context = ROOT / build["context"]
            assert (context / build["dockerfile"]).is_file(), name
    assert checked >= 10


def test_compose_volumes_and_networks_are_declared(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for v in service.get("volumes", ()):
            source = v.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in compose["volumes"], f"{name}: named volume {source} not declared"
        for net in service.get("networks", ()):
            assert net in compose["networks"], f"{name}: network {net} not declared"


# --------------------------------------------------------------------------------------------------
# Compose ↔ rwproxy.toml ↔ MySQL init


def mysql_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if str(s.get("image", "")).startswith("mysql:")}


def cnf(service: dict[str, Any]) -> dict[str, str]:
    """The [mysqld] settings of the option file a MySQL service mounts into /etc/mysql/conf.d."""
    (path,) = [p for t, p in bind_mounts(service).items() if t.startswith("/etc/mysql/conf.d/")]
    settings: dict[str, str] = {}
    section = None
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif "=" in line and section == "mysqld":
            key, value = (x.strip() for x in line.split("=", 1))
            settings[key.replace("-", "_")] = value
    return settings


def init_sql(service: dict[str, Any]) -> str:
    init = bind_mounts(service)["/docker-entrypoint-initdb.d"]
    files = sorted(init.glob("*.sql"))
    assert files, f"no .sql file in {init}"
    return "\n".join(f.read_text() for f in files)


def created_users(sql: str) -> dict[str, str]:
    """user → password of the CREATE USER ... IDENTIFIED BY statements."""
    pairs = re.findall(r"CREATE USER '([^']+)'@'[^']*' IDENTIFIED BY '([^']*)'", sql, re.IGNORECASE)
    return dict(pairs)


def grants(sql: str, user: str) -> str:
    return " ".join(re.findall(rf"GRANT (.+?) TO '{re.escape(user)}'@", sql, re.IGNORECASE)).upper()


def initial_primary(compose: dict[str, Any], config: Config) -> str:
    """The server that starts as the primary: role = "primary", else (role = "auto", the monitor
    follows read_only) the only MySQL service whose option file says read_only = OFF."""
    fixed = [s.host for s in config.servers if s.role == "primary"]
    if fixed:
        (primary,) = fixed
        return primary
    mysql = mysql_services(compose)
    (primary,) = [
        s.host for s in config.servers if cnf(mysql[s.host]).get("read_only", "OFF").upper() in {"OFF", "0"}
    ]
    return primary


def test_mysql_nodes_are_the_configured_servers(compose: dict[str, Any], config: Config) -> None:
    mysql = mysql_services(compose)
    assert len(mysql) == 3 and all(s["image"] == "mysql:8.4" for s in mysql.values())
    assert {s.host for s in config.servers} == set(mysql), "servers[].host must be the compose services"
    primary = initial_primary(compose, config)
    for server in config.servers:
        assert server.port == MYSQL_PORT, server.name
        read_only = cnf(mysql[server.host]).get("read_only", "OFF").upper()
        want = "OFF" if server.host == primary else "ON"
        assert read_only in ({want, "0"} if want == "OFF" else {want, "1"}), server.name


def test_mysql_nodes_replicate_with_gtids(compose: dict[str, Any], config: Config) -> None:
    mysql = mysql_services(compose)
    ids = [cnf(s)["server_id"] for s in mysql.values()]
    assert len(set(ids)) == len(ids), f"server_id must differ per node: {ids}"
    for name, s in mysql.items():
        c = cnf(s)
        assert c["gtid_mode"].upper() == "ON" and c["enforce_gtid_consistency"].upper() == "ON", name
        assert "log_bin" in c, name
    primary = initial_primary(compose, config)
    primary_sql = init_sql(mysql[primary])
    users = created_users(primary_sql)
    for server in config.servers:
        if server.host == primary:
            continue
        service = mysql[server.host]
        assert service["depends_on"][primary] == {"condition": "service_healthy"}, server.host
        sql = init_sql(service)
        assert "CREATE USER" not in sql.upper(), "replicas get their users by replication"
        change = re.search(r"CHANGE REPLICATION SOURCE TO(.*?);", sql, re.S | re.I)
        assert change, server.host
        opts = dict(re.findall(r"(\w+)\s*=\s*'?([^',\s]+)'?", change.group(1)))
        assert opts["SOURCE_HOST"] == primary and int(opts["SOURCE_PORT"]) == MYSQL_PORT
        assert opts["SOURCE_AUTO_POSITION"] == "1"
        assert users.get(opts["SOURCE_USER"]) == opts["SOURCE_PASSWORD"], "repl user/password"
        assert "REPLICATION SLAVE" in grants(primary_sql, opts["SOURCE_USER"])
        assert re.search(r"^\s*START REPLICA\s*;", sql, re.M | re.I)
        assert "Replica_(IO|SQL)_Running: Yes" in " ".join(service["healthcheck"]["test"])
    assert mysql[primary]["healthcheck"]["test"]


def test_users_and_passwords_match_the_init_sql(compose: dict[str, Any], config: Config) -> None:
    primary = initial_primary(compose, config)
    sql = init_sql(mysql_services(compose)[primary])
    users = created_users(sql)
    for user in config.users:
        assert users.get(user.backend_user) == user.backend_password, f"users: {user.name}"
        if user.default_database:
            assert re.search(rf"CREATE DATABASE (IF NOT EXISTS )?`?{user.default_database}`?\s*;", sql, re.I)
            assert f"ON {user.default_database.upper()}.*" in grants(sql, user.backend_user)
    monitor = config.monitor
    assert monitor.user is not None and users.get(monitor.user) == monitor.password
    monitor_grants = grants(sql, monitor.user)
    assert "REPLICATION CLIENT" in monitor_grants and "PROCESS" in monitor_grants
    failover = config.failover
    if failover.mode == "promote":
        assert failover.user is not None and users.get(failover.user) == failover.password
        failover_grants = grants(sql, failover.user)
        for privilege in ("REPLICATION_SLAVE_ADMIN", "SYSTEM_VARIABLES_ADMIN", "REPLICATION CLIENT"):
            assert privilege in failover_grants, privilege
        assert failover.replication_user is not None
        assert users.get(failover.replication_user) == failover.replication_password
        assert "REPLICATION SLAVE" in grants(sql, failover.replication_user)


def published(service: dict[str, Any]) -> dict[int, str]:
    """container port → host address of a compose service's published ports."""
    out: dict[int, str] = {}
    for p in service.get("ports", ()):
        parts = str(p).split(":")
        out[int(parts[-1])] = ":".join(parts[:-1])
    return out


def test_rwproxy_service_matches_its_config(compose: dict[str, Any], config: Config) -> None:
    rw = compose["services"]["rwproxy"]
    mounts = bind_mounts(rw)
    assert mounts[CONFIG_IN_IMAGE] == TOML.resolve()
    for host, _ in config.proxy.listen_addresses:
        assert host == "0.0.0.0", "inside a container, listen on every interface"
    admin = config.admin.http_address
    assert admin is not None and admin[0] == "0.0.0.0", "Prometheus must reach admin HTTP"
    ports = published(rw)
    assert set(ports) == {listen_port(config), admin_port(config)}
    for mysql in mysql_services(compose):
        assert rw["depends_on"][mysql] == {"condition": "service_healthy"}
    assert rw["build"]["dockerfile"] == str(DOCKERFILE.relative_to(ROOT))


def test_prometheus_scrapes_rwproxy(compose: dict[str, Any], config: Config) -> None:
    prom = compose["services"]["prometheus"]
    flag = next(a for a in prom["command"] if a.startswith("--config.file="))
    prom_file = bind_mounts(prom)[flag.split("=", 1)[1]]
    assert prom_file == (DEPLOY / "prometheus" / "prometheus.yml").resolve()
    scrape = load_yaml(prom_file)["scrape_configs"]
    (job,) = [j for j in scrape if j["job_name"] == "rwproxy"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == [f"{name}:{admin_port(config)}" for name in rwproxy_services(compose)]
    for name in rwproxy_services(compose):
        shared = set(prom["networks"]) & set(compose["services"][name]["networks"])
        assert shared, f"prometheus and {name} share no network"


def rwproxy_services(compose: dict[str, Any]) -> list[str]:
    return [n for n, s in compose["services"].items() if s.get("image") == "rwproxy:local"]


def test_two_instances_agree_through_etcd(compose: dict[str, Any], config: Config) -> None:
    coordination = config.coordination
    assert coordination.enabled and config.failover.mode == "promote"
    services = compose["services"]
    hosts = {e.split("://")[-1].rsplit(":", 1)[0] for e in coordination.etcd}
    ports = {int(e.rsplit(":", 1)[1]) for e in coordination.etcd}
    assert hosts == {"etcd"} and ports == {2379}
    etcd = services["etcd"]
    assert "--listen-client-urls=http://0.0.0.0:2379" in etcd["command"]
    assert set(etcd["networks"]) & set(services["rwproxy"]["networks"])
    names = rwproxy_services(compose)
    assert len(names) == 2
    published_ports = [published(services[n]) for n in names]
    assert all(set(p) == {listen_port(config), admin_port(config)} for p in published_ports)
    assert len({p[listen_port(config)] for p in published_ports}) == 2, "host ports must differ"
    for name in names:
        assert services[name]["depends_on"]["etcd"] == {"condition": "service_healthy"}, name
        assert bind_mounts(services[name])[CONFIG_IN_IMAGE] == TOML.resolve(), name
    assert len({services[n]["hostname"] for n in names}) == 2, "instance names must differ"
    # Kubernetes: the "etcd" Service in front of a 3-member StatefulSet, two rwproxy pods.
    svc = load_yaml(K8S / "etcd-service.yaml")
    sts = load_yaml(K8S / "etcd-statefulset.yaml")
    assert svc["metadata"]["name"] == "etcd" and sts["spec"]["serviceName"] == "etcd"
    assert {p["port"] for p in svc["spec"]["ports"]} == {2379, 2380}
    assert sts["spec"]["replicas"] == 3
    assert svc["spec"]["selector"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()
    (etcd_pod,) = sts["spec"]["template"]["spec"]["containers"]
    initial = next(a for a in etcd_pod["command"] if a.startswith("--initial-cluster="))
    assert initial.count("=http://") == sts["spec"]["replicas"]
    assert k8s_objects()["Deployment"]["spec"]["replicas"] == 2


def test_grafana_provisioning(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounts = bind_mounts(grafana)
    provisioning = mounts["/etc/grafana/provisioning"]
    (ds_file,) = (provisioning / "datasources").glob("*.yml")
    (datasource,) = load_yaml(ds_file)["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == f"http://prometheus:{PROMETHEUS_PORT}"
    assert PROMETHEUS_PORT in published(compose["services"]["prometheus"])
    (provider_file,) = (provisioning / "dashboards").glob("*.yml")
    (provider,) = load_yaml(provider_file)["providers"]
    assert mounts[provider["options"]["path"]] == DASHBOARD.parent.resolve()

    dashboard = json.loads(DASHBOARD.read_text())
    uids = set()
    for p in dashboard["panels"]:
        if p["type"] != "row":
            uids.add(p["datasource"]["uid"])
            uids.update(t["datasource"]["uid"] for t in p["targets"])
    for var in dashboard["templating"]["list"]:
        uids.add(var["datasource"]["uid"])
    assert uids == {datasource["uid"]}
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


# --------------------------------------------------------------------------------------------------
# Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context (last matching rule wins; a
    rule matching a parent directory matches its files)."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        rule = line.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").strip("/").replace("**/", "*")
        if any(fnmatch.fnmatchcase(c, pattern) for c in candidates):
            ignored = not negate
    return ignored


def test_dockerignore_helper_can_say_no() -> None:
    assert dockerignored("tests/unit/test_deploy.py") and dockerignored(".venv/bin/python")
    assert not dockerignored("rwproxy/app.py") and dockerignored("rwproxy/__pycache__/app.cpython-311.pyc")


def test_dockerfile_matches_the_config(config: Config) -> None:
    ins = dockerfile_instructions()
    (expose,) = [rest for word, rest in ins if word == "EXPOSE"]
    assert {int(p.split("/")[0]) for p in expose.split()} == {listen_port(config), admin_port(config)}
    (health,) = [rest for word, rest in ins if word == "HEALTHCHECK"]
    urls = re.findall(r"https?://[^'\" ]+", health)
    assert urls == [f"http://127.0.0.1:{admin_port(config)}/healthz"]
    (entry,) = [rest for word, rest in ins if word == "ENTRYPOINT"]
    assert json.loads(entry) == ["rwproxy", "run", "--config", CONFIG_IN_IMAGE]
    users = [rest for word, rest in ins if word == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}, "must run as non-root"
    assert ins[0][0] == "ARG" and "slim" in ins[0][1]
    assert [w for w, _ in ins].count("FROM") == 2


def test_dockerfile_copies_files_that_exist_and_are_in_the_context() -> None:
    copies = [rest for word, rest in dockerfile_instructions() if word == "COPY" and "--from=" not in rest]
    assert copies
    for rest in copies:
        *sources, _dest = shlex.split(rest)
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not dockerignored(source), f"{source} is excluded by .dockerignore"
    assert (ROOT / "pyproject.toml").is_file() and not dockerignored("rwproxy/cli.py")


# --------------------------------------------------------------------------------------------------
# Kubernetes


def k8s_objects() -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted(K8S.glob("*.yaml")):
        doc = load_yaml(path)
        if doc.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/name") == "etcd":
            continue  # etcd-*.yaml: checked in test_two_instances_agree_through_etcd
        out[doc["kind"]] = doc
    return out


def test_k8s_kustomization_lists_every_manifest() -> None:
    resources = load_yaml(K8S / "kustomization.yaml")["resources"]
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(resources) == files
    for name in files:
        doc = load_yaml(K8S / name)
        assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"], name


def test_k8s_configmap_is_the_shipped_config() -> None:
    cm = k8s_objects()["ConfigMap"]
    assert cm["data"] == {"rwproxy.toml": TOML.read_text()}, (
        "deploy/k8s/configmap.yaml differs from deploy/rwproxy/rwproxy.toml: regenerate it "
        "(the command is in its header)"
    )


def test_k8s_deployment(config: Config) -> None:
    objs = k8s_objects()
    dep = objs["Deployment"]
    pod = dep["spec"]["template"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (c,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"mysql": listen_port(config), "admin": admin_port(config)}

    def probe_port(probe: dict[str, Any]) -> int:
        port = probe["httpGet"]["port"]
        return ports[port] if isinstance(port, str) else int(port)

    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert probe_port(c["readinessProbe"]) == probe_port(c["livenessProbe"]) == admin_port(config)

    pod_sec, sec = pod["spec"]["securityContext"], c["securityContext"]
    assert pod_sec["runAsNonRoot"] is True and pod_sec["runAsUser"] != 0
    assert sec["allowPrivilegeEscalation"] is False and sec["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= c["resources"]["requests"].keys()
    assert "memory" in c["resources"]["limits"]

    # The ConfigMap lands where the image's ENTRYPOINT reads the config.
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == "config"]
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == "config"]
    assert volume["configMap"]["name"] == objs["ConfigMap"]["metadata"]["name"]
    assert f"{mount['mountPath']}/rwproxy.toml" == CONFIG_IN_IMAGE
    assert "rwproxy.toml" in objs["ConfigMap"]["data"]
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    assert grace > config.proxy.shutdown_grace_seconds


def test_k8s_service_pdb_and_servicemonitor(config: Config) -> None:
    objs = k8s_objects()
    pod = objs["Deployment"]["spec"]["template"]
    labels = pod["metadata"]["labels"]
    (c,) = pod["spec"]["containers"]
    container_ports = {p["name"]: p["containerPort"] for p in c["ports"]}

    svc = objs["Service"]
    assert svc["spec"]["selector"].items() <= labels.items()
    svc_ports = {p["name"]: p for p in svc["spec"]["ports"]}
    for name, p in svc_ports.items():
        assert p["targetPort"] in container_ports, name
    assert container_ports[svc_ports["admin"]["targetPort"]] == admin_port(config)
    assert container_ports[svc_ports["mysql"]["targetPort"]] == listen_port(config)

    pdb = objs["PodDisruptionBudget"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < objs["Deployment"]["spec"]["replicas"]

    sm = objs["ServiceMonitor"]
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert container_ports[svc_ports[endpoint["port"]]["targetPort"]] == admin_port(config)
    # The dashboard filters on job="rwproxy": the Prometheus Operator names the job after the Service.
    assert svc["metadata"]["name"] == "rwproxy"


# --------------------------------------------------------------------------------------------------
# systemd


def unit_settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    section = ""
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key}", []).append(value)
    return out


def test_systemd_unit_is_hardened_and_runs_the_config() -> None:
    s = unit_settings()
    assert s["Service.ExecStart"] == [f"/opt/rwproxy/bin/rwproxy run --config {CONFIG_IN_IMAGE}"]
    assert s["Service.ExecStartPre"] == [f"/opt/rwproxy/bin/rwproxy check-config {CONFIG_IN_IMAGE}"]
    assert s["Service.ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert s["Service.Restart"] == ["on-failure"]
    assert s["Service.NoNewPrivileges"] == ["yes"] and s["Service.ProtectSystem"] == ["strict"]
    assert s.get("Service.User") == ["rwproxy"] or s.get("Service.DynamicUser") == ["yes"]
    assert s["Service.CapabilityBoundingSet"] == [""]
    assert "hot reload" in UNIT.read_text().lower()  # the comment saying what SIGHUP does


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    """systemd itself reads the unit (with ExecStart pointed at this venv's rwproxy, which exists):
    unknown keys and bad values are reported against the file."""
    rwproxy = Path(sys.executable).parent / "rwproxy"
    assert rwproxy.exists()
    unit = tmp_path / "rwproxy.service"
    unit.write_text(UNIT.read_text().replace("/opt/rwproxy/bin/rwproxy", str(rwproxy)))
    run = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in (run.stdout + run.stderr).splitlines() if "rwproxy.service" in line]
    assert run.returncode == 0 and not complaints, run.stdout + run.stderr


# --------------------------------------------------------------------------------------------------
# The dashboard's PromQL (names checked against a live /metrics in the integration test)


def test_promql_helpers_find_metric_and_label_names() -> None:
    expr = (
        'sum by (route_reason) (rate(rwproxy_queries_total{job="rwproxy", instance=~"$instance"}'
        "[$__rate_interval])) / ignoring(x) clamp_min(sum(rwproxy_other_total offset 5m), 1e-9)"
    )
    assert metric_names(expr) == {"rwproxy_queries_total", "rwproxy_other_total"}
    assert label_names(expr) == {"route_reason", "job", "instance", "x"}
    hist = "histogram_quantile(0.99, sum without (node) (rate(rwproxy_query_seconds_bucket[5m])))"
    assert metric_names(hist) == {"rwproxy_query_seconds_bucket"}
    var = 'label_values(rwproxy_build_info{job="rwproxy"}, instance)'
    assert metric_names(var) == {"rwproxy_build_info"} and label_names(var) == {"job", "instance"}
    assert metric_names("up and on(instance) rwproxy_server_up > bool 0") == {"up", "rwproxy_server_up"}


def test_missing_metrics_is_strict() -> None:
    exposition = (
        "# HELP rwproxy_queries_total q\n# TYPE rwproxy_queries_total counter\n"
        'rwproxy_queries_total{node="a"} 3\n'
        "# HELP rwproxy_query_seconds h\n# TYPE rwproxy_query_seconds histogram\n"
        'rwproxy_query_seconds_bucket{le="+Inf"} 1\nrwproxy_query_seconds_sum 0.1\n'
        "rwproxy_query_seconds_count 1\n"
    )
    assert exposed_series(exposition)["rwproxy_queries_total"] == {"node"}
    names = {"rwproxy_queries_total", "rwproxy_query_seconds_bucket", "rwproxy_query_seconds_count"}
    assert missing_metrics(names, exposition) == set()
    # The family name without its suffix is not a series; neither is a made-up one.
    assert missing_metrics(
        {"rwproxy_queries", "rwproxy_query_seconds", "rwproxy_bogus_total"}, exposition
    ) == {
        "rwproxy_queries",
        "rwproxy_query_seconds",
        "rwproxy_bogus_total",
    }


def test_dashboard_uses_only_rwproxy_and_process_metrics() -> None:
    exprs = dashboard_expressions(json.loads(DASHBOARD.read_text()))
    assert len(exprs) >= 20
    names = set().union(*(metric_names(e) for _, e in exprs))
    assert names and all(n.startswith(("rwproxy_", "process_")) for n in names), names
    # The panels the deploy item asks for are there.
    for needed in (
        "rwproxy_queries_total",
        "rwproxy_server_replication_lag_seconds",
        "rwproxy_server_state",
        "rwproxy_server_state_reason",
        "rwproxy_query_duration_seconds_bucket",
        "rwproxy_routing_pins_total",
        "rwproxy_errors_total",
        "rwproxy_backend_connections",
        "rwproxy_classifier_total",
    ):
        assert needed in names, needed
