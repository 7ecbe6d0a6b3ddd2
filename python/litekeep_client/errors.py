"""The exceptions a litekeep client call raises, one per thing that can happen.

Every one derives from :class:`LitekeepError`, so ``except LitekeepError`` catches them all, and
each message names the database and says what to do. Retrying is safe after
:class:`ServerUnreachable` and :class:`Refused` (nothing was sent), after :class:`SQLError` and
:class:`ServerError` (the server answered: nothing was applied) and after
:class:`TransactionLost` (the whole transaction was rolled back); after :class:`Timeout` and
:class:`OutcomeUnknown` the request may or may not have been applied, and the caller must find
out before sending it again.
"""

from __future__ import annotations

import os
from typing import Optional


class LitekeepError(Exception):
    """Base class of every error this package raises."""


class LitekeepNotFound(LitekeepError, FileNotFoundError):
    """The ``litekeep`` binary was not found, so no server could be started.

    ``where`` says where it was looked for (the ``LITEKEEP`` variable's value, or ``PATH``).
    """

    def __init__(self, where: str, hint: str) -> None:
        self.where = where
        super().__init__(f"litekeep not found ({where}); {hint}")


class ServerUnreachable(LitekeepError, ConnectionError):
    """No server for the database answered, and none could be started. Nothing was sent."""

    def __init__(self, database: os.PathLike | str, reason: str) -> None:
        self.database = os.fspath(database)
        self.reason = reason
        super().__init__(
            f"no litekeep server for {self.database} could be reached: {reason}; "
            f"see the server's log beside the database, or run `litekeep serve --db {self.database}` "
            "in the foreground to see why it does not start"
        )


class Timeout(LitekeepError, TimeoutError):
    """A call got no answer within its timeout. The request may or may not have been applied.

    Also a :class:`TimeoutError`, so ``except TimeoutError`` catches it.
    """

    def __init__(self, database: os.PathLike | str, operation: str, seconds: float) -> None:
        self.database = os.fspath(database)
        self.operation = operation
        self.seconds = seconds
        super().__init__(
            f"{operation} on {self.database} got no answer within {seconds:g} s; "
            "it may or may not have been applied: check before repeating a write, "
            "or raise the timeout"
        )


class SQLError(LitekeepError):
    """The server ran the SQL and the engine refused it; nothing of the request was applied.

    ``message`` is the engine's message, word for word; ``statement`` the statement it is
    about, and ``index`` its position among the request's statements (from 0), when known;
    ``code`` the engine's error code (SQLite's extended result code name), when it has one.
    """

    def __init__(
        self,
        database: os.PathLike | str,
        message: str,
        statement: Optional[str] = None,
        index: Optional[int] = None,
        code: Optional[str] = None,
    ) -> None:
        self.database = os.fspath(database)
        self.message = message
        self.statement = statement
        self.index = index
        self.code = code
        where = ""
        if statement is not None:
            where = f" in statement {index + 1 if index is not None else '?'} ({statement!r})"
        super().__init__(f"{self.database}: {message}{where}")


class OutcomeUnknown(LitekeepError):
    """The connection to the server broke after the request was sent and before its answer.

    The request may or may not have been applied; the client does not send it again on its own.
    Read the database to find out, then repeat the request if it is missing.
    """

    def __init__(self, database: os.PathLike | str, reason: str) -> None:
        self.database = os.fspath(database)
        self.reason = reason
        super().__init__(
            f"the outcome of a request to {self.database} is unknown ({reason}): "
            "it may or may not have been applied; read the database before repeating it"
        )


class TransactionLost(LitekeepError):
    """The transaction this call belonged to is gone: the server that held it died, or the
    connection to it broke or timed out, and an open transaction is rolled back when its
    connection ends. Nothing of the transaction was applied; run it again from the start.

    (A ``COMMIT`` whose answer was lost raises :class:`OutcomeUnknown` instead: it may have
    been applied.)
    """

    def __init__(self, database: os.PathLike | str, reason: str) -> None:
        self.database = os.fspath(database)
        self.reason = reason
        super().__init__(
            f"the transaction on {self.database} was rolled back ({reason}); nothing of it was "
            "applied: run it again from its start"
        )


class Refused(LitekeepError, PermissionError):
    """The server refused this process: its user may not write the database file, so it may
    not call its owner either. Nothing was sent. Also a :class:`PermissionError`."""

    def __init__(self, database: os.PathLike | str, message: str) -> None:
        self.database = os.fspath(database)
        self.message = message
        super().__init__(f"the litekeep server of {self.database} refused this process: {message}")


class ServerError(LitekeepError):
    """The server answered with a failure that is not the SQL's: ``kind`` is its name
    (``queue_full``, ``too_large``, ``bad_request``, ``panicked``, ``commit_failed``, …),
    ``message`` its text. Nothing of the request was applied (a failure whose outcome is
    unknown raises :class:`OutcomeUnknown`)."""

    def __init__(self, database: os.PathLike | str, kind: str, message: str) -> None:
        self.database = os.fspath(database)
        self.kind = kind
        self.message = message
        super().__init__(f"the litekeep server of {self.database} failed the request: {kind}: {message}")


class ProtocolError(LitekeepError):
    """The server speaks another version of the protocol, or said something this client does
    not understand. Run the same litekeep version on both sides; ``reason`` says what."""

    def __init__(self, database: os.PathLike | str, reason: str) -> None:
        self.database = os.fspath(database)
        self.reason = reason
        super().__init__(
            f"the litekeep server of {self.database} does not speak this client's protocol: {reason}; "
            "install the litekeep_client of the same litekeep version as the server"
        )


class EngineMismatch(LitekeepError):
    """The server that owns the database runs another engine than the one asked for (a SQLite
    file is not a DuckDB file). Nothing was sent."""

    def __init__(self, database: os.PathLike | str, running: str, asked: str) -> None:
        self.database = os.fspath(database)
        self.running = running
        self.asked = asked
        super().__init__(
            f"the litekeep server of {self.database} runs {running}, this connection asked for "
            f"{asked}: connect with engine={running!r}, or stop that server first"
        )
