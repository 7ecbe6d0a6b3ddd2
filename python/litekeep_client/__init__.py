"""A pure-Python client for ``litekeep serve``.

``litekeep serve`` is the one process that owns a database file (SQLite or DuckDB); every other
process sends it SQL and gets rows back. This package needs nothing but the standard library:
no SQLite or DuckDB of its own.

What is here now: the exceptions a call can raise (:mod:`litekeep_client.errors`) and finding
the ``litekeep`` binary (:func:`find_litekeep`). ``connect()`` and the calls arrive with the
server's protocol.
"""

from litekeep_client.binary import LITEKEEP_ENV, find_litekeep
from litekeep_client.errors import (
    LitekeepError,
    LitekeepNotFound,
    OutcomeUnknown,
    ServerUnreachable,
    SQLError,
    Timeout,
)

__version__ = "0.1.0"

__all__ = [
    "LITEKEEP_ENV",
    "LitekeepError",
    "LitekeepNotFound",
    "OutcomeUnknown",
    "SQLError",
    "ServerUnreachable",
    "Timeout",
    "find_litekeep",
]
