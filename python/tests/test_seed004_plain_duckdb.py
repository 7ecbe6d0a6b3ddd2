"""Seed 004's failure, as its users met it: with plain ``duckdb.connect()`` an indexer process
and a search process cannot use one DuckDB file at once. While the indexer inserts, the
searcher's connect fails with ``IOException: Could not set lock on file … Conflicting lock is
held in <program> (PID <indexer>)``, read-write or read-only alike; once the indexer has closed
the file, the searcher opens it and sees every row the indexer acknowledged.

If a DuckDB release lifts the restriction, this test fails, as the seed's strict xfail did.
The same scenario through ``litekeep serve`` goes beside it when the server exists.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROLES = Path(__file__).with_name("seed004_roles.py")
BOUND = 60  # seconds any one step may take before the test gives up


def start_indexer(db):
    return subprocess.Popen(
        [sys.executable, str(ROLES), "indexer", str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def expect(proc, word):
    """The indexer's next line, which must start with ``word``; its value."""
    line = proc.stdout.readline()
    assert line.startswith(word + " "), f"expected {word}, the indexer said {line!r}"
    return int(line.split()[1])


def search(db, mode):
    done = subprocess.run(
        [sys.executable, str(ROLES), "searcher", str(db), mode],
        capture_output=True,
        text=True,
        timeout=BOUND,
        check=True,
    )
    return json.loads(done.stdout)


@pytest.mark.parametrize("mode", ["read-write", "read-only"])
def test_a_searcher_cannot_open_the_file_while_the_indexer_writes(tmp_path, mode):
    db = tmp_path / "index.duckdb"
    indexer = start_indexer(db)
    try:
        pid = expect(indexer, "READY")
        expect(indexer, "INDEXED")

        found = search(db, mode)

        assert indexer.poll() is None, "the indexer stopped before the search ran"
        assert found.get("io_exception") is True, f"expected duckdb.IOException, got {found}"
        message = found["message"]
        assert "Could not set lock on file" in message, message
        assert str(db) in message, message
        held = re.search(r"Conflicting lock is held in .* \(PID (\d+)\)", message)
        assert held, message
        assert int(held.group(1)) == pid, f"the holder named is not the indexer ({pid}): {message}"

        indexer.stdin.close()
        acknowledged = expect(indexer, "DONE")
        assert indexer.wait(timeout=BOUND) == 0
    finally:
        if indexer.poll() is None:
            indexer.kill()
            indexer.wait()
        indexer.stdout.close()

    # One at a time works: the file is the searcher's now, with every acknowledged row.
    assert search(db, mode) == {"rows": acknowledged}
