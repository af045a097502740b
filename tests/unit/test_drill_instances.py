"""rwproxy.drill.instances: which instance led a drill, from /status before and after."""

from __future__ import annotations

from typing import Any

from rwproxy.drill.instances import render_coordination, summarize


def _status(name: str, leader: bool, failovers: int = 0, switchovers: int = 0) -> dict[str, Any]:
    return {
        "coordination": {"instance": name, "is_leader": leader, "etcd_up": True},
        "failover": {"failovers": {"ok": failovers}, "switchovers": {"ok": switchovers}},
    }


def test_the_instance_that_failed_over_led() -> None:
    before = {"a:1": _status("a", True), "b:1": _status("b", False)}
    after = {"a:1": _status("a", True, failovers=1), "b:1": _status("b", False)}
    block = summarize(before, after)
    assert block is not None and block["acted"] == ["a"]
    assert [i["actions"] for i in block["instances"]] == [1, 0]
    text = "\n".join(render_coordination(block))
    assert "a (a:1): leader -> leader, 1 failover/switchover(s)" in text
    assert "led by           a" in text and "MORE THAN ONE" not in text


def test_two_instances_acting_is_called_out() -> None:
    before = {"a:1": _status("a", True), "b:1": _status("b", False)}
    after = {"a:1": _status("a", False, failovers=1), "b:1": _status("b", True, switchovers=1)}
    block = summarize(before, after)
    assert block is not None and block["acted"] == ["a", "b"]
    assert "MORE THAN ONE INSTANCE ACTED" in "\n".join(render_coordination(block))


def test_a_killed_instance_and_no_coordination() -> None:
    before = {"a:1": _status("a", True), "b:1": _status("b", False)}
    block = summarize(before, {"a:1": None, "b:1": _status("b", True, failovers=1)})
    assert block is not None and block["acted"] == ["b"]
    assert block["instances"][0]["answered_after"] is False and block["instances"][0]["actions"] is None
    assert "a (a:1): leader -> gone" in "\n".join(render_coordination(block))
    assert summarize({"x:1": {"failover": {}}}, {"x:1": {"failover": {}}}) is None
    assert render_coordination(None) == []
