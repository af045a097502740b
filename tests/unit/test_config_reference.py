"""docs/config-reference.md is generated from the config models (rwproxy.config.reference): it must
match what the generator gives now, so a new config key cannot be left out of the reference."""

from __future__ import annotations

from pathlib import Path

from rwproxy.config import Config
from rwproxy.config.reference import REGENERATE, example_comments, render

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "docs" / "config-reference.md"


def test_the_committed_reference_is_up_to_date() -> None:
    assert REFERENCE.is_file(), f"docs/config-reference.md is missing; generate it with: {REGENERATE}"
    # Failure? A config key or an example comment changed: run the command below and commit the file.
    assert REFERENCE.read_text() == render(), (
        f"docs/config-reference.md is stale (a config key or its comment changed); regenerate it with:\n"
        f"    {REGENERATE}\n(or: python -m rwproxy config-reference -o docs/config-reference.md)"
    )


def test_every_section_and_key_is_in_the_reference() -> None:
    text = render()
    for section in ("[proxy]", "[[users]]", "[[servers]]", "[routing]", "[[routing.rules]]", "[monitor]"):
        assert f"## `{section}`" in text
    for section in ("[admin]", "[[admin.users]]", "[failover]", "[topology]", "[aws]", "[logging]"):
        assert f"## `{section}`" in text
    for key in Config.model_fields["failover"].annotation.model_fields:  # type: ignore[union-attr]
        assert f"| `{key}` |" in text
    assert "| `priority` |" in text and "| `consistency` |" in text


def test_a_new_key_shows_up_with_its_type_default_and_comment() -> None:
    comments = example_comments(
        "[proxy]\n# Addresses.\nlisten = []\n# Pair of keys.\n# tls_cert = 'a'\n# tls_key = 'b'\n\n"
        "# [[admin.users]]\n# Login.\n# name = 'x'\n"
    )
    assert comments[("proxy", "listen")] == "Addresses."
    assert comments[("proxy", "tls_key")] == "Pair of keys."  # shares the key above's comment
    assert comments[("admin.users", "name")] == "Login."
    text = render("[proxy]\n# Most client connections.\nmax_connections = 2048\n")
    assert "| `max_connections` | integer (>= 1) | `2048` | Most client connections. |" in text
    assert "| `uvloop` | boolean | `true` | (not in rwproxy.example.toml) |" in text
