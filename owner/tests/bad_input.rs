//! Bad input at a real owner process: garbage, a frame over the limit, a client that never
//! speaks, a client SIGKILLed in the middle of a frame, 1,000 connections at once, a handler
//! that panics, a full queue, another protocol version, a peer that may not write the file.
//! Each gets a clear error or is dropped, and the owner goes on serving. Every test runs twice:
//! at an owner that reads all connections on one thread (`poller::`) and at one that gives each
//! connection a thread (`threads::`, a service that runs calls directly, as `litekeep serve`'s).

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::sockets;
use litekeep_faults::harness::{self, Child, Scratch};
use litekeep_owner::wire::{self, FromOwner, Hello, ToOwner};

fn socket_of(db: &Path) -> PathBuf {
    let generation = sockets(db)[0];
    db.with_file_name(litekeep_owner::socket_name("app.db", generation))
}

fn raw(db: &Path) -> UnixStream {
    let s = UnixStream::connect(socket_of(db)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

fn hello(protocol: u32) -> Vec<u8> {
    wire::frame(&ToOwner::Hello(Hello {
        protocol,
        client: vec![7; 16],
        program: "raw".into(),
        version: "1.0".into(),
        fingerprint: None,
    }))
}

/// The next message, `None` at the end of the connection.
fn read_msg(s: &mut UnixStream) -> Option<FromOwner> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut payload).ok()?;
    Some(wire::decode(&payload).unwrap())
}

/// The failure of the error frame that must come next, then the end of the connection.
fn error_then_end(s: &mut UnixStream) -> litekeep_owner::Failure {
    let failure = match read_msg(s) {
        Some(FromOwner::Error { error }) => error,
        other => panic!(
            "wanted an error frame, got {other:?} ({:?})",
            s.read(&mut [0u8; 16])
        ),
    };
    assert!(read_msg(s).is_none(), "the owner closes the connection");
    failure
}

fn welcome(s: &mut UnixStream) {
    s.write_all(&hello(wire::PROTOCOL)).unwrap();
    assert!(matches!(read_msg(s), Some(FromOwner::Welcome(_))));
}

/// How many requests the owner ran before this one (a child process asks).
fn served(db: &Path) -> u64 {
    let exit = Child::build("call-once")
        .db(db)
        .env("LK_REQ", "served")
        .run();
    let line = exit
        .find("OK ")
        .unwrap_or_else(|| panic!("{}", exit.describe()));
    line.trim().parse().unwrap()
}

/// NOT A REAL TEST: the entry point of the child processes; returns at once without a role.
#[test]
fn child_process_entry() {
    let Some(role) = harness::role() else { return };
    if common::run_role(&role) {
        return;
    }
    let db = harness::db();
    match role.as_str() {
        // Sends its hello, then the first bytes of a call, and waits to be killed.
        "half-frame" => {
            let mut s = raw(&db);
            welcome(&mut s);
            let body = wire::encode(&common::Req::Echo(vec![1; 1000])).unwrap();
            let frame = wire::call_frame(1, 1, false, &body);
            s.write_all(&frame[..frame.len() / 2]).unwrap();
            harness::say("READY");
            std::thread::sleep(Duration::from_secs(600));
        }
        // Opens LK_CONNS connections, says hello on each, then calls on each once its stdin
        // closes.
        "many" => {
            let n: usize = std::env::var("LK_CONNS").unwrap().parse().unwrap();
            let mut conns: Vec<UnixStream> = (0..n).map(|_| raw(&db)).collect();
            for s in &mut conns {
                welcome(s);
            }
            harness::say("CONNECTED");
            harness::until_stdin_closes();
            let body = wire::encode(&common::Req::Pid).unwrap();
            let mut ok = 0;
            for (i, s) in conns.iter_mut().enumerate() {
                s.write_all(&wire::call_frame(i as u64 + 1, 0, false, &body))
                    .unwrap();
                if let Some(FromOwner::Reply { ok: Some(_), .. }) = read_msg(s) {
                    ok += 1;
                }
            }
            harness::say(format!("OK {ok}"));
        }
        other => panic!("unknown role {other}"),
    }
}

fn garbage_and_oversized_frames_get_an_error_and_the_owner_serves_on(threads: bool) {
    let dir = Scratch::new(&format!("owner-garbage-{}", common::way(threads)));
    let db = dir.join("app.db");
    let _owner = common::owner_child(&db, threads, &[("LK_MAX_FRAME", "65536")]);
    let before = served(&db);
    // An HTTP request: its first four bytes read as a length of about 1.2 GB.
    let mut s = raw(&db);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let f = error_then_end(&mut s);
    assert_eq!(f.kind, litekeep_owner::FailureKind::TooLarge, "{f}");
    // A hello, then bytes that are not CBOR.
    let mut s = raw(&db);
    welcome(&mut s);
    s.write_all(&[0, 0, 0, 5, 0xff, 0xfe, 0x00, 0x13, 0x37])
        .unwrap();
    let f = error_then_end(&mut s);
    assert_eq!(f.kind, litekeep_owner::FailureKind::BadFrame, "{f}");
    // A hello, then a frame over the limit.
    let mut s = raw(&db);
    welcome(&mut s);
    s.write_all(&(1u32 << 20).to_be_bytes()).unwrap();
    let f = error_then_end(&mut s);
    assert_eq!(f.kind, litekeep_owner::FailureKind::TooLarge, "{f}");
    assert!(f.message.contains("1048576"), "{f}");
    // A call whose body is not the service's request: an error reply, the connection stays.
    let mut s = raw(&db);
    welcome(&mut s);
    s.write_all(&wire::call_frame(1, 1, false, b"\x63abc"))
        .unwrap();
    match read_msg(&mut s) {
        Some(FromOwner::Reply {
            seq: 1,
            error: Some(f),
            ..
        }) => {
            assert_eq!(f.kind, litekeep_owner::FailureKind::BadRequest, "{f}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(served(&db), before + 1, "nothing else ran");
}

fn a_client_that_never_speaks_is_dropped_after_the_handshake_timeout(threads: bool) {
    let dir = Scratch::new(&format!("owner-silent-{}", common::way(threads)));
    let db = dir.join("app.db");
    let _owner = common::owner_child(&db, threads, &[("LK_HANDSHAKE_MS", "300")]);
    let started = Instant::now();
    let mut silent = raw(&db);
    let f = error_then_end(&mut silent);
    assert_eq!(f.kind, litekeep_owner::FailureKind::HandshakeTimeout, "{f}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    served(&db);
}

fn a_call_whose_rest_never_comes_is_dropped_after_the_frame_timeout_and_never_applied(
    threads: bool,
) {
    let dir = Scratch::new(&format!("owner-stalled-{}", common::way(threads)));
    let db = dir.join("app.db");
    let _owner = common::owner_child(&db, threads, &[("LK_FRAME_MS", "300")]);
    let before = served(&db);
    let mut s = raw(&db);
    welcome(&mut s);
    let body = wire::encode(&common::Req::Echo(vec![1; 1000])).unwrap();
    let frame = wire::call_frame(1, 1, false, &body);
    s.write_all(&frame[..frame.len() / 2]).unwrap();
    let started = Instant::now();
    let f = error_then_end(&mut s);
    assert_eq!(f.kind, litekeep_owner::FailureKind::HandshakeTimeout, "{f}");
    assert!(f.message.contains("did not arrive whole"), "{f}");
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(served(&db), before + 1, "the stalled call never ran");
}

fn a_request_cut_off_by_a_sigkill_mid_frame_is_never_applied(threads: bool) {
    let dir = Scratch::new(&format!("owner-half-{}", common::way(threads)));
    let db = dir.join("app.db");
    let _owner = common::owner_child(&db, threads, &[]);
    let before = served(&db);
    let half = Child::build("half-frame").db(&db).spawn();
    half.expect_line("READY");
    assert!(half.kill().killed());
    assert_eq!(served(&db), before + 1, "the cut request never ran");
}

fn a_thousand_connections_at_once_are_all_served(threads: bool) {
    let dir = Scratch::new(&format!("owner-thousand-{}", common::way(threads)));
    let db = dir.join("app.db");
    let owner = common::owner_child(&db, threads, &[]);
    let mut children: Vec<Child> = (0..4)
        .map(|_| Child::build("many").db(&db).env("LK_CONNS", "250").spawn())
        .collect();
    for c in &children {
        c.expect_line("CONNECTED");
    }
    // All 1,000 are welcomed and open: the owner reads them on one thread, or on one each.
    let tasks = std::fs::read_dir(format!("/proc/{}/task", owner.pid()))
        .unwrap()
        .count();
    if threads {
        assert!(tasks > 1000, "{tasks} threads for 1,000 connections");
    } else {
        assert!(tasks < 100, "{tasks} threads for 1,000 connections");
    }
    for c in &mut children {
        c.close_stdin();
    }
    for c in children {
        let done = c.finish();
        assert_eq!(done, "OK 250");
    }
    served(&db);
}

fn a_panicking_handler_fails_its_request_and_the_owner_serves_on(threads: bool) {
    let dir = Scratch::new(&format!("owner-panic-{}", common::way(threads)));
    let db = dir.join("app.db");
    let _owner = common::owner_child(&db, threads, &[]);
    let exit = Child::build("call-once")
        .db(&db)
        .env("LK_REQ", "panic")
        .run();
    let line = exit
        .find("ERR ")
        .unwrap_or_else(|| panic!("{}", exit.describe()));
    assert!(line.starts_with("panicked "), "{line}");
    served(&db);
}

fn a_full_queue_answers_an_error_naming_its_depth(threads: bool) {
    let dir = Scratch::new(&format!("owner-full-{}", common::way(threads)));
    let db = dir.join("app.db");
    let _owner = common::owner_child(&db, threads, &[("LK_QUEUE_DEPTH", "2")]);
    let callers: Vec<Child> = (0..8)
        .map(|_| {
            Child::build("call-once")
                .db(&db)
                .env("LK_REQ", "sleep300")
                .spawn()
        })
        .collect();
    let lines: Vec<String> = callers
        .into_iter()
        .map(|c| c.wait().lines.join(" "))
        .collect();
    let full: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("ERR queue_full"))
        .collect();
    assert!(!full.is_empty(), "{lines:?}");
    assert!(full[0].contains("2 requests waiting"), "{}", full[0]);
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("OK ") || l.starts_with("ERR queue_full")),
        "{lines:?}"
    );
    served(&db);
}

fn a_batch_that_runs_long_leaves_the_others_read_and_a_full_queue_answered(threads: bool) {
    let dir = Scratch::new(&format!("owner-long-{}", common::way(threads)));
    let db = dir.join("app.db");
    let _owner = common::owner_child(&db, threads, &[("LK_QUEUE_DEPTH", "2")]);
    // A lone call at an idle owner: the reading thread runs its batch itself, for 4 s.
    let sleeper = Child::build("call-once")
        .db(&db)
        .env("LK_REQ", "sleep4000")
        .spawn();
    std::thread::sleep(Duration::from_millis(300));
    let callers: Vec<Child> = (0..6)
        .map(|_| Child::build("call-once").db(&db).spawn())
        .collect();
    // Meanwhile the others' calls are read: two wait in the queue, four are refused at once.
    let deadline = Instant::now() + Duration::from_secs(2);
    let early: Vec<String> = callers
        .iter()
        .filter_map(|c| c.try_line(deadline.saturating_duration_since(Instant::now())))
        .collect();
    assert_eq!(
        sleeper.try_line(Duration::ZERO),
        None,
        "the long batch still runs"
    );
    assert_eq!(
        early.len(),
        4,
        "answered while the long batch ran: {early:?}"
    );
    assert!(
        early
            .iter()
            .all(|l| l.starts_with("ERR queue_full") && l.contains("2 requests waiting")),
        "{early:?}"
    );
    assert!(sleeper.finish().starts_with("OK "));
    let lines: Vec<String> = callers
        .into_iter()
        .map(|c| c.wait().lines.join(" "))
        .collect();
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("OK ")).count(),
        2,
        "{lines:?}"
    );
}

fn another_protocol_version_is_refused_naming_both(threads: bool) {
    let dir = Scratch::new(&format!("owner-protocol-{}", common::way(threads)));
    let db = dir.join("app.db");
    let _owner = common::owner_child(&db, threads, &[]);
    let mut s = raw(&db);
    s.write_all(&hello(99)).unwrap();
    let f = error_then_end(&mut s);
    assert_eq!(f.kind, litekeep_owner::FailureKind::ProtocolVersion, "{f}");
    assert!(
        f.message.contains("99") && f.message.contains(&format!("speaks {}", wire::PROTOCOL)),
        "{f}"
    );
}

fn a_peer_that_may_not_write_the_file_is_refused(threads: bool) {
    if !harness::is_root() {
        eprintln!("SKIPPED: running a child as nobody needs root");
        return;
    }
    let dir = Scratch::new(&format!("owner-nobody-{}", common::way(threads)));
    let db = dir.join("app.db");
    let _owner = common::owner_child(&db, threads, &[]);
    let before = served(&db);
    let nobody = |what: &str| {
        let exit = Child::build("call-once")
            .db(&db)
            .env("LK_CLIENT_ONLY", "1")
            .env("LK_TIMEOUT_MS", "1000")
            .as_user(65534, 65534)
            .run();
        let line = exit
            .find("ERR ")
            .unwrap_or_else(|| panic!("{what}: {}", exit.describe()));
        line.to_owned()
    };
    // The socket's mode follows the file's write bits (0644: only its owner may connect).
    let line = nobody("socket 0600");
    assert!(
        line.contains("Permission denied") || line.contains("refused"),
        "{line}"
    );
    // Even where the socket lets anyone connect, the owner checks the peer's credentials.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(socket_of(&db), std::fs::Permissions::from_mode(0o777)).unwrap();
    let line = nobody("socket 0777");
    assert!(line.starts_with("refused "), "{line}");
    assert!(
        line.contains("uid 65534") && line.contains("may not write"),
        "{line}"
    );
    assert_eq!(served(&db), before + 1, "nobody's requests never ran");
}

both_ways!(
    garbage_and_oversized_frames_get_an_error_and_the_owner_serves_on,
    a_client_that_never_speaks_is_dropped_after_the_handshake_timeout,
    a_call_whose_rest_never_comes_is_dropped_after_the_frame_timeout_and_never_applied,
    a_request_cut_off_by_a_sigkill_mid_frame_is_never_applied,
    a_thousand_connections_at_once_are_all_served,
    a_panicking_handler_fails_its_request_and_the_owner_serves_on,
    a_full_queue_answers_an_error_naming_its_depth,
    a_batch_that_runs_long_leaves_the_others_read_and_a_full_queue_answered,
    another_protocol_version_is_refused_naming_both,
    a_peer_that_may_not_write_the_file_is_refused,
);
