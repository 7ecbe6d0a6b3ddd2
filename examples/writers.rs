//! Writer throughput across processes: the same total number of single-row write
//! transactions done by one process, then split over 4 processes (each its own `Database`),
//! on the same file. Prints both rates and their ratio. Measures; asserts nothing.
//!
//! ```text
//! cargo run --release --example writers [total_writes]
//! ```
//!
//! The children are this program re-executed with `--child <db> <n>`; each waits for a `go`
//! line on stdin so that all start together, and reports `done` when its writes are committed.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use litekeep::Database;

const SCHEMA: &str = "CREATE TABLE events (id INTEGER PRIMARY KEY, who INTEGER NOT NULL, n INTEGER NOT NULL, body TEXT);";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        child(Path::new(&args[2]), args[3].parse().expect("n"));
        return;
    }
    let total: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(8000);
    let dir = std::env::temp_dir().join(format!("lk-writers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    for (label, procs) in [("1 process ", 1u64), ("4 processes", 4)] {
        let db = dir.join(format!("w{procs}.db"));
        drop(
            Database::builder(&db)
                .schema(SCHEMA)
                .open()
                .expect("create"),
        );
        let elapsed = run(&db, procs, total / procs);
        println!(
            "{label}: {total} single-row write transactions in {:.3} s = {:.0} tx/s",
            elapsed.as_secs_f64(),
            total as f64 / elapsed.as_secs_f64()
        );
        RATES.with(|r| r.borrow_mut().push(total as f64 / elapsed.as_secs_f64()));
    }
    RATES.with(|r| {
        let r = r.borrow();
        println!("ratio (4 processes / 1 process): {:.2}x", r[1] / r[0]);
    });
    let _ = std::fs::remove_dir_all(&dir);
}

thread_local! {
    static RATES: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn run(db: &Path, procs: u64, each: u64) -> Duration {
    let exe = std::env::current_exe().expect("current_exe");
    let mut kids: Vec<_> = (0..procs)
        .map(|_| {
            Command::new(&exe)
                .arg("--child")
                .arg(db)
                .arg(each.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let mut outs: Vec<_> = kids
        .iter_mut()
        .map(|k| BufReader::new(k.stdout.take().expect("stdout")).lines())
        .collect();
    for out in &mut outs {
        assert_eq!(out.next().expect("ready").expect("read"), "ready");
    }
    let start = Instant::now();
    for k in &mut kids {
        writeln!(k.stdin.as_mut().expect("stdin"), "go").expect("go");
    }
    for out in &mut outs {
        let line = out.next().expect("done").expect("read");
        assert_eq!(line, "done", "a child failed: {line}");
    }
    let elapsed = start.elapsed();
    for mut k in kids {
        let _ = k.wait();
    }
    elapsed
}

fn child(db: &Path, n: u64) {
    let handle = Database::builder(db).schema(SCHEMA).open().expect("open");
    println!("ready");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).expect("go");
    let me = std::process::id();
    for i in 0..n {
        if let Err(e) = handle.write(|tx| {
            tx.execute(
                "INSERT INTO events (who, n, body) VALUES (?1, ?2, 'payload of a typical row')",
                (me, i as i64),
            )
        }) {
            println!("error: {e}");
            return;
        }
    }
    println!("done");
}
