//! `Database::open` on an up-to-date database against what an application would do by hand:
//! a plain rusqlite open plus the same pragmas. Each iteration drops the handle, so every
//! `open` runs the whole check (shared lock, schema fingerprint, leftover scan) — the price a
//! new process pays once.
//!
//! `cargo bench -p litekeep --bench open`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use litekeep::Database;
use rusqlite::Connection;

const SCHEMA: &str = "
CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, size INTEGER, lang TEXT);
CREATE TABLE symbols (id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL REFERENCES files(id), name TEXT NOT NULL, kind TEXT);
CREATE INDEX symbols_by_name ON symbols(name);
CREATE TABLE embeddings (symbol_id INTEGER PRIMARY KEY REFERENCES symbols(id), version INTEGER NOT NULL, vector BLOB);
";

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("lk-bench-open-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let path = dir.join("index.db");
    drop(
        Database::builder(&path)
            .schema(SCHEMA)
            .open()
            .expect("first open"),
    );
    let mut group = c.benchmark_group("open_up_to_date");
    group.bench_function("litekeep", |b| {
        b.iter(|| {
            let db = Database::builder(&path)
                .schema(SCHEMA)
                .open()
                .expect("open");
            black_box(&db);
        })
    });
    group.bench_function("raw_rusqlite", |b| {
        b.iter(|| {
            let conn = Connection::open(&path).expect("open");
            conn.busy_timeout(std::time::Duration::from_secs(10))
                .expect("busy_timeout");
            conn.execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
            )
            .expect("pragmas");
            black_box(&conn);
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
