//! What the owner crate's multi-process tests share: a test service and the child roles.

#![allow(dead_code, unused_macros)]

use std::time::Duration;

use litekeep_faults::harness;
use litekeep_owner::{Batch, Node, Options, OwnerError, Service};
use serde::{Deserialize, Serialize};

/// What the test service is asked.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Req {
    /// The owner's pid.
    Pid,
    /// Sleep this many milliseconds, then the owner's pid.
    Sleep(u64),
    /// Panic.
    Panic,
    /// The bytes back.
    Echo(Vec<u8>),
    /// How many requests the owner ran before this one.
    Served,
}

/// What it answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Resp {
    Pid(u32),
    Bytes(Vec<u8>),
}

/// Answers each request in turn; counts them; records nothing. With `LK_DIRECT` set it says it
/// runs calls directly (`Service::runs_direct`), so the owner gives each connection a thread of
/// its own instead of reading them all on one (it still queues every call).
pub struct TestService(std::sync::atomic::AtomicU64, bool);

impl Default for TestService {
    fn default() -> Self {
        TestService(0.into(), std::env::var_os("LK_DIRECT").is_some())
    }
}

impl Service for TestService {
    type Request = Req;
    type Response = Resp;

    fn runs_direct(&self) -> bool {
        self.1
    }

    fn run(&self, batch: &mut Batch<'_, Req, Resp>) {
        let mut i = 0;
        while let Some(call) = batch.get(i) {
            let served = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let answer = match &call.request {
                Req::Served => Resp::Pid(served as u32),
                Req::Pid => Resp::Pid(std::process::id()),
                Req::Sleep(ms) => {
                    std::thread::sleep(Duration::from_millis(*ms));
                    Resp::Pid(std::process::id())
                }
                Req::Panic => panic!("the handler panics on request"),
                Req::Echo(b) => Resp::Bytes(b.clone()),
            };
            call.answer(Ok(answer));
            i += 1;
        }
    }
}

/// The options the roles join with: `LK_VERSION` (default 1.0), a 10 s timeout, and
/// `LK_QUEUE_DEPTH`, `LK_HANDSHAKE_MS`, `LK_FRAME_MS`, `LK_MAX_FRAME`, `LK_TIMEOUT_MS`,
/// `LK_CLIENT_ONLY` when set.
pub fn options() -> Options {
    let var = |name: &str| std::env::var(name).ok();
    let num = |name: &str| var(name).and_then(|v| v.parse::<u64>().ok());
    let version = var("LK_VERSION").unwrap_or_else(|| "1.0".into());
    let mut o = Options::new("owner-tests", version).timeout(Duration::from_secs(10));
    if let Some(depth) = num("LK_QUEUE_DEPTH") {
        o = o.queue_depth(depth as usize);
    }
    if let Some(ms) = num("LK_HANDSHAKE_MS") {
        o = o.handshake_timeout(Duration::from_millis(ms));
    }
    if let Some(ms) = num("LK_FRAME_MS") {
        o = o.frame_timeout(Duration::from_millis(ms));
    }
    if let Some(bytes) = num("LK_MAX_FRAME") {
        o = o.max_frame(bytes as u32);
    }
    if let Some(ms) = num("LK_TIMEOUT_MS") {
        o = o.timeout(Duration::from_millis(ms));
    }
    if var("LK_CLIENT_ONLY").is_some() {
        o = o.candidate(false);
    }
    o
}

pub fn join() -> Node<TestService> {
    Node::join(harness::db(), TestService::default(), options()).expect("join")
}

/// The generation in `<name>.owner-<gen>.sock` files beside `db`.
pub fn sockets(db: &std::path::Path) -> Vec<u64> {
    let name = db.file_name().unwrap().to_str().unwrap().to_owned();
    let mut gens: Vec<u64> = std::fs::read_dir(db.parent().unwrap())
        .unwrap()
        .filter_map(|e| {
            let n = e.ok()?.file_name().into_string().ok()?;
            n.strip_prefix(&format!("{name}.owner-"))?
                .strip_suffix(".sock")?
                .parse()
                .ok()
        })
        .collect();
    gens.sort();
    gens
}

/// Runs the child role `role`: true when it was one of these.
pub fn run_role(role: &str) -> bool {
    match role {
        // Joins (it must own), says so, serves until its stdin closes.
        "own" => {
            raise_descriptor_limit();
            let node = join();
            assert!(node.is_owner(), "the first to join owns");
            harness::say(format!(
                "OWNER {} {}",
                std::process::id(),
                node.generation().unwrap()
            ));
            harness::until_stdin_closes();
            drop(node);
            harness::say("STEPPED DOWN");
        }
        // Calls Pid until its stdin closes; says each owner it sees, and any error other than
        // an owner lost mid-call (outcome unknown: this service records nothing).
        "client" => {
            let node = join();
            let stop = harness::stop_on_stdin_close();
            let mut last = 0;
            let (mut calls, mut unknown) = (0u64, 0u64);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match node.call(Req::Pid) {
                    Ok(Resp::Pid(pid)) => {
                        calls += 1;
                        if pid != last {
                            harness::say(format!("SAW {pid} {}", node.is_owner()));
                            last = pid;
                        }
                    }
                    Ok(other) => panic!("wrong answer {other:?}"),
                    Err(e) if e.outcome_unknown() => unknown += 1,
                    Err(e) => harness::say(format!("ERR {e}")),
                }
            }
            harness::say(format!("DONE {calls} {unknown}"));
        }
        // One call, its outcome said.
        "call-once" => {
            let node = join();
            let req = match std::env::var("LK_REQ").as_deref() {
                Ok("panic") => Req::Panic,
                Ok("served") => Req::Served,
                Ok(ms) if ms.starts_with("sleep") => Req::Sleep(ms[5..].parse().unwrap()),
                _ => Req::Pid,
            };
            say_result(node.call(req));
        }
        _ => return false,
    }
    true
}

pub fn say_result(r: Result<Resp, OwnerError>) {
    match r {
        Ok(Resp::Pid(p)) => harness::say(format!("OK {p}")),
        Ok(Resp::Bytes(b)) => harness::say(format!("OK {} bytes", b.len())),
        Err(e) => harness::say(format!(
            "ERR {} {}",
            e.kind().map_or("none", |k| k.as_str()),
            e
        )),
    }
}

/// The numbers after `prefix` in `line`.
pub fn numbers(line: &str, prefix: &str) -> Vec<u64> {
    line.strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{line:?} does not start with {prefix:?}"))
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

/// Raises this process's soft limit on open descriptors to its hard limit (an owner serving
/// 1,000 connections needs more than the usual 1,024).
pub fn raise_descriptor_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write and read the one struct passed, which outlives them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Makes two tests of each `fn name(threads: bool)` listed: `poller::name` runs it at an owner
/// that reads every connection on one thread, `threads::name` at one that gives each connection
/// a thread (the owner's role gets `LK_DIRECT`, see [`way`]).
macro_rules! both_ways {
    ($($name:ident),* $(,)?) => {
        mod poller {
            $(#[test]
            fn $name() {
                super::$name(false)
            })*
        }
        mod threads {
            $(#[test]
            fn $name() {
                super::$name(true)
            })*
        }
    };
}

/// The name of the way an owner reads its connections: `threads` or `poller`.
pub fn way(threads: bool) -> &'static str {
    if threads { "threads" } else { "poller" }
}

/// Starts the role `own` of this test binary as the owner of `db` (created empty), with extra
/// environment, a thread per connection when `threads`, and waits for its `OWNER` line.
pub fn owner_child(db: &std::path::Path, threads: bool, envs: &[(&str, &str)]) -> harness::Child {
    std::fs::write(db, b"").unwrap();
    let build = harness::Child::build("own").db(db);
    let build = if threads {
        build.env("LK_DIRECT", "1")
    } else {
        build
    };
    let child = envs.iter().fold(build, |s, (k, v)| s.env(k, v)).spawn();
    child.expect_line("OWNER");
    child
}
