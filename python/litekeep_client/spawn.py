"""Starting ``litekeep serve`` for a database that has no owner.

The server runs detached: in its own session (no terminal's signals reach it), with its
standard streams on ``/dev/null`` (it writes its log beside the database), in ``/`` (it keeps
no directory busy). Two clients may start one each at the same moment: the servers elect one
owner between them through the owner lock and the other leaves, so a client only ever looks
for the owner, never assumes its own server is it.

A server that exits stays a zombie of the process that started it until that process waits
for it; :func:`reap` does, and runs before every start and every search for the owner.
"""

from __future__ import annotations

import os
import subprocess
import threading
from typing import Optional

_started: list[subprocess.Popen] = []
_started_lock = threading.Lock()


def log_path(db: str) -> str:
    """Where ``litekeep serve`` writes its log: beside the database."""
    return db + ".serve.log"


def start(litekeep: str, db: str, engine: str) -> subprocess.Popen:
    """Starts ``litekeep serve --db DB --engine ENGINE``, detached. Raises ``OSError`` when it
    cannot be executed."""
    reap()
    proc = subprocess.Popen(
        [litekeep, "serve", "--db", db, "--engine", engine],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd="/",
        close_fds=True,
        start_new_session=True,
    )
    with _started_lock:
        _started.append(proc)
    return proc


def reap() -> None:
    """Waits for the servers this process started that have exited (no zombies stay)."""
    with _started_lock:
        _started[:] = [p for p in _started if p.poll() is None]


def log_tail(db: str, lines: int = 5) -> Optional[str]:
    """The last ``lines`` lines of the server's log, if it has one."""
    try:
        with open(log_path(db), "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 8192))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    kept = [line for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join(kept) if kept else None
