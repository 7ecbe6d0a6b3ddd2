"""A pure-Python client for ``litekeep serve``.

``litekeep serve`` is the one process that owns a database file (SQLite or DuckDB); every other
process sends it SQL and gets rows back. This package needs nothing but the standard library:
no SQLite or DuckDB of its own.

>>> import litekeep_client                                     # doctest: +SKIP
>>> conn = litekeep_client.connect("/srv/index.duckdb", engine="duckdb")
>>> conn.execute("INSERT INTO docs VALUES (?, ?)", [1, "first"])
Changes(changes=1, last_rowid=None)
>>> conn.query("SELECT id, body FROM docs WHERE id = ?", [1])
Rows(columns=('id', 'body'), rows=[(1, 'first')])

Modules: :mod:`~litekeep_client.connection` (``connect`` and the calls),
:mod:`~litekeep_client.errors` (what a call raises), :mod:`~litekeep_client.cbor` (the
encoding), :mod:`~litekeep_client.frames`, :mod:`~litekeep_client.discovery` (finding the
owner), :mod:`~litekeep_client.spawn` (starting a server), :mod:`~litekeep_client.sql` (the
SQL bodies and results), :mod:`~litekeep_client.binary` (finding ``litekeep``).
"""

# Before the imports: the connection sends it in its hello, and pyproject.toml reads it.
__version__ = "0.1.0"

from litekeep_client.binary import LITEKEEP_ENV, find_litekeep
from litekeep_client.connection import ENGINES, Connection, connect
from litekeep_client.errors import (
    EngineMismatch,
    LitekeepError,
    LitekeepNotFound,
    OutcomeUnknown,
    ProtocolError,
    Refused,
    ServerError,
    ServerUnreachable,
    SQLError,
    Timeout,
    TransactionLost,
)
from litekeep_client.sql import Changes, Rows  # noqa: E402

__all__ = [
    "ENGINES",
    "LITEKEEP_ENV",
    "Changes",
    "Connection",
    "EngineMismatch",
    "LitekeepError",
    "LitekeepNotFound",
    "OutcomeUnknown",
    "ProtocolError",
    "Refused",
    "Rows",
    "SQLError",
    "ServerError",
    "ServerUnreachable",
    "Timeout",
    "TransactionLost",
    "connect",
    "find_litekeep",
]
