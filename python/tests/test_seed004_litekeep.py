"""Seed 004 through litekeep, green: an indexer process inserting rows continuously and a
search process, both on one DuckDB file at once through ``litekeep serve`` (which the first of
them to call starts). Every search is answered and sees every write acknowledged before it
started. Then the same with the server SIGKILLed every 1-2 s: the clients start the next one,
every search is still answered, and every acknowledged write is in the file exactly once.

Beside test_seed004_plain_duckdb.py, where the same two programs with plain ``duckdb.connect()``
fail with the seed's IOException. After each run the file is read with plain DuckDB, the
servers stopped: what the clients were told is what the file holds.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from servers import owner_pid, stop_servers, wait_for

ROLES = Path(__file__).with_name("seed004_litekeep_roles.py")
BOUND = 120  # seconds any one step may take before the test gives up


@pytest.fixture
def db(duckdb_file):
    return duckdb_file


def start(role, db, ledger):
    proc = subprocess.Popen(
        [sys.executable, str(ROLES), role, str(db), str(ledger)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    return proc


def expect(proc, word):
    line = proc.stdout.readline()
    assert line.startswith(word), f"expected {word}, got {line!r}"
    return line[len(word):].strip()


def finish(proc):
    proc.stdin.close()
    report = json.loads(expect(proc, "DONE"))
    assert proc.wait(timeout=BOUND) == 0
    proc.stdout.close()
    return report


def run_seed(db, tmp_path, seconds, kill_every=None):
    """Runs the indexer and the searcher for ``seconds``, SIGKILLing the server every
    ``kill_every`` = (low, high) seconds if given; returns their reports, the ledgers and the
    number of kills."""
    ledger = tmp_path / "acked.ledger"
    indexer = start("indexer", db, ledger)
    searcher = None
    kills = 0
    try:
        expect(indexer, "READY")
        expect(indexer, "INDEXED")
        searcher = start("searcher", db, ledger)
        expect(searcher, "READY")
        rng = random.Random(4)
        ends = time.monotonic() + seconds
        while time.monotonic() < ends:
            if kill_every is None:
                time.sleep(min(0.2, max(0.0, ends - time.monotonic())))
                continue
            time.sleep(rng.uniform(*kill_every))
            wait_for(lambda: owner_pid(db) is not None, 30, "a server owns the file again")
            try:
                os.kill(owner_pid(db), signal.SIGKILL)
                kills += 1
            except (ProcessLookupError, TypeError):
                pass  # it died meanwhile, or another took over: the next round kills that one
        assert indexer.poll() is None and searcher.poll() is None, "a client died"
        indexed = finish(indexer)
        searched = finish(searcher)
    finally:
        for p in (indexer, searcher):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    acked = read_ids(ledger)
    unknown = read_ids(Path(str(ledger) + ".unknown"))
    return indexed, searched, acked, unknown, kills


def read_ids(path):
    if not path.exists():
        return []
    return [int(line) for line in path.read_text().split()]


def ids_in_the_file(db):
    """Every id in the file, read with plain DuckDB once no server holds it."""
    stop_servers(db)
    con = duckdb.connect(str(db), read_only=True)
    try:
        return [i for (i,) in con.execute("SELECT id FROM docs").fetchall()]
    finally:
        con.close()


def check_ledger(db, acked, unknown):
    counts = {}
    for i in ids_in_the_file(db):
        counts[i] = counts.get(i, 0) + 1
    lost = [i for i in acked if counts.get(i, 0) == 0]
    doubled = [i for i in acked + unknown if counts.get(i, 0) > 1]
    stray = sorted(set(counts) - set(acked) - set(unknown))
    assert not lost, f"{len(lost)} acknowledged writes lost: {lost[:10]}"
    assert not doubled, f"{len(doubled)} writes applied twice: {doubled[:10]}"
    assert not stray, f"rows nobody wrote: {stray[:10]}"


def test_an_indexer_and_a_searcher_on_one_duckdb_file_at_once(db, tmp_path):
    indexed, searched, acked, unknown, _ = run_seed(db, tmp_path, seconds=4)

    assert indexed["errors"] == [] and unknown == []
    assert indexed["acked"] == len(acked) > 100
    assert searched["errors"] == [], "every search answered"
    assert searched["violations"] == [], "each search saw every write acknowledged before it"
    assert searched["searches"] > 10
    check_ledger(db, acked, unknown)


def test_the_same_with_the_server_sigkilled_every_one_to_two_seconds(db, tmp_path):
    indexed, searched, acked, unknown, kills = run_seed(db, tmp_path, seconds=12, kill_every=(1, 2))

    assert kills >= 5
    assert indexed["errors"] == [], "\n".join(indexed["errors"][:3])
    assert searched["errors"] == [], "\n".join(searched["errors"][:3])
    assert searched["violations"] == []
    assert searched["searches"] > kills
    # The server records outcomes, so no write's outcome stays unknown: each lost answer is
    # asked again at the next server.
    assert unknown == [], indexed.get("unknown_why", [])[:3]
    assert len(acked) > 100
    check_ledger(db, acked, unknown)
