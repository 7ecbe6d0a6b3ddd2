//! `litekeep::duckdb_file` (feature `duckdb`), against the prebuilt library `scripts/duckdb-env`
//! prepares, with real processes (this test binary re-executed as children):
//!
//! - the library loaded is the version the bindings were made for, and `DUCKDB_BUILT_FOR`
//!   agrees with the `duckdb` crate in Cargo.lock;
//! - the `litekeep` binary finds the library through its rpath, with no `LD_LIBRARY_PATH`;
//! - seed 004's limit, named: while one process has the file open, another gets
//!   `DuckDbError::Locked` naming the file and the holder's PID;
//! - a writer SIGKILLed at a random moment: its lock is gone with it, the next process opens the
//!   file, and every insert it acknowledged is there exactly once;
//! - a file that is not a DuckDB database is refused with an error naming it, and left as it
//!   was.
//!
//! Built only with `--features duckdb` (`required-features` in Cargo.toml).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use litekeep::duckdb_file::{self, DUCKDB_BUILT_FOR, DuckDbError};
use litekeep_faults::harness::{self, Child, Ledger, Scratch};

const LEDGER_VAR: &str = "LK_DUCKDB_LEDGER";

/// NOT A REAL TEST: the entry point of the child processes. Without a role it returns at once.
#[test]
fn child_process_entry() {
    let Some(role) = harness::role() else {
        return;
    };
    let conn = duckdb_file::open(harness::db()).expect("open");
    conn.execute_batch("CREATE TABLE IF NOT EXISTS docs (id BIGINT PRIMARY KEY, body VARCHAR)")
        .expect("create");
    match role.as_str() {
        // Holds the file open until its stdin closes.
        "hold" => {
            harness::say("READY");
            harness::until_stdin_closes();
        }
        // Inserts one row per transaction and notes each in the ledger once it returned, until
        // killed.
        "index" => {
            let mut ledger = Ledger::create(&harness::env_path(LEDGER_VAR)).expect("ledger");
            harness::say("READY");
            for id in 0i64.. {
                conn.execute(
                    "INSERT INTO docs VALUES (?, ?)",
                    litekeep::duckdb::params![id, format!("document {id}")],
                )
                .expect("insert");
                ledger.append(id).expect("ledger");
            }
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn the_library_is_the_version_built_for() {
    assert_eq!(
        duckdb_file::check_library_version().unwrap(),
        DUCKDB_BUILT_FOR
    );
    assert_eq!(duckdb_file::library_version(), DUCKDB_BUILT_FOR);
}

/// The crate's version encodes DuckDB's: 1.MMmmpp.x is DuckDB MM.mm.pp.
#[test]
fn built_for_agrees_with_the_duckdb_crate_in_cargo_lock() {
    let lock =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock")).unwrap();
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("\nname = \"duckdb\"\n"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"'))
        .expect("duckdb in Cargo.lock");
    let encoded: u32 = version.split('.').nth(1).unwrap().parse().unwrap();
    let decoded = format!(
        "v{}.{}.{}",
        encoded / 10_000,
        encoded / 100 % 100,
        encoded % 100
    );
    assert_eq!(decoded, DUCKDB_BUILT_FOR, "duckdb crate {version}");
}

#[test]
fn the_cli_finds_the_library_through_its_rpath() {
    let out = Command::new(env!("CARGO_BIN_EXE_litekeep"))
        .args(["engines", "--json"])
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "litekeep engines failed: {stderr}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let duck = doc["engines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["engine"] == "duckdb")
        .expect("a duckdb entry");
    assert_eq!(duck["version"], DUCKDB_BUILT_FOR);
    // The library it loaded is the one it was linked against, not one the loader found
    // elsewhere.
    let lib_dir = std::env::var("DUCKDB_LIB_DIR").expect("DUCKDB_LIB_DIR, as for the build");
    let expected = Path::new(&lib_dir)
        .join("libduckdb.so")
        .canonicalize()
        .unwrap();
    let loaded = duck["library"].as_str().unwrap();
    assert_eq!(Path::new(loaded).canonicalize().unwrap(), expected);
}

#[test]
fn a_second_process_is_refused_naming_the_file_and_the_holder() {
    let dir = Scratch::new("duckdb-locked");
    let db = dir.join("index.duckdb");
    let holder = Child::build("hold").db(&db).spawn();
    holder.expect_line("READY");

    let err = duckdb_file::open(&db).unwrap_err();
    let DuckDbError::Locked { path, message } = &err else {
        panic!("expected Locked, got {err:?}");
    };
    assert_eq!(path, &db);
    assert!(
        message.contains(&format!("(PID {})", holder.pid())),
        "{message}"
    );
    let text = err.to_string();
    assert!(text.contains(&db.display().to_string()), "{text}");
    assert!(text.contains("stop that process"), "{text}");

    holder.wait().assert_success();
    // One at a time works.
    duckdb_file::open(&db).unwrap();
}

#[test]
fn a_killed_writers_acknowledged_inserts_are_all_there_once() {
    let dir = Scratch::new("duckdb-kill");
    let db = dir.join("index.duckdb");
    let ledger = dir.join("ledger");
    let mut rng = harness::rng("duckdb_kill");
    for round in 0..3 {
        let writer = Child::build("index")
            .db(&db)
            .env(LEDGER_VAR, &ledger)
            .spawn();
        writer.expect_line("READY");
        let exit = writer.kill_at_random(&mut rng, Duration::from_millis(400));
        assert!(exit.killed(), "round {round}: {}", exit.describe());

        // The kernel freed DuckDB's lock with the process: the next open succeeds at once.
        let conn = duckdb_file::open(&db).unwrap();
        let acknowledged = Ledger::read_ids(&ledger);
        let missing: i64 = {
            let mut stmt = conn
                .prepare(
                    "SELECT count(*) FROM UNNEST(?::BIGINT[]) AS a(id) ANTI JOIN docs USING (id)",
                )
                .unwrap();
            let list = format!(
                "[{}]",
                acknowledged
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            );
            stmt.query_row([list], |r| r.get(0)).unwrap()
        };
        assert_eq!(missing, 0, "round {round}: acknowledged inserts lost");
        let (rows, distinct): (i64, i64) = conn
            .query_row("SELECT count(*), count(DISTINCT id) FROM docs", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(rows, distinct, "round {round}: an id twice");
        // At most the one insert in flight at the kill is there without its ledger line.
        let acked = i64::try_from(acknowledged.len()).unwrap();
        assert!(
            rows == acked || rows == acked + 1,
            "round {round}: {rows} rows, {acked} acknowledged"
        );
        conn.execute("DELETE FROM docs", []).unwrap();
        drop(conn);
    }
}

#[test]
fn a_file_that_is_not_duckdb_is_refused_naming_it_and_left_as_it_was() {
    let dir = Scratch::new("duckdb-garbage");
    let db = dir.join("notes.duckdb");
    let bytes = b"these are someone's notes, not a database\n".repeat(200);
    std::fs::write(&db, &bytes).unwrap();

    let err = duckdb_file::open(&db).unwrap_err();
    assert!(matches!(err, DuckDbError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains(&db.display().to_string()), "{err}");
    assert_eq!(std::fs::read(&db).unwrap(), bytes);
}
