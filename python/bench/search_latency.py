"""Searching and indexing a DuckDB file from Python, the ways a program can when another process
may own the file, in one run. Prints one JSON document (and writes it to ``--json FILE``).

    python bench/search_latency.py [--rows 100000] [--rounds 5] [--queries 2000]
                                   [--per-open 200] [--ingest-rows 2000] [--writers 1,2,4]
                                   [--kills 30] [--json FILE] [--markdown FILE]

It needs the ``duckdb`` package and, for the ``litekeep_serve`` rows, a ``litekeep`` built with
``--features duckdb`` (``LITEKEEP`` or ``PATH``); ``litekeep_client`` is imported from this
repository's ``python/`` when it is not installed.

**Search latency**, a point query ``SELECT body FROM docs WHERE id = ?`` with random ids from a
seeded generator, on a ``--rows`` table (``id INTEGER PRIMARY KEY, body VARCHAR``). Each round
runs every mode once, in a rotating order, each in a fresh process:

- ``in_process``: one ``duckdb.connect()`` kept open (opening is not timed). The fastest
  possible, and the seed's failure: no other process can open the file meanwhile.
- ``flock_open_close_ro`` / ``flock_open_close_rw``: DuckDB's documented workaround for several
  processes: a cross-process mutex (``fcntl.flock`` on a lock file beside the database), then
  open (read-only / read-write), query, close, unlock, per query.
- ``litekeep_serve``: ``litekeep_client.connect(db, engine="duckdb")`` kept open (connecting is
  not timed), the query sent to ``litekeep serve``, which owns a copy of the same file.

**Indexing throughput**, ``--ingest-rows`` single-row ``INSERT``s (each its own transaction, as
an indexer acknowledging each document does) into a fresh table per round: one in-process
writer (``ingest_in_process``, its own file), against 1, 2, 4 writer processes through the owner
(``ingest_serve_N``, the rows split between them, started together). Interleaved with the search
modes, round by round.

**Failover**, after the rounds: ``--kills`` times, SIGKILL the server right after a
checkpoint, then send a search at once: the time from the kill to its answer (the client finds
the owner gone, runs ``litekeep serve``, which opens the file, and calls it). Then
``--kills-after-writes`` times the same with ``--failover-writes`` single-row inserts between
the checkpoint and the kill: DuckDB replays them from its WAL when the next server opens the
file.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import duckdb

try:
    import litekeep_client
except ImportError:  # run from the repository without installing the client
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import litekeep_client
from litekeep_client import discovery

QUERY = "SELECT body FROM docs WHERE id = ?"
SEARCH_MODES = ["in_process", "flock_open_close_ro", "flock_open_close_rw", "litekeep_serve"]
INSERT = "INSERT INTO {table} VALUES (?, ?)"


def build(db: str, rows: int) -> None:
    con = duckdb.connect(db)
    con.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, body VARCHAR)")
    con.execute("INSERT INTO docs SELECT i, 'document ' || i FROM range(?) t(i)", [rows])
    con.execute("CHECKPOINT")
    con.close()


def check(row, key: int) -> None:
    if row is None or row[0] != f"document {key}":
        raise SystemExit(f"wrong answer for id {key}: {row!r}")


def timed_queries(keys, one_query) -> list[float]:
    for key in keys[:20]:  # warm the connection's caches, untimed
        one_query(key)
    samples = []
    for key in keys:
        start = time.perf_counter()
        one_query(key)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def search_child(mode: str, db: str, rows: int, queries: int, seed: int) -> list[float]:
    """Runs ``queries`` timed point queries in ``mode``; returns their latencies in ms."""
    rng = random.Random(seed)
    keys = [rng.randrange(rows) for _ in range(queries)]
    if mode == "in_process":
        con = duckdb.connect(db)
        samples = timed_queries(keys, lambda k: check(con.execute(QUERY, [k]).fetchone(), k))
        con.close()
        return samples
    if mode == "litekeep_serve":
        conn = litekeep_client.connect(db, engine="duckdb", start=False)
        samples = timed_queries(keys, lambda k: check((conn.query(QUERY, [k]) or [None])[0], k))
        conn.close()
        return samples
    read_only = mode == "flock_open_close_ro"
    samples = []
    with open(db + ".mutex", "a") as mutex:
        for key in keys:
            start = time.perf_counter()
            fcntl.flock(mutex, fcntl.LOCK_EX)
            try:
                con = duckdb.connect(db, read_only=read_only)
                check(con.execute(QUERY, [key]).fetchone(), key)
                con.close()
            finally:
                fcntl.flock(mutex, fcntl.LOCK_UN)
            samples.append((time.perf_counter() - start) * 1000)
    return samples


def ingest_child(mode: str, db: str, table: str, first: int, step: int, count: int) -> None:
    """Inserts ``count`` rows (ids ``first``, ``first + step``, …) one transaction each, after
    the parent says go; prints READY, then one JSON line: start, end (monotonic s), latencies."""
    if mode == "in_process":
        con = duckdb.connect(db)
        insert = lambda i: con.execute(INSERT.format(table=table), [i, f"document {i}"])  # noqa: E731
    else:
        conn = litekeep_client.connect(db, engine="duckdb", start=False)
        insert = lambda i: conn.execute(INSERT.format(table=table), [i, f"document {i}"])  # noqa: E731
    print("READY", flush=True)
    sys.stdin.readline()
    samples = []
    began = time.monotonic()
    for i in range(first, first + step * count, step):
        start = time.perf_counter()
        insert(i)
        samples.append((time.perf_counter() - start) * 1000)
    ended = time.monotonic()
    print(json.dumps({"start": began, "end": ended, "ms": samples}), flush=True)


def run_ingest(mode: str, db: str, table: str, writers: int, rows: int, via: str) -> dict:
    """One run of ``writers`` processes inserting ``rows`` in all into a new ``table``."""
    setup = duckdb.connect(db) if via == "in_process" else None
    create = f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, body VARCHAR)"
    if setup is not None:
        setup.execute(create)
        setup.close()
    else:
        with litekeep_client.connect(db, engine="duckdb", start=False) as conn:
            conn.execute(create)
    procs = []
    for w in range(writers):
        count = rows // writers + (1 if w < rows % writers else 0)
        procs.append(subprocess.Popen(
            [sys.executable, __file__, "--ingest-child", via, db, table, str(w), str(writers), str(count)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        ))
    for p in procs:
        if p.stdout.readline().strip() != "READY":
            raise SystemExit(f"an {mode} writer did not start")
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    reports = []
    for p in procs:
        reports.append(json.loads(p.stdout.readline()))
        p.stdin.close()
        p.stdout.close()
        if p.wait() != 0:
            raise SystemExit(f"an {mode} writer failed")
    seconds = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    latencies = [ms for r in reports for ms in r["ms"]]
    drop = f"DROP TABLE {table}"
    if via == "in_process":
        con = duckdb.connect(db)
        n = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        con.execute(drop)
        con.close()
    else:
        with litekeep_client.connect(db, engine="duckdb", start=False) as conn:
            n = conn.query(f"SELECT count(*) FROM {table}")[0][0]
            conn.execute(drop)
    if n != rows:
        raise SystemExit(f"{mode}: {n} rows in {table}, {rows} inserted")
    return {"seconds": seconds, "latencies": latencies}


def failover(db: str, rows: int, kills: int, writes: int, seed: int) -> list[float]:
    """Kills the server ``kills`` times, each time after a checkpoint and ``writes`` single-row
    inserts through it (which the next server replays from DuckDB's WAL when it opens the
    file); the time from each kill to the next answered search, in ms."""
    rng = random.Random(seed)
    conn = litekeep_client.connect(db, engine="duckdb")
    conn.execute("CREATE TABLE IF NOT EXISTS failover_writes (id BIGINT, body VARCHAR)")
    samples = []
    for _ in range(kills):
        # As a read: in a write, DuckDB refuses it when the server's batch transaction has
        # changes of its own ("Cannot CHECKPOINT: the current transaction has transaction
        # local changes").
        conn.query("CHECKPOINT")
        for i in range(writes):
            conn.execute("INSERT INTO failover_writes VALUES (?, ?)", [i, f"document {i}"])
        key = rng.randrange(rows)
        check(conn.query(QUERY, [key])[0], key)  # connected, the server warm
        owner = discovery.find(conn.path, ask_kernel=True)
        if not isinstance(owner, discovery.Owner):
            raise SystemExit(f"no owner to kill: {owner.why}")
        start = time.monotonic()
        os.kill(owner.pid, signal.SIGKILL)
        check(conn.query(QUERY, [key])[0], key)
        samples.append((time.monotonic() - start) * 1000)
    conn.close()
    return samples


def stop_server(db: str) -> None:
    """Stops the server of ``db`` (SIGTERM) and waits until the owner lock is free."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        owner = discovery.find(db, ask_kernel=True)
        if isinstance(owner, discovery.NoOwner) and owner.free:
            return
        if isinstance(owner, discovery.Owner):
            try:
                os.kill(owner.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    raise SystemExit(f"the server of {db} did not stop within 30 s")


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
        "# DuckDB from Python: search latency, indexing, failover",
        "",
        f"Produced by `python/bench/search_latency.py` ({doc['rows']:,} rows, {doc['rounds']} "
        f"interleaved rounds, DuckDB {doc['duckdb']}, Python {doc['python']}, {doc['cpus']} CPUs, "
        f"1-minute load average {doc['load_average_1min'][0]} at the start and "
        f"{doc['load_average_1min'][1]} at the end, "
        f"{doc['steal_s']} s stolen by the hypervisor during the run).",
        "",
        "Point query `SELECT body FROM docs WHERE id = ?`, each mode in fresh processes:",
        "",
        "| mode | queries | p50 ms | p99 ms | max ms | p50 / in-process | open-and-close (ro) p50 / this p50 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    ro = m["flock_open_close_ro"]["p50_ms"]
    for name in SEARCH_MODES:
        r = m[name]
        lines.append(
            f"| {name} | {r['n']} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['max_ms']:.3f} "
            f"| {r['p50_ms'] / base:.2f}x | {ro / r['p50_ms']:.1f}x |"
        )
    ing = doc["ingest"]
    lines += [
        "",
        f"Indexing: {doc['ingest_rows']:,} single-row inserts (one transaction each) per run, "
        "the median of the rounds' throughputs; latencies over all rounds:",
        "",
        "| writers | rows/s | vs in-process | p50 ms | p99 ms | max ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in ing.items():
        lines.append(
            f"| {name} | {r['rows_per_s']:,.0f} | {r['vs_in_process']:.2f}x | {r['p50_ms']:.3f} "
            f"| {r['p99_ms']:.3f} | {r['max_ms']:.3f} |"
        )
    lines += ["", failover_text(doc)]
    return "\n".join(lines) + "\n"


def failover_text(doc: dict) -> str:
    """The failover figures, in a sentence."""
    f, w = doc["failover"], doc["failover_after_writes"]
    text = ""
    if f is not None:
        text += (f"Failover: the server SIGKILLed {f['n']} times right after a checkpoint, a search "
                 f"sent at each kill: from the kill to its answer p50 {f['p50_ms']:.1f} ms, p99 "
                 f"{f['p99_ms']:.1f} ms, max {f['max_ms']:.1f} ms (the client finds no owner, runs "
                 "`litekeep serve`, which opens the file, then calls it).")
    if w is not None:
        text += (f" With {w['writes']} single-row writes since the checkpoint ({w['n']} kills), "
                 f"which DuckDB replays from its WAL when the next server opens the file: p50 "
                 f"{w['p50_ms']:.1f} ms, p99 {w['p99_ms']:.1f} ms.")
    return text.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--queries", type=int, default=2000,
                        help="per round, in_process and litekeep_serve")
    parser.add_argument("--per-open", type=int, default=200, help="per round, open-close modes")
    parser.add_argument("--ingest-rows", type=int, default=2000, help="per indexing run")
    parser.add_argument("--writers", default="1,2,4", help="writer processes through the owner")
    parser.add_argument("--kills", type=int, default=30,
                        help="server SIGKILLs for failover, each after a checkpoint")
    parser.add_argument("--kills-after-writes", type=int, default=10,
                        help="server SIGKILLs for failover after --failover-writes inserts")
    parser.add_argument("--failover-writes", type=int, default=500,
                        help="single-row inserts between the checkpoint and the kill")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="also write the JSON document to this file")
    parser.add_argument("--markdown", help="also write the tables to this file")
    parser.add_argument("--child", nargs=5, metavar=("MODE", "DB", "ROWS", "N", "SEED"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--ingest-child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, db, rows, n, seed = args.child
        print(json.dumps(search_child(mode, db, int(rows), int(n), int(seed))))
        return
    if args.ingest_child:
        via, db, table, first, step, count = args.ingest_child
        ingest_child(via, db, table, int(first), int(step), int(count))
        return

    # Stopped (SIGTERM), it still stops its server and removes its files, as on Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    writers = [int(w) for w in args.writers.split(",")]
    ingest_modes = ["ingest_in_process"] + [f"ingest_serve_{w}" for w in writers]
    steal_before = steal_seconds()
    load_before = os.getloadavg()[0]
    samples: dict[str, list[float]] = {mode: [] for mode in SEARCH_MODES}
    ingest: dict[str, list[dict]] = {mode: [] for mode in ingest_modes}
    with tempfile.TemporaryDirectory(prefix="lk-search-latency-") as scratch:
        db = os.path.join(scratch, "index.duckdb")
        build(db, args.rows)
        # The server owns a copy of the same file (DuckDB lets nobody else open the one it
        # owns), and stays up across the rounds as an indexer's owner would.
        served = os.path.join(scratch, "served.duckdb")
        shutil.copyfile(db, served)
        own_writer_db = os.path.join(scratch, "ingest.duckdb")
        duckdb.connect(own_writer_db).close()
        keeper = litekeep_client.connect(served, engine="duckdb")
        try:
            modes = SEARCH_MODES + ingest_modes
            for r in range(args.rounds):
                order = modes[r % len(modes):] + modes[: r % len(modes)]
                for mode in order:
                    seed = args.seed * 1000 + r
                    if mode.startswith("ingest_"):
                        table = f"ingest_{r}"
                        if mode == "ingest_in_process":
                            run = run_ingest(mode, own_writer_db, table, 1, args.ingest_rows, "in_process")
                        else:
                            n = int(mode.rsplit("_", 1)[1])
                            run = run_ingest(mode, served, table, n, args.ingest_rows, "serve")
                        ingest[mode].append(run)
                        continue
                    path = served if mode == "litekeep_serve" else db
                    n = args.queries if mode in ("in_process", "litekeep_serve") else args.per_open
                    out = subprocess.run(
                        [sys.executable, __file__, "--child", mode, path, str(args.rows), str(n), str(seed)],
                        capture_output=True, text=True, check=True,
                    ).stdout
                    samples[mode].extend(json.loads(out))
            keeper.close()
            kills = failover(served, args.rows, args.kills, 0, args.seed) if args.kills else []
            kills_after_writes = (
                failover(served, args.rows, args.kills_after_writes, args.failover_writes, args.seed)
                if args.kills_after_writes else []
            )
        finally:
            keeper.close()
            stop_server(served)
    steal_after = steal_seconds()

    modes_summary = {mode: summary(s) for mode, s in samples.items()}
    base_rate = None
    ingest_summary = {}
    for mode in ingest_modes:
        rates = sorted(args.ingest_rows / run["seconds"] for run in ingest[mode])
        rate = rates[len(rates) // 2]
        if mode == "ingest_in_process":
            base_rate = rate
        lat = summary([ms for run in ingest[mode] for ms in run["latencies"]])
        ingest_summary[mode] = {"rows_per_s": round(rate, 1), "vs_in_process": round(rate / base_rate, 3),
                                "p50_ms": lat["p50_ms"], "p99_ms": lat["p99_ms"], "max_ms": lat["max_ms"]}
    in_p50 = modes_summary["in_process"]["p50_ms"]
    doc = {
        "benchmark": "duckdb_search_ingest_failover",
        "query": QUERY,
        "rows": args.rows,
        "rounds": args.rounds,
        "ingest_rows": args.ingest_rows,
        "duckdb": duckdb.__version__,
        "python": platform.python_version(),
        "litekeep": litekeep_client.find_litekeep(),
        "cpus": os.cpu_count(),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "steal_s": None if steal_before is None or steal_after is None
        else round(steal_after - steal_before, 2),
        "modes": modes_summary,
        "ratios_p50": {mode: round(modes_summary[mode]["p50_ms"] / in_p50, 3) for mode in SEARCH_MODES[1:]},
        "serve_speedup_p50": {
            mode: round(modes_summary[mode]["p50_ms"] / modes_summary["litekeep_serve"]["p50_ms"], 2)
            for mode in ("flock_open_close_ro", "flock_open_close_rw")
        },
        "ingest": ingest_summary,
        "failover": summary(kills) if kills else None,
        "failover_after_writes": (
            {**summary(kills_after_writes), "writes": args.failover_writes} if kills_after_writes else None
        ),
    }
    text = json.dumps(doc, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown(doc))


if __name__ == "__main__":
    main()
