"""End to end against the real ``litekeep serve``, for both engines: started on demand by the
client, calls and values, SQL errors, transactions, and what the server must survive from a
Python client: killed mid-request and mid-transaction, garbage, oversized frames, two clients
starting a server at once, a SIGKILLed server, a peer whose user may not write the file.

Every test stops the servers it started (tests/servers.py)."""

import json
import math
import os
import pwd
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

import litekeep_client as lk
from litekeep_client import cbor, discovery, frames
from servers import litekeep_or_skip, owner_pid, servers_of, stop_servers, wait_for

PYTHON_DIR = str(Path(__file__).resolve().parent.parent)
BOUND = 60


@pytest.fixture(params=["sqlite", "duckdb"])
def engine(request):
    litekeep_or_skip()
    return request.param


@pytest.fixture
def db(tmp_path, engine):
    path = tmp_path / f"app.{engine}"
    yield path
    stop_servers(path)


def child(code, *args, **kw):
    """A Python process running ``code`` with this client importable."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": PYTHON_DIR}, **kw,
    )


def test_a_client_starts_the_server_on_demand_and_calls_it(db, engine):
    assert servers_of(db) == [] and owner_pid(db) is None
    with lk.connect(db, engine=engine, timeout=BOUND) as conn:
        assert servers_of(db) == [conn.server_pid] == [owner_pid(db)]
        assert conn.server["engine"] == engine
        assert conn.execute("CREATE TABLE docs (id INTEGER, body VARCHAR)").changes == 0
        assert conn.execute("INSERT INTO docs VALUES (?, ?)", [1, "first"]).changes == 1
        changed = conn.executemany("INSERT INTO docs VALUES (?, ?)", [(2, "second"), (3, "third")])
        assert changed.changes == 2
        rows = conn.query("SELECT id, body FROM docs WHERE id >= ? ORDER BY id", [2])
        assert rows == [(2, "second"), (3, "third")]
        assert rows.columns == ("id", "body")
        assert conn.query("SELECT count(*) AS n FROM docs").columns == ("n",)
    assert os.path.exists(lk.spawn.log_path(str(db))), "the server logs beside the database"


def test_values_round_trip_exactly(db, engine):
    rng_blob = struct.pack("<384f", *[math.sin(i) for i in range(384)])  # an embedding
    with lk.connect(db, engine=engine, timeout=BOUND) as conn:
        conn.execute("CREATE TABLE v (k INTEGER, i BIGINT, f DOUBLE, t VARCHAR, b BLOB)")
        values = [
            (1, -(2**63), -0.0, "", b""),
            (2, 2**63 - 1, math.inf, "水 🦆 ü", bytes(range(256))),
            (3, 0, -math.inf, "x" * 10000, rng_blob),
            (4, None, 1.5e-300, None, None),
        ]
        conn.executemany("INSERT INTO v VALUES (?, ?, ?, ?, ?)", values)
        got = conn.query("SELECT k, i, f, t, b FROM v ORDER BY k")
        if engine == "sqlite":
            # SQLite keeps a REAL without a fraction as an integer in the file: -0.0 comes back
            # 0.0. (Bound and selected, it keeps its sign: below.)
            values[0] = (1, -(2**63), 0.0, "", b"")
        assert [tuple(map(repr, r)) for r in got] == [tuple(map(repr, r)) for r in values]
        assert repr(conn.query("SELECT ?", [-0.0])[0][0]) == "-0.0"
        assert all(type(a) is type(b) for r, w in zip(got, values) for a, b in zip(r, w))
        if engine == "duckdb":
            conn.execute("INSERT INTO v (k, f) VALUES (5, ?)", [math.nan])
            (nan,), = conn.query("SELECT f FROM v WHERE k = 5")
            assert math.isnan(nan)
        named = conn.query("SELECT $a AS a, $b AS b" if engine == "duckdb" else "SELECT :a AS a, :b AS b",
                           {"a": 7, "b": b"\x00"})
        assert named == [(7, b"\x00")]


def test_sql_errors_name_the_statement_and_apply_nothing(db, engine):
    with lk.connect(db, engine=engine, timeout=BOUND) as conn:
        conn.execute("CREATE TABLE t (v INTEGER PRIMARY KEY)")
        with pytest.raises(lk.SQLError) as caught:
            conn.executemany("INSERT INTO t VALUES (?)", [[1], [1], [2]])
        assert caught.value.index == 1
        assert caught.value.statement == "INSERT INTO t VALUES (?)"
        assert caught.value.message, "the engine's message"
        assert conn.query("SELECT count(*) FROM t") == [(0,)], "the whole request rolled back"
        with pytest.raises(lk.SQLError) as caught:
            conn.query("SELECT * FROM no_such_table")
        assert "no_such_table" in caught.value.message
        assert conn.query("SELECT 1") == [(1,)], "the connection goes on"


def test_transactions_commit_roll_back_and_block_no_other_reader(db, engine):
    a = lk.connect(db, engine=engine, timeout=BOUND)
    b = lk.connect(db, engine=engine, timeout=BOUND)
    try:
        a.execute("CREATE TABLE t (v INTEGER)")
        a.execute("INSERT INTO t VALUES (0)")
        with a.transaction():
            a.execute("INSERT INTO t VALUES (1)")
            assert a.query("SELECT count(*) FROM t") == [(2,)], "the transaction sees its writes"
            started = time.monotonic()
            assert b.query("SELECT count(*) FROM t") == [(1,)], "others do not, and are answered"
            assert time.monotonic() - started < BOUND
        assert b.query("SELECT count(*) FROM t") == [(2,)], "committed"
        with pytest.raises(KeyError):
            with a.transaction():
                a.execute("INSERT INTO t VALUES (2)")
                raise KeyError("changed my mind")
        assert b.query("SELECT count(*) FROM t") == [(2,)], "rolled back"
    finally:
        a.close()
        b.close()


def test_a_client_killed_in_a_transaction_has_it_rolled_back_at_once(db, engine):
    with lk.connect(db, engine=engine, timeout=BOUND) as conn:
        conn.execute("CREATE TABLE t (v INTEGER)")
        holder = child(
            """
            import sys, litekeep_client
            conn = litekeep_client.connect(sys.argv[1], engine=sys.argv[2])
            with conn.transaction():
                conn.execute("INSERT INTO t VALUES (1)")
                print("IN", flush=True)
                sys.stdin.read()
            """,
            db, engine,
        )
        try:
            assert holder.stdout.readline() == "IN\n"
            assert conn.query("SELECT count(*) FROM t") == [(0,)]
            holder.kill()
            holder.wait()
            # Its transaction is gone: this client writes, and its write is the only one.
            conn.execute("INSERT INTO t VALUES (2)", timeout=BOUND)
            assert conn.query("SELECT v FROM t") == [(2,)]
        finally:
            holder.kill()
            holder.wait()
            holder.stdin.close()
            holder.stdout.close()


def raw_connection(db):
    """A socket to the owner of ``db``, past the handshake, for speaking the protocol by hand."""
    owner = discovery.find(str(db))
    assert isinstance(owner, discovery.Owner), owner
    sock = discovery.connect(owner, 10)
    sock.settimeout(10)
    sock.sendall(frames.encode({"t": "hello", "protocol": 1, "client": os.urandom(16),
                                "program": "test", "version": "0", "fingerprint": None}))
    welcome = frames.Reader(sock).read(time.monotonic() + 10)
    assert welcome["t"] == "welcome", welcome
    return sock


@pytest.mark.parametrize("cut", ["mid_frame", "after_frame"])
def test_a_client_killed_mid_request(db, engine, cut):
    with lk.connect(db, engine=engine, timeout=BOUND) as conn:
        conn.execute("CREATE TABLE t (v INTEGER)")
        body = cbor.dumps({"stmts": [{"sql": "INSERT INTO t VALUES (7)", "params": []}],
                           "mode": "write", "tx": None})
        frame = frames.encode({"t": "call", "seq": 1, "acked_below": 1, "retry": False, "body": body})
        sent = frame[: len(frame) // 2] if cut == "mid_frame" else frame
        killed = child(
            """
            import os, sys, time
            sys.path.insert(0, os.path.dirname(sys.argv[1]))
            from test_serve import raw_connection
            sock = raw_connection(sys.argv[2])
            sock.sendall(bytes.fromhex(sys.argv[3]))
            print("SENT", flush=True)
            time.sleep(60)
            """,
            __file__, db, sent.hex(),
        )
        try:
            assert killed.stdout.readline() == "SENT\n"
            killed.send_signal(signal.SIGKILL)
            killed.wait()
        finally:
            killed.stdin.close()
            killed.stdout.close()
        (n,), = conn.query("SELECT count(*) FROM t")
        if cut == "mid_frame":
            assert n == 0, "a request cut off mid-frame is never applied"
        else:
            assert n in (0, 1), "a whole request may have been applied, once"
        conn.execute("INSERT INTO t VALUES (8)")
        assert conn.query("SELECT count(*) FROM t WHERE v = 8") == [(1,)], "the server goes on"


def test_garbage_and_oversized_frames_get_a_clear_error_and_the_server_goes_on(db, engine):
    with lk.connect(db, engine=engine, timeout=BOUND) as conn:
        deadline = time.monotonic() + 10
        # A frame over the limit, announced before the hello: refused from its length alone.
        owner = discovery.find(str(db))
        sock = discovery.connect(owner, 10)
        sock.sendall(b"\xff\xff\xff\xff")
        error = frames.Reader(sock).read(deadline)
        assert (error["t"], error["error"]["kind"]) == ("error", "too_large")
        sock.close()
        # Bytes that are not CBOR.
        sock = discovery.connect(owner, 10)
        sock.sendall(b"\x00\x00\x00\x04\xff\xfe\xfd\xfc")
        error = frames.Reader(sock).read(deadline)
        assert (error["t"], error["error"]["kind"]) == ("error", "bad_frame")
        sock.close()
        # A call whose body is not a SQL request: a failure for that call, the connection stays.
        sock = raw_connection(db)
        reader = frames.Reader(sock)
        for seq, body in enumerate([b"\xff", cbor.dumps({"stmts": "nope"}), cbor.dumps([1, 2])], 1):
            sock.sendall(frames.encode({"t": "call", "seq": seq, "acked_below": seq, "retry": False,
                                        "body": body}))
            reply = reader.read(deadline)
            assert reply["seq"] == seq and reply["error"]["kind"] == "bad_request", reply
            assert reply["error"]["message"]
        sock.close()
        assert conn.query("SELECT 42") == [(42,)], "the server goes on"


def test_two_clients_starting_at_once_end_with_one_server(db, engine):
    code = """
        import sys, litekeep_client
        sys.stdin.readline()
        conn = litekeep_client.connect(sys.argv[1], engine=sys.argv[2], timeout=60)
        conn.query("SELECT 1")
        print(conn.server_pid, flush=True)
        sys.stdin.readline()
    """
    clients = [child(code, db, engine) for _ in range(4)]
    try:
        for c in clients:
            c.stdin.write("go\n")
            c.stdin.flush()
        pids = {int(c.stdout.readline()) for c in clients}
        assert len(pids) == 1, f"the clients reached different servers: {pids}"
        (pid,) = pids
        assert owner_pid(db) == pid
        # The servers that lost the election leave.
        wait_for(lambda: servers_of(db) == [pid], 30, f"one server ({pid}) left of {servers_of(db)}")
    finally:
        for c in clients:
            c.stdin.close()
            c.wait(timeout=BOUND)
            c.stdout.close()


def test_a_killed_server_is_replaced_by_the_next_call(db, engine):
    with lk.connect(db, engine=engine, timeout=BOUND) as conn:
        conn.execute("CREATE TABLE t (v INTEGER)")
        first = conn.server_pid
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: owner_pid(db) != first, 10, "the owner lock freed")
        conn.execute("INSERT INTO t VALUES (1)")
        assert conn.query("SELECT v FROM t") == [(1,)]
        assert conn.server_pid not in (None, first)
        assert conn.server["generation"] >= 2


def test_a_write_in_flight_when_its_server_is_killed_is_applied_once(db, engine):
    # A statement that takes about a second, so that the kill comes while the server runs it:
    # the client sends it again (retry: true) to the next server, which has no record of it (it
    # never committed) and runs it. One row, answered by the next server. The statement's size
    # is found first, on this machine, by timing the same count as a query: a fixed size ran
    # out before the kill on a fast machine.
    count = {
        "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) "
                  "SELECT count(*) FROM c",
        "duckdb": "SELECT count(*) FROM range({n})",
    }[engine]
    with lk.connect(db, engine=engine, timeout=BOUND) as conn:
        conn.execute("CREATE TABLE t (v BIGINT)")
        n, took = 1_000_000, 0.0
        while took < 1.0:
            n *= 4 if took < 0.25 else 2
            started = time.monotonic()
            conn.query(count.format(n=n))
            took = time.monotonic() - started
        first = conn.server_pid
        answered = {}
        slow = "INSERT INTO t " + count.format(n=n)
        writer = threading.Thread(target=lambda: answered.update(changed=conn.execute(slow)))
        writer.start()
        time.sleep(took / 3)
        os.kill(first, signal.SIGKILL)
        writer.join(BOUND)
        assert answered["changed"].changes == 1
        assert conn.server_pid not in (None, first), "answered by the next server"
        assert conn.query("SELECT count(*) FROM t") == [(1,)], "applied once"


def test_a_server_of_the_other_engine_is_refused(db, engine):
    other = "duckdb" if engine == "sqlite" else "sqlite"
    with lk.connect(db, engine=engine, timeout=BOUND):
        with pytest.raises(lk.EngineMismatch):
            lk.connect(db, engine=other, timeout=BOUND)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as nobody")
def test_a_peer_whose_user_may_not_write_the_file_is_refused(engine):
    scratch = tempfile.mkdtemp(prefix="lk-nobody-")
    os.chmod(scratch, 0o755)
    db = os.path.join(scratch, f"app.{engine}")
    try:
        with lk.connect(db, engine=engine, timeout=BOUND) as conn:
            conn.execute("CREATE TABLE t (v INTEGER)")
            os.chmod(db, 0o644)
            # Open the socket to everyone, as a careless deploy might: the server's own check
            # of the peer's credentials must still refuse a user who may not write the file.
            owner = discovery.find(db)
            os.chmod(owner.socket_path, 0o666)
            nobody = pwd.getpwnam("nobody")
            # An interpreter the nobody user may run (a venv under /root is not one): the client
            # needs nothing but the standard library.
            python = shutil.which("python3", path="/usr/bin:/bin")
            if python is None:
                pytest.skip("no system python3 for the nobody user")
            client_copy = os.path.join(scratch, "client")
            shutil.copytree(os.path.join(PYTHON_DIR, "litekeep_client"),
                            os.path.join(client_copy, "litekeep_client"))
            os.chmod(client_copy, 0o755)
            done = subprocess.run(
                [python, "-c", textwrap.dedent("""
                    import json, sys, litekeep_client
                    try:
                        litekeep_client.connect(sys.argv[1], engine=sys.argv[2], start=False, timeout=10)
                        print(json.dumps({"connected": True}))
                    except litekeep_client.LitekeepError as e:
                        print(json.dumps({"error": type(e).__name__, "message": str(e)}))
                """), db, engine],
                capture_output=True, text=True, timeout=BOUND, user=nobody.pw_uid,
                group=nobody.pw_gid, env={"PYTHONPATH": client_copy, "PATH": os.environ["PATH"]},
            )
            found = json.loads(done.stdout or "{}")
            assert found.get("error") == "Refused", (found, done.stderr)
            assert "may not write" in found["message"]
            assert conn.query("SELECT count(*) FROM t") == [(0,)], "the server goes on"
    finally:
        stop_servers(db)
        shutil.rmtree(scratch)
