"""Helpers for the tests that run the real ``litekeep serve``: finding the binary, finding and
stopping the servers of a database (every one, the owner and any still starting or leaving)."""

import os
import signal
import time

import pytest

from litekeep_client import LITEKEEP_ENV, LitekeepNotFound, discovery, find_litekeep


def litekeep_or_skip():
    """The litekeep binary; skips where there is none and LITEKEEP is unset (CI sets it, and a
    wrong value fails)."""
    try:
        return find_litekeep()
    except LitekeepNotFound:
        if os.environ.get(LITEKEEP_ENV):
            raise
        pytest.skip("no litekeep binary: set LITEKEEP or put it on PATH")


def servers_of(db):
    """The pids of the ``litekeep serve`` processes for ``db`` (by their command lines)."""
    db = os.path.abspath(str(db))
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"serve" in argv and os.fsencode(db) in argv and not _zombie(entry):
            found.append(int(entry))
    return found


def _zombie(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return True


def owner_pid(db):
    """The pid of the owner of ``db`` now, or None."""
    found = discovery.find(os.path.abspath(str(db)), ask_kernel=True)
    return found.pid if isinstance(found, discovery.Owner) else None


def stop_servers(db, grace=10.0):
    """Stops every server of ``db``: SIGTERM, then SIGKILL after ``grace`` seconds; waits until
    none is left and the owner lock is free. Returns the pids it stopped."""
    pids = servers_of(db)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while servers_of(db) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in servers_of(db):
        _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while (servers_of(db) or owner_pid(db)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not servers_of(db), f"servers of {db} still running: {servers_of(db)}"
    return pids


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def wait_for(predicate, seconds, what):
    """Waits until ``predicate()`` is true, at most ``seconds``; fails naming ``what``."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds} s")
        time.sleep(0.01)
