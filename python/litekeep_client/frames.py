"""Frames on the owner's socket: a 4-byte big-endian length ``n``, then ``n`` bytes of one CBOR
map (PROTOCOL.md, section 4). A frame longer than the reader's limit is refused from its length
alone, before any more of it is read.

The socket is blocking, its deadlines set as the kernel's own send and receive timeouts
(``SO_SNDTIMEO``, ``SO_RCVTIMEO``): a call costs a ``send``, a ``setsockopt`` and a ``recv``,
where Python's socket timeouts would add a ``poll`` and an ``ioctl`` to each.

Reading and writing raise three exceptions of their own, which the connection turns into the
public ones (it knows what was sent and what that means for the caller): :class:`NotSent`,
:class:`Lost` and :class:`Deadline`.
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Any

from litekeep_client import cbor

#: The largest reply this client reads unless told otherwise (a query's rows come in one frame).
DEFAULT_MAX_REPLY = 256 * 1024 * 1024
#: A frame this small goes into an empty socket buffer at once: its send needs no timeout.
_SMALL = 16 * 1024
_CHUNK = 64 * 1024

_SEND_FLAGS = getattr(socket, "MSG_NOSIGNAL", 0)
_TIMEVAL = struct.Struct("@ll")


class NotSent(Exception):
    """The frame did not leave whole: the peer never got it, so never acts on it."""


class Lost(Exception):
    """The connection ended, or said something unreadable, after the frame was sent."""


class Deadline(Exception):
    """The deadline passed before the frame was sent or its answer read."""


def encode(message: dict) -> bytes:
    """``message`` as a frame."""
    payload = cbor.dumps(message)
    return len(payload).to_bytes(4, "big") + payload


def _timeval(deadline: float) -> bytes:
    """The time left until ``deadline`` as a ``struct timeval``; raises :class:`Deadline` when
    none is left. Never zero: a zero timeout means none to the kernel."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise Deadline()
    seconds = int(left)
    return _TIMEVAL.pack(seconds, max(1, int((left - seconds) * 1e6)))


def send(sock: socket.socket, frame: bytes, deadline: float) -> None:
    """Sends all of ``frame`` before ``deadline`` (monotonic seconds), or raises
    :class:`NotSent` / :class:`Deadline` (then, too, not whole: the connection must be closed)."""
    if len(frame) > _SMALL:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(deadline))
    elif deadline <= time.monotonic():
        raise Deadline()
    try:
        sock.sendall(frame, _SEND_FLAGS)
    except BlockingIOError:
        raise Deadline() from None
    except OSError as e:
        raise NotSent(str(e)) from None


class Reader:
    """Reads frames from one blocking socket, keeping what arrived past a frame for the next."""

    def __init__(self, sock: socket.socket, max_frame: int = DEFAULT_MAX_REPLY) -> None:
        self.sock = sock
        self.max_frame = max_frame
        self._buf = bytearray()
        self._chunk = bytearray(_CHUNK)
        self._view = memoryview(self._chunk)

    def _fill(self, want: int, deadline: float) -> None:
        while len(self._buf) < want:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(deadline))
            try:
                n = self.sock.recv_into(self._view)
            except BlockingIOError:
                raise Deadline() from None
            except OSError as e:
                raise Lost(f"reading from the server failed: {e}") from None
            if n == 0:
                cut = f" after {len(self._buf)} bytes of a frame" if self._buf else ""
                raise Lost(f"the server closed the connection{cut}")
            self._buf += self._view[:n]

    def read(self, deadline: float) -> dict[str, Any]:
        """The next frame's message, a CBOR map, before ``deadline``. Raises :class:`Lost` for
        a closed connection, an oversized or undecodable frame; :class:`Deadline`."""
        self._fill(4, deadline)
        n = int.from_bytes(self._buf[:4], "big")
        if n > self.max_frame:
            raise Lost(f"the server announced a frame of {n} bytes, over this client's limit "
                       f"of {self.max_frame} (connect(..., max_reply=...) raises it)")
        self._fill(4 + n, deadline)
        payload = bytes(self._buf[4 : 4 + n])
        del self._buf[: 4 + n]
        try:
            message = cbor.loads(payload)
        except cbor.CBORError as e:
            raise Lost(f"the server sent a frame that is not CBOR: {e}") from None
        if not isinstance(message, dict):
            raise Lost(f"the server sent a frame that is not a map: {type(message).__name__}")
        return message
