"""Search latency of a point query on a DuckDB file, the ways a Python program can search a file
that another process may own, in one run. Prints one JSON document.

    python bench/search_latency.py [--rows 100000] [--rounds 5] [--queries 2000]
                                   [--per-open 200] [--markdown FILE]

Modes (each round runs every mode once, in a rotating order, each in a fresh process so that no
mode inherits another's open database or cache):

- ``in_process``: one ``duckdb.connect()`` kept open, queries on it (opening is not timed). The
  fastest possible, and the seed's failure: no other process can open the file meanwhile.
- ``flock_open_close_ro`` / ``flock_open_close_rw``: DuckDB's documented workaround for several
  processes: a cross-process mutex (``fcntl.flock`` on a lock file beside the database), then
  open (read-only / read-write), query, close, unlock, per query.
- ``litekeep_serve``: ``null`` until ``litekeep serve`` exists.

The query is ``SELECT body FROM docs WHERE id = ?`` with random ids from a seeded generator on a
``--rows`` table with an ``id INTEGER PRIMARY KEY`` and a ``body VARCHAR`` column.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time

import duckdb

QUERY = "SELECT body FROM docs WHERE id = ?"
MODES = ["in_process", "flock_open_close_ro", "flock_open_close_rw"]


def build(db: str, rows: int) -> None:
    con = duckdb.connect(db)
    con.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, body VARCHAR)")
    con.execute("INSERT INTO docs SELECT i, 'document ' || i FROM range(?) t(i)", [rows])
    con.execute("CHECKPOINT")
    con.close()


def one_query(con, key: int) -> None:
    row = con.execute(QUERY, [key]).fetchone()
    if row is None or row[0] != f"document {key}":
        raise SystemExit(f"wrong answer for id {key}: {row!r}")


def child(mode: str, db: str, rows: int, queries: int, seed: int) -> list[float]:
    """Runs ``queries`` timed point queries in ``mode``; returns their latencies in ms."""
    rng = random.Random(seed)
    keys = [rng.randrange(rows) for _ in range(queries)]
    samples = []
    if mode == "in_process":
        con = duckdb.connect(db)
        for key in keys[:20]:  # warm the connection's caches, untimed
            one_query(con, key)
        for key in keys:
            start = time.perf_counter()
            one_query(con, key)
            samples.append((time.perf_counter() - start) * 1000)
        con.close()
        return samples
    read_only = mode == "flock_open_close_ro"
    with open(db + ".mutex", "a") as mutex:
        for key in keys:
            start = time.perf_counter()
            fcntl.flock(mutex, fcntl.LOCK_EX)
            try:
                con = duckdb.connect(db, read_only=read_only)
                one_query(con, key)
                con.close()
            finally:
                fcntl.flock(mutex, fcntl.LOCK_UN)
            samples.append((time.perf_counter() - start) * 1000)
    return samples


def percentile(sorted_ms: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    rank = max(1, round(p / 100 * len(sorted_ms) + 0.5 - 1e-9))
    return sorted_ms[min(rank, len(sorted_ms)) - 1]


def summary(samples: list[float]) -> dict:
    s = sorted(samples)
    return {
        "n": len(s),
        "p50_ms": round(percentile(s, 50), 4),
        "p99_ms": round(percentile(s, 99), 4),
        "max_ms": round(s[-1], 4),
    }


def steal_seconds() -> float | None:
    """CPU time the hypervisor took from this VM so far (``/proc/stat``), or None."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def markdown(doc: dict) -> str:
    m = doc["modes"]
    base = m["in_process"]["p50_ms"]
    lines = [
        "# DuckDB point-query latency from Python",
        "",
        f"Produced by `python/bench/search_latency.py` ({doc['rows']:,} rows, {doc['rounds']} "
        f"interleaved rounds, DuckDB {doc['duckdb']}, Python {doc['python']}, {doc['cpus']} CPUs, "
        f"1-minute load average {doc['load_average_1min'][0]} at the start and "
        f"{doc['load_average_1min'][1]} at the end, "
        f"{doc['steal_s']} s stolen by the hypervisor during the run).",
        "",
        "| mode | queries | p50 ms | p99 ms | max ms | p50 / in-process |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in MODES:
        r = m[name]
        lines.append(
            f"| {name} | {r['n']} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['max_ms']:.3f} "
            f"| {r['p50_ms'] / base:.1f}x |"
        )
    lines.append("| litekeep_serve | (not built yet) | | | | |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--queries", type=int, default=2000, help="per round, in_process")
    parser.add_argument("--per-open", type=int, default=200, help="per round, open-close modes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--child", nargs=5, metavar=("MODE", "DB", "ROWS", "N", "SEED"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, db, rows, n, seed = args.child
        print(json.dumps(child(mode, db, int(rows), int(n), int(seed))))
        return

    steal_before = steal_seconds()
    load_before = os.getloadavg()[0]
    samples: dict[str, list[float]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="lk-search-latency-") as scratch:
        db = os.path.join(scratch, "index.duckdb")
        build(db, args.rows)
        for r in range(args.rounds):
            order = MODES[r % len(MODES):] + MODES[: r % len(MODES)]
            for mode in order:
                n = args.queries if mode == "in_process" else args.per_open
                seed = args.seed * 1000 + r
                out = subprocess.run(
                    [sys.executable, __file__, "--child", mode, db, str(args.rows), str(n), str(seed)],
                    capture_output=True, text=True, check=True,
                ).stdout
                samples[mode].extend(json.loads(out))
    steal_after = steal_seconds()

    modes = {mode: summary(s) for mode, s in samples.items()}
    doc = {
        "benchmark": "duckdb_point_query_latency",
        "query": QUERY,
        "rows": args.rows,
        "rounds": args.rounds,
        "duckdb": duckdb.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "steal_s": None if steal_before is None or steal_after is None
        else round(steal_after - steal_before, 2),
        "modes": {**modes, "litekeep_serve": None},
        "ratios_p50": {
            mode: round(modes[mode]["p50_ms"] / modes["in_process"]["p50_ms"], 1)
            for mode in MODES[1:]
        },
    }
    print(json.dumps(doc, indent=2))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown(doc))


if __name__ == "__main__":
    main()
