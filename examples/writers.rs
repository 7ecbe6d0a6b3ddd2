//! Writes across processes: the same total work split over N = 1, 2, 4, 8 writer processes on
//! one file, for three writers side by side in one run —
//!
//! - `rusqlite`: what users do today (WAL, `busy_timeout` 10 s, `BEGIN IMMEDIATE`, and the
//!   same `synchronous` as litekeep's writers: FULL, or NORMAL with `--normal`), meeting each
//!   other in SQLite's sleeping busy handler;
//! - `no gate`: `litekeep::Database::write` with `Builder::write_gate(false)`;
//! - `gate`: `Database::write` with the cross-process write gate (the default);
//!
//! and two workloads: single-row transactions and 100-row batch transactions. Every cell runs
//! once per round (5 by default), the writers taking turns going first, so that all cells meet
//! the same moments of a noisy machine. Prints, per cell, throughput (the median of the rounds)
//! and its ratios, round by round, to N = 1 of the same writer and to rusqlite at the same N
//! (median [lowest–highest]), then p50, p99, p99.9 and the slowest write transaction over all
//! rounds, and how many failed; and the CPU time the hypervisor took meanwhile (a VM's
//! neighbours make runs incomparable). Measures; asserts nothing.
//!
//! ```text
//! cargo run --release --example writers [single_row_total] [batch_total] [--normal] [--rounds R] [--procs 1,2,4,8] [--json FILE]
//! ```
//!
//! `--procs` lists the numbers of writer processes (the first is the one the others are
//! compared with; 1, 2, 4 and 8 by default). `--json FILE` also writes every cell's numbers
//! as one JSON document (what `scripts/measured` reads).
//!
//! The children are this program re-executed with `--child`; each waits for a `go` line on
//! stdin so that all start together, and reports its latencies (µs) on one line when done.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use litekeep::{Database, Durability};
use litekeep_faults::harness::steal_seconds;
use rusqlite::TransactionBehavior;
use support::{go, go_and_collect, median, percentile, us};

const SCHEMA: &str = "CREATE TABLE events (id INTEGER PRIMARY KEY, who INTEGER NOT NULL, n INTEGER NOT NULL, body TEXT);";
const WRITERS: [&str; 3] = ["rusqlite", "nogate", "gate"];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        let n = args[4].parse().expect("n");
        let batch = args[5].parse().expect("batch");
        child(&args[2], Path::new(&args[3]), n, batch, args[6] == "normal");
        return;
    }
    let (mut normal, mut rounds, mut numbers) = (false, 5usize, Vec::<u64>::new());
    let mut json_out: Option<std::path::PathBuf> = None;
    let mut procs_list = PROCS.to_vec();
    let mut words = args.iter().skip(1);
    while let Some(word) = words.next() {
        match word.as_str() {
            "--normal" => normal = true,
            "--rounds" => {
                rounds = words
                    .next()
                    .and_then(|r| r.parse().ok())
                    .expect("--rounds takes a number")
            }
            "--json" => json_out = Some(words.next().expect("--json takes a file").into()),
            "--procs" => {
                procs_list = words
                    .next()
                    .map(|list| {
                        list.split(',')
                            .map(|n| n.parse().expect("--procs takes numbers, as 1,2,4,8"))
                            .collect()
                    })
                    .expect("--procs takes a list, as 1,2,4,8")
            }
            n => numbers.push(n.parse().expect("totals are numbers")),
        }
    }
    let single: u64 = numbers.first().copied().unwrap_or(8000);
    let batches: u64 = numbers.get(1).copied().unwrap_or(800);
    let dir = std::env::temp_dir().join(format!("lk-writers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    println!(
        "{} cores; synchronous = {}; same total work at every N: {single} single-row transactions, {batches} transactions of 100 rows; {rounds} rounds",
        std::thread::available_parallelism().map_or(0, usize::from),
        if normal { "NORMAL" } else { "FULL" }
    );
    let workloads = [("1 row", single, 1u64), ("100 rows", batches, 100)];
    // cells[workload][N][writer]: one Cell per round, gathered round after round so that every
    // writer and every N meets the same moments of a noisy machine.
    let (stolen_before, began) = (steal_seconds(), Instant::now());
    let mut stolen = None;
    let mut cells = vec![vec![vec![Cells::default(); 3]; procs_list.len()]; 2];
    for round in 0..rounds {
        for (k, &(_, total, batch)) in workloads.iter().enumerate() {
            for (i, &procs) in procs_list.iter().enumerate() {
                // The writers take turns going first, round after round.
                for w in (0..3).map(|w| (w + round) % 3) {
                    let writer = WRITERS[w];
                    let db = dir.join(format!("{writer}-{procs}-{batch}-{round}.db"));
                    drop(
                        Database::builder(&db)
                            .schema(SCHEMA)
                            .open()
                            .expect("create"),
                    );
                    let (elapsed, lat, failed) =
                        run(writer, &db, procs, total / procs, batch, normal);
                    let rate = (total / procs * procs) as f64 / elapsed.as_secs_f64();
                    let cell = &mut cells[k][i][w];
                    cell.rates.push(rate);
                    cell.lat.extend(lat);
                    cell.failed += failed;
                    for file in ["", "-wal", "-shm"] {
                        let _ = std::fs::remove_file(format!("{}{file}", db.display()));
                    }
                }
            }
        }
        eprintln!("round {} of {rounds} done", round + 1);
    }
    if let (Some(before), Some(after)) = (stolen_before, steal_seconds()) {
        stolen = Some(after - before);
        // A virtual machine's neighbours can take its CPUs for seconds: compare runs with that.
        println!(
            "steal time (CPU taken by the hypervisor, /proc/stat): {:.1} s of the run's {:.0} s",
            after - before,
            began.elapsed().as_secs_f64()
        );
    }
    println!(
        "tx/s and the ratios: median of the rounds [lowest–highest]; latencies over all rounds' transactions"
    );
    println!(
        "| workload | N | writer | tx/s | vs N={} | vs rusqlite | p50 | p99 | p99.9 | slowest | failed |",
        procs_list[0]
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut json_cells = Vec::new();
    for (k, &(workload, _, _)) in workloads.iter().enumerate() {
        for (i, &procs) in procs_list.iter().enumerate() {
            for w in 0..3 {
                cells[k][i][w].lat.sort_unstable();
                let vs_one = ratios(&cells[k][i][w].rates, &cells[k][0][w].rates);
                let vs_rusqlite = ratios(&cells[k][i][w].rates, &cells[k][i][0].rates);
                let cell = &cells[k][i][w];
                println!(
                    "| {workload} | {procs} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} |",
                    WRITERS[w],
                    median(&cell.rates),
                    vs_one,
                    if w == 0 {
                        "—".to_string()
                    } else {
                        vs_rusqlite
                    },
                    us(percentile(&cell.lat, 0.50)),
                    us(percentile(&cell.lat, 0.99)),
                    us(percentile(&cell.lat, 0.999)),
                    us(cell.lat.last().copied().unwrap_or(0)),
                    cell.failed,
                );
                json_cells.push(serde_json::json!({
                    "workload": workload,
                    "procs": procs,
                    "writer": WRITERS[w],
                    "tx_per_s": median(&cell.rates),
                    "vs_first": ratio_numbers(&cell.rates, &cells[k][0][w].rates),
                    "vs_rusqlite": ratio_numbers(&cell.rates, &cells[k][i][0].rates),
                    "p50_us": percentile(&cell.lat, 0.50),
                    "p99_us": percentile(&cell.lat, 0.99),
                    "p999_us": percentile(&cell.lat, 0.999),
                    "max_us": cell.lat.last().copied().unwrap_or(0),
                    "failed": cell.failed,
                }));
            }
        }
    }
    if let Some(path) = json_out {
        let doc = serde_json::json!({
            "synchronous": if normal { "NORMAL" } else { "FULL" },
            "rounds": rounds,
            "single_row_total": single,
            "batch_total": batches,
            "procs": procs_list,
            "seconds": began.elapsed().as_secs_f64(),
            "steal_seconds": stolen,
            "cells": json_cells,
        });
        std::fs::write(&path, doc.to_string()).expect("writing the --json file");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The numbers of writer processes measured unless `--procs` says otherwise.
const PROCS: [u64; 4] = [1, 2, 4, 8];

/// One cell of the table, over the rounds.
#[derive(Default, Clone)]
struct Cells {
    /// Transactions per second, one per round.
    rates: Vec<f64>,
    /// Every transaction's latency (µs), all rounds.
    lat: Vec<u64>,
    /// Failed transactions, all rounds.
    failed: u64,
}

/// `a / b` round by round: "0.97x [0.91–1.04]".
fn ratios(a: &[f64], b: &[f64]) -> String {
    let r: Vec<f64> = a.iter().zip(b).map(|(a, b)| a / b).collect();
    let lo = r.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = r.iter().copied().fold(0.0, f64::max);
    format!("{:.2}x [{lo:.2}–{hi:.2}]", median(&r))
}

/// `a / b` round by round, as numbers: median, lowest, highest.
fn ratio_numbers(a: &[f64], b: &[f64]) -> serde_json::Value {
    let r: Vec<f64> = a.iter().zip(b).map(|(a, b)| a / b).collect();
    let lo = r.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = r.iter().copied().fold(0.0, f64::max);
    serde_json::json!({ "median": median(&r), "lowest": lo, "highest": hi })
}

/// Runs `procs` children of `writer`, each `each` transactions of `batch` rows; returns the
/// wall time, every transaction's latency (µs) and how many failed.
fn run(
    writer: &str,
    db: &Path,
    procs: u64,
    each: u64,
    batch: u64,
    normal: bool,
) -> (Duration, Vec<u64>, u64) {
    let exe = std::env::current_exe().expect("current_exe");
    let kids: Vec<_> = (0..procs)
        .map(|_| {
            Command::new(&exe)
                .args(["--child", writer])
                .arg(db)
                .args([each.to_string(), batch.to_string()])
                .arg(if normal { "normal" } else { "full" })
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    go_and_collect(kids)
}

fn child(writer: &str, db: &Path, n: u64, batch: u64, normal: bool) {
    let durability = if normal {
        Durability::Normal
    } else {
        Durability::Full
    };
    let me = i64::from(std::process::id());
    let insert = "INSERT INTO events (who, n, body) VALUES (?1, ?2, 'payload of a typical row')";
    let mut lat = Vec::with_capacity(n as usize);
    let mut failed = 0u64;
    let mut timed = |ok: bool, start: Instant| {
        lat.push(start.elapsed().as_micros() as u64);
        failed += u64::from(!ok);
    };
    if writer == "rusqlite" {
        let mut conn = support::plain_connection(db, durability.pragma());
        go();
        for i in 0..n {
            let start = Instant::now();
            let ok = (|| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                for r in 0..batch {
                    tx.execute(insert, (me, (i * batch + r) as i64))?;
                }
                tx.commit()
            })()
            .is_ok();
            timed(ok, start);
        }
    } else {
        let db = Database::builder(db)
            .schema(SCHEMA)
            .write_gate(writer == "gate")
            .durability(durability)
            .open()
            .expect("open");
        go();
        for i in 0..n {
            let start = Instant::now();
            let ok = db
                .write(|tx| {
                    for r in 0..batch {
                        tx.execute(insert, (me, (i * batch + r) as i64))?;
                    }
                    Ok(())
                })
                .is_ok();
            timed(ok, start);
        }
    }
    let words: Vec<String> = lat.iter().map(u64::to_string).collect();
    println!("done {failed} {}", words.join(" "));
}
