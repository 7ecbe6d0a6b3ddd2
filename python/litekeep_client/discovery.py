"""Finding the owner of a database and connecting to it, as ``owner/src/node.rs`` does
(PROTOCOL.md, section 2).

The owner holds an exclusive ``flock`` on ``<db>.owner.lock`` and writes its record as the lock
file's first line (``litekeep-lock v1 pid=<pid> host=<host> since=… label=litekeep owner
gen=<n>``). The socket is ``<dir>/<name>.owner-<n>.sock``, reached as
``/proc/self/fd/<dirfd>/<name>.owner-<n>.sock`` when its path is over 107 bytes. The record is
tried first: connected, the client checks with ``SO_PEERCRED`` that the process listening is the
record's pid, and only a holder of the lock writes the record. When that fails (a dead owner's
record stays behind until the next owner overwrites it), the kernel's ``/proc/locks`` names the
holder. A socket bound by anyone else is never called.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass
from typing import Optional, Union

#: The owner lock's label: this, then the generation.
LABEL = "litekeep owner gen="
_RECORD = "litekeep-lock v1 "
#: The most path bytes a Unix socket address holds on Linux.
SUN_PATH_MAX = 107
#: How many times ``/proc/locks`` is read and merged: the kernel builds it a page per read,
#: and a lock taken or released meanwhile elsewhere can make one read skip a line.
_PROC_LOCKS_READS = 3
_UCRED = struct.Struct("3i")


def owner_lock_path(db: str) -> str:
    """``<db>.owner.lock``."""
    return db + ".owner.lock"


def socket_name(file_name: str, generation: int) -> str:
    """``<file name>.owner-<generation>.sock``."""
    return f"{file_name}.owner-{generation}.sock"


@dataclass(frozen=True)
class Owner:
    """The process that holds the owner lock, and where it listens."""

    pid: int
    generation: int
    socket_path: str
    #: Whether ``/proc/locks`` named ``pid`` as the holder (else the record alone did).
    from_kernel: bool = False


@dataclass(frozen=True)
class NoOwner:
    """Why no owner can be called now. ``free``: nobody holds the owner lock (a server may be
    started); otherwise a holder is there but not ready (it has not written its record yet)."""

    why: str
    free: bool


def find(db: str, ask_kernel: bool = False) -> Union[Owner, NoOwner]:
    """Who owns ``db`` (an absolute path) now, or why nobody can be called. By default the
    record alone names the owner, to be checked by :func:`connect`; with ``ask_kernel`` (after
    that check failed) the holder named by ``/proc/locks`` must be the record's pid."""
    lock = owner_lock_path(db)
    try:
        st = os.stat(lock)
    except FileNotFoundError:
        return NoOwner(f"no process owns it ({os.path.basename(lock)} does not exist)", True)
    except OSError as e:
        return NoOwner(f"cannot read {lock}: {e.strerror}", False)
    if not ask_kernel:
        record = _record(lock)
        if record is not None:
            directory, name = os.path.split(db)
            return Owner(record[0], record[1], os.path.join(directory, socket_name(name, record[1])))
    holders = _kernel_holders(os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    record = _record(lock)
    if holders is None:
        # No /proc/locks: the record alone, checked against the listening pid below.
        if record is None:
            return NoOwner(f"no owner record in {lock} and no /proc/locks to ask", True)
        pid, generation = record
    else:
        if not holders:
            return NoOwner("no process owns it (the owner lock is free)", True)
        pid = holders[0]
        if record is None or record[0] != pid:
            return NoOwner(f"pid {pid} holds the owner lock but has not named its socket yet", False)
        generation = record[1]
    directory, name = os.path.split(db)
    return Owner(pid, generation, os.path.join(directory, socket_name(name, generation)), True)


def _kernel_holders(major: int, minor: int, ino: int) -> Optional[list[int]]:
    """The pids holding an exclusive flock on the inode, from ``/proc/locks`` read a few times
    and merged (in the order first seen); ``None`` when it cannot be read."""
    want = f"{major:02x}:{minor:02x}:{ino}"
    pids: list[int] = []
    read_any = False
    for _ in range(_PROC_LOCKS_READS):
        try:
            with open("/proc/locks", encoding="ascii", errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        read_any = True
        for line in text.splitlines():
            # "1: FLOCK  ADVISORY  WRITE 4242 08:01:1234 0 EOF"; waiters are "1: -> FLOCK …".
            words = line.split()
            if len(words) < 6 or words[1] != "FLOCK" or words[3] != "WRITE":
                continue
            if not _same_inode(words[5], major, minor, ino, want):
                continue
            try:
                pid = int(words[4])
            except ValueError:
                continue
            if pid not in pids:
                pids.append(pid)
    return pids if read_any else None


def _same_inode(field: str, major: int, minor: int, ino: int, want: str) -> bool:
    if field == want:
        return True
    parts = field.split(":")
    if len(parts) != 3:
        return False
    try:
        return (int(parts[0], 16), int(parts[1], 16), int(parts[2])) == (major, minor, ino)
    except ValueError:
        return False


def _record(lock: str) -> Optional[tuple[int, int]]:
    """(pid, generation) from the lock file's record, if it is an owner's from this host."""
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        head = os.pread(fd, 512, 0)
    except OSError:
        return None
    finally:
        os.close(fd)
    line = head.split(b"\n", 1)[0].decode("utf-8", "replace")
    if not line.startswith(_RECORD) or " label=" not in line:
        return None
    fields, label = line[len(_RECORD) :].split(" label=", 1)
    values = dict(f.split("=", 1) for f in fields.split(" ") if "=" in f)
    if values.get("host") != os.uname().nodename or not label.startswith(LABEL):
        return None
    digits = label[len(LABEL) :]
    digits = digits[: len(digits) - len(digits.lstrip("0123456789"))]
    try:
        return int(values["pid"]), int(digits)
    except (KeyError, ValueError):
        return None


class Refusal(Exception):
    """Connecting to ``owner`` failed; ``why`` says how, for the caller's error message."""


def connect(owner: Owner, timeout: float) -> socket.socket:
    """A blocking stream connected to ``owner``'s socket, after checking that the process
    listening is ``owner.pid``. Raises :class:`Refusal`."""
    path = owner.socket_path
    address = path
    dir_fd = None
    if len(os.fsencode(path)) > SUN_PATH_MAX:
        directory, name = os.path.split(path)
        try:
            dir_fd = os.open(directory or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise Refusal(f"opening the directory of {path}: {e.strerror}") from None
        address = f"/proc/self/fd/{dir_fd}/{name}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(max(timeout, 0.001))
        try:
            sock.connect(address)
        except OSError as e:
            raise Refusal(f"connecting to {path}: {e.strerror or e}") from None
        pid, _, _ = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
        if pid != owner.pid:
            raise Refusal(
                f"{path} is bound by pid {pid}, not by the owner (pid {owner.pid}); not calling it"
            )
        # Blocking from here on: frames.py bounds each call with the kernel's own timeouts.
        sock.settimeout(None)
    except BaseException:
        sock.close()
        raise
    finally:
        if dir_fd is not None:
            os.close(dir_fd)
    return sock
