"""The exceptions: one per thing that happened, each catchable by its standard base too, each
message naming the database and what to do."""

import pytest

import litekeep_client as lk


def test_every_error_is_a_litekeep_error():
    for err in [
        lk.ServerUnreachable("/d/index.duckdb", "connection refused"),
        lk.Timeout("/d/index.duckdb", "query", 5),
        lk.SQLError("/d/index.duckdb", "Catalog Error: Table with name nope does not exist!"),
        lk.OutcomeUnknown("/d/index.duckdb", "the server closed the connection"),
        lk.LitekeepNotFound("PATH", "install it"),
        lk.TransactionLost("/d/index.duckdb", "the server died"),
        lk.Refused("/d/index.duckdb", "uid 65534 may not write it"),
        lk.ServerError("/d/index.duckdb", "queue_full", "queue full (4096 waiting)"),
        lk.ProtocolError("/d/index.duckdb", "protocol 2"),
        lk.EngineMismatch("/d/index.duckdb", "sqlite", "duckdb"),
    ]:
        with pytest.raises(lk.LitekeepError):
            raise err


def test_standard_bases_catch_them_too():
    with pytest.raises(TimeoutError):
        raise lk.Timeout("/d/x.duckdb", "execute", 2.5)
    with pytest.raises(ConnectionError):
        raise lk.ServerUnreachable("/d/x.duckdb", "no socket")
    with pytest.raises(FileNotFoundError):
        raise lk.LitekeepNotFound("PATH", "install it")
    with pytest.raises(PermissionError):
        raise lk.Refused("/d/x.duckdb", "uid 65534 may not write it")


def test_kinds_are_distinct():
    # A caller's retry logic is one `except` per kind: none may catch another's.
    kinds = [lk.ServerUnreachable, lk.Timeout, lk.SQLError, lk.OutcomeUnknown, lk.LitekeepNotFound,
             lk.TransactionLost, lk.Refused, lk.ServerError, lk.ProtocolError, lk.EngineMismatch]
    for a in kinds:
        for b in kinds:
            if a is not b:
                assert not issubclass(a, b), f"{a.__name__} is a {b.__name__}"


def test_sql_error_keeps_the_servers_message_word_for_word():
    message = 'Parser Error: syntax error at or near "SELEC"'
    err = lk.SQLError("/d/index.duckdb", message, statement="SELEC 1", index=1)
    assert err.message == message
    assert err.statement == "SELEC 1"
    assert err.index == 1
    assert str(err) == f"/d/index.duckdb: {message} in statement 2 ('SELEC 1')"


def test_sql_error_without_a_statement_is_one_line():
    err = lk.SQLError("/d/index.duckdb", "Constraint Error: duplicate key")
    assert str(err) == "/d/index.duckdb: Constraint Error: duplicate key"


def test_timeout_and_outcome_unknown_say_it_may_have_been_applied():
    t = lk.Timeout("/d/index.duckdb", "execute", 0.5)
    assert (t.database, t.operation, t.seconds) == ("/d/index.duckdb", "execute", 0.5)
    assert "within 0.5 s" in str(t) and "may or may not have been applied" in str(t)
    u = lk.OutcomeUnknown("/d/index.duckdb", "the server was killed")
    assert "may or may not have been applied" in str(u) and "the server was killed" in str(u)


def test_unreachable_names_the_database_and_where_to_look(tmp_path):
    db = tmp_path / "index.duckdb"
    err = lk.ServerUnreachable(db, "the server exited with status 1")
    assert err.database == str(db)
    assert str(db) in str(err) and "the server exited with status 1" in str(err)
    assert f"litekeep serve --db {db}" in str(err)


def test_a_lost_transaction_says_nothing_was_applied_and_to_run_it_again():
    err = lk.TransactionLost("/d/index.duckdb", "the server closed the connection")
    assert "nothing of it was applied" in str(err) and "run it again" in str(err)


def test_an_engine_mismatch_says_which_to_use():
    err = lk.EngineMismatch("/d/index.duckdb", "sqlite", "duckdb")
    assert "runs sqlite" in str(err) and "engine='sqlite'" in str(err)
