"""The exceptions a litekeep client call raises, one per thing that can happen.

Every one derives from :class:`LitekeepError`, so ``except LitekeepError`` catches them all, and
each message names the database and says what to do. Retrying is safe after
:class:`ServerUnreachable` (nothing was sent) and after :class:`SQLError` (the server answered:
nothing was applied); after :class:`Timeout` and :class:`OutcomeUnknown` the request may or may
not have been applied, and the caller must find out before sending it again.
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
    about, and ``index`` its position among the request's statements (from 0), when known.
    """

    def __init__(
        self,
        database: os.PathLike | str,
        message: str,
        statement: Optional[str] = None,
        index: Optional[int] = None,
    ) -> None:
        self.database = os.fspath(database)
        self.message = message
        self.statement = statement
        self.index = index
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
