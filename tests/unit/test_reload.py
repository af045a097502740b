"""Config diff (rwproxy.config.diff) and applying a reload to a ProxyApp that is not serving (no servers
needed: the monitor is off, so the topology is the static one from the file)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from rwproxy.app import ProxyApp
from rwproxy.config import parse_config
from rwproxy.config.diff import diff_configs, keep_restart_only
from rwproxy.reload import ReloadError
from tests.support.builders import config_text, section, server, user
from tests.support.net import free_port

BASE = config_text(
    section("proxy", listen=["127.0.0.1:6033"]),
    section("monitor", enabled=False, password="mon-secret-1", user="mon"),
    users=[user("app", "app-pw-1"), user("old", "old-pw-1")],
    servers=[server("db1", "10.0.0.1", role="primary"), server("db2", "10.0.0.2", role="replica")],
)


def test_no_change_is_empty() -> None:
    a = parse_config(BASE)
    d = diff_configs(a, parse_config(BASE))
    assert not d.changed and not d.restart and d.describe() == []


def test_users_servers_and_keys_are_classified() -> None:
    old = parse_config(BASE)
    new_text = (
        BASE.replace('name = "old"\npassword = "old-pw-1"', 'name = "new"\npassword = "new-pw"')
        .replace('password = "app-pw-1"', 'password = "app-pw-2"')
        .replace('host = "10.0.0.2"\nrole = "replica"', 'host = "10.0.0.2"\nrole = "replica"\nweight = 3')
        .replace('listen = ["127.0.0.1:6033"]', 'listen = ["127.0.0.1:7033"]\nmax_connections = 10')
        .replace('password = "mon-secret-1"', 'password = "mon-secret-2"')
        + '[[servers]]\nname = "db3"\nhost = "10.0.0.3"\n[routing]\nstrategy = "least_lag"\n'
        + "[backend]\npool_max_per_server = 4\n"
    )
    new = parse_config(new_text)
    d = diff_configs(old, new)
    assert (d.users_added, d.users_removed, d.users_changed) == (["new"], ["old"], ["app"])
    assert (d.servers_added, d.servers_removed) == (["db3"], [])
    assert d.servers_changed == {"db2": ["weight 1 -> 3"]}
    assert d.live["routing.strategy"] == "weighted -> least_lag"
    assert d.live["proxy.max_connections"] == "2048 -> 10"
    assert d.live["monitor.password"] == "(set) -> (set)"  # a secret: never its value
    assert set(d.restart) == {"proxy.listen", "backend.pool_max_per_server"}
    text = "\n".join(d.describe() + d.describe_restart())
    for secret in ("app-pw", "old-pw", "new-pw", "mon-secret"):
        assert secret not in text
    assert "server db3 added" in text and "user old removed" in text


def test_keep_restart_only_keeps_running_values() -> None:
    old = parse_config(BASE)
    new = parse_config(
        BASE.replace('listen = ["127.0.0.1:6033"]', 'listen = ["127.0.0.1:7033"]\nmax_connections = 10')
    )
    eff = keep_restart_only(old, new)
    assert eff.proxy.listen == ("127.0.0.1:6033",)  # a listener cannot move live
    assert eff.proxy.max_connections == 10  # a limit can
    assert keep_restart_only(old, old) is old


def test_server_order_change_is_live() -> None:
    old = parse_config(BASE)
    swapped = BASE.replace('name = "db1"\nhost = "10.0.0.1"', 'name = "dbX"\nhost = "10.0.0.1"')
    d = diff_configs(old, parse_config(swapped))
    assert d.servers_added == ["dbX"] and d.servers_removed == ["db1"]


def _app(tmp_path: Path, text: str) -> tuple[ProxyApp, Path]:
    path = tmp_path / "rwproxy.toml"
    path.write_text(text)
    return ProxyApp(parse_config(text), config_path=path), path


def test_reload_applies_users_servers_rules(tmp_path: Path) -> None:
    app, path = _app(tmp_path, BASE)
    v0 = app.topology.version
    app.drained = frozenset({"db2"})
    path.write_text(
        BASE.replace('name = "old"\npassword = "old-pw-1"', 'name = "new"\npassword = "new-pw"').replace(
            'name = "db2"\nhost = "10.0.0.2"', 'name = "db4"\nhost = "10.0.0.4"'
        )
        + '[routing]\nstrategy = "least_outstanding"\n[[routing.rules]]\nmatch_regex = "^SELECT 1"\n'
        'route = "primary"\n'
    )
    result = asyncio.run(app.reload_config())
    assert app.lookup_user("new") is not None
    assert app.lookup_user("old") is None  # no new sessions for a removed user ...
    assert app.backend_credentials("old").password == "old-pw-1"  # ... its open ones keep working
    assert [n.name for n in app.topology.nodes] == ["db1", "db4"]
    assert app.topology.version == v0 + 1
    assert app.drained == frozenset()  # the drained server is gone
    assert app.routing.has_rules and app.routing.outstanding is not None
    assert app.routing.policy_options.outstanding is app.routing.outstanding
    assert app.stats.config_reloads["ok"] == 1
    assert "server db4 added" in result.changes and "server db2 removed" in result.changes
    assert result.restart_needed == []


def test_routing_is_swapped_whole_and_the_old_state_is_untouched(tmp_path: Path) -> None:
    """A statement that read ``app.routing`` before the reload keeps a consistent old view."""
    app, path = _app(tmp_path, BASE)
    before = app.routing
    old_rules, old_options = before.rules, before.policy_options
    path.write_text(BASE + '[routing]\non_no_replica = "error"\nreads_to_primary = true\n')
    asyncio.run(app.reload_config())
    assert app.routing is not before
    assert (before.rules, before.policy_options) == (old_rules, old_options)
    assert old_options.on_no_replica_primary and not old_options.reads_to_primary
    new = app.routing.policy_options
    assert new.reads_to_primary and not new.on_no_replica_primary
    path.write_text(BASE + '[routing]\non_no_replica = "error"\nreads_to_primary = true\n# a comment\n')
    unchanged = app.routing
    asyncio.run(app.reload_config())
    assert app.routing is unchanged  # no [routing] change: the same state object


def test_invalid_file_is_rejected_and_the_old_config_stays(tmp_path: Path) -> None:
    app, path = _app(tmp_path, BASE)
    before = app.config
    path.write_text(BASE + '[routing]\nstrategy = "fastest"\n')
    with pytest.raises(ReloadError, match=r"routing\.strategy"):
        asyncio.run(app.reload_config())
    assert app.config is before
    assert app.stats.config_reloads["error"] == 1 and not app.stats.last_reload_ok
    path.write_text("this is [not toml")
    with pytest.raises(ReloadError, match="TOML syntax error"):
        asyncio.run(app.reload_config())
    path.write_text(BASE)
    assert str(asyncio.run(app.reload_config())) == "config reloaded: no changes"
    assert app.stats.last_reload_ok


def test_restart_only_change_is_reported_and_kept(tmp_path: Path) -> None:
    app, path = _app(tmp_path, BASE)
    path.write_text(BASE.replace("127.0.0.1:6033", "127.0.0.1:7033"))
    result = asyncio.run(app.reload_config())
    assert result.restart_needed == ["proxy.listen: [127.0.0.1:6033] -> [127.0.0.1:7033]"]
    assert app.config.proxy.listen == ("127.0.0.1:6033",)


def test_reload_without_a_file_is_an_error() -> None:
    app = ProxyApp(parse_config(BASE))
    with pytest.raises(ReloadError, match="not started from a config file"):
        asyncio.run(app.reload_config())


def test_monitor_account_change_reaches_backend_credentials_logins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With [backend] credentials = "env", a reloaded [monitor] user logs in with the environment's
    password as that user (the monitor's credentials follow own_account, not the start-up one)."""
    monkeypatch.setenv("RWPROXY_TEST_RELOAD_PW", "from-env")
    env = section("backend", credentials="env", password_env="RWPROXY_TEST_RELOAD_PW")
    text = config_text(env, section("monitor", interval_seconds=1.0))
    app, path = _app(tmp_path, text)
    assert app.monitor is not None and app.monitor.credentials is not None

    async def logins() -> list[tuple[str, str]]:
        await app.aws.start()
        try:
            assert app.monitor is not None and app.monitor.credentials is not None
            before = app.monitor.credentials()
            path.write_text(config_text(env, section("monitor", interval_seconds=1.0, user="mon2")))
            await app.reload_config()
            assert app.monitor.credentials is not None
            after = app.monitor.credentials()
            return [(before.user, before.password), (after.user, after.password)]
        finally:
            await app.aws.stop()

    assert asyncio.run(logins()) == [("app", "from-env"), ("mon2", "from-env")]
    assert app.monitor.user == "mon2"


def test_monitor_started_by_reload_takes_backend_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A monitor switched on by a reload logs in as the one built at start would: with the
    environment's password (before: the config's, since only the start-up wiring set it)."""
    monkeypatch.setenv("RWPROXY_TEST_RELOAD_PW", "from-env")
    env = section("backend", credentials="env", password_env="RWPROXY_TEST_RELOAD_PW")
    closed = server("db1", "127.0.0.1", port=free_port(), role="primary")  # refused at once
    app, path = _app(tmp_path, config_text(env, section("monitor", enabled=False), servers=[closed]))
    assert app.monitor is None

    async def switch_on() -> tuple[str, str]:
        await app.aws.start()
        try:
            fast = section("monitor", connect_timeout_seconds=0.2, check_timeout_seconds=0.2)
            path.write_text(config_text(env, fast, servers=[closed]))
            await app.reload_config()
            assert app.monitor is not None and app.monitor.credentials is not None
            creds = app.monitor.credentials()
            await app.monitor.stop()
            return creds.user, creds.password
        finally:
            await app.aws.stop()

    assert asyncio.run(switch_on()) == ("app", "from-env")
