"""The litekeep binary this client would start (``LITEKEEP`` or ``PATH``) runs, and its DuckDB
library is the version of the Python ``duckdb`` package beside it, so both read and write the
same storage format. Skipped only where no litekeep binary can be found at all; CI sets
``LITEKEEP``, where a wrong value fails instead."""

import json
import os
import subprocess

import duckdb
import pytest

from servers import litekeep_or_skip


@pytest.fixture
def litekeep():
    return litekeep_or_skip()


def test_the_servers_duckdb_is_the_python_packages_version(litekeep):
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    done = subprocess.run(
        [litekeep, "engines", "--json"], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    engines = {e["engine"]: e for e in json.loads(done.stdout)["engines"]}
    assert engines["duckdb"]["version"] is not None, (
        f"{litekeep} was built without --features duckdb"
    )
    assert engines["duckdb"]["version"] == "v" + duckdb.__version__
