"""The SQL bodies of ``litekeep serve`` (``PROTOCOL.md`` at the repository's root), and what a
call returns.

A request: ``{"stmts": [{"sql": text, "params": [value, …] or {name: value}}, …],
"mode": "write" | "read", "tx": null | "begin" | "commit" | "rollback"}``. A response:
``{"results": [{"columns", "rows", "changes", "last_rowid"}, …]}`` or ``{"error": {"index",
"sql", "message", "code"}}`` (the whole request rolled back). Values are ``None``, ``int``
(64-bit signed), ``float``, ``str`` and ``bytes``, which round-trip exactly.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, NamedTuple, Optional, Sequence, Union

Params = Union[Sequence[Any], Mapping[str, Any]]

_I64 = (-(1 << 63), (1 << 63) - 1)


class Changes(NamedTuple):
    """What a write did: ``changes``, the rows it inserted, updated or deleted (over all its
    statements, for :meth:`~litekeep_client.Connection.executemany`); ``last_rowid``, the
    rowid of the last row inserted (SQLite; ``None`` where the engine has none)."""

    changes: int
    last_rowid: Optional[int]


class Rows(list):
    """A query's rows, each a tuple, in order; ``columns`` holds the column names."""

    def __init__(self, rows: Iterable[tuple], columns: Sequence[str]) -> None:
        super().__init__(rows)
        self.columns: tuple[str, ...] = tuple(columns)

    def __repr__(self) -> str:
        return f"Rows(columns={self.columns!r}, rows={list.__repr__(self)})"


def value(v: Any, where: str) -> Any:
    """A parameter as it goes on the wire: ``bool`` as ``int``, ``bytearray`` and
    ``memoryview`` as ``bytes``. Raises ``TypeError`` for a type the server does not take and
    ``ValueError`` for an integer out of the 64-bit range, naming ``where``."""
    t = type(v)
    if v is None or t is str or t is float or t is bytes:
        return v
    if t is int:
        if not _I64[0] <= v <= _I64[1]:
            raise ValueError(f"{where} is {v}, out of the 64-bit signed range the engines store")
        return v
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return value(int(v), where)
    if isinstance(v, float):
        return float(v)
    if isinstance(v, str):
        return str.__str__(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    raise TypeError(
        f"{where} is a {type(v).__module__}.{type(v).__qualname__}: litekeep sends None, int, "
        "float, str and bytes; convert it first (a datetime with .isoformat(), an array of "
        "floats with array.array('f', v).tobytes())"
    )


def statement(sql: str, params: Params) -> dict:
    """One statement of a request, its parameters checked."""
    if not isinstance(sql, str):
        raise TypeError(f"the SQL must be a str, not a {type(sql).__name__}")
    if isinstance(params, Mapping):
        wire: Any = {str(k): value(v, f"parameter {k!r}") for k, v in params.items()}
    elif isinstance(params, (str, bytes, bytearray)):
        raise TypeError("the parameters must be a sequence or a mapping, not a single str or bytes")
    else:
        wire = [value(v, f"parameter {i + 1}") for i, v in enumerate(params)]
    return {"sql": sql, "params": wire}


def request(stmts: list, write: bool, tx: Optional[str]) -> dict:
    """A request body."""
    return {"stmts": stmts, "mode": "write" if write else "read", "tx": tx}


class BadResponse(Exception):
    """A response that is not of the documented form; says how."""


class StatementError(Exception):
    """The response's ``error``: a statement failed and the request was rolled back."""

    def __init__(self, error: Mapping[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.message = str(error.get("message", ""))
        self.sql = error.get("sql") if isinstance(error.get("sql"), str) else None
        self.index = error.get("index") if isinstance(error.get("index"), int) else None
        self.code = error.get("code") if isinstance(error.get("code"), str) else None


def results(response: Any) -> list[dict]:
    """The response's results, one per statement. Raises :class:`StatementError` for an error
    response and :class:`BadResponse` for anything else that is not a response."""
    if not isinstance(response, dict):
        raise BadResponse(f"a response that is a {type(response).__name__}, not a map")
    error = response.get("error")
    if isinstance(error, dict):
        raise StatementError(error)
    found = response.get("results")
    if not isinstance(found, list) or not all(isinstance(r, dict) for r in found):
        raise BadResponse(f"a response with neither results nor an error: {sorted(response)}")
    return found


def rows(result: Mapping[str, Any]) -> Rows:
    """One statement's result as :class:`Rows`."""
    columns = result.get("columns") or []
    found = result.get("rows") or []
    if not isinstance(columns, list) or not isinstance(found, list):
        raise BadResponse("a result whose columns or rows are not arrays")
    return Rows((tuple(r) for r in found), columns)


def changes(found: list[dict]) -> Changes:
    """The changes of a request's results: their sum, and the last rowid reported."""
    total = 0
    last = None
    for r in found:
        n = r.get("changes")
        if isinstance(n, int):
            total += n
        rowid = r.get("last_rowid")
        if isinstance(rowid, int):
            last = rowid
    return Changes(total, last)
