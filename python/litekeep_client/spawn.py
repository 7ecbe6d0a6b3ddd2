"""Starting ``litekeep serve`` for a database that has no owner (PROTOCOL.md, section 3).

``litekeep serve --db DB --engine ENGINE`` starts the server as a child in a session of its
own (working directory ``/``, stdin ``/dev/null``, its log ``<db>.serve.log`` beside the
database) and exits once a server serves the database: 0 when one does (the one it started, or
one that was already serving or won the race); 75 when the server it started died before it
served (killed while starting): try again; another status, with one line on stderr saying
why, when no server can serve the file. Two clients that start servers at the same moment end with one server: the servers elect
one owner through the owner lock and the others leave. So a client runs it, waits for it, and
then looks for the owner; it never assumes the server it started is the one serving.

The command itself runs in a session of its own too, so that a terminal's Ctrl-C meant for
the client does not cut a server's start short.
"""

from __future__ import annotations

import subprocess


#: ``litekeep serve``'s status when the server it started died before it served (it was killed
#: while starting) or did not serve in time: nothing is wrong with the database, try again.
EX_TEMPFAIL = 75


class StartFailed(Exception):
    """``litekeep serve`` could not start a server; the message says why. ``again``: the
    failure was the start's, not the database's (exit status 75, or no answer in time), and
    starting again may serve."""

    def __init__(self, message: str, again: bool) -> None:
        super().__init__(message)
        self.again = again


def log_path(db: str) -> str:
    """Where ``litekeep serve`` writes its log: ``<db>.serve.log``, beside the database."""
    return db + ".serve.log"


def start(litekeep: str, db: str, engine: str, timeout: float) -> None:
    """Runs ``litekeep serve --db DB --engine ENGINE`` and waits for it, at most ``timeout``
    seconds. Returns when a server serves ``db``; raises :class:`StartFailed` otherwise."""
    command = [litekeep, "serve", "--db", db, "--engine", engine]
    try:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd="/",
            close_fds=True,
            start_new_session=True,
        )
    except OSError as e:
        raise StartFailed(f"`{' '.join(command)}` could not be run: {e}", again=False) from None
    try:
        _, stderr = proc.communicate(timeout=max(timeout, 0.001))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise StartFailed(
            f"`litekeep serve` did not say a server serves {db} within {timeout:.3g} s; "
            f"its log is {log_path(db)}",
            again=True,
        ) from None
    if proc.returncode != 0:
        lines = [line for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
        said = " | ".join(lines[-5:]) or "nothing on stderr"
        raise StartFailed(
            f"`litekeep serve --db {db} --engine {engine}` exited with status {proc.returncode}: "
            f"{said} (its log: {log_path(db)})",
            again=proc.returncode == EX_TEMPFAIL,
        )
