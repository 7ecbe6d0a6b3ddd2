//! A service that keeps state per connection, with real processes: it learns which
//! connection each call came on, runs some calls at once outside the batches
//! (`Service::direct`), and hears of a connection's end (`Service::disconnected`) when its
//! client is SIGKILLed; the welcome carries the service's info. The tests run at both kinds of
//! owner: one that reads every connection on one thread (`poller::`, where the direct calls run
//! on that thread) and one that gives each connection a thread (`threads::`). And a client whose
//! service runs some calls itself (`Service::try_here`) runs those and sends the others.

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use litekeep_faults::harness::{self, Child, Scratch};
use litekeep_owner::wire::{self, Hello, PROTOCOL};
use litekeep_owner::{Batch, Call, ConnId, Connection, Node, Options, Service};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
enum Req {
    /// Answered at once, outside the batches: the connection's number.
    Whoami,
    /// Answered in a batch: whether the call came with a connection.
    Batched,
    /// The connections that ended so far.
    Ended,
    /// The connections open now.
    Open,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Resp {
    Conn(Option<ConnId>),
    Ended(BTreeSet<ConnId>),
}

#[derive(Default)]
struct PerConnection {
    open: Mutex<BTreeSet<ConnId>>,
    ended: Mutex<BTreeSet<ConnId>>,
    /// `Service::runs_direct` (from `LK_DIRECT` in the owner's role).
    threads: bool,
}

impl Service for PerConnection {
    type Request = Req;
    type Response = Resp;

    fn run(&self, batch: &mut Batch<'_, Req, Resp>) {
        let mut i = 0;
        while let Some(call) = batch.get(i) {
            let answer = match call.request {
                Req::Batched => Resp::Conn(call.conn),
                Req::Open => Resp::Ended(self.open.lock().unwrap().clone()),
                _ => Resp::Ended(self.ended.lock().unwrap().clone()),
            };
            call.answer(Ok(answer));
            i += 1;
        }
    }

    fn runs_direct(&self) -> bool {
        self.threads
    }

    // Answers at once: cheap enough for the one thread that reads every connection to run.
    fn direct(&self, call: &mut Call<Req, Resp>) -> bool {
        if !matches!(call.request, Req::Whoami) {
            return false;
        }
        assert!(
            call.conn
                .is_some_and(|c| self.open.lock().unwrap().contains(&c)),
            "a direct call comes on a connection already connected"
        );
        let conn = call.conn;
        call.answer(Ok(Resp::Conn(conn)));
        true
    }

    fn connected(&self, conn: ConnId) {
        self.open.lock().unwrap().insert(conn);
    }

    fn disconnected(&self, conn: ConnId) {
        self.open.lock().unwrap().remove(&conn);
        self.ended.lock().unwrap().insert(conn);
    }
}

fn hello() -> Hello {
    Hello {
        protocol: PROTOCOL,
        client: vec![3; 16],
        program: "conn-test".into(),
        version: "1.0".into(),
        fingerprint: None,
    }
}

fn call(conn: &mut Connection, seq: u64, req: &Req) -> Resp {
    let body = wire::encode(req).unwrap();
    let outcome = conn
        .call(seq, seq, false, &body, Duration::from_secs(20))
        .unwrap();
    wire::decode(&outcome.into_result().unwrap()).unwrap()
}

/// NOT A REAL TEST: the entry point of the child processes; returns at once without a role.
#[test]
fn child_process_entry() {
    let Some(role) = harness::role() else { return };
    let db = harness::db();
    match role.as_str() {
        "own" => {
            let options = Options::new("conn-test", "1.0").info("engine", "test");
            let service = PerConnection {
                threads: std::env::var_os("LK_DIRECT").is_some(),
                ..PerConnection::default()
            };
            let node = Node::join(&db, service, options).unwrap();
            assert!(node.is_owner());
            harness::say("OWNER");
            harness::until_stdin_closes();
        }
        // Connects, asks its connection's number, says it, and waits to be killed.
        "connected" => {
            let mut conn = Connection::open(&db, &hello(), Duration::from_secs(20)).unwrap();
            let Resp::Conn(Some(id)) = call(&mut conn, 1, &Req::Whoami) else {
                panic!("no connection number")
            };
            harness::say(format!("CONN {id}"));
            std::thread::sleep(Duration::from_secs(600));
        }
        other => panic!("unknown role {other}"),
    }
}

fn scratch(name: &str, threads: bool) -> Scratch {
    Scratch::new(&format!("{name}-{}", common::way(threads)))
}

fn a_service_knows_each_calls_connection_and_hears_of_a_sigkilled_clients_end(threads: bool) {
    let dir = scratch("owner-conns", threads);
    let db = dir.join("app.db");
    let owner = common::owner_child(&db, threads, &[]);
    let mut me = Connection::open(&db, &hello(), Duration::from_secs(20)).unwrap();
    assert_eq!(
        me.welcome().info.get("engine").map(String::as_str),
        Some("test")
    );
    let Resp::Conn(Some(mine)) = call(&mut me, 1, &Req::Whoami) else {
        panic!("no connection number")
    };
    assert_eq!(call(&mut me, 2, &Req::Batched), Resp::Conn(Some(mine)));
    let client = Child::build("connected").db(&db).spawn();
    let line = client.expect_line("CONN ");
    let theirs: ConnId = line["CONN ".len()..].parse().unwrap();
    assert_ne!(theirs, mine);
    assert_eq!(call(&mut me, 3, &Req::Ended), Resp::Ended(BTreeSet::new()));
    assert!(client.kill().killed());
    // The owner sees the end at once and says so.
    let mut seq = 4;
    let ended = loop {
        let Resp::Ended(ended) = call(&mut me, seq, &Req::Ended) else {
            panic!()
        };
        if !ended.is_empty() || seq > 20_000 {
            break ended;
        }
        seq += 1;
        std::thread::sleep(Duration::from_millis(1));
    };
    assert_eq!(ended, BTreeSet::from([theirs]));
    drop(owner);
}

fn connect_reaches_the_owner_ahead_and_the_first_call_uses_that_connection(threads: bool) {
    let dir = scratch("owner-connect", threads);
    let db = dir.join("app.db");
    let owner = common::owner_child(&db, threads, &[]);
    let mut me = Connection::open(&db, &hello(), Duration::from_secs(20)).unwrap();
    let Resp::Ended(open) = call(&mut me, 1, &Req::Open) else {
        panic!()
    };
    assert_eq!(open.len(), 1, "only this test's own connection");
    let options = Options::new("conn-test", "1.0").candidate(false);
    let node = Node::join(&db, PerConnection::default(), options).unwrap();
    node.connect().unwrap();
    // The owner tells the service right after the connection's welcome.
    let mut seq = 2;
    let open = loop {
        let Resp::Ended(open) = call(&mut me, seq, &Req::Open) else {
            panic!()
        };
        if open.len() > 1 || seq > 5_000 {
            break open;
        }
        seq += 1;
        std::thread::sleep(Duration::from_millis(1));
    };
    assert_eq!(open.len(), 2, "connect made no connection: {open:?}");
    let Resp::Conn(Some(used)) = node.call(Req::Batched).unwrap() else {
        panic!("no connection number")
    };
    assert!(
        open.contains(&used),
        "the first call made a connection of its own"
    );
    assert!(!node.is_owner());
    drop(node);
    drop(owner);
}

#[test]
fn connect_with_no_owner_and_no_candidate_says_so_within_the_timeout() {
    let dir = Scratch::new("owner-connect-none");
    let db = dir.join("app.db");
    std::fs::write(&db, b"").unwrap();
    let options = Options::new("conn-test", "1.0")
        .candidate(false)
        .timeout(Duration::from_millis(300));
    let node = Node::join(&db, PerConnection::default(), options).unwrap();
    let err = node.connect().unwrap_err();
    assert!(
        matches!(err, litekeep_owner::OwnerError::Unreachable { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("app.db"), "{err}");
}

/// A client's service that runs some calls itself (`Service::try_here`): `Whoami` here (no
/// connection), `Batched` answered here but then left to the owner (the answer must be
/// dropped), `Open` panics, `Ended` left untouched.
struct Here;

impl Service for Here {
    type Request = Req;
    type Response = Resp;

    fn run(&self, batch: &mut Batch<'_, Req, Resp>) {
        batch.fail_all(&litekeep_owner::Failure::new(
            litekeep_owner::FailureKind::Other,
            "this test's client never owns",
        ));
    }

    fn try_here(&self, batch: &mut Batch<'_, Req, Resp>) -> bool {
        let Some(call) = batch.get(0) else {
            return false;
        };
        assert!(
            !call.record && !call.retry,
            "a call run here is never recorded"
        );
        match call.request {
            Req::Whoami => {
                call.answer(Ok(Resp::Conn(None)));
                true
            }
            Req::Batched => {
                call.answer(Ok(Resp::Conn(Some(u64::MAX))));
                false
            }
            Req::Open => panic!("asked to panic"),
            Req::Ended => false,
        }
    }
}

#[test]
fn a_client_runs_the_calls_its_service_takes_here_and_sends_the_others() {
    let dir = Scratch::new("owner-try-here");
    let db = dir.join("app.db");
    let owner = common::owner_child(&db, false, &[]);
    let options = Options::new("conn-test", "1.0").candidate(false);
    let node = Node::join(&db, Here, options).unwrap();
    assert_eq!(
        node.call(Req::Whoami).unwrap(),
        Resp::Conn(None),
        "run here"
    );
    // Answered here and then left: the owner's answer, on a real connection.
    let Resp::Conn(Some(conn)) = node.call(Req::Batched).unwrap() else {
        panic!("not the owner's answer")
    };
    assert_ne!(conn, u64::MAX, "the answer given before `false` was kept");
    assert!(matches!(node.call(Req::Ended).unwrap(), Resp::Ended(_)));
    let err = node.call(Req::Open).unwrap_err();
    let failure = err.failure().expect("a failure");
    assert_eq!(failure.kind, litekeep_owner::FailureKind::Panicked, "{err}");
    assert_eq!(failure.applied, litekeep_owner::Applied::Unknown, "{err}");
    // The node goes on: the next call that runs here does.
    assert_eq!(node.call(Req::Whoami).unwrap(), Resp::Conn(None));
    drop(node);
    drop(owner);
}

both_ways!(
    a_service_knows_each_calls_connection_and_hears_of_a_sigkilled_clients_end,
    connect_reaches_the_owner_ahead_and_the_first_call_uses_that_connection,
);
