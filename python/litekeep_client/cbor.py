"""CBOR (RFC 8949), the subset litekeep's protocol uses.

:func:`dumps` writes ``None``, ``bool``, ``int`` (from -2**64 to 2**64 - 1), ``float`` (always
as a double, so NaN and the infinities round-trip), ``str`` (UTF-8), ``bytes`` (also
``bytearray`` and ``memoryview``), ``list`` and ``tuple`` (as arrays), and ``dict`` with ``str``
keys (as maps). Lengths are always definite. Anything else is refused with :class:`CBORError`
naming the type, never written in some other form.

:func:`loads` reads one whole item: the types above, floats of every width (half, single,
double), definite and indefinite lengths, and bignums (tags 2 and 3, read as ``int``). It
refuses, with :class:`CBORError` saying what and where: other tags, ``undefined`` and the other
simple values, maps with keys that are not text or with a key twice, text that is not UTF-8,
items nested deeper than :data:`MAX_DEPTH`, truncated input, and bytes after the item.

>>> loads(dumps({"seq": 7, "body": b"\\x00\\xff", "x": [None, -1.5, "é"]}))
{'seq': 7, 'body': b'\\x00\\xff', 'x': [None, -1.5, 'é']}
"""

from __future__ import annotations

import struct
from typing import Any

#: How deeply arrays and maps may nest, in both directions.
MAX_DEPTH = 256

_DOUBLE = struct.Struct(">d")
_FLOAT_WIDTHS = {25: struct.Struct(">e"), 26: struct.Struct(">f"), 27: _DOUBLE}
_ARG_WIDTHS = {24: 1, 25: 2, 26: 4, 27: 8}
_BREAK = object()


class CBORError(ValueError):
    """A value :func:`dumps` cannot write, or bytes :func:`loads` cannot read (which, where)."""


# --- writing -------------------------------------------------------------------------------


def dumps(value: Any) -> bytes:
    """``value`` as one CBOR item. Raises :class:`CBORError` for what it cannot write."""
    out = bytearray()
    _write(out, value, 0)
    return bytes(out)


def _head(out: bytearray, major: int, n: int) -> None:
    mt = major << 5
    if n < 24:
        out.append(mt | n)
    elif n < 0x100:
        out.append(mt | 24)
        out.append(n)
    elif n < 0x10000:
        out.append(mt | 25)
        out += n.to_bytes(2, "big")
    elif n < 0x100000000:
        out.append(mt | 26)
        out += n.to_bytes(4, "big")
    else:
        out.append(mt | 27)
        out += n.to_bytes(8, "big")


def _write(out: bytearray, v: Any, depth: int) -> None:
    # The common cases first, and short heads written inline: most items of the protocol are
    # small integers, short texts and small maps.
    t = type(v)
    if t is str:
        try:
            b = v.encode("utf-8")
        except UnicodeEncodeError as e:
            raise CBORError(f"text that is not valid Unicode ({e.reason} at {e.start})") from None
        n = len(b)
        if n < 24:
            out.append(0x60 | n)
        else:
            _head(out, 3, n)
        out += b
    elif t is int:
        if 0 <= v < 24:
            out.append(v)
        else:
            _write_int(out, v)
    elif t is dict:
        if depth >= MAX_DEPTH:
            raise CBORError(f"arrays and maps nested deeper than {MAX_DEPTH}")
        n = len(v)
        if n < 24:
            out.append(0xA0 | n)
        else:
            _head(out, 5, n)
        for key, item in v.items():
            encoded = _KEYS.get(key) if type(key) is str else None
            if encoded is None:
                encoded = _key(key)
            out += encoded
            _write(out, item, depth + 1)
    elif v is None:
        out.append(0xF6)
    elif t is list or t is tuple:
        if depth >= MAX_DEPTH:
            raise CBORError(f"arrays and maps nested deeper than {MAX_DEPTH}")
        n = len(v)
        if n < 24:
            out.append(0x80 | n)
        else:
            _head(out, 4, n)
        for item in v:
            _write(out, item, depth + 1)
    elif t is bytes or t is bytearray or t is memoryview:
        b = bytes(v)
        _head(out, 2, len(b))
        out += b
    elif t is float:
        out.append(0xFB)
        out += _DOUBLE.pack(v)
    elif t is bool:
        out.append(0xF5 if v else 0xF4)
    else:
        _write_subclass(out, v, depth)


#: Map keys as written, kept for the keys that recur (the protocol's own are few).
_KEYS: dict[str, bytes] = {}
_KEYS_MAX = 512


def _key(key: Any) -> bytes:
    """A map key's encoding; kept in :data:`_KEYS` while it has room."""
    if type(key) is not str:
        if not isinstance(key, str):
            raise CBORError(f"a map key of type {_type_name(key)}: maps are written with text keys only")
        key = str.__str__(key)
    out = bytearray()
    _write(out, key, 0)
    encoded = bytes(out)
    if len(_KEYS) < _KEYS_MAX and len(encoded) <= 64:
        _KEYS[key] = encoded
    return encoded


def _write_subclass(out: bytearray, v: Any, depth: int) -> None:
    """Subclasses of the supported types (an ``IntEnum``, a ``str`` subclass) as their base."""
    if isinstance(v, bool):
        _write(out, bool(v), depth)
    elif isinstance(v, int):
        _write(out, int(v), depth)
    elif isinstance(v, float):
        _write(out, float(v), depth)
    elif isinstance(v, str):
        _write(out, str.__str__(v), depth)
    elif isinstance(v, (bytes, bytearray)):
        _write(out, bytes(v), depth)
    elif isinstance(v, (list, tuple)):
        _write(out, list(v), depth)
    elif isinstance(v, dict):
        _write(out, dict(v), depth)
    else:
        raise CBORError(
            f"cannot write a {_type_name(v)}: CBOR here carries None, bool, int, float, str, "
            "bytes, lists and dicts with str keys"
        )


def _write_int(out: bytearray, v: int) -> None:
    if 0 <= v < 1 << 64:
        _head(out, 0, v)
    elif -(1 << 64) <= v < 0:
        _head(out, 1, -1 - v)
    else:
        raise CBORError(f"the integer {v} does not fit in 64 bits (from -2**64 to 2**64 - 1)")


def _type_name(v: Any) -> str:
    t = type(v)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


# --- reading -------------------------------------------------------------------------------


def loads(data: bytes | bytearray | memoryview) -> Any:
    """The one CBOR item that is all of ``data``. Raises :class:`CBORError` for what it cannot
    read, naming the byte offset."""
    if not isinstance(data, bytes):
        data = bytes(data)
    value, end = _read(data, 0, 0)
    if value is _BREAK:
        raise CBORError("a 'break' (0xff) outside an indefinite-length item, at byte 0")
    if end != len(data):
        raise CBORError(f"{len(data) - end} bytes after the CBOR item (which ends at byte {end})")
    return value


def _truncated(at: int) -> CBORError:
    return CBORError(f"the CBOR item is cut off at byte {at}")


def _read(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    """The item at ``pos`` and the offset after it; ``_BREAK`` for a break code."""
    start = pos
    try:
        ib = data[pos]
    except IndexError:
        raise _truncated(pos) from None
    pos += 1
    # The common cases first: small unsigned integers, short texts.
    if ib < 0x18:
        return ib, pos
    if 0x60 <= ib < 0x78:
        end = pos + ib - 0x60
        if end > len(data):
            raise _truncated(len(data))
        try:
            return data[pos:end].decode("utf-8"), end
        except UnicodeDecodeError as e:
            raise CBORError(f"text that is not UTF-8 at byte {pos + e.start}") from None
    major, info = ib >> 5, ib & 31
    if major == 7:
        return _read_simple(data, pos, info, start)
    if info < 24:
        arg = info
    elif info in _ARG_WIDTHS:
        width = _ARG_WIDTHS[info]
        if pos + width > len(data):
            raise _truncated(len(data))
        arg = int.from_bytes(data[pos : pos + width], "big")
        pos += width
    elif info == 31:
        return _read_indefinite(data, pos, major, start, depth)
    else:
        raise CBORError(f"a reserved additional-information value {info} at byte {start}")

    if major == 0:
        return arg, pos
    if major == 1:
        return -1 - arg, pos
    if major in (2, 3):
        end = pos + arg
        if end > len(data):
            raise _truncated(len(data))
        chunk = data[pos:end]
        return (chunk if major == 2 else _text(chunk, pos)), end
    if major in (4, 5):
        if depth >= MAX_DEPTH:
            raise CBORError(f"arrays and maps nested deeper than {MAX_DEPTH}, at byte {start}")
        # Every element takes at least one byte: a count past the end is a lie, not a reason
        # to loop or allocate.
        if arg > len(data) - pos:
            raise _truncated(len(data))
        if major == 4:
            items = []
            for _ in range(arg):
                item, pos = _read(data, pos, depth + 1)
                if item is _BREAK:
                    raise CBORError(f"a 'break' inside a definite-length array, at byte {pos - 1}")
                items.append(item)
            return items, pos
        result: dict = {}
        for _ in range(arg):
            kb = data[pos] if pos < len(data) else 0
            end = pos + 1 + kb - 0x60
            if 0x60 <= kb < 0x78 and end <= len(data):
                # A short text key, read here; anything else as _read_entry reads it.
                try:
                    key = data[pos + 1 : end].decode("utf-8")
                except UnicodeDecodeError as e:
                    raise CBORError(f"text that is not UTF-8 at byte {pos + 1 + e.start}") from None
                if key in result:
                    raise CBORError(f"the map key {key!r} appears twice (the second at byte {pos})")
                value, pos = _read(data, end, depth + 1)
                if value is _BREAK:
                    raise CBORError(f"the map key {key!r} at byte {end} has no value")
                result[key] = value
            else:
                pos = _read_entry(data, pos, depth, result)
        return result, pos
    # major 6: a tag
    return _read_tag(data, pos, arg, start, depth)


def _read_simple(data: bytes, pos: int, info: int, start: int) -> tuple[Any, int]:
    if info == 22:
        return None, pos
    if info == 21:
        return True, pos
    if info == 20:
        return False, pos
    if info in _FLOAT_WIDTHS:
        s = _FLOAT_WIDTHS[info]
        if pos + s.size > len(data):
            raise _truncated(len(data))
        return s.unpack_from(data, pos)[0], pos + s.size
    if info == 31:
        return _BREAK, pos
    if info == 23:
        raise CBORError(f"'undefined' at byte {start}: this codec reads null, not undefined")
    raise CBORError(f"an unsupported simple value (additional information {info}) at byte {start}")


def _read_indefinite(data: bytes, pos: int, major: int, start: int, depth: int) -> tuple[Any, int]:
    if major in (2, 3):
        chunks = []
        while True:
            at = pos
            chunk, pos = _read(data, pos, depth + 1)
            if chunk is _BREAK:
                break
            if data[at] >> 5 != major or data[at] & 31 == 31:
                raise CBORError(
                    f"a chunk at byte {at} of the indefinite-length string at byte {start} "
                    "is not a definite string of the same type"
                )
            chunks.append(chunk)
        if major == 2:
            return b"".join(chunks), pos
        return "".join(chunks), pos
    if major in (4, 5):
        if depth >= MAX_DEPTH:
            raise CBORError(f"arrays and maps nested deeper than {MAX_DEPTH}, at byte {start}")
        if major == 4:
            items = []
            while True:
                item, pos = _read(data, pos, depth + 1)
                if item is _BREAK:
                    return items, pos
                items.append(item)
        result: dict = {}
        while True:
            if pos < len(data) and data[pos] == 0xFF:
                return result, pos + 1
            pos = _read_entry(data, pos, depth, result)
    raise CBORError(f"an indefinite length on an integer or tag at byte {start}")


def _read_entry(data: bytes, pos: int, depth: int, into: dict) -> int:
    at = pos
    key, pos = _read(data, pos, depth + 1)
    if type(key) is not str:
        what = "a 'break'" if key is _BREAK else f"a {_type_name(key)}"
        raise CBORError(f"a map key at byte {at} is {what}: this codec reads text keys only")
    if key in into:
        raise CBORError(f"the map key {key!r} appears twice (the second at byte {at})")
    value, pos = _read(data, pos, depth + 1)
    if value is _BREAK:
        raise CBORError(f"the map key {key!r} at byte {at} has no value")
    into[key] = value
    return pos


def _read_tag(data: bytes, pos: int, tag: int, start: int, depth: int) -> tuple[Any, int]:
    if tag not in (2, 3):
        raise CBORError(f"tag {tag} at byte {start}: this codec reads no tags but bignums (2, 3)")
    at = pos
    magnitude, pos = _read(data, pos, depth + 1)
    if type(magnitude) is not bytes:
        raise CBORError(f"the bignum at byte {start} holds no byte string (at byte {at})")
    n = int.from_bytes(magnitude, "big")
    return (n if tag == 2 else -1 - n), pos


def _text(chunk: bytes, at: int) -> str:
    try:
        return chunk.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CBORError(f"text that is not UTF-8 at byte {at + e.start}") from None
