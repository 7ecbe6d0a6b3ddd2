//! Writes through the owner (`Database::service`) against plain rusqlite and the write gate,
//! in one run, plus the owner's empty round trip against a raw Unix-socket ping-pong, and
//! failover under load:
//!
//! - **writes**: N = 1, 2, 4, 8, 16, 64 writer processes (`--procs`), the same total of
//!   single-row write transactions at every N, `synchronous` FULL and NORMAL, four writers —
//!   `rusqlite` (WAL, `busy_timeout` 10 s, `BEGIN IMMEDIATE`), `gate` (`Database::write`
//!   through the write gate), `owner` (every process joins the service, one of them owns and
//!   commits the others' requests in groups; `here_when_free(false)`: every call goes to the
//!   owner), `here` (the same with `here_when_free(true)`: a client whose write gate is free
//!   commits its call itself). Every cell runs once per round, the writers
//!   taking turns going first. Every process opens its file (and an `owner` writer connects
//!   to the owner, `Service::connect`) before the clock starts. Throughput (median of the
//!   rounds), p50, p99, slowest.
//! - **round trip**: an empty request through a `litekeep_owner::Node` (no-op service, the
//!   owner in another process) against a raw ping-pong of the same frame sizes on a Unix
//!   socket, in the same run, taking turns.
//! - **failover**: 4 writer processes through the owner; the owner is SIGKILLed `--kills`
//!   times (100), and the time from each kill to the next successful write of a surviving
//!   process is taken (from a monotonic clock stamp each writes into a shared file after each
//!   success).
//!
//! Each writes cell also says the calls per commit of its owner, and the CPU time (user and
//! system) and context switches of all its processes per transaction: on a machine that other
//! work loads, the cost per transaction moves less than the throughput does.
//!
//! Prints a table and, with `--json PATH`, writes the numbers as JSON. Measures; asserts
//! nothing.
//!
//! ```text
//! cargo run --release --example owner [--total 8000] [--rounds 3] [--procs 1,2,4,8,16,64] [--kills 100] [--json out.json] [--only writes|rtt|failover] [--sync full,normal] [--writers rusqlite,gate,owner,here]
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use litekeep::{Database, Durability};
use litekeep_faults::harness::steal_seconds;
use litekeep_owner::{Batch, Node, Options, Service};
use rusqlite::TransactionBehavior;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use support::{go, go_and_collect_tail, median, percentile, us};

const SCHEMA: &str = "CREATE TABLE events (id INTEGER PRIMARY KEY, who INTEGER NOT NULL, n INTEGER NOT NULL, body TEXT);";
const INSERT: &str =
    "INSERT INTO events (who, n, body) VALUES (?1, ?2, 'payload of a typical row')";
const WRITERS: [&str; 4] = ["rusqlite", "gate", "owner", "here"];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        return child(&args[2..]);
    }
    let mut o = Opts {
        total: 8000,
        rounds: 3,
        procs: vec![1, 2, 4, 8, 16, 64],
        kills: 100,
        json: None,
        only: None,
        syncs: vec!["full".into(), "normal".into()],
        writers: WRITERS.iter().map(|w| (*w).to_owned()).collect(),
    };
    let mut words = args.iter().skip(1);
    while let Some(w) = words.next() {
        let mut value = || words.next().cloned().expect("a value after the flag");
        match w.as_str() {
            "--total" => o.total = value().parse().expect("--total N"),
            "--rounds" => o.rounds = value().parse().expect("--rounds N"),
            "--kills" => o.kills = value().parse().expect("--kills N"),
            "--procs" => {
                o.procs = value()
                    .split(',')
                    .map(|n| n.parse().expect("--procs 1,2,4"))
                    .collect()
            }
            "--json" => o.json = Some(PathBuf::from(value())),
            "--only" => o.only = Some(value()),
            "--sync" => o.syncs = value().split(',').map(str::to_owned).collect(),
            "--writers" => o.writers = value().split(',').map(str::to_owned).collect(),
            other => panic!("unknown argument {other}"),
        }
    }
    let dir = std::env::temp_dir().join(format!("lk-owner-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let (stolen, began) = (steal_seconds(), Instant::now());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("{} cores; load average at start: {}", cores(), load.trim());
    let wants = |what: &str| o.only.as_deref().is_none_or(|w| w == what);
    let mut json = serde_json::Map::new();
    json.insert("cores".into(), cores().into());
    json.insert("loadavg_start".into(), load.trim().into());
    if wants("writes") {
        json.insert("writes".into(), writes(&o, &dir));
    }
    if wants("rtt") {
        json.insert("round_trip".into(), round_trip(&dir, o.rounds));
    }
    if wants("failover") {
        json.insert("failover".into(), failover(&dir, o.kills));
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at the end: {}", load.trim());
    json.insert("loadavg_end".into(), load.trim().into());
    if let (Some(before), Some(after)) = (stolen, steal_seconds()) {
        println!(
            "steal time (CPU the hypervisor took): {:.1} s of {:.0} s",
            after - before,
            began.elapsed().as_secs_f64()
        );
        json.insert("steal_seconds".into(), (after - before).into());
    }
    json.insert("seconds".into(), began.elapsed().as_secs_f64().into());
    if let Some(path) = &o.json {
        let text = serde_json::to_string_pretty(&json).expect("json");
        std::fs::write(path, text).expect("write the JSON");
        println!("JSON: {}", path.display());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

struct Opts {
    total: u64,
    rounds: usize,
    procs: Vec<u64>,
    kills: usize,
    json: Option<PathBuf>,
    only: Option<String>,
    /// Which durabilities the writes run with: full, normal.
    syncs: Vec<String>,
    /// Which writers run: rusqlite, gate, owner.
    writers: Vec<String>,
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, usize::from)
}

// ---------------------------------------------------------------------------------------------
// Writes.

/// One cell's figures over the rounds.
#[derive(Clone, Default)]
struct Cell {
    /// Transactions per second, each round.
    rates: Vec<f64>,
    /// Every transaction's latency, µs, over all rounds.
    lat: Vec<u64>,
    failed: u64,
    /// The owner's commits and the calls they committed (owner cells).
    commits: u64,
    calls: u64,
    /// CPU time (user + system) and context switches of the cell's processes, over all rounds.
    cpu_us: u64,
    switches: u64,
    /// Transactions over all rounds.
    tx: u64,
}

/// CPU time (µs, user + system) and context switches (voluntary and not) of this process's
/// children that have ended and been waited for.
fn children_usage() -> (u64, u64) {
    // SAFETY: getrusage writes the one struct passed, which outlives the call.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_CHILDREN is a valid `who`.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    (
        us(u.ru_utime) + us(u.ru_stime),
        (u.ru_nvcsw + u.ru_nivcsw) as u64,
    )
}

fn writes(o: &Opts, dir: &Path) -> serde_json::Value {
    let syncs: Vec<(usize, &str)> = ["full", "normal"]
        .into_iter()
        .enumerate()
        .filter(|(_, s)| o.syncs.iter().any(|w| w == s))
        .collect();
    let writers: Vec<usize> = (0..WRITERS.len())
        .filter(|&w| o.writers.iter().any(|x| x == WRITERS[w]))
        .collect();
    let mut cells = vec![vec![vec![Cell::default(); WRITERS.len()]; o.procs.len()]; 2];
    for round in 0..o.rounds {
        for &(d, sync) in &syncs {
            for (i, &procs) in o.procs.iter().enumerate() {
                for k in 0..writers.len() {
                    let w = writers[(k + round) % writers.len()];
                    let db = dir.join(format!("w-{}-{sync}-{procs}-{round}.db", WRITERS[w]));
                    drop(
                        Database::builder(&db)
                            .schema(SCHEMA)
                            .open()
                            .expect("create"),
                    );
                    let each = (o.total / procs).max(1);
                    let before = children_usage();
                    let (elapsed, lat, failed, tail) =
                        run_writers(WRITERS[w], &db, procs, each, sync);
                    let after = children_usage();
                    let cell = &mut cells[d][i][w];
                    cell.cpu_us += after.0 - before.0;
                    cell.switches += after.1 - before.1;
                    cell.tx += each * procs;
                    cell.rates
                        .push((each * procs) as f64 / elapsed.as_secs_f64());
                    cell.lat.extend(lat);
                    cell.failed += failed;
                    for line in tail {
                        let mut words = line.split_whitespace();
                        if words.next() == Some("commits") {
                            let mut num = || words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                            cell.commits += num();
                            cell.calls += num();
                        }
                    }
                    for suffix in ["", "-wal", "-shm", ".lock", ".write.lock", ".owner.lock"] {
                        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
                    }
                }
            }
        }
        eprintln!("writes: round {} of {} done", round + 1, o.rounds);
    }
    println!(
        "\nsingle-row write transactions, {} in all at every N, {} rounds",
        o.total, o.rounds
    );
    println!(
        "| sync | N | writer | tx/s | vs gate | vs rusqlite | p50 | p99 | slowest | failed | calls per commit | CPU per tx | switches per tx |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for &(d, _) in &syncs {
        let sync = ["FULL", "NORMAL"][d];
        for (i, &procs) in o.procs.iter().enumerate() {
            for &w in &writers {
                cells[d][i][w].lat.sort_unstable();
                let c = &cells[d][i][w];
                let rate = median(&c.rates);
                // The ratio to another writer of the same cell, when it ran.
                let vs = |other: usize| {
                    let theirs = median(&cells[d][i][other].rates);
                    (theirs > 0.0).then(|| rate / theirs)
                };
                let shown = |r: Option<f64>| r.map_or("—".to_owned(), |r| format!("{r:.2}x"));
                let (p50, p99, max) = (
                    percentile(&c.lat, 0.5),
                    percentile(&c.lat, 0.99),
                    c.lat.last().copied().unwrap_or(0),
                );
                let per_commit = (c.commits > 0).then(|| c.calls as f64 / c.commits as f64);
                let cpu = c.cpu_us as f64 / c.tx.max(1) as f64;
                let switches = c.switches as f64 / c.tx.max(1) as f64;
                println!(
                    "| {sync} | {procs} | {} | {rate:.0} | {} | {} | {} | {} | {} | {} | {} | {cpu:.0} µs | {switches:.1} |",
                    WRITERS[w],
                    shown(vs(1)),
                    shown(vs(0)),
                    us(p50),
                    us(p99),
                    us(max),
                    c.failed,
                    per_commit.map_or("—".to_owned(), |p| format!("{p:.1}")),
                );
                rows.push(serde_json::json!({
                    "synchronous": sync, "n": procs, "writer": WRITERS[w],
                    "tx_per_s": rate, "tx_per_s_rounds": c.rates,
                    "vs_gate": vs(1), "vs_rusqlite": vs(0),
                    "p50_us": p50, "p99_us": p99, "max_us": max, "failed": c.failed,
                    "calls_per_commit": per_commit,
                    "cpu_us_per_tx": cpu, "switches_per_tx": switches,
                }));
            }
        }
    }
    serde_json::Value::Array(rows)
}

/// Starts `procs` children of `writer`, each doing `each` transactions; returns the wall time
/// from "go", every latency (µs), the failures and what the children said after.
fn run_writers(
    writer: &str,
    db: &Path,
    procs: u64,
    each: u64,
    sync: &str,
) -> (Duration, Vec<u64>, u64, Vec<String>) {
    let kids: Vec<Child> = (0..procs)
        .map(|_| {
            spawn(&[
                "writes",
                writer,
                &db.display().to_string(),
                &each.to_string(),
                sync,
            ])
        })
        .collect();
    go_and_collect_tail(kids)
}

fn child_writes(writer: &str, db: &Path, n: u64, sync: &str) {
    let durability = if sync == "normal" {
        Durability::Normal
    } else {
        Durability::Full
    };
    let me = i64::from(std::process::id());
    let mut lat = Vec::with_capacity(n as usize);
    let mut failed = 0u64;
    let mut timed = |ok: bool, start: Instant| {
        lat.push(start.elapsed().as_micros() as u64);
        failed += u64::from(!ok);
    };
    match writer {
        "rusqlite" => {
            let mut conn = support::plain_connection(db, durability.pragma());
            go();
            for i in 0..n {
                let start = Instant::now();
                let ok = (|| {
                    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                    tx.execute(INSERT, (me, i as i64))?;
                    tx.commit()
                })()
                .is_ok();
                timed(ok, start);
            }
        }
        "gate" => {
            let db = Database::builder(db)
                .schema(SCHEMA)
                .durability(durability)
                .open()
                .expect("open");
            go();
            for i in 0..n {
                let start = Instant::now();
                let ok = db
                    .write(|tx| tx.execute(INSERT, (me, i as i64)).map(drop))
                    .is_ok();
                timed(ok, start);
            }
        }
        _ => {
            let db = Database::builder(db)
                .schema(SCHEMA)
                .durability(durability)
                .open()
                .expect("open");
            let (commits, calls) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
            let (c, k) = (commits.clone(), calls.clone());
            let here = writer == "here";
            let service = insert_service_with(&db, here, move |n| {
                c.fetch_add(1, Ordering::Relaxed);
                k.fetch_add(n as u64, Ordering::Relaxed);
            });
            // Connected before the clock starts, as the other writers' files are opened.
            service.connect().expect("connect");
            go();
            for i in 0..n {
                let start = Instant::now();
                let ok = service.call((me, i as i64)).is_ok();
                timed(ok, start);
            }
            let words: Vec<String> = lat.iter().map(u64::to_string).collect();
            println!("done {failed} {}", words.join(" "));
            // An owner serves the others until the parent closes its stdin; then it says how
            // many commits it made for how many calls.
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            let (commits, calls) = (
                commits.load(Ordering::Relaxed),
                calls.load(Ordering::Relaxed),
            );
            if commits > 0 {
                println!("commits {commits} {calls}");
            }
            return;
        }
    }
    let words: Vec<String> = lat.iter().map(u64::to_string).collect();
    println!("done {failed} {}", words.join(" "));
}

fn insert_service(db: &Database) -> litekeep::Service<(i64, i64), ()> {
    insert_service_with(db, false, |_| {})
}

/// The benchmark's service, with `after_commit` called after each of the owner's commits.
fn insert_service_with(
    db: &Database,
    here: bool,
    after_commit: impl Fn(usize) + Send + Sync + 'static,
) -> litekeep::Service<(i64, i64), ()> {
    db.service(|conn, (who, n): &(i64, i64)| conn.execute(INSERT, (who, n)).map(drop))
        .version("1.0")
        .here_when_free(here)
        .after_commit(after_commit)
        .join()
        .expect("join")
}

// ---------------------------------------------------------------------------------------------
// The empty round trip.

struct Nothing;

impl Service for Nothing {
    type Request = ();
    type Response = ();
    fn run(&self, batch: &mut Batch<'_, (), ()>) {
        let mut i = 0;
        while let Some(call) = batch.get(i) {
            call.answer(Ok(()));
            i += 1;
        }
    }
}

fn round_trip(dir: &Path, rounds: usize) -> serde_json::Value {
    let count = 20_000u64;
    let request = litekeep_owner::wire::call_frame(
        1,
        1,
        false,
        &litekeep_owner::wire::encode(&()).expect("()"),
    )
    .len();
    let reply = litekeep_owner::wire::frame(&litekeep_owner::wire::FromOwner::reply(
        1,
        litekeep_owner::wire::Outcome::from_result(Ok(
            litekeep_owner::wire::encode(&()).expect("()")
        )),
    ))
    .len();
    let (mut owner_lat, mut raw_lat) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for which in (0..2).map(|w| (w + round) % 2) {
            if which == 0 {
                let db = dir.join(format!("rtt-{round}.db"));
                std::fs::write(&db, b"").expect("db");
                let mut owner = spawn(&["rtt-owner", &db.display().to_string()]);
                expect_ready(&mut owner);
                let lat = collect(spawn(&[
                    "rtt-client",
                    &db.display().to_string(),
                    &count.to_string(),
                ]));
                owner_lat.extend(lat);
                drop(owner.stdin.take());
                let _ = owner.wait();
            } else {
                let sock = dir.join(format!("raw-{round}.sock"));
                let args = [
                    sock.display().to_string(),
                    request.to_string(),
                    reply.to_string(),
                ];
                let mut server = spawn(&["raw-server", &args[0], &args[1], &args[2]]);
                expect_ready(&mut server);
                raw_lat.extend(collect(spawn(&[
                    "raw-client",
                    &args[0],
                    &args[1],
                    &args[2],
                    &count.to_string(),
                ])));
                let _ = server.wait();
            }
        }
    }
    owner_lat.sort_unstable();
    raw_lat.sort_unstable();
    let (o50, r50) = (pct_ns(&owner_lat, 0.5), pct_ns(&raw_lat, 0.5));
    let (o99, r99) = (pct_ns(&owner_lat, 0.99), pct_ns(&raw_lat, 0.99));
    println!(
        "\nempty round trip, {count} calls x {rounds} rounds (request frame {request} B, reply {reply} B)"
    );
    println!("| path | p50 | p99 | mean |");
    println!("|---|---|---|---|");
    println!(
        "| owner (litekeep_owner::Node, no-op service) | {:.1} µs | {:.1} µs | {:.1} µs |",
        o50,
        o99,
        mean_ns(&owner_lat)
    );
    println!(
        "| raw Unix-socket ping-pong | {:.1} µs | {:.1} µs | {:.1} µs |",
        r50,
        r99,
        mean_ns(&raw_lat)
    );
    println!("owner / raw: p50 {:.2}x, p99 {:.2}x", o50 / r50, o99 / r99);
    serde_json::json!({
        "calls": count * rounds as u64, "request_bytes": request, "reply_bytes": reply,
        "owner": {"p50_us": o50, "p99_us": o99, "mean_us": mean_ns(&owner_lat)},
        "raw": {"p50_us": r50, "p99_us": r99, "mean_us": mean_ns(&raw_lat)},
        "p50_ratio": o50 / r50, "p99_ratio": o99 / r99,
    })
}

fn child_rtt_owner(db: &Path) {
    let node = Node::join(db, Nothing, Options::new("bench", "1.0")).expect("join");
    assert!(node.is_owner());
    println!("ready");
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
}

fn child_rtt_client(db: &Path, count: u64) {
    let node =
        Node::join(db, Nothing, Options::new("bench", "1.0").candidate(false)).expect("join");
    for _ in 0..1000 {
        node.call(()).expect("warm-up call");
    }
    let lat: Vec<String> = (0..count)
        .map(|_| {
            let start = Instant::now();
            node.call(()).expect("call");
            start.elapsed().as_nanos().to_string()
        })
        .collect();
    println!("done 0 {}", lat.join(" "));
}

fn child_raw_server(sock: &Path, request: usize, reply: usize) {
    let listener = UnixListener::bind(sock).expect("bind");
    println!("ready");
    let (mut s, _) = listener.accept().expect("accept");
    let (mut inb, out) = (vec![0u8; request], vec![0u8; reply]);
    while s.read_exact(&mut inb).is_ok() {
        if s.write_all(&out).is_err() {
            break;
        }
    }
}

fn child_raw_client(sock: &Path, request: usize, reply: usize, count: u64) {
    let mut s = UnixStream::connect(sock).expect("connect");
    let (out, mut inb) = (vec![0u8; request], vec![0u8; reply]);
    let mut once = || {
        s.write_all(&out).expect("write");
        s.read_exact(&mut inb).expect("read");
    };
    for _ in 0..1000 {
        once();
    }
    let lat: Vec<String> = (0..count)
        .map(|_| {
            let start = Instant::now();
            once();
            start.elapsed().as_nanos().to_string()
        })
        .collect();
    println!("done 0 {}", lat.join(" "));
}

// ---------------------------------------------------------------------------------------------
// Failover.

/// This process's monotonic clock in nanoseconds (the same clock in every process).
fn monotonic_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the one struct passed, which outlives the call.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn failover(dir: &Path, kills: usize) -> serde_json::Value {
    let db = dir.join("failover.db");
    drop(
        Database::builder(&db)
            .schema(SCHEMA)
            .open()
            .expect("create"),
    );
    let stamps = dir.join("stamps");
    std::fs::write(&stamps, vec![0u8; 8 * 64]).expect("stamps");
    let stamps_file = std::fs::File::open(&stamps).expect("stamps");
    let lock =
        litekeep::lock::FileLock::open(litekeep::owner::owner_lock_path(&db)).expect("owner lock");
    let loaders = 4;
    let mut kids: Vec<(usize, Child)> = Vec::new();
    let mut next_slot = 0;
    let mut start_loader = |kids: &mut Vec<(usize, Child)>| {
        let slot = next_slot;
        next_slot = (next_slot + 1) % 64;
        let mut child = spawn(&[
            "loader",
            &db.display().to_string(),
            &stamps.display().to_string(),
            &slot.to_string(),
        ]);
        expect_ready(&mut child);
        kids.push((slot, child));
    };
    for _ in 0..loaders {
        start_loader(&mut kids);
    }
    let stamp = |slot: usize| {
        let mut b = [0u8; 8];
        stamps_file
            .read_at(&mut b, slot as u64 * 8)
            .expect("read stamp");
        u64::from_le_bytes(b)
    };
    let mut took = Vec::new();
    let mut missed = 0;
    for _ in 0..kills {
        std::thread::sleep(Duration::from_millis(50));
        let Some(owner) = lock.holder().map(|h| h.pid) else {
            missed += 1;
            continue;
        };
        let Some(at) = kids.iter().position(|(_, k)| k.id() == owner) else {
            missed += 1;
            continue;
        };
        let (_, mut victim) = kids.remove(at);
        let killed_at = monotonic_ns();
        let _ = victim.kill();
        let _ = victim.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        let next = loop {
            let newest = kids
                .iter()
                .map(|(s, _)| stamp(*s))
                .filter(|&t| t > killed_at)
                .min();
            if let Some(t) = newest {
                break Some(t - killed_at);
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_micros(100));
        };
        match next {
            Some(ns) => took.push(ns / 1000),
            None => missed += 1,
        }
        start_loader(&mut kids);
    }
    for (_, mut k) in kids {
        drop(k.stdin.take());
        let _ = k.wait();
    }
    took.sort_unstable();
    let (p50, p99, max) = (
        percentile(&took, 0.5),
        percentile(&took, 0.99),
        took.last().copied().unwrap_or(0),
    );
    println!(
        "\nfailover: {} SIGKILLs of the owner under load ({loaders} writer processes), {missed} without a measure",
        took.len()
    );
    println!(
        "kill -> next successful write of a surviving process: p50 {}, p99 {}, max {}",
        us(p50),
        us(p99),
        us(max)
    );
    serde_json::json!({"kills": took.len(), "missed": missed, "loaders": loaders, "p50_us": p50, "p99_us": p99, "max_us": max})
}

fn child_loader(db: &Path, stamps: &Path, slot: u64) {
    let database = Database::builder(db).schema(SCHEMA).open().expect("open");
    let service = insert_service(&database);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(stamps)
        .expect("stamps");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    service.call((0, 0)).expect("first call");
    println!("ready");
    let mut n = 1;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        if service.call((i64::from(std::process::id()), n)).is_ok() {
            let _ = file.write_at(&monotonic_ns().to_le_bytes(), slot * 8);
        }
        n += 1;
    }
}

// ---------------------------------------------------------------------------------------------
// Children and numbers.

fn child(args: &[String]) {
    let path = |i: usize| PathBuf::from(&args[i]);
    let num = |i: usize| args[i].parse::<u64>().expect("a number");
    match args[0].as_str() {
        "writes" => child_writes(&args[1], &path(2), num(3), &args[4]),
        "rtt-owner" => child_rtt_owner(&path(1)),
        "rtt-client" => child_rtt_client(&path(1), num(2)),
        "raw-server" => child_raw_server(&path(1), num(2) as usize, num(3) as usize),
        "raw-client" => child_raw_client(&path(1), num(2) as usize, num(3) as usize, num(4)),
        "loader" => child_loader(&path(1), &path(2), num(3)),
        other => panic!("unknown child {other}"),
    }
}

fn spawn(args: &[&str]) -> Child {
    Command::new(std::env::current_exe().expect("current_exe"))
        .arg("--child")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn")
}

fn expect_ready(child: &mut Child) {
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("ready");
    assert_eq!(line.trim(), "ready");
}

/// The latencies a child printed after "done <failed>", once it ended.
fn collect(mut child: Child) -> Vec<u64> {
    let mut text = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut text)
        .expect("read");
    let _ = child.wait();
    let mut words = text.split_whitespace();
    assert_eq!(words.next(), Some("done"), "{text}");
    words.skip(1).filter_map(|w| w.parse().ok()).collect()
}

fn pct_ns(sorted: &[u64], p: f64) -> f64 {
    percentile(sorted, p) as f64 / 1000.0
}

fn mean_ns(v: &[u64]) -> f64 {
    v.iter().sum::<u64>() as f64 / v.len().max(1) as f64 / 1000.0
}
