//! What the `litekeep serve` tests share: the built binary, clients that start it on demand,
//! finding the server's pid, and stopping the servers a test started.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use litekeep::serve::{Client, ClientOptions, EngineKind, Request, Response, Value};

/// The `litekeep` binary cargo built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_litekeep"))
}

/// Client options that start `litekeep serve` on demand (leaving after 3 s without a
/// client), with a 30 s timeout.
pub fn options(engine: EngineKind) -> ClientOptions {
    ClientOptions::new(engine)
        .start_server(Some(bin()))
        .serve_args(["--idle", "3s"])
        .timeout(Duration::from_secs(30))
}

/// A client of `db`, starting a server when none serves it.
pub fn client(db: &Path, engine: EngineKind) -> Client {
    Client::connect(db, options(engine)).unwrap_or_else(|e| panic!("connect: {e}"))
}

/// The pid holding the owner lock of `db`, if any.
pub fn owner_pid(db: &Path) -> Option<u32> {
    litekeep::lock::FileLock::open(litekeep::owner::owner_lock_path(db))
        .ok()?
        .holder()
        .map(|h| h.pid)
}

/// Sends `signal` to `pid`.
pub fn signal(pid: u32, signal: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is a server this test
    // started (read from its owner lock), the caller's to end.
    unsafe { libc::kill(pid as libc::pid_t, signal) };
}

/// Waits, at most `bound`, until `what` holds.
pub fn wait_until(bound: Duration, mut what: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if what() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    what()
}

/// Whether process `pid` is alive (not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .map(|r| !r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Stops the server of `db` when dropped (SIGTERM to the owner, which steps down), so that no
/// test leaves a server behind.
pub struct StopServer(pub PathBuf);

impl Drop for StopServer {
    fn drop(&mut self) {
        if let Some(pid) = owner_pid(&self.0) {
            signal(pid, libc::SIGTERM);
            wait_until(Duration::from_secs(10), || !alive(pid));
        }
    }
}

/// Runs one write statement; panics on any error.
pub fn write(client: &mut Client, sql: &str, params: Vec<Value>) -> litekeep::serve::StmtResult {
    client
        .execute(sql, params)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Runs one read statement; panics on any error.
pub fn read(client: &mut Client, sql: &str, params: Vec<Value>) -> Vec<Vec<Value>> {
    client
        .query(sql, params)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .rows
}

/// The one integer a query returns.
pub fn count(client: &mut Client, sql: &str) -> i64 {
    match read(client, sql, vec![]).as_slice() {
        [row] => match row.as_slice() {
            [Value::Integer(n)] => *n,
            other => panic!("{sql}: {other:?}"),
        },
        other => panic!("{sql}: {other:?}"),
    }
}

/// The error as data of `response`, which must be one.
pub fn sql_error(response: Response) -> litekeep::serve::SqlError {
    match response {
        Response::Error { error } => error,
        other => panic!("wanted an error, got {other:?}"),
    }
}

/// A request of several write statements.
pub fn writes(stmts: &[(&str, Vec<Value>)]) -> Request {
    Request {
        stmts: stmts
            .iter()
            .map(|(sql, params)| litekeep::serve::Stmt::new(*sql, params.clone()))
            .collect(),
        mode: litekeep::serve::Mode::Write,
        tx: None,
        in_tx: false,
    }
}

// ---------------------------------------------------------------------------------------------
// Crash tests: servers that SIGKILL themselves right after a commit, ledgered writers, and the
// exactly-once check.

use litekeep_faults::harness::{self, Child, Ledger, Scratch};

/// The engine a child role works with (`LK_ENGINE`: sqlite or duckdb).
pub const ENGINE_VAR: &str = "LK_ENGINE";

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set"))
}

fn engine() -> EngineKind {
    env(ENGINE_VAR).parse().unwrap()
}

/// Runs the child role `role`: true when it was one of these.
///
/// - `server`: serves the database in this process until its stdin closes (or the server
///   stops on its own, saying `ENDED <how>`); with `LK_CRASH_PERMILLE`, SIGKILLs itself right
///   after that share of its commits, before answering them; with `LK_FAIL_SYNC_AFTER=n`, every
///   `fsync` and `fdatasync` of the process fails with `EIO` from its n-th commit on.
/// - `writer`: `LK_COUNT` inserts of (`LK_NAME`, n) into `ledger`, each acknowledged one
///   appended to the ledger file `LK_LEDGER` (`LK_COUNT=0`: until its stdin closes); it
///   starts servers itself when `LK_START` is set,
///   else waits for one; says `ERR …` for each call that failed and `DONE <errors>` at the end.
pub fn run_role(role: &str) -> bool {
    let db = harness::db();
    match role {
        "server" => {
            let crash: u32 = std::env::var("LK_CRASH_PERMILLE").map_or(0, |v| v.parse().unwrap());
            let fail_after: u64 =
                std::env::var("LK_FAIL_SYNC_AFTER").map_or(0, |v| v.parse().unwrap());
            let mut options = litekeep::serve::ServeOptions::new(&db, engine()).idle(None);
            if crash > 0 || fail_after > 0 {
                let commits = std::sync::atomic::AtomicU64::new(0);
                options = options.after_commit(move |_| {
                    if crash > 0 && fastrand::u32(..1000) < crash {
                        // SAFETY: kill(2) on this very process; no memory is involved.
                        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
                    }
                    let n = commits.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    if n == fail_after {
                        harness::fail_syscalls_in_every_thread(&["fsync", "fdatasync"], libc::EIO)
                            .unwrap_or_else(|e| panic!("{e}"));
                        harness::say("SYNCS FAIL");
                    }
                });
            }
            match litekeep::serve::start(&options).unwrap() {
                litekeep::serve::Started::Serving(server) => {
                    harness::say(format!("SERVING {}", std::process::id()));
                    let stop = server.stop_flag();
                    std::thread::spawn(move || {
                        harness::until_stdin_closes();
                        stop.store(true, std::sync::atomic::Ordering::SeqCst);
                    });
                    let ended = server.run();
                    harness::say(format!("ENDED {ended:?}"));
                }
                litekeep::serve::Started::Other { pid, .. } => harness::say(format!("OTHER {pid}")),
            }
        }
        "writer" => {
            let name = env("LK_NAME");
            let count: u64 = env("LK_COUNT").parse().unwrap();
            let mut ledger = Ledger::append_to(Path::new(&env("LK_LEDGER"))).unwrap();
            let mut opts = options(engine()).timeout(Duration::from_secs(60));
            if std::env::var("LK_START").is_err() {
                opts = opts.start_server(None);
            }
            let mut c = Client::connect(&db, opts).unwrap();
            harness::say("READY");
            let stop = harness::stop_on_stdin_close();
            let go_on = |n: u64| {
                if count == 0 {
                    !stop.load(std::sync::atomic::Ordering::SeqCst)
                } else {
                    n < count
                }
            };
            let mut errors = 0;
            let mut n = 0;
            while go_on(n) {
                n += 1;
                let insert = Request::write(
                    "INSERT INTO ledger (client, n) VALUES (?, ?)",
                    vec![Value::Text(name.clone()), Value::Integer(n as i64)],
                );
                match c.call(&insert) {
                    Ok(Response::Results { .. }) => ledger.append(format!("{name} {n}")).unwrap(),
                    Ok(Response::Error { error }) => {
                        errors += 1;
                        harness::say(format!("ERR {error}"));
                    }
                    Err(e) => {
                        errors += 1;
                        harness::say(format!("ERR {e}"));
                    }
                }
            }
            harness::say(format!("DONE {errors}"));
        }
        _ => return false,
    }
    true
}

/// Creates the `ledger` table (through a server started for it).
pub fn create_ledger(db: &Path, engine: EngineKind) {
    let mut c = client(db, engine);
    write(
        &mut c,
        "CREATE TABLE IF NOT EXISTS ledger (client TEXT NOT NULL, n BIGINT NOT NULL)",
        vec![],
    );
}

/// Starts `writers` writer children of `count` requests each, ledgers in `dir`.
pub fn writers(
    db: &Path,
    dir: &Path,
    engine: EngineKind,
    writers: usize,
    count: u64,
    start: bool,
) -> Vec<Child> {
    (0..writers)
        .map(|w| {
            let mut spawn = Child::build("writer")
                .db(db)
                .env(ENGINE_VAR, engine.name())
                .env("LK_NAME", format!("w{w}"))
                .env("LK_COUNT", count.to_string())
                .env("LK_LEDGER", dir.join(format!("ledger-{w}")));
            if start {
                spawn = spawn.env("LK_START", "1");
            }
            // Not waited for: the caller keeps a server running meanwhile.
            spawn.spawn()
        })
        .collect()
}

/// Whether `child` said `DONE …` (reading what it said so far).
pub fn done(child: &Child, lines: &mut Vec<String>) -> bool {
    while let Some(line) = child.try_line(Duration::ZERO) {
        lines.push(line);
    }
    lines.iter().any(|l| l.starts_with("DONE "))
}

/// Every acknowledged write of the ledgers in `dir` is in the database exactly once, and no
/// write is there twice. Gives the number of acknowledged writes.
pub fn check_exactly_once(db: &Path, dir: &Path, engine: EngineKind, writers: usize) -> usize {
    let mut c = client(db, engine);
    let doubled = read(
        &mut c,
        "SELECT client, n, count(*) FROM ledger GROUP BY client, n HAVING count(*) > 1",
        vec![],
    );
    assert!(doubled.is_empty(), "applied twice: {doubled:?}");
    let present: std::collections::HashSet<(String, i64)> =
        read(&mut c, "SELECT client, n FROM ledger", vec![])
            .into_iter()
            .map(|row| match row.as_slice() {
                [Value::Text(name), Value::Integer(n)] => (name.clone(), *n),
                other => panic!("{other:?}"),
            })
            .collect();
    let mut acked = 0;
    for w in 0..writers {
        for line in Ledger::read(&dir.join(format!("ledger-{w}"))) {
            let (name, n) = line.split_once(' ').unwrap();
            assert!(
                present.contains(&(name.to_owned(), n.parse().unwrap())),
                "acknowledged and lost: {line}"
            );
            acked += 1;
        }
    }
    acked
}

/// A server role child of `db`, SIGKILLing itself after `crash` per thousand commits.
pub fn server(db: &Path, engine: EngineKind, crash: u32) -> Child {
    let child = Child::build("server")
        .db(db)
        .env(ENGINE_VAR, engine.name())
        .env("LK_CRASH_PERMILLE", crash.to_string())
        .spawn();
    let line = child.line();
    assert!(
        line.starts_with("SERVING ") || line.starts_with("OTHER "),
        "{line}"
    );
    child
}

/// Ledgered writer processes write through servers (role children) that SIGKILL themselves
/// right after some commits, before answering, and are SIGKILLed from outside at random
/// moments: every acknowledged write is in the file once, none twice, no call fails.
pub fn exactly_once_across_server_kills(engine: EngineKind, name: &str, count: u64) {
    let dir = Scratch::new(name);
    let db = dir.join(format!("app.{engine}"));
    let _stop = StopServer(db.clone());
    create_ledger(&db, engine);
    // The server started for the table leaves; from now on the test keeps one running.
    drop(StopServer(db.clone()));
    let mut rng = harness::rng(name);
    let (n_writers, count) = (4, harness::choose(count, 2000));
    let mut current = server(&db, engine, 30);
    let mut ws = writers(&db, dir.path(), engine, n_writers, count, false);
    let mut said: Vec<Vec<String>> = vec![Vec::new(); n_writers];
    let (mut crashed, mut killed) = (0, 0);
    let mut next_kill = Instant::now() + Duration::from_millis(rng.u64(100..400));
    let deadline = Instant::now() + Duration::from_secs(300);
    while !ws.iter().zip(&mut said).all(|(w, lines)| done(w, lines)) {
        assert!(Instant::now() < deadline, "the writers did not finish");
        if !alive(current.pid()) {
            crashed += usize::from(current.wait().killed());
            current = server(&db, engine, 30);
        } else if Instant::now() >= next_kill {
            assert!(current.kill().killed());
            killed += 1;
            current = server(&db, engine, 30);
            next_kill = Instant::now() + Duration::from_millis(rng.u64(100..400));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    for (w, lines) in ws.drain(..).zip(&said) {
        let errors: Vec<&String> = lines.iter().filter(|l| l.starts_with("ERR")).collect();
        assert!(errors.is_empty(), "a writer's call failed: {errors:?}");
        w.wait();
    }
    drop(current);
    eprintln!(
        "{crashed} server(s) killed themselves right after a commit, {killed} killed from outside"
    );
    assert!(
        crashed > 0,
        "no server crashed right after a commit: the test proved nothing"
    );
    let acked = check_exactly_once(&db, dir.path(), engine, n_writers);
    assert_eq!(
        acked as u64,
        n_writers as u64 * count,
        "every write was acknowledged"
    );
}

/// Ledgered writer processes that start `litekeep serve` themselves (the real binary), while
/// the server is SIGKILLed `kills` times, every `kill_every` (a range of milliseconds): after
/// each kill a new server serves, started by the next call of a writer (nobody else starts
/// one here); no call fails; every acknowledged write is in the file once.
pub fn replaced_by_the_next_call(
    engine: EngineKind,
    name: &str,
    kills: usize,
    kill_every: std::ops::Range<u64>,
) {
    let dir = Scratch::new(name);
    let db = dir.join(format!("app.{engine}"));
    let _stop = StopServer(db.clone());
    create_ledger(&db, engine);
    let mut rng = harness::rng(name);
    let mut ws = writers(&db, dir.path(), engine, 2, 0, true);
    let mut owners = Vec::new();
    for _ in 0..kills {
        std::thread::sleep(Duration::from_millis(rng.u64(kill_every.clone())));
        let serving = wait_until(Duration::from_secs(60), || {
            owner_pid(&db).is_some_and(|p| !owners.contains(&p))
        });
        assert!(serving, "no new server after {} kill(s)", owners.len());
        let pid = owner_pid(&db).unwrap();
        owners.push(pid);
        signal(pid, libc::SIGKILL);
    }
    let replaced = wait_until(Duration::from_secs(60), || {
        owner_pid(&db).is_some_and(|p| !owners.contains(&p))
    });
    assert!(replaced, "the last killed server was not replaced");
    for w in &mut ws {
        w.close_stdin();
    }
    let mut said = vec![Vec::new(); 2];
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ws.iter().zip(&mut said).all(|(w, lines)| done(w, lines)) {
        assert!(Instant::now() < deadline, "the writers did not finish");
        std::thread::sleep(Duration::from_millis(5));
    }
    for (w, lines) in ws.into_iter().zip(&said) {
        let errors: Vec<&String> = lines.iter().filter(|l| l.starts_with("ERR")).collect();
        assert!(errors.is_empty(), "a writer's call failed: {errors:?}");
        w.wait();
    }
    let acked = check_exactly_once(&db, dir.path(), engine, 2);
    eprintln!("{acked} writes acknowledged across {kills} server SIGKILLs");
    assert!(acked > 0);
}
