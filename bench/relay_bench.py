"""Large-result relay throughput: one big SELECT fetched direct vs through HAProxy vs through rwproxy.

    python bench/relay_bench.py --quick      # 200k rows, 3 rounds x 2 fetches, ~10 s
    python bench/relay_bench.py              # 1M rows, 5 rounds x 3 fetches, ~1 minute

The result is ``--rows`` rows of ~100 bytes (``SELECT seq, REPEAT('x', 92) FROM seq_1_to_N``,
MariaDB's sequence engine: nothing to create or to keep in the buffer pool; ``--source table`` reads
the same rows from an InnoDB table instead). The client must be cheaper than the proxy or it
measures itself: the default ``raw`` client logs in with PyMySQL, then writes COM_QUERY on the socket
and only counts bytes with ``recv_into`` until the final EOF packet (it walks the packet headers of
the column metadata, then only checks the last 9 bytes of each chunk). Once per target and round it
first does a ``verify`` fetch that walks every packet header and counts the rows; the timed fetches
must then return exactly as many bytes. ``--client cli`` uses ``mariadb --quick -N -B -e ... >
/dev/null`` instead (includes the CLI's start-up and login, ~10 ms; the CLI itself tops out below
1M rows/s here, so it mostly measures itself).

Targets alternate within each round (direct, haproxy, rwproxy). Through rwproxy the SELECT goes to
the replica; direct and haproxy read the primary (both nodes hold the same data). Reports rows/s
(median over rounds x ``--repeats``), the ratios, and the CPU of the proxy process per 1M rows.
The project's bar: >= 1M rows/s through rwproxy. Exit status 1 when a fetch failed, a byte count
differed, or a proxy died.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import struct
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import pymysql
from benchlib import (
    RESULTS_DIR,
    TARGETS,
    Bench,
    finish_report,
    install_signal_handlers,
    loadavg,
    median,
    require_tools,
    timestamp,
)

BAR_ROWS_PER_S = 1_000_000
SERVER_MORE_RESULTS_EXISTS = 0x0008


@dataclass
class Fetch:
    round: int
    target: str
    kind: str  # "verify" or "timed"
    seconds: float = 0.0
    bytes: int | None = None
    rows: int | None = None
    rows_per_s: float | None = None
    mb_per_s: float | None = None
    cpu_s: dict[str, float | None] = field(default_factory=dict)
    proxy_cpu_s_per_1m_rows: float | None = None
    client_cpu_s_per_1m_rows: float | None = None
    error: str | None = None


class FetchError(RuntimeError):
    pass


# --- the raw client ---------------------------------------------------------------------------------
class RawResult:
    """Reads one text-protocol result set from ``sock`` (no CLIENT_DEPRECATE_EOF: PyMySQL does not
    ask for it). ``exact``: walk every packet and count rows; else count bytes only."""

    def __init__(self, sock: socket.socket, exact: bool) -> None:
        self.sock, self.exact = sock, exact
        self.buf = bytearray(4 << 20)
        self.total = 0
        self.rows = 0

    def read(self) -> tuple[int, int | None]:
        pending = bytearray()  # unparsed bytes while walking packets
        state = "count"  # count -> columns -> rows -> done
        columns = 0
        view = memoryview(self.buf)
        last = b""
        while True:
            n = self.sock.recv_into(self.buf)
            if n == 0:
                raise FetchError(f"connection closed after {self.total} bytes, before the end of the result")
            self.total += n
            if state == "rows" and not self.exact:
                last = bytes(view[n - 9 : n]) if n >= 9 else (last + bytes(view[:n]))[-9:]
                if _is_final_eof(last):
                    return self.total, None
                continue
            pending += view[:n]
            pos = 0
            while len(pending) - pos >= 4:
                length = pending[pos] | pending[pos + 1] << 8 | pending[pos + 2] << 16
                if len(pending) - pos - 4 < length:
                    break
                first = pending[pos + 4] if length else -1
                body = pos + 4
                pos = body + length
                if first == 0xFF:
                    msg = bytes(pending[body + 3 : pos]).decode(errors="replace")
                    raise FetchError(f"server error in the result: {msg}")
                if state == "count":
                    if first == 0x00:
                        raise FetchError("the statement returned no result set")
                    columns = first  # < 251 columns: a 1-byte length-encoded integer
                    state = "columns"
                elif state == "columns":
                    if first == 0xFE and length < 9:
                        state = "rows"
                        if not self.exact:
                            rest = pending[pos:]
                            if len(rest) >= 9 and _is_final_eof(bytes(rest[-9:])):
                                return self.total, None
                            last = bytes(rest[-9:])
                            break
                    else:
                        columns -= 1
                elif state == "rows":
                    if first == 0xFE and length < 9:
                        status = pending[body + 3] | pending[body + 4] << 8
                        if status & SERVER_MORE_RESULTS_EXISTS:
                            raise FetchError("more than one result set")
                        if pos != len(pending):
                            raise FetchError(f"{len(pending) - pos} bytes after the final EOF packet")
                        return self.total, self.rows
                    self.rows += 1
            if state == "rows" and not self.exact:
                continue
            del pending[:pos]


def _is_final_eof(last9: bytes) -> bool:
    """The stream ends with an EOF packet: length 5, 0xFE, warnings, status without MORE_RESULTS.
    Row packets here are never 5 bytes starting with 0xFE (that would be an 8-byte length prefix)."""
    return (
        len(last9) == 9
        and last9[0:3] == b"\x05\x00\x00"
        and last9[4] == 0xFE
        and not (last9[7] & SERVER_MORE_RESULTS_EXISTS)
    )


def raw_fetch(
    bench: Bench, target: str, sql: str, exact: bool, timeout: float
) -> tuple[float, int, int | None]:
    assert bench.cluster is not None
    ep = bench.endpoints[target]
    conn = pymysql.connect(
        host=ep.host,
        port=ep.port,
        user=bench.cluster.app_user,
        password=bench.cluster.app_password,
        database=bench.cluster.database,
        autocommit=True,
        connect_timeout=5,
    )
    try:
        sock: socket.socket = conn._sock  # after login nothing is buffered: the server sent no more
        sock.settimeout(timeout)
        payload = b"\x03" + sql.encode()
        t0 = time.perf_counter()
        sock.sendall(struct.pack("<I", len(payload))[:3] + b"\x00" + payload)
        nbytes, rows = RawResult(sock, exact).read()
        return time.perf_counter() - t0, nbytes, rows
    except TimeoutError:
        raise FetchError(f"no data for {timeout} s (hang?)") from None
    finally:
        conn.close()


def cli_fetch(bench: Bench, target: str, sql: str, timeout: float) -> float:
    assert bench.cluster is not None
    ep = bench.endpoints[target]
    c = bench.cluster
    argv = [
        "mariadb",
        f"-h{ep.host}",
        f"-P{ep.port}",
        f"-u{c.app_user}",
        f"-p{c.app_password}",
        "--quick",
        "-N",
        "-B",
        c.database,
        "-e",
        sql,
    ]
    t0 = time.perf_counter()
    with open(os.devnull, "wb") as devnull:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=devnull, stderr=subprocess.PIPE)
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise FetchError(f"mariadb CLI did not finish within {timeout} s (hang?)") from None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise FetchError(f"mariadb CLI exited {proc.returncode}: {err.decode(errors='replace')}")
    return seconds


# --- one fetch with accounting ----------------------------------------------------------------------
def _client_cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def do_fetch(bench: Bench, args: argparse.Namespace, f: Fetch, sql: str, expect_bytes: int | None) -> Fetch:
    before = {"haproxy": bench.haproxy.cpu() if bench.haproxy else None}
    before["rwproxy"] = bench.proxy.cpu() if bench.proxy else None
    before.update(bench.node_cpu())
    client0 = _client_cpu()
    try:
        if args.client == "cli" and f.kind == "timed":
            f.seconds = cli_fetch(bench, f.target, sql, args.timeout)
            f.rows = args.rows
        else:
            f.seconds, f.bytes, rows = raw_fetch(bench, f.target, sql, f.kind == "verify", args.timeout)
            f.rows = rows if rows is not None else args.rows
            if f.kind == "verify" and rows != args.rows:
                raise FetchError(f"{rows} rows, expected {args.rows}")
            if expect_bytes is not None and f.bytes is not None and f.bytes != expect_bytes:
                raise FetchError(f"{f.bytes} bytes, the verified fetch had {expect_bytes}")
    except (FetchError, OSError, pymysql.err.MySQLError) as exc:
        f.error = str(exc)
    client = _client_cpu() - client0
    after = {"haproxy": bench.haproxy.cpu() if bench.haproxy else None}
    after["rwproxy"] = bench.proxy.cpu() if bench.proxy else None
    after.update(bench.node_cpu())
    f.cpu_s = {
        k: (after[k] - v if v is not None and after.get(k) is not None else None) for k, v in before.items()
    }
    f.cpu_s["client"] = client
    for child in (bench.haproxy, bench.proxy):
        if child is not None and not child.alive():
            f.error = (f.error + "; " if f.error else "") + f"{child.name} died (exit {child.returncode()})"
    if f.error is None and f.seconds > 0 and f.rows:
        f.rows_per_s = f.rows / f.seconds
        if f.bytes:
            f.mb_per_s = f.bytes / f.seconds / 1e6
        proc_cpu = f.cpu_s.get(f.target) if f.target in ("haproxy", "rwproxy") else None
        if proc_cpu is not None:
            f.proxy_cpu_s_per_1m_rows = proc_cpu / f.rows * 1e6
        f.client_cpu_s_per_1m_rows = client / f.rows * 1e6
    return f


# --- main -------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="200k rows, 3 rounds, 2 repeats")
    ap.add_argument(
        "--rows", type=int, default=None, help="rows in the result (default 1000000, quick 200000)"
    )
    ap.add_argument("--rounds", type=int, default=None, help="default 5, quick 3")
    ap.add_argument(
        "--repeats", type=int, default=None, help="timed fetches per target per round (default 3)"
    )
    ap.add_argument("--source", choices=("seq", "table"), default="seq")
    ap.add_argument("--client", choices=("raw", "cli"), default="raw")
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds without progress = a hang")
    args = ap.parse_args(argv)
    args.rows = args.rows or (200_000 if args.quick else 1_000_000)
    args.rounds = args.rounds or (3 if args.quick else 5)
    args.repeats = args.repeats or (2 if args.quick else 3)
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if any(t not in TARGETS for t in args.targets):
        ap.error(f"targets: choose from {TARGETS}")
    return args


def prepare_source(bench: Bench, args: argparse.Namespace) -> str:
    assert bench.cluster is not None
    c = bench.cluster
    if args.source == "seq":
        return f"SELECT seq, REPEAT('x', 92) AS pad FROM seq_1_to_{args.rows}"
    c.sql(c.primary, "DROP TABLE IF EXISTS relay_rows")
    c.sql(c.primary, "CREATE TABLE relay_rows (id INT PRIMARY KEY, pad CHAR(92) NOT NULL) ENGINE=InnoDB")
    step = 100_000
    for lo in range(1, args.rows + 1, step):  # chunks: keeps each replicated transaction moderate
        hi = min(args.rows, lo + step - 1)
        c.sql(c.primary, f"INSERT INTO relay_rows SELECT seq, REPEAT('x', 92) FROM seq_{lo}_to_{hi}")
    c.wait_replicas_caught_up(timeout=300)
    return "SELECT id, pad FROM relay_rows"


def summarize(fetches: list[Fetch], args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    med: dict[str, dict[str, float | None]] = {}
    for t in TARGETS:
        ok = [f for f in fetches if f.target == t and f.kind == "timed" and f.error is None]
        med[t] = {
            "rows_per_s": median([f.rows_per_s for f in ok if f.rows_per_s]),
            "mb_per_s": median([f.mb_per_s for f in ok if f.mb_per_s]),
            "proxy_cpu": median(
                [f.proxy_cpu_s_per_1m_rows for f in ok if f.proxy_cpu_s_per_1m_rows is not None]
            ),
            "client_cpu": median(
                [f.client_cpu_s_per_1m_rows for f in ok if f.client_cpu_s_per_1m_rows is not None]
            ),
            "n": len(ok),
            "failed": sum(1 for f in fetches if f.target == t and f.error),
        }

    def ratio(a: str, b: str) -> str:
        x, y = med[a]["rows_per_s"], med[b]["rows_per_s"]
        return f"{x / y:.2f}" if x and y else "-"

    def fmt(v: float | None, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    lines = [
        "| target | rows/s | MB/s | vs direct | vs haproxy | proxy CPU s / 1M rows (%core) "
        "| client CPU s / 1M rows (%core) | timed fetches | failed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in args.targets:
        m = med[t]
        rps, pc = m["rows_per_s"], m["proxy_cpu"]
        core = f" ({100 * pc * rps / 1e6:.0f}%)" if pc is not None and rps else ""
        cc = m["client_cpu"]
        ccore = f" ({100 * cc * rps / 1e6:.0f}%)" if cc is not None and rps else ""
        lines.append(
            f"| {t} | {fmt(rps, ',.0f')} | {fmt(m['mb_per_s'], '.1f')} | {ratio(t, 'direct')} | "
            f"{ratio(t, 'haproxy')} | {fmt(pc, '.3f')}{core} | {fmt(cc, '.3f')}{ccore} | "
            f"{m['n']} | {m['failed']} |"
        )
    return "\n".join(lines), med


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_signal_handlers()
    require_tools("haproxy", *(["mariadb"] if args.client == "cli" else []))
    started = timestamp()
    load_start = loadavg()
    fetches: list[Fetch] = []
    meta: dict[str, Any] = {"started": started, "args": vars(args), "loadavg_start": load_start}
    interrupted = False
    print(f"# rwproxy relay benchmark ({'quick' if args.quick else 'full'})", flush=True)
    with Bench(replicas=args.replicas) as bench:
        try:
            bench.start_cluster()
            sql = prepare_source(bench, args)
            bench.start_haproxy()
            bench.start_proxy()
            meta["versions"] = v = bench.versions()
            meta["routing"] = {t: bench.answered_by(t) for t in bench.endpoints}
            meta["sql"] = sql
            print(f"load average at start: {load_start}   nproc: {v['nproc']}   kernel: {v['kernel']}")
            for k in ("python", "uvloop", "rwproxy", "mariadb_server", "haproxy"):
                print(f"  {k}: {v[k]}")
            print(
                f"result: {args.rows:,} rows via `{sql}`; client {args.client}; "
                f"{args.rounds} rounds x {args.repeats} timed fetches per target"
            )
            for t, ep in bench.endpoints.items():
                print(f"  {t:8} {ep.host}:{ep.port}  -> a plain SELECT is answered by {meta['routing'][t]}")
            for note in bench.notes:
                print(f"  ({note})")
            print(
                "note: through rwproxy the SELECT goes to the replica; direct/haproxy read the primary.\n",
                flush=True,
            )
            expect: dict[str, int | None] = {}
            for rnd in range(1, args.rounds + 1):
                for target in args.targets:
                    v_f = do_fetch(bench, args, Fetch(rnd, target, "verify"), sql, None)
                    fetches.append(v_f)
                    expect[target] = v_f.bytes
                    reported = [v_f]
                    if v_f.error is None:
                        for _ in range(args.repeats):
                            f = do_fetch(bench, args, Fetch(rnd, target, "timed"), sql, expect[target])
                            fetches.append(f)
                            reported.append(f)
                            if f.error:
                                break
                    for f in reported:
                        status = f"FAILED: {f.error}" if f.error else ""
                        rps = "-" if f.rows_per_s is None else f"{f.rows_per_s:>12,.0f}"
                        print(
                            f"  r{rnd} {target:8} {f.kind:6} {rps} rows/s  {f.seconds:6.3f} s  "
                            f"{f.bytes or '-':>10} bytes  {status}",
                            flush=True,
                        )
                    failed_now = any(f.error for f in reported)
                    if (
                        failed_now
                        and bench.proxy is not None
                        and (target == "rwproxy" or not bench.proxy.alive())
                    ):
                        print("    rwproxy log tail:\n    " + bench.proxy.tail(20).replace("\n", "\n    "))
                        bench.restart_proxy(f"after a failed fetch in round {rnd} ({target})")
            sizes = {b for b in expect.values() if b}
            if len(sizes) > 1:
                meta["byte_mismatch"] = expect
        except KeyboardInterrupt:
            interrupted = True
            print("\ninterrupted: stopping everything ...", file=sys.stderr)
        finally:
            meta["loadavg_end"] = loadavg()
            meta["events"] = bench.events
            meta["notes"] = bench.notes
            table, med = summarize(fetches, args)
            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            out = RESULTS_DIR / f"relay-{started}.json"
            out.write_text(
                json.dumps({"meta": meta, "summary": med, "fetches": [asdict(f) for f in fetches]}, indent=1)
            )
            failed = [f for f in fetches if f.error]
            saved = bench.save_logs(out.with_suffix("")) if (failed or bench.events) else []

    print()
    print(table)
    print()
    print(f"load average: start {load_start}, end {meta['loadavg_end']}")
    if "byte_mismatch" in meta:
        print(f"note: result sizes differ between targets (bytes): {meta['byte_mismatch']}")
    for t in args.targets:
        cc, rps = med[t]["client_cpu"], med[t]["rows_per_s"]
        if cc is not None and rps and cc * rps / 1e6 > 0.8:
            print(
                f"warning: the client used {100 * cc * rps / 1e6:.0f}% of a core through {t}: it is the "
                "bottleneck there, so that row says little about the path (use --client raw)"
            )
    rw = med["rwproxy"]["rows_per_s"] if "rwproxy" in args.targets else None
    if rw is not None:
        verdict = "met" if rw >= BAR_ROWS_PER_S else "MISSED"
        print(f"bar (>= {BAR_ROWS_PER_S:,} rows/s through rwproxy): {verdict} ({rw:,.0f} rows/s)")
    return finish_report(
        bench.events,
        out,
        saved,
        interrupted=interrupted,
        failure=f"{len(failed)} fetches FAILED" if failed else None,
    )


if __name__ == "__main__":
    sys.exit(main())
