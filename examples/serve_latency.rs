//! Point-query latency through `litekeep serve`, against the same query on a connection of
//! the caller's own, and against DuckDB's documented workaround for several processes (open,
//! query, close, under a file lock), in one run, rounds interleaved.
//!
//! ```sh
//! eval "$(scripts/duckdb-env)"
//! cargo build --release --features duckdb
//! cargo run --release --features duckdb --example serve_latency -- --engine duckdb
//! cargo run --release --example serve_latency -- --engine sqlite --rows 100000 --queries 2000
//! ```
//!
//! The server is the release `litekeep` beside this example (`target/release/litekeep`), or
//! the one `LITEKEEP` names, started in the foreground as a child process; the client is
//! `litekeep::serve::Client` in this process. Prints one line per way: p50, p99, and the ratio
//! of p50s to the in-process connection's.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use litekeep::serve::{Client, ClientOptions, EngineKind, Value};
use support::{percentile, us};

struct Args {
    engine: EngineKind,
    rows: i64,
    queries: usize,
}

fn args() -> Args {
    let mut a = Args {
        engine: EngineKind::DuckDb,
        rows: 100_000,
        queries: 2000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--engine" => a.engine = value.parse().unwrap_or_else(|e| panic!("{e}")),
            "--rows" => a.rows = value.parse().expect("--rows N"),
            "--queries" => a.queries = value.parse().expect("--queries N"),
            other => panic!("unknown flag {other}; flags: --engine E --rows N --queries N"),
        }
    }
    a
}

/// The `litekeep` binary: `LITEKEEP`, else the one beside this example's directory.
fn litekeep() -> PathBuf {
    if let Some(p) = std::env::var_os("LITEKEEP") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .map(|d| d.join("litekeep"))
        .expect("target directory")
}

/// One way of asking for row `id`'s body.
trait Way {
    fn name(&self) -> &'static str;
    fn query(&mut self, id: i64) -> String;
}

const QUERY: &str = "SELECT body FROM docs WHERE id = ?";

struct Served(Client);

impl Way for Served {
    fn name(&self) -> &'static str {
        "litekeep serve"
    }
    fn query(&mut self, id: i64) -> String {
        let rows = self
            .0
            .query(QUERY, vec![Value::Integer(id)])
            .expect("query")
            .rows;
        match &rows[0][0] {
            Value::Text(t) => t.clone(),
            other => panic!("{other:?}"),
        }
    }
}

struct SqliteOwn(rusqlite::Connection);

impl Way for SqliteOwn {
    fn name(&self) -> &'static str {
        "own connection"
    }
    fn query(&mut self, id: i64) -> String {
        let mut st = self.0.prepare_cached(QUERY).expect("prepare");
        st.query_row([id], |r| r.get(0)).expect("query")
    }
}

#[cfg(feature = "duckdb")]
mod duck {
    use super::{QUERY, Way};
    use std::path::PathBuf;

    pub struct Own(pub duckdb::Connection);

    impl Way for Own {
        fn name(&self) -> &'static str {
            "own connection"
        }
        fn query(&mut self, id: i64) -> String {
            let mut st = self.0.prepare_cached(QUERY).expect("prepare");
            st.query_row([id], |r| r.get(0)).expect("query")
        }
    }

    /// DuckDB's documented workaround: a cross-process mutex, the file opened and closed
    /// around every query.
    pub struct OpenClose(pub PathBuf);

    impl Way for OpenClose {
        fn name(&self) -> &'static str {
            "open + query + close"
        }
        fn query(&mut self, id: i64) -> String {
            let lock = std::fs::File::create(self.0.with_extension("mutex")).expect("mutex");
            rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).expect("flock");
            let conn = duckdb::Connection::open(&self.0).expect("open");
            let body = conn.query_row(QUERY, [id], |r| r.get(0)).expect("query");
            drop(conn);
            body
        }
    }
}

fn main() {
    let a = args();
    let dir = std::env::temp_dir().join(format!("lk-serve-latency-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    let db = dir.join(format!("docs.{}", a.engine));
    fill(&db, a.engine, a.rows);
    let mut server = Command::new(litekeep())
        .args([
            "serve",
            "--foreground",
            "--idle",
            "0s",
            "--engine",
            a.engine.name(),
            "--db",
        ])
        .arg(&db)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start litekeep serve (build it with cargo build --release first)");
    let options = ClientOptions::new(a.engine)
        .start_server(None)
        .timeout(Duration::from_secs(30));
    let served = Served(Client::connect(&db, options).expect("connect"));
    let mut ways: Vec<Box<dyn Way>> = vec![Box::new(served)];
    let own: Box<dyn Way> = match a.engine {
        EngineKind::Sqlite => Box::new(SqliteOwn(rusqlite::Connection::open(&db).expect("open"))),
        #[cfg(feature = "duckdb")]
        EngineKind::DuckDb => {
            // Beside the server DuckDB lets no other process open the file: the baselines
            // run on a copy.
            let (copy, own) = (dir.join("copy.duckdb"), dir.join("own.duckdb"));
            std::fs::copy(&db, &copy).expect("copy");
            std::fs::copy(&db, &own).expect("copy");
            ways.push(Box::new(duck::OpenClose(copy)));
            Box::new(duck::Own(duckdb::Connection::open(own).expect("open")))
        }
        #[cfg(not(feature = "duckdb"))]
        EngineKind::DuckDb => panic!("build with --features duckdb"),
    };
    ways.insert(0, own);
    let mut lat: Vec<Vec<u64>> = vec![Vec::new(); ways.len()];
    let mut rng = fastrand::Rng::with_seed(1);
    // Warm-up, then rounds of 10 queries per way, in turn.
    for w in &mut ways {
        for _ in 0..20 {
            w.query(rng.i64(1..=a.rows));
        }
    }
    let rounds = a.queries / 10;
    for round in 0..rounds {
        for (i, w) in ways.iter_mut().enumerate() {
            // The slow workaround gets a tenth of the queries.
            if w.name() == "open + query + close" && round % 10 != 0 {
                continue;
            }
            for _ in 0..10 {
                let id = rng.i64(1..=a.rows);
                let t = Instant::now();
                let body = w.query(id);
                lat[i].push(t.elapsed().as_micros() as u64);
                assert_eq!(body, format!("doc {id}"));
            }
        }
    }
    let base = {
        let mut v = lat[0].clone();
        v.sort_unstable();
        percentile(&v, 0.5).max(1)
    };
    println!(
        "{} {}, {} rows, point query by primary key; load {}",
        a.engine,
        engine_version(a.engine),
        a.rows,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    for (w, mut v) in ways.iter().zip(lat) {
        v.sort_unstable();
        let p50 = percentile(&v, 0.5);
        println!(
            "  {:<22} n={:<5} p50 {:>8}  p99 {:>8}  p50 ratio {:.2}",
            w.name(),
            v.len(),
            us(p50),
            us(percentile(&v, 0.99)),
            p50 as f64 / base as f64
        );
    }
    drop(ways);
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

fn engine_version(engine: EngineKind) -> String {
    match engine {
        EngineKind::Sqlite => rusqlite::version().to_owned(),
        #[cfg(feature = "duckdb")]
        EngineKind::DuckDb => litekeep::duckdb_file::library_version(),
        #[cfg(not(feature = "duckdb"))]
        EngineKind::DuckDb => String::new(),
    }
}

/// A table `docs (id, body)` of `rows` rows, written before the server starts.
fn fill(db: &Path, engine: EngineKind, rows: i64) {
    match engine {
        EngineKind::Sqlite => {
            let conn = rusqlite::Connection::open(db).expect("open");
            conn.execute_batch(&format!(
                "PRAGMA journal_mode = WAL; \
                 CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT NOT NULL); \
                 WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {rows}) \
                 INSERT INTO docs SELECT i, 'doc ' || i FROM c"
            ))
            .expect("fill");
        }
        #[cfg(feature = "duckdb")]
        EngineKind::DuckDb => {
            let conn = duckdb::Connection::open(db).expect("open");
            conn.execute_batch(&format!(
                "CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT NOT NULL); \
                 INSERT INTO docs SELECT i, 'doc ' || i FROM range(1, {}) t(i)",
                rows + 1
            ))
            .expect("fill");
        }
        #[cfg(not(feature = "duckdb"))]
        EngineKind::DuckDb => panic!("build with --features duckdb"),
    }
}
