"""The client's protocol code against a stand-in owner in this process (tests/fake_owner.py):
finding the owner, the handshake, calls and their numbering, exactly-once retries, timeouts,
transactions, errors, and what it refuses. The real server is tested end to end in
test_serve.py; these pin the client's side of each case, one at a time."""

import datetime
import math
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import litekeep_client as lk
from fake_owner import FakeOwner
from litekeep_client import cbor, discovery


@pytest.fixture
def db(tmp_path):
    return tmp_path / "app.db"


@pytest.fixture
def owner(db):
    o = FakeOwner(db)
    yield o
    o.stop()


@pytest.fixture
def conn(owner, db):
    """A connection to the stand-in owner, closed after the test."""
    c = lk.connect(db, start=False, timeout=5)
    yield c
    c.close()


def bodies(owner):
    return [cbor.loads(body) for _, _, _, body in owner.calls]


def test_calls_round_trip_every_value_type(owner, db):
    with lk.connect(db, start=False, timeout=5) as conn:
        assert conn.server_pid == os.getpid()
        conn.execute("CREATE TABLE t (v)")
        values = [None, 0, -(2**63), 2**63 - 1, 1.5, math.inf, -math.inf, -0.0, "", "水 🦆",
                  b"", bytes(range(256))]
        for v in values:
            conn.execute("INSERT INTO t VALUES (?)", [v])
        rows = conn.query("SELECT v FROM t ORDER BY rowid")
        assert rows.columns == ("v",)
        got = [r[0] for r in rows]
        assert [(type(v), repr(v)) for v in got] == [(type(v), repr(v)) for v in values]
        # NaN goes over the wire as a float (SQLite itself stores it as NULL).
        assert math.isnan(cbor.loads(cbor.dumps({"v": math.nan}))["v"])


def test_requests_carry_the_documented_body_and_numbering(owner, conn):
    conn.execute("CREATE TABLE t (a, b)")
    changed = conn.execute("INSERT INTO t VALUES (:a, :b)", {"a": 1, "b": True})
    assert changed == lk.Changes(1, 1)
    assert conn.query("SELECT a, b FROM t") == [(1, 1)]
    conn.close()
    (hello,) = owner.hellos
    assert hello["t"] == "hello" and hello["protocol"] == 1 and len(hello["client"]) == 16
    assert [seq for _, seq, _, _ in owner.calls] == [1, 2, 3]
    assert {c for c, _, _, _ in owner.calls} == {hello["client"]}
    assert not any(retry for _, _, retry, _ in owner.calls)
    assert bodies(owner)[1] == {
        "stmts": [{"sql": "INSERT INTO t VALUES (:a, :b)", "params": {"a": 1, "b": 1}}],
        "mode": "write",
        "tx": None,
    }
    assert bodies(owner)[2]["mode"] == "read"


def test_a_write_whose_answer_was_lost_is_retried_and_applied_once(owner, conn):
    conn.execute("CREATE TABLE t (v)")
    owner.script = ["drop_after"]
    assert conn.execute("INSERT INTO t VALUES (1)").changes == 1
    assert conn.query("SELECT count(*) FROM t") == [(1,)]
    (first, again) = [c for c in owner.calls if c[1] == 2]
    assert (first[2], again[2]) == (False, True), "the second send is marked a retry"
    assert first[3] == again[3], "with the same body"


def test_a_write_whose_owner_stepped_down_maybe_applied_is_retried_and_applied_once(owner, conn):
    # The owner's database failed in the commit (DuckDB invalidated it after a failed fsync):
    # it answers stepping_down, applied "unknown"; the retry learns the outcome from the record.
    conn.execute("CREATE TABLE t (v)")
    owner.script = [("after", {"t": "reply", "error": {
        "kind": "stepping_down", "applied": "unknown",
        "message": "the server's database failed (FATAL Error: fsync failed!)"}})]
    assert conn.execute("INSERT INTO t VALUES (1)").changes == 1
    assert conn.query("SELECT count(*) FROM t") == [(1,)]
    (first, again) = [c for c in owner.calls if c[1] == 2]
    assert (first[2], again[2]) == (False, True), "the second send is marked a retry"


def test_a_write_cut_off_before_it_was_applied_is_applied_by_its_retry(owner, conn):
    conn.execute("CREATE TABLE t (v)")
    owner.script = ["drop_before"]
    assert conn.execute("INSERT INTO t VALUES (1)").changes == 1
    assert conn.query("SELECT count(*) FROM t") == [(1,)]


def test_without_recorded_outcomes_a_lost_write_is_outcome_unknown_not_resent(db):
    owner = FakeOwner(db, records_outcomes=False)
    try:
        conn = lk.connect(db, start=False, timeout=5)
        conn.execute("CREATE TABLE t (v)")
        owner.script = ["drop_after"]
        with pytest.raises(lk.OutcomeUnknown, match="may or may not have been applied"):
            conn.execute("INSERT INTO t VALUES (1)")
        assert len([c for c in owner.calls if c[1] == 2]) == 1, "never sent twice"
        assert conn.query("SELECT count(*) FROM t") == [(1,)]
        conn.close()
    finally:
        owner.stop()


def test_a_lost_read_is_sent_again(db):
    owner = FakeOwner(db, records_outcomes=False)
    try:
        conn = lk.connect(db, start=False, timeout=5)
        owner.script = ["drop_before", "drop_after"]
        assert conn.query("SELECT 41 + 1 AS answer") == [(42,)]
        assert len(owner.calls) == 3
        conn.close()
    finally:
        owner.stop()


def test_the_next_owner_answers_a_retry_with_the_recorded_outcome(db):
    first = FakeOwner(db)
    conn = lk.connect(db, start=False, timeout=10)
    conn.execute("CREATE TABLE t (v)")
    first.script = ["drop_after"]
    successor = {}

    def crash_then_replace():
        # The owner applies the write, then dies before answering; a new generation takes
        # over with the same database (and its outcome records).
        while not any(c[1] == 2 for c in first.calls):
            time.sleep(0.001)
        first.crash()
        time.sleep(0.2)
        successor["owner"] = FakeOwner(db, outcomes=first.outcomes)

    t = threading.Thread(target=crash_then_replace)
    t.start()
    try:
        assert conn.execute("INSERT INTO t VALUES (7)").changes == 1
        t.join()
        second = successor["owner"]
        assert second.generation == first.generation + 1
        assert [c[2] for c in second.calls if c[1] == 2] == [True]
        assert conn.query("SELECT v FROM t") == [(7,)], "applied exactly once"
        assert conn.server_pid == os.getpid()
        # The dead owner's socket is still there; the client went to the new one's.
        assert os.path.exists(first.socket_path)
    finally:
        t.join()
        conn.close()
        if "owner" in successor:
            successor["owner"].stop()
        os.unlink(first.socket_path)


def test_every_call_has_a_timeout_and_the_connection_recovers(owner, conn):
    owner.script = [("sleep", 1.5)]
    started = time.monotonic()
    with pytest.raises(lk.Timeout) as caught:
        conn.query("SELECT 1", timeout=0.3)
    assert time.monotonic() - started < 1.2
    assert caught.value.seconds == 0.3 and caught.value.operation == "query"
    assert conn.query("SELECT 2") == [(2,)]


def test_sql_errors_name_the_statement_and_roll_back_the_request(owner, conn):
    conn.execute("CREATE TABLE t (v INTEGER PRIMARY KEY)")
    with pytest.raises(lk.SQLError) as caught:
        conn.executemany("INSERT INTO t VALUES (?)", [[1], [1], [2]])
    assert caught.value.index == 1
    assert caught.value.statement == "INSERT INTO t VALUES (?)"
    assert "UNIQUE constraint failed" in caught.value.message
    assert conn.query("SELECT count(*) FROM t") == [(0,)], "nothing of the request applied"
    assert conn.executemany("INSERT INTO t VALUES (?)", [[1], [2]]) == lk.Changes(2, 2)
    with pytest.raises(lk.SQLError, match="no such table"):
        conn.query("SELECT * FROM nope")


def test_a_transaction_commits_and_rolls_back(owner, conn):
    conn.execute("CREATE TABLE t (v)")
    with conn.transaction():
        conn.execute("INSERT INTO t VALUES (1)")
        conn.execute("INSERT INTO t VALUES (2)")
        assert conn.query("SELECT count(*) FROM t") == [(2,)]
    assert [b["tx"] for b in bodies(owner)[1:]] == ["begin", None, None, "commit"]
    with pytest.raises(ZeroDivisionError):
        with conn.transaction():
            conn.execute("INSERT INTO t VALUES (3)")
            1 / 0
    assert bodies(owner)[-1] == {"stmts": [], "mode": "write", "tx": "rollback", "in_tx": True}
    assert conn.query("SELECT v FROM t ORDER BY v") == [(1,), (2,)]
    with conn.transaction():
        pass
    assert bodies(owner)[-1]["tx"] is None, "an empty transaction sends nothing"
    with conn.transaction():
        with pytest.raises(RuntimeError, match="already open"):
            with conn.transaction():
                pass


def test_a_transaction_whose_server_died_is_lost_not_retried(db):
    owner = FakeOwner(db)
    conn = lk.connect(db, start=False, timeout=5)
    conn.execute("CREATE TABLE t (v)")
    replacement = None
    try:
        with pytest.raises(lk.TransactionLost, match="nothing of it was applied"):
            with conn.transaction():
                conn.execute("INSERT INTO t VALUES (1)")
                owner.crash()
                replacement = FakeOwner(db, outcomes=owner.outcomes)
                conn.execute("INSERT INTO t VALUES (2)")
        assert not replacement.calls, "nothing of the transaction went to the new owner"
        assert conn.query("SELECT count(*) FROM t") == [(0,)]
    finally:
        conn.close()
        if replacement:
            replacement.stop()
        os.unlink(owner.socket_path)


def test_a_commit_whose_answer_was_lost_is_asked_again_and_answered_from_the_record(owner, conn):
    conn.execute("CREATE TABLE t (v)")
    with conn.transaction():
        conn.execute("INSERT INTO t VALUES (1)")
        owner.script = ["drop_after"]
    commits = [(seq, retry) for _, seq, retry, body in owner.calls if cbor.loads(body)["tx"] == "commit"]
    assert [retry for _, retry in commits] == [False, True] and commits[0][0] == commits[1][0]
    assert conn.query("SELECT count(*) FROM t") == [(1,)], "committed once"


def test_a_commit_lost_before_it_committed_is_a_lost_transaction(owner, conn):
    conn.execute("CREATE TABLE t (v)")
    with pytest.raises(lk.TransactionLost, match="before it committed"):
        with conn.transaction():
            conn.execute("INSERT INTO t VALUES (1)")
            owner.script = ["drop_before"]
    assert conn.query("SELECT count(*) FROM t") == [(0,)]


def test_a_failing_statement_ends_the_transaction(owner, conn):
    conn.execute("CREATE TABLE t (v UNIQUE)")
    with pytest.raises(lk.TransactionLost, match="a statement failed: UNIQUE"):
        with conn.transaction():
            conn.execute("INSERT INTO t VALUES (1)")
            with pytest.raises(lk.SQLError, match="UNIQUE"):
                conn.execute("INSERT INTO t VALUES (1)")
            calls = len(owner.calls)
            with pytest.raises(lk.TransactionLost):
                conn.execute("INSERT INTO t VALUES (2)")
            assert len(owner.calls) == calls, "refused here, not sent"
    assert bodies(owner)[-1]["tx"] == "rollback", "the server's aborted transaction is ended"
    assert conn.query("SELECT count(*) FROM t") == [(0,)]
    with conn.transaction():
        conn.execute("INSERT INTO t VALUES (3)")
    assert conn.query("SELECT v FROM t") == [(3,)], "the connection goes on"


def test_a_read_only_transaction_begins_as_a_read(owner, conn):
    with conn.transaction(readonly=True):
        assert conn.query("SELECT 1") == [(1,)]
        assert conn.query("SELECT 2") == [(2,)]
    assert [(b["mode"], b["tx"], b.get("in_tx")) for b in bodies(owner)] == [
        ("read", "begin", None), ("read", None, True), ("write", "commit", True)]


def test_garbage_from_the_server_is_a_lost_answer(owner, conn):
    conn.execute("CREATE TABLE t (v)")
    owner.script = [("raw", b"\x00\x00\x00\x03\xff\xfe\xfd")]
    assert conn.execute("INSERT INTO t VALUES (1)").changes == 1, "retried, recorded once"
    owner.script = [("raw", b"\xff\xff\xff\xff")]
    assert conn.query("SELECT count(*) FROM t", timeout=2) == [(1,)]


def test_server_failures_are_named(owner, conn):
    owner.script = [("reply", {"t": "reply", "seq": 1, "error": {
        "kind": "queue_full", "message": "queue full (4096 waiting)", "applied": "no"}})]
    with pytest.raises(lk.ServerError) as caught:
        conn.execute("SELECT 1")
    assert caught.value.kind == "queue_full" and "4096" in str(caught.value)
    owner.script = [("reply", {"t": "reply", "seq": 2, "error": {
        "kind": "panicked", "message": "boom", "applied": "unknown"}})]
    with pytest.raises(lk.OutcomeUnknown, match="panicked: boom"):
        conn.execute("SELECT 1")


def test_a_request_over_the_servers_frame_limit_is_refused_before_sending(db):
    owner = FakeOwner(db, welcome={"max_frame": 1000})
    try:
        conn = lk.connect(db, start=False, timeout=5)
        with pytest.raises(lk.ServerError, match="over the server's limit of 1000"):
            conn.execute("SELECT ?", [b"x" * 2000])
        assert owner.calls == []
        conn.close()
    finally:
        owner.stop()


def test_another_protocol_version_is_refused_by_name(db):
    owner = FakeOwner(db, protocol=2)
    try:
        with pytest.raises(lk.ProtocolError, match="speaks protocol version 1, this owner speaks 2"):
            lk.connect(db, start=False, timeout=5)
    finally:
        owner.stop()


def test_parameters_the_server_cannot_take_are_refused_here(owner, conn):
    with pytest.raises(TypeError, match="parameter 2 is a datetime.date"):
        conn.execute("SELECT ?, ?", [1, datetime.date(2024, 1, 1)])
    with pytest.raises(ValueError, match="out of the 64-bit signed range"):
        conn.execute("SELECT ?", [2**63])
    with pytest.raises(TypeError, match="not a single str"):
        conn.execute("SELECT ?", "a")
    assert owner.calls == []
    conn.close()
    with pytest.raises(ValueError, match="closed"):
        conn.query("SELECT 1")


def test_a_database_deep_in_a_tree_is_reached_through_its_directory(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    db = deep / "app.db"
    owner = FakeOwner(db)
    try:
        assert len(owner.socket_path) > discovery.SUN_PATH_MAX
        with lk.connect(db, start=False, timeout=5) as conn:
            assert conn.query("SELECT 'deep'") == [("deep",)]
    finally:
        owner.stop()


def test_no_owner_and_no_start_is_unreachable_saying_why(db):
    # A dead owner's leftovers: its record and its socket, but nobody holds the lock.
    dead = FakeOwner(db)
    dead.crash()
    try:
        with pytest.raises(lk.ServerUnreachable) as caught:
            lk.connect(db, start=False, timeout=0.3)
        assert "the owner lock is free" in str(caught.value)
        assert "start=False" in str(caught.value)
    finally:
        os.unlink(dead.socket_path)


def test_a_socket_bound_by_another_process_than_the_owner_is_never_called(db, tmp_path):
    # This process holds the owner lock and names generation 1; a squatter process binds the
    # socket of that name. The client must refuse it, whatever it would answer.
    owner = FakeOwner(db)
    owner_socket = owner.socket_path
    owner.crash()
    os.unlink(owner_socket)
    import fcntl
    fd = os.open(discovery.owner_lock_path(str(db)), os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.pwrite(fd, f"litekeep-lock v1 pid={os.getpid()} host={os.uname().nodename} since=1.0 "
                  f"label=litekeep owner gen={owner.generation}\n".encode(), 0)
    squatter = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import socket, sys
            s = socket.socket(socket.AF_UNIX); s.bind({owner_socket!r}); s.listen(8)
            print("bound", flush=True)
            while True:
                c, _ = s.accept()
                try:
                    c.sendall(b"\\x00\\x00\\x00\\x01\\xa0")
                except OSError:
                    pass
                c.close()
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert squatter.stdout.readline() == "bound\n"
        with pytest.raises(lk.ServerUnreachable) as caught:
            lk.connect(db, start=False, timeout=0.5)
        assert f"bound by pid {squatter.pid}, not by the owner (pid {os.getpid()})" in str(caught.value)
    finally:
        squatter.kill()
        squatter.wait()
        squatter.stdout.close()
        os.close(fd)
        os.unlink(owner_socket)


def test_a_server_that_fails_to_start_is_reported_with_its_status_and_log(db, tmp_path, monkeypatch):
    fake = tmp_path / "litekeep"
    tries = tmp_path / "tries"
    fake.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        echo x >> "{tries}"
        echo "litekeep serve: cannot open {db}: the disk is on fire" >&2
        exit 3
    """))
    fake.chmod(0o755)
    monkeypatch.setenv("LITEKEEP", str(fake))
    with pytest.raises(lk.ServerUnreachable) as caught:
        lk.connect(db, timeout=10)
    assert "exited with status 3" in str(caught.value)
    assert "the disk is on fire" in str(caught.value)
    assert f"{db}.serve.log" in str(caught.value)
    assert len(tries.read_text().split()) == 1, "a failure of the file's is not tried again"


def test_a_start_that_failed_for_a_while_is_tried_again(db, tmp_path, monkeypatch):
    # The first start fails with status 75 (the server was killed while it started: PROTOCOL.md
    # section 3), the second serves.
    tries = tmp_path / "tries"
    fake = tmp_path / "litekeep"
    fake.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        echo x >> "{tries}"
        if [ "$(wc -l < "{tries}")" -ge 2 ]; then
            # As litekeep serve does: exit 0 once a server serves.
            while [ ! -S "{db}.owner-1.sock" ]; do sleep 0.01; done
            exit 0
        fi
        echo "the server was killed while it started" >&2
        exit 75
    """))
    fake.chmod(0o755)
    monkeypatch.setenv("LITEKEEP", str(fake))
    started = {}

    def serve_on_second_try():
        while not tries.exists() or len(tries.read_text().split()) < 2:
            time.sleep(0.001)
        started["owner"] = FakeOwner(db)

    t = threading.Thread(target=serve_on_second_try)
    t.start()
    try:
        with lk.connect(db, timeout=10) as conn:
            assert conn.query("SELECT 1") == [(1,)]
        assert len(tries.read_text().split()) == 2
    finally:
        t.join()
        if "owner" in started:
            started["owner"].stop()


def test_no_litekeep_binary_to_start_is_litekeep_not_found(db, tmp_path, monkeypatch):
    monkeypatch.delenv("LITEKEEP", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(lk.LitekeepNotFound):
        lk.connect(db, timeout=1)


def test_the_directory_must_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        lk.connect(tmp_path / "nope" / "app.db")


def test_the_peer_check_reads_so_peercred(tmp_path):
    # discovery.connect's check, alone: a listener of this process is this pid.
    path = str(tmp_path / "s.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.listen(1)
    try:
        c = discovery.connect(discovery.Owner(os.getpid(), 1, path), 1)
        c.close()
        with pytest.raises(discovery.Refusal, match="not by the owner"):
            discovery.connect(discovery.Owner(os.getpid() + 1, 1, path), 1)
    finally:
        s.close()


def test_a_server_of_another_engine_is_refused_by_name(db):
    owner = FakeOwner(db, welcome={"engine": "duckdb"})
    try:
        with pytest.raises(lk.EngineMismatch, match="runs duckdb, this connection asked for sqlite"):
            lk.connect(db, engine="sqlite", start=False, timeout=5)
        with lk.connect(db, engine="duckdb", start=False, timeout=5) as conn:
            assert conn.server["engine"] == "duckdb"
            assert conn.server["pid"] == os.getpid()
    finally:
        owner.stop()


def test_an_owner_that_is_not_litekeep_serve_is_never_called(db):
    # Another program on the owner protocol may own the file, with requests that are not SQL.
    owner = FakeOwner(db, welcome={"program": "indexer"})
    try:
        with pytest.raises(lk.ProtocolError, match="the owner is 'indexer', not 'litekeep-serve'"):
            lk.connect(db, start=False, timeout=5)
        assert owner.calls == []
    finally:
        owner.stop()


def test_a_forked_child_gets_a_connection_and_client_id_of_its_own(owner, conn):
    assert conn.query("SELECT 1") == [(1,)]
    pid = os.fork()
    if pid == 0:  # the child: one call, then out without running the parent's cleanup
        try:
            ok = conn.query("SELECT 2") == [(2,)]
        except BaseException:
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert conn.query("SELECT 3") == [(3,)], "the parent's connection is untouched"
    clients = [h["client"] for h in owner.hellos]
    assert len(clients) == 2 and clients[0] != clients[1]
    assert [(c, seq) for c, seq, _, _ in owner.calls] == [
        (clients[0], 1), (clients[1], 1), (clients[0], 2)]
