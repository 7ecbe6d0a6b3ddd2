//! The cost of a migration against raw SQL doing the same work, in the same run:
//! - `rebuild_1m/litekeep`: `migrate()` turning `size INTEGER` into `size TEXT` on a
//!   1,000,000-row table with a secondary index (diff, lock, one transaction, checks, history);
//! - `rebuild_1m/raw_sql`: the same rename-copy-drop and index creation, hand-written, in one
//!   transaction;
//! - `fast_path/litekeep`: `migrate()` on a database that is already up to date.
//!
//! Each iteration starts from a copy of one pristine file, made outside the timed part.
//! `ROWS=100000 cargo bench -p litekeep-migrate --bench rebuild` for a quicker run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use litekeep_migrate::{Options, migrate};
use rusqlite::Connection;

const V1: &str = "CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size INTEGER, mtime REAL, hash BLOB);
CREATE INDEX files_path ON files(path);";
const V2: &str = "CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size TEXT, mtime REAL, hash BLOB);
CREATE INDEX files_path ON files(path);";

const RAW: &str = "BEGIN IMMEDIATE;
ALTER TABLE files RENAME TO temp_files;
CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size TEXT, mtime REAL, hash BLOB);
INSERT INTO files (id, path, size, mtime, hash) SELECT id, path, size, mtime, hash FROM temp_files;
DROP TABLE temp_files;
CREATE INDEX files_path ON files(path);
COMMIT;";

fn rows() -> i64 {
    std::env::var("ROWS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1_000_000)
}

fn pristine(dir: &Path) -> PathBuf {
    let db = dir.join("pristine.db");
    let _ = std::fs::remove_file(&db);
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(V1).unwrap();
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
         INSERT INTO files (id, path, size, mtime, hash)
         SELECT i, printf('src/module_%d/file_%d.rs', i % 1000, i), i * 37 % 100000, i / 7.0, randomblob(16) FROM n",
        [rows()],
    )
    .unwrap();
    db
}

fn fresh_copy(pristine: &Path, dir: &Path) -> PathBuf {
    let db = dir.join("work.db");
    for s in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{s}", db.display()));
    }
    std::fs::copy(pristine, &db).unwrap();
    db
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("lk-bench-rebuild-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pristine = pristine(&dir);
    let mut group = c.benchmark_group("rebuild_1m");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));
    group.bench_function("raw_sql", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let db = fresh_copy(&pristine, &dir);
                let start = Instant::now();
                Connection::open(&db).unwrap().execute_batch(RAW).unwrap();
                total += start.elapsed();
            }
            total
        })
    });
    group.bench_function("litekeep", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let db = fresh_copy(&pristine, &dir);
                let start = Instant::now();
                let report = migrate(&db, V2, &Options::default()).unwrap();
                total += start.elapsed();
                assert!(report.applied);
            }
            total
        })
    });
    group.finish();

    let db = fresh_copy(&pristine, &dir);
    migrate(&db, V2, &Options::default()).unwrap();
    let mut group = c.benchmark_group("fast_path");
    group.bench_function("litekeep", |b| {
        b.iter(|| assert!(migrate(&db, V2, &Options::default()).unwrap().up_to_date()))
    });
    group.bench_function("raw_open", |b| {
        b.iter(|| {
            Connection::open(&db)
                .unwrap()
                .query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
                    r.get::<_, i64>(0)
                })
                .unwrap()
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
