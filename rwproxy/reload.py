"""Hot reload: re-read the config file the proxy started with and apply it without dropping sessions.

    result = await app.reload_config()   # SIGHUP, admin SQL RELOAD CONFIG, POST /reload all call it
    str(result)                          # "config reloaded (topology v7): server db3 added, ..."

The file is validated like ``rwproxy check-config`` does; an invalid file raises ``ReloadError`` (its
message names the file, the key path and the reason), is logged at ERROR and changes nothing.
``rwproxy_config_reloads_total{result="ok"|"error"}`` counts both.

What changes live (``rwproxy.config.diff`` has the full list), for the sessions already open too:

* users: a new user can log in at once; a removed user cannot open new sessions, while the sessions
  it already has keep working (their backend credentials are kept for them until they end); a
  changed password counts for the next login.
* servers: with the monitor on, ``Monitor.set_servers`` starts checking new servers (they take
  statements once ONLINE), stops removed ones and applies new weights and roles; with the monitor
  off the static topology is rebuilt from the file. Removed servers get no new statements; a
  statement or transaction already running there finishes (the session keeps its connection until
  it next goes elsewhere). A drain of a removed server is forgotten.
* ``[routing]`` options and rules, ``[monitor]`` settings (also switching the monitor on or off),
  ``[logging]``, and the ``[proxy]`` limits read per session.

What needs a restart (listeners, TLS files, ``[backend]``, admin listeners and accounts, ...) keeps
its running value; the reload logs one WARNING naming those keys and reports them.

One reload runs at a time (``app.reload_lock``); all of it runs on the proxy's event-loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from rwproxy.backend.own_account import own_account
from rwproxy.config import Config, ConfigError, load_config
from rwproxy.config.diff import ConfigDiff, diff_configs, keep_restart_only
from rwproxy.router.routing_state import RoutingState
from rwproxy.topology.model import Topology

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from rwproxy.backend.pool import Pool
    from rwproxy.config import UserConfig
    from rwproxy.discovery.wiring import AwsParts
    from rwproxy.frontend.session import ClientSession
    from rwproxy.observability.stats import ProxyStats
    from rwproxy.topology.monitor import Monitor

__all__ = ["ReloadError", "ReloadResult", "ReloadTarget", "install_sighup", "reload_app"]

log = logging.getLogger(__name__)


class ReloadError(Exception):
    """The new config was rejected; the running one stays. ``str()`` says why."""


@dataclass(slots=True)
class ReloadResult:
    changes: list[str] = field(default_factory=list)
    restart_needed: list[str] = field(default_factory=list)
    topology_version: int = 0

    def __str__(self) -> str:
        text = "config reloaded"
        text += ": " + "; ".join(self.changes) if self.changes else ": no changes"
        if self.restart_needed:
            text += " (kept until a restart: " + "; ".join(self.restart_needed) + ")"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": True,
            "changes": self.changes,
            "restart_needed": self.restart_needed,
            "topology_version": self.topology_version,
        }


class ReloadTarget(Protocol):
    """What a reload reads and replaces of the running proxy (``rwproxy.app.ProxyApp``): public
    fields and methods only; the routing settings are one object, swapped in one assignment."""

    config: Config
    routing: RoutingState
    drained: frozenset[str]
    monitor: Monitor | None
    server_version: str

    @property
    def config_path(self) -> Path | None: ...

    @property
    def reload_lock(self) -> asyncio.Lock: ...

    @property
    def stats(self) -> ProxyStats: ...

    @property
    def topology(self) -> Topology: ...

    @property
    def sessions(self) -> Mapping[int, ClientSession]: ...

    @property
    def pool(self) -> Pool: ...

    @property
    def aws(self) -> AwsParts:
        """The monitor's login under [backend] credentials (``AwsParts.use_monitor_account``)."""
        ...

    def set_topology(self, topology: Topology) -> None: ...

    def replace_users(
        self,
        users: Sequence[UserConfig],
        *,
        removed: Sequence[str] = (),
        added: Sequence[str] = (),
        changed: Sequence[str] = (),
    ) -> None: ...

    def restart_idle_sweeper(self) -> None: ...

    async def reload_config(self) -> ReloadResult: ...


async def reload_app(app: ReloadTarget) -> ReloadResult:
    """Re-read ``app.config_path`` and apply it. Raises ReloadError (nothing changed) when invalid."""
    async with app.reload_lock:
        path = app.config_path
        try:
            if path is None:
                raise ConfigError("this proxy was not started from a config file: nothing to reload")
            new = load_config(path)
        except ConfigError as exc:
            app.stats.config_reloads["error"] += 1
            app.stats.last_reload_ok = False
            log.error(
                "config reload rejected; the running config stays: %s",
                exc,
                extra={"event": "config_reload", "result": "error"},
            )
            raise ReloadError(str(exc)) from None
        old = app.config
        diff = diff_configs(old, new)
        effective = keep_restart_only(old, new)
        try:
            await apply(app, old, effective, diff)
        except Exception as exc:  # a bug: say so, count it, keep serving
            app.stats.config_reloads["error"] += 1
            app.stats.last_reload_ok = False
            log.exception("config reload failed while applying it", extra={"event": "config_reload"})
            raise ReloadError(f"applying the new config failed: {exc}") from exc
        app.stats.config_reloads["ok"] += 1
        app.stats.last_reload_ok = True
        result = ReloadResult(diff.describe(), diff.describe_restart(), app.topology.version)
        log.info(
            "%s",
            result,
            extra={"event": "config_reload", "result": "ok", "changes": result.changes},
        )
        if result.restart_needed:
            log.warning(
                "config reload: these changed in %s but need a restart, the running values stay: %s",
                path,
                ", ".join(k.split(":")[0] for k in result.restart_needed),
                extra={"event": "config_reload", "restart_needed": result.restart_needed},
            )
        return result


async def apply(app: ReloadTarget, old: Config, new: Config, diff: ConfigDiff) -> None:
    """Make the running ``app`` follow ``new`` (restart-only keys already kept as in ``old``)."""
    app.config = new
    if diff.users:
        _apply_users(app, new, diff)
    if diff.section_changed("routing"):
        _apply_routing(app, new)
    await _apply_servers_and_monitor(app, new, diff)
    if "proxy.server_version" in diff.live and new.proxy.server_version:
        app.server_version = new.proxy.server_version
    if "rwproxy.client_idle_timeout_seconds" in diff.live:
        app.restart_idle_sweeper()
    if old.log_settings != new.log_settings:
        from rwproxy.observability.logs import update_logging

        update_logging(*new.log_settings)


def _apply_users(app: ReloadTarget, new: Config, diff: ConfigDiff) -> None:
    app.replace_users(
        new.users, removed=diff.users_removed, added=diff.users_added, changed=diff.users_changed
    )


def _apply_routing(app: ReloadTarget, new: Config) -> None:
    """One assignment: sessions see the old routing state or the new one, never a mix."""
    in_flight = (
        s.inflight.route.node.name
        for s in app.sessions.values()
        if s.inflight is not None and s.inflight.route.node is not None
    )
    app.routing = RoutingState.from_config(new.routing, app.routing, in_flight)


async def _apply_servers_and_monitor(app: ReloadTarget, new: Config, diff: ConfigDiff) -> None:
    from rwproxy.topology.monitor import Monitor

    names = {s.name for s in new.servers}
    if app.drained - names:
        app.drained = app.drained & names
    monitor = app.monitor
    if new.monitor.enabled:
        if monitor is None:
            monitor = Monitor.from_config(new, on_topology=app.set_topology, ssl=app.pool.ssl_context)
            app.aws.use_monitor_account(monitor, own_account(new, "monitor"))
            monitor.version = app.topology.version  # versions keep growing across the switch
            app.monitor = monitor
            await monitor.start()
            log.info("config reload: monitor started")
            return
        if diff.section_changed("monitor") or diff.users:  # credentials may come from the first user
            account = own_account(new, "monitor")
            app.aws.use_monitor_account(monitor, account)
            monitor.set_settings(new.monitor, user=account.user, password=account.password)
        if diff.servers or "servers" in diff.live:
            monitor.set_servers(new.servers)
        return
    if monitor is not None:
        app.monitor = None
        await monitor.stop()
        log.info("config reload: monitor stopped; the topology is the static one from the config")
    elif not (diff.servers or "servers" in diff.live):
        return
    static = new.topology()
    app.set_topology(Topology(nodes=static.nodes, version=app.topology.version + 1))


def install_sighup(app: ReloadTarget) -> None:
    """SIGHUP reloads the config (``rwproxy run``). Errors are logged by ``reload_app``."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[Any]] = set()

    async def reload() -> None:
        log.info("SIGHUP: reloading %s", app.config_path)
        with contextlib.suppress(ReloadError):  # already logged; the running config stays
            await app.reload_config()

    def on_sighup() -> None:
        task = loop.create_task(reload())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
