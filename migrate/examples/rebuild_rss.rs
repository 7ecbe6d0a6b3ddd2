//! Peak memory of a 1,000,000-row rebuild: rows stream through SQLite (`INSERT … SELECT`),
//! never through Rust, so the peak RSS stays far below the table's size.
//!
//! `cargo run --release -p litekeep-migrate --example rebuild_rss [ROWS]` builds the table in a
//! child process (so its memory does not count), then migrates it here and prints this
//! process's peak RSS (`VmHWM`) and the database size; exits 1 if the peak exceeds 64 MiB.
//! `--json FILE` (after ROWS, if given) also writes them as one JSON document, what
//! `scripts/measured` reads.

use std::path::PathBuf;
use std::process::Command;

use litekeep_migrate::{Options, migrate};
use rusqlite::Connection;

const V1: &str = "CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size INTEGER, mtime REAL, hash BLOB);
CREATE INDEX files_path ON files(path);";
const V2: &str = "CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size TEXT, mtime REAL, hash BLOB);
CREATE INDEX files_path ON files(path);";

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("--build") {
        let db = PathBuf::from(args.next().unwrap());
        let rows: i64 = args.next().unwrap().parse().unwrap();
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(V1).unwrap();
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
             INSERT INTO files (id, path, size, mtime, hash)
             SELECT i, printf('src/module_%d/file_%d.rs', i % 1000, i), i * 37 % 100000, i / 7.0, randomblob(16) FROM n",
            [rows],
        )
        .unwrap();
        return;
    }
    let rows: i64 = std::env::args()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("lk-rss-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("big.db");
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--build", &db.display().to_string(), &rows.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let before = peak_rss_kib();
    let report = migrate(&db, V2, &Options::default()).unwrap();
    let after = peak_rss_kib();
    let size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    println!(
        "rebuilt {rows} rows in {:.2} s; database {:.1} MiB; peak RSS {:.1} MiB (before the migration {:.1} MiB)",
        report.elapsed.as_secs_f64(),
        size as f64 / 1048576.0,
        after as f64 / 1024.0,
        before as f64 / 1024.0
    );
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--json") {
        let doc = format!(
            "{{\"rows\":{rows},\"seconds\":{},\"db_bytes\":{size},\"peak_rss_kib\":{after},\"rss_before_kib\":{before},\"limit_kib\":{LIMIT_KIB}}}",
            report.elapsed.as_secs_f64()
        );
        std::fs::write(args.get(at + 1).expect("--json takes a file"), doc)
            .expect("writing the --json file");
    }
    let _ = std::fs::remove_dir_all(&dir);
    if after > LIMIT_KIB {
        eprintln!("peak RSS over the 64 MiB budget");
        std::process::exit(1);
    }
}

/// The memory budget of a 1,000,000-row rebuild.
const LIMIT_KIB: u64 = 64 * 1024;
