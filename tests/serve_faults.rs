//! `litekeep serve` (SQLite) under faults, with real processes:
//!
//! - exactly once across server SIGKILLs: ledgered writer processes write through servers
//!   that SIGKILL themselves right after some commits (before answering) and are SIGKILLed
//!   from outside at random moments; every acknowledged write is in the file once, none twice;
//! - a SIGKILLed server is replaced by the next call of a client, which starts `litekeep serve`
//!   itself (the real binary);
//! - the owner service's bad inputs through `serve`: garbage, a frame over --max-frame, a body
//!   that is no request, a client SIGKILLed in the middle of a request, a client that never
//!   speaks, a peer (`nobody`) that may not write the file. Each gets a clear error or is
//!   dropped, and the server serves on.
//!
//! Kill moments come from the harness's seeded generator: the seed is printed, and
//! `LK_SEED=<n>` replays a run's choices.

mod serve_support;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use litekeep::owner::FailureKind;
use litekeep::owner::wire::{self, FromOwner, Hello, ToOwner};
use litekeep::serve::{Client, ClientOptions, EngineKind, Request, Value};
use litekeep_faults::harness::{self, Child, Scratch};
use serve_support::*;

const SQLITE: EngineKind = EngineKind::Sqlite;

/// NOT A REAL TEST: the entry point of the child processes; returns at once without a role.
#[test]
fn child_process_entry() {
    let Some(role) = harness::role() else { return };
    if run_role(&role) {
        return;
    }
    let db = harness::db();
    match role.as_str() {
        // Says hello, sends the first half of an INSERT's call frame, waits to be killed.
        "half-frame" => {
            let mut s = raw(&db);
            welcome(&mut s);
            let body = wire::encode(&Request::write(
                "INSERT INTO t VALUES (?)",
                vec![Value::Text("cut off".into())],
            ))
            .unwrap();
            let frame = wire::call_frame(1, 1, false, &body);
            s.write_all(&frame[..frame.len() / 2]).unwrap();
            harness::say("READY");
            std::thread::sleep(Duration::from_secs(600));
        }
        // Tries to connect as another user, without starting a server; says how it failed.
        "outsider" => {
            let options = ClientOptions::new(SQLITE)
                .start_server(None)
                .timeout(Duration::from_secs(2));
            match Client::connect(&db, options) {
                Ok(_) => harness::say("CONNECTED"),
                Err(e) => harness::say(format!("ERR {e}")),
            }
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn exactly_once_across_server_sigkills_right_after_commits() {
    exactly_once_across_server_kills(SQLITE, "serve-once", 300);
}

#[test]
fn a_sigkilled_server_is_replaced_by_the_next_call_of_a_client() {
    replaced_by_the_next_call(SQLITE, "serve-replaced", 400, 50..250);
}

// ---------------------------------------------------------------------------------------------
// Bad input.

/// The socket of `db`'s server (one generation at a time in these tests).
fn socket_of(db: &Path) -> PathBuf {
    let name = db.file_name().unwrap().to_str().unwrap().to_owned();
    std::fs::read_dir(db.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{name}.owner-")) && n.ends_with(".sock"))
        })
        .unwrap_or_else(|| panic!("no socket beside {}", db.display()))
}

fn raw(db: &Path) -> UnixStream {
    let s = UnixStream::connect(socket_of(db)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

fn read_msg(s: &mut UnixStream) -> Option<FromOwner> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut payload).ok()?;
    Some(wire::decode(&payload).unwrap())
}

fn welcome(s: &mut UnixStream) {
    let hello = ToOwner::Hello(Hello {
        protocol: wire::PROTOCOL,
        client: vec![9; 16],
        program: "raw".into(),
        version: "1".into(),
        fingerprint: None,
    });
    s.write_all(&wire::frame(&hello)).unwrap();
    assert!(matches!(read_msg(s), Some(FromOwner::Welcome(_))));
}

/// The failure of the error frame that must come next, then the end of the connection.
fn error_then_end(s: &mut UnixStream) -> litekeep::owner::Failure {
    let failure = match read_msg(s) {
        Some(FromOwner::Error { error }) => error,
        other => panic!("wanted an error frame, got {other:?}"),
    };
    assert!(read_msg(s).is_none(), "the server closes the connection");
    failure
}

/// A foreground server of `db` (the real binary) with these extra flags, and a table `t`.
fn foreground(db: &Path, flags: &[&str]) -> (Child, Client) {
    let args = ["serve", "--foreground", "--engine", "sqlite", "--db"];
    let server = Child::program(
        "serve",
        bin(),
        args.iter()
            .map(Into::into)
            .chain([db.as_os_str().to_owned()])
            .chain(flags.iter().map(Into::into)),
    )
    .spawn();
    let mut c = Client::connect(db, ClientOptions::new(SQLITE).start_server(None))
        .unwrap_or_else(|e| panic!("connect: {e}"));
    write(&mut c, "CREATE TABLE t (x TEXT)", vec![]);
    (server, c)
}

#[test]
fn garbage_oversized_frames_and_bad_bodies_get_errors_and_the_server_serves_on() {
    let dir = Scratch::new("serve-garbage");
    let db = dir.join("app.db");
    let _stop = StopServer(db.clone());
    let (_server, mut c) = foreground(&db, &["--max-frame", "65536"]);
    // An HTTP request: its first four bytes read as a length of about 1.2 GB.
    let mut s = raw(&db);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(error_then_end(&mut s).kind, FailureKind::TooLarge);
    // After the hello: bytes that are not CBOR.
    let mut s = raw(&db);
    welcome(&mut s);
    s.write_all(&[0, 0, 0, 4, 0xff, 0xfe, 0x00, 0x13]).unwrap();
    assert_eq!(error_then_end(&mut s).kind, FailureKind::BadFrame);
    // A frame over --max-frame.
    let mut s = raw(&db);
    welcome(&mut s);
    s.write_all(&(1u32 << 20).to_be_bytes()).unwrap();
    let f = error_then_end(&mut s);
    assert_eq!(f.kind, FailureKind::TooLarge);
    assert!(f.message.contains("1048576"), "{f}");
    // A call whose body is no SQL request: an error reply; the connection stays.
    let mut s = raw(&db);
    welcome(&mut s);
    for (seq, body) in [
        (1, wire::encode("SELECT 1").unwrap()),
        (
            2,
            wire::encode(&serde_json::json!({"stmts": [], "mode": "fast"})).unwrap(),
        ),
    ] {
        s.write_all(&wire::call_frame(seq, seq, false, &body))
            .unwrap();
        match read_msg(&mut s) {
            Some(FromOwner::Reply { error: Some(f), .. }) => {
                assert_eq!(f.kind, FailureKind::BadRequest, "{f}");
            }
            other => panic!("{other:?}"),
        }
    }
    // A request whose result is over the frame limit: an error as data, nothing sent whole.
    let big = "SELECT randomblob(100000)";
    let e = sql_error(c.call(&Request::read(big, vec![])).unwrap());
    assert_eq!(
        e.code.as_deref(),
        Some(litekeep::serve::codes::TOO_LARGE),
        "{e}"
    );
    write(&mut c, "INSERT INTO t VALUES ('still serving')", vec![]);
    assert_eq!(count(&mut c, "SELECT count(*) FROM t"), 1);
}

#[test]
fn a_request_cut_off_by_its_clients_sigkill_is_never_applied() {
    let dir = Scratch::new("serve-half");
    let db = dir.join("app.db");
    let _stop = StopServer(db.clone());
    let (_server, mut c) = foreground(&db, &[]);
    let half = Child::build("half-frame").db(&db).spawn();
    half.expect_line("READY");
    assert!(half.kill().killed());
    write(&mut c, "INSERT INTO t VALUES ('after')", vec![]);
    let rows = read(&mut c, "SELECT x FROM t", vec![]);
    assert_eq!(
        rows,
        [[Value::Text("after".into())]],
        "the cut request never ran"
    );
}

#[test]
fn a_client_that_never_speaks_is_dropped_and_the_server_serves_on() {
    let dir = Scratch::new("serve-silent");
    let db = dir.join("app.db");
    let _stop = StopServer(db.clone());
    let (_server, mut c) = foreground(&db, &[]);
    let mut silent = raw(&db);
    let f = error_then_end(&mut silent);
    assert_eq!(f.kind, FailureKind::HandshakeTimeout, "{f}");
    write(&mut c, "INSERT INTO t VALUES ('served')", vec![]);
}

#[test]
fn a_peer_that_may_not_write_the_database_is_refused() {
    if !harness::is_root() {
        eprintln!("SKIPPED: running a client as nobody needs root");
        return;
    }
    let dir = Scratch::new("serve-nobody");
    let db = dir.join("app.db");
    let _stop = StopServer(db.clone());
    let (_server, mut c) = foreground(&db, &[]);
    let outsider = |what: &str| {
        let exit = Child::build("outsider").db(&db).as_user(65534, 65534).run();
        exit.find("ERR ")
            .unwrap_or_else(|| panic!("{what}: {}", exit.describe()))
            .to_owned()
    };
    // The socket's mode follows the database's write bits (0644: its owner only).
    let line = outsider("socket 0600");
    assert!(line.contains("Permission denied"), "{line}");
    // Where the socket lets anyone connect, the server checks the peer's credentials.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(socket_of(&db), std::fs::Permissions::from_mode(0o777)).unwrap();
    let line = outsider("socket 0777");
    assert!(
        line.contains("refused") && line.contains("uid 65534") && line.contains("may not write"),
        "{line}"
    );
    assert_eq!(count(&mut c, "SELECT count(*) FROM t"), 0);
}
