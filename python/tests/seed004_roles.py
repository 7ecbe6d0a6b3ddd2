"""The two programs of seed 004, run as separate processes by test_seed004_plain_duckdb.py:
plain ``duckdb.connect()``, no litekeep.

    python seed004_roles.py indexer DB   inserts rows until stdin closes (at most 60 s);
                                         prints READY <pid>, INDEXED <n> once n >= 100,
                                         and DONE <rows acknowledged> at the end
    python seed004_roles.py searcher DB read-write|read-only
                                         opens DB, counts the rows, prints one JSON line:
                                         {"rows": n} or {"error": ..., "io_exception": ..., "message": ...}
"""

import json
import os
import sys
import threading
import time

import duckdb


def say(line):
    print(line, flush=True)


def indexer(db):
    con = duckdb.connect(db)
    con.execute("CREATE TABLE IF NOT EXISTS docs (id INTEGER PRIMARY KEY, body VARCHAR)")
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    say(f"READY {os.getpid()}")
    deadline = time.monotonic() + 60
    n = 0
    while not stop.is_set() and time.monotonic() < deadline:
        # One autocommit insert per document, as an indexer acknowledging each file does.
        con.execute("INSERT INTO docs VALUES (?, ?)", [n, f"document {n}"])
        n += 1
        if n == 100:
            say(f"INDEXED {n}")
    con.close()
    say(f"DONE {n}")


def searcher(db, mode):
    try:
        con = duckdb.connect(db, read_only=(mode == "read-only"))
        rows = con.execute("SELECT count(*) FROM docs").fetchone()[0]
        con.close()
        say(json.dumps({"rows": rows}))
    except duckdb.Error as e:
        say(
            json.dumps(
                {
                    "error": type(e).__name__,
                    "io_exception": isinstance(e, duckdb.IOException),
                    "message": str(e),
                }
            )
        )


if __name__ == "__main__":
    role, db, *rest = sys.argv[1:]
    if role == "indexer":
        indexer(db)
    elif role == "searcher":
        searcher(db, *rest)
    else:
        sys.exit(f"unknown role {role}")
