"""A stand-in for ``litekeep serve`` in this process, for testing the client's protocol code
deterministically: it holds the owner lock (a ``flock`` and the holder record, as
``litekeep-lock`` writes them), binds ``<db>.owner-<gen>.sock`` (through ``/proc/self/fd`` past
107 bytes), and answers the protocol from threads, running the SQL on stdlib ``sqlite3`` (test
code only: the client has no SQLite of its own). It records each write's outcome by (client,
seq) as the real server does, so a retry gets the recorded outcome.

``script`` lets a test make the next calls misbehave: ``"drop_before"`` closes the connection
without applying the call, ``"drop_after"`` applies it and closes without answering,
``("sleep", s)`` answers late, ``("reply", message)`` sends that message instead,
``("after", message)`` applies the call and sends that message (with the call's ``seq``)
instead of its reply, ``("raw", bytes)`` sends those bytes.

Threads do not prove cross-process behaviour: the end-to-end tests run the real server.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sqlite3
import threading
import time

from litekeep_client import cbor
from litekeep_client.discovery import LABEL, SUN_PATH_MAX, owner_lock_path, socket_name


class FakeOwner:
    def __init__(self, db, *, engine="sqlite", records_outcomes=True, generation=None, protocol=1,
                 welcome=None, outcomes=None):
        self.db = str(db)
        self.engine = engine
        self.records_outcomes = records_outcomes
        self.protocol = protocol
        self.extra_welcome = welcome or {}
        self.script = []  # what the next calls do, first first
        self.calls = []  # every call frame received: (client, seq, retry, body)
        self.hellos = []
        # (client, seq) -> ok bytes; pass one owner's to its successor, as the real server
        # keeps them in the database.
        self.outcomes = {} if outcomes is None else outcomes
        self._sql_lock = threading.Lock()
        self._sql = sqlite3.connect(self.db + ".fake.sqlite", check_same_thread=False,
                                    isolation_level=None)
        self._conns = []
        self._stopping = False
        lock_path = owner_lock_path(self.db)
        self._lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        previous = _generation_in(os.pread(self._lock_fd, 512, 0))
        self.generation = generation if generation is not None else previous + 1
        record = (f"litekeep-lock v1 pid={os.getpid()} host={os.uname().nodename} "
                  f"since={time.time():.6f} label={LABEL}{self.generation}\n")
        os.pwrite(self._lock_fd, record.encode(), 0)
        directory, name = os.path.split(self.db)
        self.socket_path = os.path.join(directory, socket_name(name, self.generation))
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        _bind(self._listener, self.socket_path)
        self._listener.listen(64)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    # --- ending -----------------------------------------------------------------------------

    def crash(self):
        """As a SIGKILL would: connections cut, the lock freed, the socket file left behind."""
        self._stopping = True
        with _quiet():
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for c in list(self._conns):
            with _quiet():
                c.shutdown(socket.SHUT_RDWR)
            c.close()
        os.close(self._lock_fd)
        self._thread.join(5)

    def stop(self):
        """As a clean exit: the socket removed, then the lock freed."""
        self.crash()
        with _quiet():
            os.unlink(self.socket_path)
        self._sql.close()

    # --- serving ----------------------------------------------------------------------------

    def _accept(self):
        while not self._stopping:
            try:
                c, _ = self._listener.accept()
            except OSError:
                return
            self._conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        with _quiet():
            hello = _read(c)
            self.hellos.append(hello)
            if hello.get("protocol") != self.protocol:
                _write(c, {"t": "error", "error": {"kind": "protocol_version", "applied": "no",
                       "message": f"the client speaks protocol version {hello.get('protocol')}, "
                                  f"this owner speaks {self.protocol}"}})
                return c.close()
            _write(c, {"t": "welcome", "protocol": self.protocol, "program": "litekeep-serve",
                       "version": "0.0.0", "fingerprint": None, "generation": self.generation,
                       "pid": os.getpid(), "max_frame": 16 << 20,
                       "records_outcomes": self.records_outcomes, "engine": self.engine,
                       **self.extra_welcome})
            tx = _Tx(self)
            while True:
                call = _read(c)
                if call is None:
                    tx.rollback()
                    return c.close()
                self.calls.append((hello["client"], call["seq"], call.get("retry"), call["body"]))
                step = self.script.pop(0) if self.script else None
                if step == "drop_before":
                    tx.rollback()
                    return c.shutdown(socket.SHUT_RDWR)
                if isinstance(step, tuple) and step[0] == "raw":
                    c.sendall(step[1])
                    continue
                if isinstance(step, tuple) and step[0] == "reply":
                    _write(c, step[1])
                    continue
                ok = self._answer(hello["client"], call, tx)
                if isinstance(step, tuple) and step[0] == "after":
                    _write(c, {**step[1], "seq": call["seq"]})
                    continue
                if step == "drop_after":
                    tx.rollback()
                    return c.shutdown(socket.SHUT_RDWR)
                if isinstance(step, tuple) and step[0] == "sleep":
                    time.sleep(step[1])
                _write(c, {"t": "reply", "seq": call["seq"], "ok": ok})

    def _answer(self, client, call, tx):
        key = (client, call["seq"])
        if call.get("retry") and key in self.outcomes:
            return self.outcomes[key]
        request = cbor.loads(call["body"])
        with self._sql_lock:
            response = tx.run(request)
        ok = cbor.dumps(response)
        recorded = request.get("tx") is None and not request.get("in_tx") or request.get("tx") == "commit"
        if request["mode"] == "write" and self.records_outcomes and recorded:
            self.outcomes[key] = ok
        return ok


class _Tx:
    """One connection's transaction state, on the shared sqlite3 connection, as PROTOCOL.md
    section 8.4 says: a failing statement rolls the transaction back, and the connection
    answers ``litekeep_transaction_aborted`` until a rollback ends it."""

    def __init__(self, owner):
        self.owner = owner
        self.open = False
        self.aborted = False

    def rollback(self):
        if self.open:
            with self.owner._sql_lock:
                self.owner._sql.execute("ROLLBACK")
            self.open = False

    def run(self, request):
        db = self.owner._sql
        tx = request.get("tx")
        if self.aborted:
            if tx == "rollback":
                self.aborted = False
                return {"results": []}
            if tx == "commit":
                self.aborted = False
            return _error("the transaction was rolled back", "litekeep_transaction_aborted")
        if (request.get("in_tx") or tx in ("commit", "rollback")) and not self.open:
            return _error("no transaction is open on this connection", "litekeep_no_transaction")
        if tx == "begin":
            db.execute("BEGIN")
            self.open = True
        db.execute("SAVEPOINT request")
        results = []
        for i, stmt in enumerate(request["stmts"]):
            try:
                cur = db.execute(stmt["sql"], stmt["params"])
                rows = [list(r) for r in cur.fetchall()]
            except sqlite3.Error as e:
                db.execute("ROLLBACK TO request")
                db.execute("RELEASE request")
                if self.open:
                    db.execute("ROLLBACK")
                    self.open, self.aborted = False, True
                return {"error": {"index": i, "sql": stmt["sql"], "message": str(e), "code": None}}
            columns = [d[0] for d in cur.description] if cur.description else []
            results.append({"columns": columns, "rows": rows,
                            "changes": cur.rowcount if cur.rowcount >= 0 else 0,
                            "last_rowid": cur.lastrowid})
        db.execute("RELEASE request")
        if tx in ("commit", "rollback"):
            db.execute(tx.upper())
            self.open = False
        return {"results": results}


def _error(message, code):
    return {"error": {"index": -1, "sql": "", "message": message, "code": code}}


def _generation_in(head):
    line = head.split(b"\n", 1)[0].decode("utf-8", "replace")
    if LABEL not in line:
        return 0
    digits = line.split(LABEL, 1)[1]
    digits = digits[: len(digits) - len(digits.lstrip("0123456789"))]
    return int(digits or 0)


def _bind(sock, path):
    if len(os.fsencode(path)) <= SUN_PATH_MAX:
        sock.bind(path)
        return
    directory, name = os.path.split(path)
    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY)
    try:
        sock.bind(f"/proc/self/fd/{fd}/{name}")
    finally:
        os.close(fd)


def _read(c):
    head = _exactly(c, 4)
    if head is None:
        return None
    return cbor.loads(_exactly(c, int.from_bytes(head, "big")))


def _exactly(c, n):
    buf = b""
    while len(buf) < n:
        chunk = c.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _write(c, message):
    payload = cbor.dumps(message)
    c.sendall(len(payload).to_bytes(4, "big") + payload)


class _quiet:
    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        return kind is not None and issubclass(kind, (OSError, ValueError, TypeError, KeyError))
