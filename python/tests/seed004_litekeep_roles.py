"""The two programs of seed 004 through litekeep, run as separate processes by
test_seed004_litekeep.py: the same indexer and searcher as seed004_roles.py, with
``litekeep_client.connect(db, engine="duckdb")`` in place of ``duckdb.connect(db)`` (this file
imports no duckdb). Whichever finds no server starts one.

    python seed004_litekeep_roles.py indexer DB LEDGER
        inserts rows (id n, body "document n"), one call each, until stdin closes (at most
        120 s); appends each acknowledged id to LEDGER (a line, written at once) and each id
        whose outcome is unknown to LEDGER.unknown; prints READY, INDEXED <n> once n >= 100,
        and at the end DONE {"acked": n, "unknown": n, "errors": [...]}.
    python seed004_litekeep_roles.py searcher DB LEDGER
        searches until stdin closes (at most 120 s): reads LEDGER (the ids acknowledged before
        the search starts), then selects every id; each of those must be there exactly once.
        Prints READY, and at the end DONE {"searches": n, "violations": [...], "errors": [...]}.

The table has no key, so that a write applied twice would show as a second row rather than be
refused: the ledger check sees it.
"""

import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import litekeep_client  # noqa: E402

BOUND = 120


def say(line):
    print(line, flush=True)


def stop_on_stdin_close():
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    return stop


def indexer(db, ledger):
    conn = litekeep_client.connect(db, engine="duckdb")
    conn.execute("CREATE TABLE IF NOT EXISTS docs (id BIGINT, body VARCHAR)")
    stop = stop_on_stdin_close()
    acked = os.open(ledger, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    unknown = os.open(ledger + ".unknown", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    say("READY")
    counts = {"acked": 0, "unknown": 0, "errors": []}
    deadline = time.monotonic() + BOUND
    n = 0
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            conn.execute("INSERT INTO docs VALUES (?, ?)", [n, f"document {n}"])
        except (litekeep_client.OutcomeUnknown, litekeep_client.Timeout) as e:
            os.write(unknown, f"{n}\n".encode())
            counts["unknown"] += 1
            counts.setdefault("unknown_why", []).append(str(e))
        except litekeep_client.LitekeepError as e:
            counts["errors"].append(f"{n}: {type(e).__name__}: {e}")
        else:
            os.write(acked, f"{n}\n".encode())
            counts["acked"] += 1
        n += 1
        if n == 100:
            say(f"INDEXED {n}")
    conn.close()
    say("DONE " + json.dumps(counts))


def read_ledger(path):
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return []
    lines = text.split("\n")
    return [int(line) for line in lines[:-1]]  # the last is "" or a line being written


def searcher(db, ledger):
    conn = litekeep_client.connect(db, engine="duckdb")
    stop = stop_on_stdin_close()
    say("READY")
    report = {"searches": 0, "violations": [], "errors": []}
    deadline = time.monotonic() + BOUND
    while not stop.is_set() and time.monotonic() < deadline:
        acknowledged = read_ledger(ledger)
        try:
            rows = conn.query("SELECT id FROM docs")
        except litekeep_client.LitekeepError as e:
            report["errors"].append(f"{type(e).__name__}: {e}")
            continue
        report["searches"] += 1
        seen = {}
        for (i,) in rows:
            seen[i] = seen.get(i, 0) + 1
        missing = [i for i in acknowledged if i not in seen]
        doubled = [i for i in acknowledged if seen.get(i, 0) > 1]
        if missing or doubled:
            report["violations"].append(
                {"search": report["searches"], "acknowledged": len(acknowledged),
                 "missing": missing[:10], "doubled": doubled[:10]}
            )
    conn.close()
    say("DONE " + json.dumps(report))


if __name__ == "__main__":
    role, db, ledger = sys.argv[1:]
    {"indexer": indexer, "searcher": searcher}[role](db, ledger)
