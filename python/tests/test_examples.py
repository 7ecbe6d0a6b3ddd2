"""The book's programs (python/examples, included in docs/python-duckdb.md) do what the book
says: an indexer and a searcher on one DuckDB file at once, through a server the first of them
starts."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PYTHON_DIR = str(EXAMPLES.parent)


@pytest.fixture
def db(duckdb_file):
    return duckdb_file


def run(program, *args):
    return subprocess.Popen(
        [sys.executable, str(EXAMPLES / program), *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=EXAMPLES,
        env={**os.environ, "PYTHONPATH": PYTHON_DIR},
    )


def test_the_indexer_and_the_searcher_run_at_once(db):
    indexer = run("indexer.py", db, 300)
    searcher = run("searcher.py", db, "document 7", 4)
    out, err = searcher.communicate(timeout=120)
    assert searcher.returncode == 0, err
    indexed, err = indexer.communicate(timeout=120)
    assert indexer.returncode == 0, err
    assert indexed.strip() == "indexed documents 0 to 299"
    lines = out.strip().splitlines()
    assert len(lines) == 4
    assert all("nearest to 'document 7'" in line for line in lines)
    again = run("indexer.py", db, 10)
    assert again.communicate(timeout=120)[0].strip() == "indexed documents 300 to 309"
    once = run("searcher.py", db, "document 7", 1)
    assert once.communicate(timeout=120)[0].startswith(
        "310 documents; nearest to 'document 7': ['document 7', "
    ), "every document there, and the exact text its own nearest"
