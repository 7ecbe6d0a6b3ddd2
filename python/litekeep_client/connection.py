"""A connection to the owner of one database: :func:`connect` and :class:`Connection`.

Each call is one request on the owner's socket (PROTOCOL.md at the repository's root),
numbered by the connection's sequence and tagged with its client id (16 random bytes), and
waits for its answer no longer than its timeout. When nobody owns the database, the connection
runs ``litekeep serve`` for it and calls the owner that wins the election, its own server or
another client's.

What happens to a call whose owner died after it was sent:

- a read (:meth:`Connection.query`) is sent again to the next owner;
- a write is sent again, with the same client id and sequence number and ``retry: true``, to
  the next owner when the owner it was sent to records outcomes (its welcome says so; ``litekeep
  serve`` does): the next owner answers with the recorded outcome when it had been applied, and
  runs it otherwise. Where the owner does not record outcomes, the call raises
  :class:`OutcomeUnknown` instead;
- a call inside a transaction is never sent again: the transaction died with its connection
  (:class:`TransactionLost`). The ``COMMIT`` alone is sent again, and answered from the record
  when it had committed.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Any, Iterable, Iterator, Optional, Union

from litekeep_client import __version__, cbor, discovery, frames, spawn, sql
from litekeep_client.binary import find_litekeep
from litekeep_client.errors import (
    EngineMismatch,
    OutcomeUnknown,
    ProtocolError,
    Refused,
    ServerError,
    ServerUnreachable,
    SQLError,
    Timeout,
    TransactionLost,
)

#: The version of the owner protocol this client speaks.
PROTOCOL = 1
#: The engines ``litekeep serve`` runs.
ENGINES = ("sqlite", "duckdb")
#: Default seconds a call may take, finding or starting the server included.
DEFAULT_TIMEOUT = 30.0
#: The program a ``litekeep serve`` owner names in its welcome.
SERVER_PROGRAM = "litekeep-serve"

_PROGRAM = "litekeep_client (python)"
_NO_TRANSACTION = "litekeep_no_transaction"
_ABORTED = "litekeep_transaction_aborted"


class _Unreachable(Exception):
    """No owner answered before the deadline; says what was last seen."""


class _Lost:
    """A transaction whose connection ended: nothing of it is anywhere any more."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class _Aborted:
    """A transaction the server rolled back (a statement failed, a bound passed): the server
    holds it, refusing calls, until a rollback ends it."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def connect(
    path: Union[str, os.PathLike],
    engine: str = "sqlite",
    *,
    timeout: float = DEFAULT_TIMEOUT,
    start: bool = True,
    max_reply: int = frames.DEFAULT_MAX_REPLY,
) -> "Connection":
    """Connects to the owner of the database at ``path``, running
    ``litekeep serve --db PATH --engine ENGINE`` first when nobody owns it and ``start`` is
    true.

    ``timeout`` bounds every call of the connection, this first connection included (seconds).
    ``max_reply`` is the largest reply frame read (a query's rows come in one frame).

    Raises :class:`ServerUnreachable` when no server answered within ``timeout`` (its message
    says why: what was last seen, or why ``litekeep serve`` could not start one),
    :class:`LitekeepNotFound` when a server must be started and no ``litekeep`` binary is found,
    :class:`EngineMismatch` when the server runs another engine, :class:`Refused` when it
    refuses this process's user, :class:`ProtocolError` when it speaks another protocol
    version or is not ``litekeep serve``, ``FileNotFoundError`` when the database's directory
    does not exist, ``ValueError`` for an unknown engine or a timeout that is not positive.
    """
    conn = Connection(path, engine, timeout=timeout, start=start, max_reply=max_reply)
    with conn._lock:
        try:
            conn._ensure(time.monotonic() + timeout)
        except _Unreachable as e:
            raise ServerUnreachable(conn.path, str(e)) from None
    return conn


class Connection:
    """One client's connection to the owner of a database; see :func:`connect`.

    A connection may be shared between threads: its calls take turns (one request at a time
    on its socket), and a :meth:`transaction` keeps it for its thread until it ends. A child
    process made with ``fork`` gets a fresh connection (and client id) at its first call.
    """

    def __init__(
        self,
        path: Union[str, os.PathLike],
        engine: str = "sqlite",
        *,
        timeout: float = DEFAULT_TIMEOUT,
        start: bool = True,
        max_reply: int = frames.DEFAULT_MAX_REPLY,
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self.path = os.path.abspath(os.fspath(path))
        if not os.path.isdir(os.path.dirname(self.path)):
            raise FileNotFoundError(
                f"the directory of {self.path} does not exist: create it (the server creates "
                "the database file)"
            )
        self.engine = engine
        self.timeout = float(timeout)
        self._start = start
        self._max_reply = max_reply
        self._lock = threading.RLock()
        self._sock = None
        self._reader: Optional[frames.Reader] = None
        self._welcome: dict = {}
        self._client = os.urandom(16)
        self._seq = 0
        self._pid = os.getpid()
        # None: no transaction; "pending": begun here, not yet at the server; "open";
        # "committing": its commit is being sent again; _Aborted; _Lost.
        self._tx: Union[None, str, _Aborted, _Lost] = None
        self._tx_readonly = False
        self._closed = False

    # --- the calls --------------------------------------------------------------------------

    def execute(self, sql_text: str, params: sql.Params = (), *,
                timeout: Optional[float] = None) -> sql.Changes:
        """Runs one statement that writes; returns its :class:`Changes` (rows changed, last
        rowid). ``params`` is a sequence for positional placeholders or a mapping for named
        ones; values are ``None``, ``int``, ``float``, ``str``, ``bytes`` (``bool`` goes as
        ``int``). ``timeout`` overrides the connection's for this call.

        Raises :class:`SQLError` (nothing applied), :class:`Timeout` and
        :class:`OutcomeUnknown` (it may have been applied), :class:`ServerUnreachable`
        (nothing sent), :class:`TransactionLost` inside a transaction that is gone,
        :class:`ServerError`; ``TypeError``/``ValueError`` for a parameter it cannot send.
        """
        found = self._call([sql.statement(sql_text, params)], True, "execute", timeout)
        return sql.changes(found)

    def executemany(self, sql_text: str, seq_of_params: Iterable[sql.Params], *,
                    timeout: Optional[float] = None) -> sql.Changes:
        """Runs one statement once per parameter set, all in ONE request: all applied or none.
        Returns the :class:`Changes` summed over them. Raises as :meth:`execute` does; the
        :class:`SQLError`'s ``index`` says which parameter set failed (from 0)."""
        stmts = [sql.statement(sql_text, p) for p in seq_of_params]
        if not stmts:
            return sql.Changes(0, None)
        return sql.changes(self._call(stmts, True, "executemany", timeout))

    def query(self, sql_text: str, params: sql.Params = (), *, write: bool = False,
              timeout: Optional[float] = None) -> sql.Rows:
        """Runs one statement and returns its rows (a list of tuples with ``.columns``). It is
        sent as a read — run at once beside the writes, on a snapshot, sent again to the next
        owner when its owner dies, refused if it writes — unless ``write`` is true (for
        ``INSERT … RETURNING`` and the like). Raises as :meth:`execute` does."""
        found = self._call([sql.statement(sql_text, params)], write, "query", timeout)
        if len(found) != 1:
            raise ProtocolError(self.path, f"{len(found)} results for one statement")
        return sql.rows(found[0])

    @contextlib.contextmanager
    def transaction(self, *, readonly: bool = False,
                    timeout: Optional[float] = None) -> Iterator["Connection"]:
        """``with conn.transaction(): …`` runs the block's calls in one transaction of the
        server's, held on this connection: committed when the block ends, rolled back when it
        raises (the exception goes on). ``readonly=True`` makes it a read-only snapshot. The
        connection is this thread's until the block ends; transactions do not nest. The
        server rolls back a transaction left without a call for a few seconds (its
        ``--tx-idle``) or open too long (``--tx-timeout``).

        A statement that fails rolls the whole transaction back (its :class:`SQLError` says
        why); the block's later calls and its end then raise :class:`TransactionLost`, as they
        do when the server or the connection died: nothing of the transaction was applied.
        A commit whose answer was lost is sent again and answered from the server's record;
        when no server can be asked it raises :class:`OutcomeUnknown`, and :class:`Timeout`
        when it got no answer in time.
        """
        with self._lock:
            self._check_usable()
            if self._tx is not None:
                raise RuntimeError(f"{self.path}: a transaction is already open on this connection")
            self._tx, self._tx_readonly = "pending", readonly
            try:
                yield self
            except BaseException:
                with contextlib.suppress(Exception):
                    self._end("rollback", timeout)
                raise
            else:
                self._end("commit", timeout)
            finally:
                self._tx = None

    def close(self) -> None:
        """Closes the connection (the server rolls back a transaction left open on it). The
        server goes on serving others. Calls after this raise ``ValueError``."""
        with self._lock:
            self._closed = True
            self._drop()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def server_pid(self) -> Optional[int]:
        """The pid of the server this connection speaks to now (``None`` between servers)."""
        return self._welcome.get("pid") if self._sock is not None else None

    @property
    def server(self) -> dict:
        """What the server said of itself when this connection last reached one (its welcome):
        ``pid``, ``generation``, ``program``, ``version``, ``records_outcomes``, ``max_frame``,
        ``engine``."""
        return {k: v for k, v in self._welcome.items() if k != "t"}

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"server pid {self.server_pid}"
        return f"<litekeep_client.Connection {self.path} ({self.engine}, {state})>"

    # --- one call ---------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._closed:
            raise ValueError(f"{self.path}: this connection is closed")
        if os.getpid() != self._pid:
            # A forked child: the parent's socket, client id and transaction are the parent's.
            self._pid = os.getpid()
            self._client = os.urandom(16)
            self._seq = 0
            self._sock = None
            self._reader = None
            if self._tx is not None:
                self._tx = _Lost("the process forked inside it")

    def _seconds(self, timeout: Optional[float]) -> float:
        return self.timeout if timeout is None else float(timeout)

    def _call(self, stmts: list, write: bool, operation: str, timeout: Optional[float]) -> list[dict]:
        """Runs ``stmts`` as one request (in the connection's transaction, if one is open);
        their results."""
        seconds = self._seconds(timeout)
        with self._lock:
            self._check_usable()
            deadline = time.monotonic() + seconds
            self._seq += 1
            if self._tx is None:
                body = cbor.dumps(sql.request(stmts, write, None))
                response = self._send(self._seq, body, deadline, not write, operation, seconds)
                return self._results(response)
            if isinstance(self._tx, (_Lost, _Aborted)):
                raise TransactionLost(self.path, self._tx.reason)
            if self._tx == "pending":
                # The first call carries the BEGIN, which comes before its statements.
                request = sql.request(stmts, not self._tx_readonly, "begin")
            else:
                request = {**sql.request(stmts, write, None), "in_tx": True}
            response = self._send_in_tx(self._seq, cbor.dumps(request), deadline, request["tx"],
                                        operation, seconds)
            self._tx = "open"
            return self._results(response, in_tx=True)

    def _end(self, end: str, timeout: Optional[float]) -> None:
        """Ends the transaction with ``end`` ("commit" or "rollback"), whatever state it is in."""
        state = self._tx
        if state == "pending":
            return  # nothing of it reached a server
        if isinstance(state, _Lost):
            if end == "commit":
                raise TransactionLost(self.path, state.reason)
            return
        seconds = self._seconds(timeout)
        deadline = time.monotonic() + seconds
        self._seq += 1
        # The server holds an aborted transaction until a rollback ends it.
        sent_end = "rollback" if isinstance(state, _Aborted) else end
        body = cbor.dumps({**sql.request([], True, sent_end), "in_tx": True})
        response, resent = self._send_tx_end(self._seq, body, deadline, sent_end, seconds)
        try:
            self._results(response, in_tx=True)
        except SQLError as e:
            if end == "commit" and resent and e.code == _NO_TRANSACTION:
                raise TransactionLost(
                    self.path, "its connection broke before it committed (the next server had no "
                    "record of its commit)"
                ) from None
            raise
        if isinstance(state, _Aborted) and end == "commit":
            raise TransactionLost(self.path, state.reason)

    def _results(self, response: Any, in_tx: bool = False) -> list[dict]:
        try:
            return sql.results(response)
        except sql.StatementError as e:
            index = e.index if e.index is not None and e.index >= 0 else None
            error = SQLError(self.path, e.message, e.sql or None, index, e.code)
            if in_tx and self._tx not in (None, "pending"):
                # A failing statement rolls the whole transaction back, at the server.
                reason = f"a statement failed: {e.message}" if e.code != _ABORTED else e.message
                self._tx = _Aborted(reason)
                if e.code == _ABORTED:
                    raise TransactionLost(self.path, reason) from None
            raise error from None
        except sql.BadResponse as e:
            raise ProtocolError(self.path, str(e)) from None

    # --- sending ----------------------------------------------------------------------------

    def _send(self, seq: int, body: bytes, deadline: float, idempotent: bool, operation: str,
              seconds: float) -> Any:
        """Sends call ``seq`` outside a transaction until an owner answers it (see the module's
        docs for when it is sent again); returns the decoded response."""
        sent = False
        while True:
            try:
                self._ensure(deadline)
            except _Unreachable as e:
                if sent and not idempotent:
                    raise OutcomeUnknown(
                        self.path, f"its server went away after it was sent, and no new one answered: {e}"
                    ) from None
                raise ServerUnreachable(self.path, str(e)) from None
            try:
                message = self._roundtrip(seq, sent, body, deadline)
            except frames.NotSent:
                self._drop()
                continue
            except frames.Deadline:
                self._drop()
                raise Timeout(self.path, operation, seconds) from None
            except frames.Lost as e:
                records = bool(self._welcome.get("records_outcomes"))
                self._drop()
                if idempotent or records:
                    sent = True
                    continue
                raise OutcomeUnknown(self.path, str(e)) from None
            failure = _failure_of(message)
            if failure is None:
                return self._response(message)
            if message.get("t") == "error" or failure.get("kind") == "stepping_down":
                self._drop()
            if failure.get("kind") == "stepping_down" and failure.get("applied") != "unknown":
                continue  # not applied: the owner is leaving, the next one gets it
            if failure.get("kind") == "stepping_down" and self._welcome.get("records_outcomes"):
                # Maybe applied (the owner's database failed in its commit): the next owner
                # answers the retry from its record, or runs it.
                sent = True
                continue
            if failure.get("applied") == "unknown" and not idempotent:
                raise OutcomeUnknown(self.path, f"{failure.get('kind')}: {failure.get('message')}")
            raise ServerError(self.path, str(failure.get("kind")), str(failure.get("message")))

    def _send_in_tx(self, seq: int, body: bytes, deadline: float, tx: Optional[str],
                    operation: str, seconds: float) -> Any:
        """Sends call ``seq`` of a transaction (not its end): once, never to another server."""
        while True:
            try:
                self._ensure(deadline)
            except _Unreachable as e:
                raise ServerUnreachable(self.path, str(e)) from None
            try:
                message = self._roundtrip(seq, False, body, deadline)
            except frames.NotSent:
                self._drop()
                if self._tx == "pending":
                    continue  # nothing of the transaction is at any server yet
                self._tx = _Lost("the connection broke")
                raise TransactionLost(self.path, self._tx.reason) from None
            except frames.Deadline:
                self._drop()
                self._tx = _Lost(f"{operation} got no answer within {seconds:g} s")
                raise Timeout(self.path, operation, seconds) from None
            except frames.Lost as e:
                self._drop()
                self._tx = _Lost(str(e))
                raise TransactionLost(self.path, self._tx.reason) from None
            failure = _failure_of(message)
            if failure is None:
                return self._response(message)
            kind, text = str(failure.get("kind")), str(failure.get("message"))
            if message.get("t") == "error" or kind == "stepping_down":
                self._drop()
                if self._tx == "pending" and failure.get("applied") != "unknown":
                    continue  # the BEGIN was not applied: begin at the next owner
                self._tx = _Lost(f"{kind}: {text}")
                raise TransactionLost(self.path, self._tx.reason)
            if failure.get("applied") == "unknown":
                self._drop()  # the connection's transaction is in an unknown state: end it
                self._tx = _Lost(f"{kind}: {text}")
                raise OutcomeUnknown(self.path, f"{kind}: {text}")
            raise ServerError(self.path, kind, text)

    def _send_tx_end(self, seq: int, body: bytes, deadline: float, end: str,
                     seconds: float) -> tuple[Any, bool]:
        """Sends a transaction's commit or rollback. A commit whose answer was lost is sent
        again (``retry: true``) to the next owner, which answers from its record; a rollback
        is not (the transaction is gone with the connection). Returns the response and whether
        it was sent again."""
        sent = False
        while True:
            if self._sock is None and not sent:
                # The connection broke since the last call: the transaction is gone.
                self._tx = _Lost("the server closed the connection")
                raise TransactionLost(self.path, self._tx.reason)
            try:
                self._ensure(deadline)
            except _Unreachable as e:
                self._tx = _Lost(str(e))
                if sent:
                    raise OutcomeUnknown(
                        self.path, f"the commit's answer was lost, and no server answered again: {e}"
                    ) from None
                raise TransactionLost(self.path, self._tx.reason) from None
            try:
                message = self._roundtrip(seq, sent, body, deadline)
            except frames.Deadline:
                self._drop()
                self._tx = _Lost(f"{end} got no answer within {seconds:g} s")
                raise Timeout(self.path, end, seconds) from None
            except (frames.NotSent, frames.Lost) as e:
                self._drop()
                if end == "commit" and (sent or isinstance(e, frames.Lost)):
                    self._tx = "committing"
                    sent = True
                    continue
                self._tx = _Lost(str(e) or "the connection broke")
                raise TransactionLost(self.path, self._tx.reason) from None
            failure = _failure_of(message)
            if failure is None:
                return self._response(message), sent
            kind, text = str(failure.get("kind")), str(failure.get("message"))
            self._drop()
            self._tx = _Lost(f"{kind}: {text}")
            if end == "commit" and failure.get("applied") == "unknown":
                raise OutcomeUnknown(self.path, f"the commit: {kind}: {text}")
            raise TransactionLost(self.path, self._tx.reason)

    def _roundtrip(self, seq: int, retry: bool, body: bytes, deadline: float) -> dict:
        """Sends call ``seq`` on the connection and reads its reply (or a connection-ending
        error). Raises ``frames.NotSent``/``Deadline``/``Lost``, and :class:`ServerError`
        (``too_large``, nothing sent) for a request over the server's frame limit."""
        assert self._sock is not None and self._reader is not None
        frame = frames.encode({"t": "call", "seq": seq, "acked_below": seq, "retry": retry, "body": body})
        limit = self._welcome.get("max_frame")
        if isinstance(limit, int) and len(frame) - 4 > limit:
            raise ServerError(
                self.path, "too_large",
                f"the request is {len(frame) - 4} bytes, over the server's limit of {limit}: "
                "send it in several calls (in a transaction, to keep them atomic)",
            )
        try:
            frames.send(self._sock, frame, deadline)
            while True:
                message = self._reader.read(deadline)
                t = message.get("t")
                if t == "reply" and message.get("seq") == seq:
                    return message
                if t == "reply":
                    continue  # the answer to a call an earlier timeout gave up on
                if t == "error":
                    return message
                raise frames.Lost(f"the server sent a {t!r} message in answer to a call")
        except (frames.NotSent, frames.Lost, frames.Deadline):
            raise
        except BaseException:
            # Interrupted (KeyboardInterrupt, …) between sending and reading: the socket is
            # out of step with the calls.
            self._drop()
            raise

    def _response(self, message: dict) -> Any:
        ok = message.get("ok")
        if not isinstance(ok, bytes):
            raise ProtocolError(self.path, "a reply with neither a response nor a failure")
        try:
            return cbor.loads(ok)
        except cbor.CBORError as e:
            raise ProtocolError(self.path, f"the response is not CBOR: {e}") from None

    # --- finding the owner -------------------------------------------------------------------

    def _drop(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = None
        self._reader = None

    def _ensure(self, deadline: float) -> None:
        """A connection to the owner, past its handshake: the one there is, else a new one,
        running ``litekeep serve`` when nobody owns the database. Raises
        :class:`_Unreachable` at the deadline or when no server could start; :class:`Refused`,
        :class:`ProtocolError`, :class:`EngineMismatch`; :class:`TransactionLost` when a
        transaction was open on the connection that ended."""
        # A connection whose server went away since is found out by the call itself: its send
        # fails (not sent), or its reply never comes (lost).
        if self._sock is not None:
            return
        if self._tx == "open":
            self._tx = _Lost("the server closed the connection")
            raise TransactionLost(self.path, self._tx.reason)
        pause = 0.001
        ask_kernel = False
        while True:
            found = discovery.find(self.path, ask_kernel)
            if isinstance(found, discovery.Owner):
                why = self._connect(found, deadline)
                if why is None:
                    return
                # The record's pid did not answer: the kernel names the holder next time.
                ask_kernel = True
                if not found.from_kernel:
                    continue
            elif found.free and self._start:
                litekeep = find_litekeep()  # LitekeepNotFound goes to the caller as it is
                try:
                    spawn.start(litekeep, self.path, self.engine, deadline - time.monotonic())
                    ask_kernel = False
                    continue  # a server serves now: find it
                except spawn.StartFailed as e:
                    # A server killed while it started (exit status 75) is the start's failure,
                    # not the file's: look again, and start again until the deadline.
                    if not e.again:
                        raise _Unreachable(str(e)) from None
                    why = str(e)
            else:
                why = found.why
                if found.free:
                    why += "; this connection does not start one (start=False)"
            now = time.monotonic()
            if now >= deadline:
                raise _Unreachable(why)
            time.sleep(min(pause, deadline - now))
            pause = min(pause * 2, 0.05)

    def _connect(self, owner: discovery.Owner, deadline: float) -> Optional[str]:
        """Connects to ``owner`` and shakes hands; ``None`` when done, else why not (try again).
        Raises :class:`Refused`, :class:`ProtocolError` and :class:`EngineMismatch`, which
        trying again cannot mend."""
        try:
            sock = discovery.connect(owner, deadline - time.monotonic())
        except discovery.Refusal as e:
            return str(e)
        reader = frames.Reader(sock, self._max_reply)
        hello = {"t": "hello", "protocol": PROTOCOL, "client": self._client, "program": _PROGRAM,
                 "version": __version__, "fingerprint": None}
        try:
            frames.send(sock, frames.encode(hello), deadline)
            welcome = reader.read(deadline)
        except (frames.NotSent, frames.Lost, frames.Deadline) as e:
            sock.close()
            return f"the handshake with pid {owner.pid} failed: {e or 'no answer in time'}"
        if welcome.get("t") == "error":
            sock.close()
            failure = welcome.get("error") if isinstance(welcome.get("error"), dict) else {}
            kind, text = failure.get("kind"), str(failure.get("message"))
            if kind == "refused":
                raise Refused(self.path, text)
            if kind == "protocol_version":
                raise ProtocolError(self.path, text)
            return f"pid {owner.pid} turned the connection away: {kind}: {text}"
        problem = None
        if welcome.get("t") != "welcome":
            problem = f"the server answered the hello with {welcome.get('t')!r}"
        elif welcome.get("protocol") != PROTOCOL:
            problem = f"the server speaks protocol version {welcome.get('protocol')}, this client {PROTOCOL}"
        elif welcome.get("program") != SERVER_PROGRAM:
            problem = (f"the owner is {welcome.get('program')!r}, not {SERVER_PROGRAM!r}: another "
                       "program owns this file, with other requests than SQL")
        if problem is not None:
            sock.close()
            raise ProtocolError(self.path, problem)
        engine = welcome.get("engine")
        if engine != self.engine:
            sock.close()
            raise EngineMismatch(self.path, str(engine), self.engine)
        self._sock, self._reader, self._welcome = sock, reader, welcome
        return None


def _failure_of(message: dict) -> Optional[dict]:
    """The failure a reply or error frame carries, if any."""
    error = message.get("error")
    if message.get("t") == "error" or error is not None:
        return error if isinstance(error, dict) else {"kind": "other", "message": repr(error)}
    return None
