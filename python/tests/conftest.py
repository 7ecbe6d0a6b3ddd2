"""Fixtures shared by the suites that run the real ``litekeep serve``."""

import pytest

from servers import litekeep_or_skip, stop_servers


@pytest.fixture
def duckdb_file(tmp_path):
    """The path of a DuckDB file in a temporary directory, for a test that needs the litekeep
    binary (skipped without one, unless LITEKEEP is set); every server of it is stopped after
    the test."""
    litekeep_or_skip()
    path = tmp_path / "index.duckdb"
    yield path
    stop_servers(path)
