"""Shared helpers for the protocol tests: captured fixtures and h11-style feeding."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from rwproxy.protocol.framing import PacketDecoder

__all__ = ["FIXTURES", "decode_all", "feed_variants", "fixture_frames", "fixture_payloads", "fixture_text"]

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "packets"


def fixture_frames(name: str) -> list[bytes]:
    """The frames (header included) stored one per line in ``tests/fixtures/packets/<name>.hex``."""
    lines = (FIXTURES / f"{name}.hex").read_text().split()
    return [bytes.fromhex(line) for line in lines]


def fixture_payloads(name: str) -> list[bytes]:
    """The payloads of a fixture's frames (all fixtures are single-frame packets)."""
    return [f[4:] for f in fixture_frames(name)]


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text().strip()


def feed_variants(data: bytes) -> Iterator[tuple[str, list[bytes]]]:
    """h11's ``tr()``: the same bytes whole, byte by byte, and in uneven chunks."""
    yield "whole", [data]
    yield "bytewise", [data[i : i + 1] for i in range(len(data))]
    yield "chunks", [data[i : i + 7] for i in range(0, len(data), 7)]


def decode_all(chunks: list[bytes], max_payload: int = 1 << 24) -> tuple[list[tuple[int, bytes]], int]:
    """Feed ``chunks`` one at a time, draining packets after each; return packets and bytes left over."""
    decoder = PacketDecoder(max_payload)
    out: list[tuple[int, bytes]] = []
    for chunk in chunks:
        decoder.feed(chunk)
        while (packet := decoder.next_packet()) is not None:
            out.append(packet)
    return out, decoder.buffered
