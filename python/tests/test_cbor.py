"""The CBOR codec: RFC 8949's own examples (Appendix A), round trips of random values of every
supported kind (bytes exactly, NaN, ±inf, -0.0, integers at the 64-bit edges, all of Unicode),
and a clear refusal of everything it does not support."""

import math
import random
import struct

import pytest

from litekeep_client.cbor import MAX_DEPTH, CBORError, dumps, loads

# (value, encoding) pairs from RFC 8949 Appendix A that this codec writes exactly so.
WRITTEN_AS_THE_RFC = [
    (0, "00"), (1, "01"), (10, "0a"), (23, "17"), (24, "1818"), (25, "1819"), (100, "1864"),
    (1000, "1903e8"), (1000000, "1a000f4240"), (1000000000000, "1b000000e8d4a51000"),
    (18446744073709551615, "1bffffffffffffffff"), (-18446744073709551616, "3bffffffffffffffff"),
    (-1, "20"), (-10, "29"), (-100, "3863"), (-1000, "3903e7"),
    (False, "f4"), (True, "f5"), (None, "f6"),
    (b"", "40"), (b"\x01\x02\x03\x04", "4401020304"),
    ("", "60"), ("a", "6161"), ("IETF", "6449455446"), ('"\\', "62225c"), ("ü", "62c3bc"),
    ("水", "63e6b0b4"), ("\U00010151", "64f0908591"),
    ([], "80"), ([1, 2, 3], "83010203"), ([1, [2, 3], [4, 5]], "8301820203820405"),
    (list(range(1, 26)), "98190102030405060708090a0b0c0d0e0f101112131415161718181819"),
    ({}, "a0"), ({"a": 1, "b": [2, 3]}, "a26161016162820203"),
    (["a", {"b": "c"}], "826161a161626163"),
    ({"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"}, "a56161614161626142616361436164614461656145"),
]

# Encodings from Appendix A this codec reads but writes otherwise: floats of every width (it
# writes doubles), bignums, indefinite lengths (it writes definite ones).
READ_FROM_THE_RFC = [
    ("f90000", 0.0), ("f98000", -0.0), ("f93c00", 1.0), ("fb3ff199999999999a", 1.1),
    ("f93e00", 1.5), ("f97bff", 65504.0), ("fa47c35000", 100000.0),
    ("fa7f7fffff", 3.4028234663852886e38), ("fb7e37e43c8800759c", 1.0e300),
    ("f90001", 5.960464477539063e-8), ("f90400", 0.00006103515625), ("f9c400", -4.0),
    ("fbc010666666666666", -4.1), ("f97c00", math.inf), ("f9fc00", -math.inf),
    ("fa7f800000", math.inf), ("faff800000", -math.inf), ("fb7ff0000000000000", math.inf),
    ("fbfff0000000000000", -math.inf),
    ("c249010000000000000000", 18446744073709551616), ("c349010000000000000000", -18446744073709551617),
    ("5f42010243030405ff", b"\x01\x02\x03\x04\x05"), ("7f657374726561646d696e67ff", "streaming"),
    ("9fff", []), ("9f018202039f0405ffff", [1, [2, 3], [4, 5]]),
    ("9f01820203820405ff", [1, [2, 3], [4, 5]]), ("83018202039f0405ff", [1, [2, 3], [4, 5]]),
    ("83019f0203ff820405", [1, [2, 3], [4, 5]]),
    ("9f0102030405060708090a0b0c0d0e0f101112131415161718181819ff", list(range(1, 26))),
    ("bf61610161629f0203ffff", {"a": 1, "b": [2, 3]}), ("826161bf61626163ff", ["a", {"b": "c"}]),
    ("bf6346756ef563416d7421ff", {"Fun": True, "Amt": -2}),
]


@pytest.mark.parametrize("value, hex_", WRITTEN_AS_THE_RFC)
def test_writes_the_rfcs_examples_byte_for_byte(value, hex_):
    assert dumps(value).hex() == hex_
    assert same(loads(bytes.fromhex(hex_)), value)


@pytest.mark.parametrize("hex_, value", READ_FROM_THE_RFC)
def test_reads_the_rfcs_other_examples(hex_, value):
    assert same(loads(bytes.fromhex(hex_)), value)


@pytest.mark.parametrize("hex_", ["f97e00", "fa7fc00000", "fb7ff8000000000000"])
def test_reads_nan_of_every_width(hex_):
    assert math.isnan(loads(bytes.fromhex(hex_)))


def test_floats_are_written_as_doubles_so_every_bit_round_trips():
    for x in [1.0, 1.1, -0.0, math.inf, -math.inf, 5e-324, 1.7976931348623157e308]:
        b = dumps(x)
        assert b[0] == 0xFB and b[1:] == struct.pack(">d", x)
        assert same(loads(b), x)
    nan = loads(dumps(math.nan))
    assert math.isnan(nan)
    # A NaN with a payload keeps it: the bits go through untouched.
    odd = struct.unpack(">d", bytes.fromhex("7ff8000000000123"))[0]
    assert dumps(odd)[1:].hex() == "7ff8000000000123"


def test_bytes_of_every_value_round_trip_exactly():
    every = bytes(range(256))
    assert loads(dumps(every)) == every
    assert loads(dumps(bytearray(every))) == every
    assert loads(dumps(memoryview(every))) == every
    # An embedding: 384 float32s as one blob.
    rng = random.Random(4)
    blob = struct.pack("<384f", *(rng.uniform(-1, 1) for _ in range(384)))
    assert loads(dumps({"embedding": blob})) == {"embedding": blob}


def test_integers_at_every_width_edge():
    edges = [0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1]
    for n in edges + [-1 - n for n in edges]:
        assert loads(dumps(n)) == n
        assert type(loads(dumps(n))) is int


def test_random_values_round_trip():
    rng = random.Random(2024)
    for _ in range(3000):
        value = random_value(rng, 0)
        assert same(loads(dumps(value)), value), value


@pytest.mark.parametrize(
    "value, words",
    [
        (2**64, "does not fit in 64 bits"),
        (-(2**64) - 1, "does not fit in 64 bits"),
        ({1: 2}, "text keys only"),
        ({("a",): 2}, "text keys only"),
        ({1.5, 2.5}, "cannot write a set"),
        (object(), "cannot write a object"),
        (1 + 2j, "cannot write a complex"),
        ("\ud800", "not valid Unicode"),
    ],
)
def test_refuses_what_it_cannot_write(value, words):
    with pytest.raises(CBORError, match=words):
        dumps(value)


def test_subclasses_are_written_as_their_base():
    import enum

    class Kind(enum.IntEnum):
        A = 7

    class Name(str):
        pass

    assert dumps(Kind.A) == dumps(7)
    assert dumps({Name("k"): Name("v")}) == dumps({"k": "v"})


@pytest.mark.parametrize(
    "hex_, words",
    [
        ("", "cut off at byte 0"),
        ("19", "cut off"),  # a 2-byte integer with no bytes
        ("4401", "cut off"),  # 4 bytes announced, 1 there
        ("9b00000000ffffffff00", "cut off"),  # 4 billion items announced
        ("a1", "cut off"),
        ("0000", "1 bytes after the CBOR item"),
        ("a201020304", "text keys only"),  # {1: 2, 3: 4}
        ("a2616101616102", "appears twice"),
        ("62c328", "not UTF-8"),
        ("f7", "undefined"),
        ("f0", "simple value"),
        ("f8ff", "simple value"),
        ("c074323031332d30332d32315432303a30343a30305a", "tag 0"),
        ("d82076687474703a2f2f7777772e6578616d706c652e636f6d", "tag 32"),
        ("c26161", "no byte string"),
        ("1c", "reserved"),
        ("ff", "'break'"),
        ("81ff", "'break' inside a definite-length array"),
        ("1f", "indefinite length on an integer"),
        ("5f6161ff", "not a definite string of the same type"),
        ("5f5f4101ffff", "not a definite string of the same type"),
        ("bf6161ff", "has no value"),
        ("9f01", "cut off"),
    ],
)
def test_refuses_what_it_cannot_read_saying_what(hex_, words):
    with pytest.raises(CBORError, match=words):
        loads(bytes.fromhex(hex_))


def test_nesting_is_bounded_both_ways():
    deep = []
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(CBORError, match="nested deeper"):
        dumps(deep)
    with pytest.raises(CBORError, match="nested deeper"):
        loads(b"\x81" * (MAX_DEPTH + 1) + b"\x80")
    with pytest.raises(CBORError, match="nested deeper"):
        loads(b"\x9f" * (MAX_DEPTH + 1))
    ok = []
    for _ in range(MAX_DEPTH - 1):
        ok = [ok]
    assert loads(dumps(ok)) == ok


def test_random_garbage_is_refused_or_read_never_anything_else():
    rng = random.Random(7)
    for _ in range(5000):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        try:
            loads(junk)
        except CBORError:
            pass


# --- helpers -------------------------------------------------------------------------------


def same(a, b):
    """Equality that tells -0.0 from 0.0, NaN equal to NaN, and int from bool."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack(">d", a) == struct.pack(">d", b) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def random_text(rng):
    chars = []
    for _ in range(rng.randrange(12)):
        c = rng.choice([rng.randrange(0x80), rng.randrange(0x800), rng.randrange(0x10000),
                        rng.randrange(0x10000, 0x110000)])
        if 0xD800 <= c < 0xE000:
            c = 0xFFFD
        chars.append(chr(c))
    return "".join(chars)


def random_value(rng, depth):
    kinds = ["int", "float", "text", "bytes", "null", "bool", "special"]
    if depth < 4:
        kinds += ["list", "dict"]
    kind = rng.choice(kinds)
    if kind == "int":
        bits = rng.choice([4, 8, 16, 32, 63, 64])
        n = rng.getrandbits(bits)
        return n if n == 2**64 - 1 or rng.random() < 0.5 else -1 - n if n < 2**64 else n
    if kind == "float":
        return struct.unpack(">d", rng.getrandbits(64).to_bytes(8, "big"))[0]
    if kind == "special":
        return rng.choice([math.inf, -math.inf, math.nan, -0.0, 0.0, 2**64 - 1, -(2**64)])
    if kind == "text":
        return random_text(rng)
    if kind == "bytes":
        return bytes(rng.getrandbits(8) for _ in range(rng.randrange(40)))
    if kind == "null":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "list":
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(6))]
    return {random_text(rng): random_value(rng, depth + 1) for _ in range(rng.randrange(6))}
