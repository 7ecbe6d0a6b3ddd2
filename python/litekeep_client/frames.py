"""Frames on the owner's socket: a 4-byte big-endian length ``n``, then ``n`` bytes of one CBOR
map (``owner/src/wire.rs``). A frame longer than the reader's limit is refused from its length
alone, before any more of it is read.

The reading and writing here raise three exceptions of their own, which the connection turns
into the public ones (it knows what was sent and what that means for the caller):
:class:`NotSent`, :class:`Lost` and :class:`Deadline`.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from litekeep_client import cbor

#: The largest reply this client reads unless told otherwise (a query's rows come in one frame).
DEFAULT_MAX_REPLY = 256 * 1024 * 1024

_SEND_FLAGS = getattr(socket, "MSG_NOSIGNAL", 0)


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


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise Deadline()
    return left


def send(sock: socket.socket, frame: bytes, deadline: float) -> None:
    """Sends all of ``frame`` before ``deadline`` (monotonic seconds), or raises
    :class:`NotSent` / :class:`Deadline` (then, too, not whole: the connection must be closed)."""
    view = memoryview(frame)
    while view:
        sock.settimeout(_left(deadline))
        try:
            n = sock.send(view, _SEND_FLAGS)
        except socket.timeout:
            raise Deadline() from None
        except InterruptedError:
            continue
        except OSError as e:
            raise NotSent(str(e)) from None
        view = view[n:]


class Reader:
    """Reads frames from one socket, keeping what arrived past a frame for the next."""

    def __init__(self, sock: socket.socket, max_frame: int = DEFAULT_MAX_REPLY) -> None:
        self.sock = sock
        self.max_frame = max_frame
        self._buf = bytearray()

    def _fill(self, want: int, deadline: float) -> None:
        while len(self._buf) < want:
            self.sock.settimeout(_left(deadline))
            try:
                chunk = self.sock.recv(max(65536, want - len(self._buf)))
            except socket.timeout:
                raise Deadline() from None
            except InterruptedError:
                continue
            except OSError as e:
                raise Lost(f"reading from the server failed: {e}") from None
            if not chunk:
                cut = f" after {len(self._buf)} bytes of a frame" if self._buf else ""
                raise Lost(f"the server closed the connection{cut}")
            self._buf += chunk

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

    def pending(self) -> bool:
        """Whether bytes are waiting unread (in the buffer or the socket), or the peer has
        closed: either way the connection is not in step and must not carry a new call."""
        if self._buf:
            return True
        # Non-blocking: with a timeout set, Python would first wait for the socket to be
        # readable. Data (a stray reply) or b"" (closed) both mean out of step.
        self.sock.settimeout(0)
        try:
            self.sock.recv(1, socket.MSG_PEEK)
            return True
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True
