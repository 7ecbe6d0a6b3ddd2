//! Rolling deploys through `Database::open`, across real processes (this test binary re-executed
//! as children, as in `tests/multiprocess.rs`).
//!
//! The file is set up at v1 by one v1 open. Then 100 short-lived openers run one after another,
//! v1, v2, v1, v2, …, each doing `Database::builder(p).schema(V).open()`, one write and one read
//! of the columns its version knows, beside a long-running v1 writer and (from the first v2 open
//! on) a long-running v2 writer. It proves that:
//!
//! - the schema reaches v2 at the first v2 open and stays there: an open keeps what the file has
//!   beyond its own schema (a column, an index, a table) instead of refusing it as data loss,
//!   and never migrates back to a schema the file has moved past;
//! - exactly one migration, v1→v2, is recorded in `_litekeep_history`, ending at the final schema;
//! - no acknowledged row or value is lost (writers keep ledgers, openers report their row);
//! - no child of either version ever gets an error (the child's message fails the test);
//! - contraction stays explicit: `litekeep migrate --schema v1.sql` refuses, naming the drop and
//!   changing nothing; with `--allow-data-loss` it removes the v2-only column, index and table
//!   and keeps every row.
//!
//! Children are `litekeep_faults::harness` children (this test binary re-executed with a
//! role); writers stop when their stdin closes.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use litekeep::Database;
use litekeep::migrate::{MigrateError, Schema};
use litekeep_faults::harness::{self, BOUND, Child, Ledger, Scratch};
use rusqlite::Connection;

const VERSION_VAR: &str = "LK_ROLLING_VERSION";
/// An opener's number, or a writer's ledger file.
const ARG_VAR: &str = "LK_ROLLING_ARG";
const OPENS: u64 = 100;

const V1: &str = "
CREATE TABLE notes (id INTEGER PRIMARY KEY, author TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX notes_author ON notes(author);
";
const V2: &str = "
CREATE TABLE notes (id INTEGER PRIMARY KEY, author TEXT NOT NULL, body TEXT NOT NULL,
                    pinned INTEGER NOT NULL DEFAULT 0);
CREATE INDEX notes_author ON notes(author);
CREATE INDEX notes_pinned ON notes(pinned);
CREATE TABLE tags (note_id INTEGER NOT NULL REFERENCES notes(id), tag TEXT NOT NULL);
";

// A row is its line, `id author body pinned tags` (tags comma-separated, `-` for none; no value
// holds a space): what a writer acknowledges, and what reading the row through v2's columns
// gives. Through v1's columns the last two fields read as `0 -`.
const READ_V1: &str = "SELECT id || ' ' || author || ' ' || body || ' 0 -' FROM notes
                       WHERE id = ?1";
const READ_V2: &str = "SELECT id || ' ' || author || ' ' || body || ' ' || pinned || ' ' ||
    (SELECT coalesce(group_concat(tag), '-') FROM tags WHERE note_id = notes.id)
    FROM notes WHERE id = ?1";

/// Reads row `id` through the columns of v1 (`at_v2` false) or v2.
fn read_row(conn: &Connection, at_v2: bool, id: i64) -> rusqlite::Result<String> {
    conn.query_row(if at_v2 { READ_V2 } else { READ_V1 }, [id], |r| r.get(0))
}

/// What reading the acknowledged `line` through the columns of v1 or v2 must give.
fn expected(line: &str, at_v2: bool) -> String {
    let mut fields: Vec<&str> = line.split(' ').collect();
    if !at_v2 {
        fields.splice(3.., ["0", "-"]);
    }
    fields.join(" ")
}

fn id_of(line: &str) -> Option<i64> {
    line.split(' ').next()?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// The child side.

/// NOT A REAL TEST: the entry point of the child processes. Without a role it returns at once.
#[test]
fn child_process_entry() {
    let Some(role) = harness::role() else {
        return;
    };
    match child(&role) {
        Ok(msg) => harness::say(format!("OK {msg}")),
        Err(e) => harness::say(format!("ERROR {}", e.replace('\n', " "))),
    }
}

fn child(role: &str) -> Result<String, String> {
    let db = harness::db();
    let version = std::env::var(VERSION_VAR).map_err(|_| "LK_ROLLING_VERSION not set")?;
    let arg = std::env::var(ARG_VAR).map_err(|_| "LK_ROLLING_ARG not set")?;
    let schema = match version.as_str() {
        "v1" => V1,
        "v2" => V2,
        other => return Err(format!("unknown version {other}")),
    };
    let handle = Database::builder(&db)
        .schema(schema)
        .open()
        .map_err(|e| format!("{version} open: {e}"))?;
    match role {
        "opener" => {
            let n: i64 = arg.parse().map_err(|_| "LK_ROLLING_ARG: not a number")?;
            commit(&handle, &version, &format!("{version}-opener-{n}"), n)
        }
        "writer" => writer(&handle, &version, &arg),
        other => Err(format!("unknown role {other}")),
    }
}

/// Commits one note the way `version` knows it, reads it back through its columns and returns
/// its line: v1 sets author and body; v2 also sets `pinned` and, every third time, tags the note
/// in the same transaction.
fn commit(db: &Database, version: &str, author: &str, n: i64) -> Result<String, String> {
    let at_v2 = version == "v2";
    let body = format!("{version}-body-{n}");
    let pinned = if at_v2 { n % 2 } else { 0 };
    let tag = (at_v2 && n % 3 == 0).then(|| format!("t{n}"));
    let id = db
        .write(|tx| {
            match at_v2 {
                false => tx.execute(
                    "INSERT INTO notes (author, body) VALUES (?1, ?2)",
                    (author, &body),
                ),
                true => tx.execute(
                    "INSERT INTO notes (author, body, pinned) VALUES (?1, ?2, ?3)",
                    (author, &body, pinned),
                ),
            }?;
            let id = tx.last_insert_rowid();
            if let Some(tag) = &tag {
                tx.execute("INSERT INTO tags (note_id, tag) VALUES (?1, ?2)", (id, tag))?;
            }
            Ok(id)
        })
        .map_err(|e| format!("{version} write #{n}: {e}"))?;
    let tags = tag.as_deref().unwrap_or("-");
    let line = format!("{id} {author} {body} {pinned} {tags}");
    let seen = db
        .read(|c| read_row(c, at_v2, id))
        .map_err(|e| format!("{version} read of row {id}: {e}"))?;
    match seen == expected(&line, at_v2) {
        true => Ok(line),
        false => Err(format!("{version} wrote {line:?}, read back {seen:?}")),
    }
}

/// Single-row writes (each read back) until stdin closes; each acknowledged row goes to the
/// ledger. A short pause between writes leaves the 2-core machine to the openers.
fn writer(db: &Database, version: &str, ledger: &str) -> Result<String, String> {
    let mut ledger =
        Ledger::create(Path::new(ledger)).map_err(|e| format!("creating the ledger: {e}"))?;
    let stop = harness::stop_on_stdin_close();
    harness::say("READY");
    let author = format!("{version}-writer-{}", std::process::id());
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let line = commit(db, version, &author, n)?;
        ledger
            .append(&line)
            .map_err(|e| format!("writing the ledger: {e}"))?;
        thread::sleep(Duration::from_millis(2));
    }
    Ok(n.to_string())
}

// ---------------------------------------------------------------------------------------------
// The parent side.

/// A child with `role` at `version` on `db`, given `arg`.
fn spawn(role: &str, version: &str, db: &Path, arg: &str) -> Child {
    Child::build(role)
        .db(db)
        .env(VERSION_VAR, version)
        .env(ARG_VAR, arg)
        .spawn()
}

/// Closes the child's stdin, waits for its final line and its exit. No line within the bound
/// is a failure to report with the others, not a panic.
fn finish(mut kid: Child) -> String {
    kid.close_stdin();
    let last = report(&kid);
    kid.wait();
    last
}

/// The child's next line, or an `ERROR` naming its silence (with its stderr).
fn report(kid: &Child) -> String {
    kid.try_line(BOUND).unwrap_or_else(|| {
        let stderr = kid.stderr_so_far().replace('\n', "\n  ");
        format!("ERROR no report from the child within {BOUND:?}; its stderr:\n  {stderr}")
    })
}

/// A schema's fingerprint, as `_litekeep_history` spells it.
fn fp(schema: Result<Schema, MigrateError>) -> String {
    schema.expect("a schema").fingerprint().to_string()
}

/// The one value `sql` selects.
fn one<T: rusqlite::types::FromSql>(conn: &Connection, sql: &str) -> T {
    conn.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

const HISTORY: &str = "SELECT count(*) FROM _litekeep_history";
const LAST_MIGRATION: &str = "SELECT fingerprint_before || '>' || fingerprint_after
                              FROM _litekeep_history ORDER BY id DESC LIMIT 1";
const COUNTS: &str = "SELECT (SELECT count(*) FROM notes) || ' notes, ' ||
    (SELECT count(*) FROM tags) || ' tags, ' || (SELECT count(*) FROM _litekeep_history)";

/// Every acknowledged row is there with the values it was written with, and nothing else is.
fn check_rows(conn: &Connection, rows: &[String], at_v2: bool) {
    let mut ids = BTreeSet::new();
    for row in rows {
        let id = id_of(row).unwrap_or_else(|| panic!("bad row line {row:?}"));
        assert!(ids.insert(id), "row {id} acknowledged twice");
        let found = read_row(conn, at_v2, id).map_err(|e| e.to_string());
        assert_eq!(found, Ok(expected(row, at_v2)), "acknowledged row {id}");
    }
    let all: i64 = one(conn, "SELECT count(*) FROM notes");
    assert_eq!(all as usize, rows.len(), "rows that nobody acknowledged");
}

#[test]
fn v1_and_v2_open_alternately_100_times_and_nothing_flips_back_or_is_lost() {
    let started = Instant::now();
    let dir = Scratch::new("rolling");
    let db = dir.join("notes.db");
    let (v1, v2) = (fp(Schema::from_sql(V1)), fp(Schema::from_sql(V2)));
    let setup = Database::builder(&db).schema(V1).open();
    drop(setup.expect("the v1 setup open"));
    let conn = Connection::open(&db).expect("opening the file in the parent");
    assert_eq!(fp(Schema::read(&conn)), v1);
    let history_before: i64 = one(&conn, HISTORY);

    let writer = |version: &str| {
        let ledger = dir.join(format!("ledger-{version}"));
        let kid = spawn("writer", version, &db, &ledger.display().to_string());
        assert_eq!(report(&kid), "READY", "the {version} writer");
        (kid, version.to_owned(), ledger)
    };
    let mut writers = vec![writer("v1")];
    let (mut rows, mut failures, mut last_id_at_v1) = (Vec::new(), Vec::new(), 0);
    for i in 0..OPENS {
        let version = if i % 2 == 0 { "v1" } else { "v2" };
        let line = finish(spawn("opener", version, &db, &i.to_string()));
        match line.strip_prefix("OK ") {
            Some(row) => rows.push(row.to_owned()),
            None => failures.push(format!("opener #{i} ({version}): {line}")),
        }
        // v1 until the first v2 open, v2 from then on.
        let (want, name) = if i == 0 { (&v1, "v1") } else { (&v2, "v2") };
        let have = fp(Schema::read(&conn));
        if &have != want {
            failures.push(format!(
                "after opener #{i} ({version}): schema {have}, not {name}"
            ));
        }
        if i == 1 && failures.is_empty() {
            last_id_at_v1 = one(&conn, "SELECT max(id) FROM notes");
            writers.push(writer("v2"));
        }
        if !failures.is_empty() {
            break;
        }
    }
    for (kid, version, ledger) in writers {
        let line = finish(kid);
        if !line.starts_with("OK") {
            failures.push(format!("the {version} writer: {line}"));
        }
        let acked = Ledger::read(&ledger);
        eprintln!("the {version} writer: {} acknowledged writes", acked.len());
        rows.extend(acked);
    }
    let report = failures.join("\n");
    assert!(failures.is_empty(), "rolling deploy failed:\n{report}");
    let rolled = started.elapsed();

    // v2 reached once, by exactly one recorded migration, and nothing lost.
    assert_eq!(fp(Schema::read(&conn)), v2);
    let migrations = one::<i64>(&conn, HISTORY) - history_before;
    assert_eq!(migrations, 1, "migrations recorded during the run");
    assert_eq!(one::<String>(&conn, LAST_MIGRATION), format!("{v1}>{v2}"));
    let late = |r: &String| r.contains(" v1-writer-") && id_of(r) > Some(last_id_at_v1);
    assert!(rows.iter().any(late), "the v1 writer wrote nothing at v2");
    let tagged = rows.iter().filter(|r| !r.ends_with(" -")).count();
    assert!(tagged > 0, "the v2 writer tagged nothing");
    check_rows(&conn, &rows, true);
    let tags: i64 = one(&conn, "SELECT count(*) FROM tags");
    assert_eq!(tags as usize, tagged, "tags that nobody acknowledged");
    assert_eq!(one::<String>(&conn, "PRAGMA integrity_check"), "ok");

    // Contraction is explicit: refused without --allow-data-loss, changing nothing…
    std::fs::write(dir.join("v1.sql"), V1).expect("writing v1.sql");
    let migrate_to_v1 = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_litekeep"))
            .current_dir(&dir)
            .args(["migrate", "--db", "notes.db", "--schema", "v1.sql"])
            .args(extra)
            .output()
            .expect("running litekeep migrate");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stderr)
    };
    let snapshot = |conn: &Connection| (fp(Schema::read(conn)), one::<String>(conn, COUNTS));
    let before = snapshot(&conn);
    let (code, stderr) = migrate_to_v1(&[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("drop"), "{stderr}");
    let after = snapshot(&conn);
    assert_eq!(after, before, "a refused contraction changed the file");

    // …and with it, the v2-only column, index and table go; every row stays.
    let (code, stderr) = migrate_to_v1(&["--allow-data-loss"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(fp(Schema::read(&conn)), v1);
    let gone = |sql: &str| assert_eq!(one::<i64>(&conn, sql), 0, "still there: {sql}");
    gone("SELECT count(*) FROM pragma_table_info('notes') WHERE name = 'pinned'");
    gone("SELECT count(*) FROM sqlite_master WHERE name IN ('notes_pinned', 'tags')");
    check_rows(&conn, &rows, false);
    assert_eq!(one::<String>(&conn, "PRAGMA integrity_check"), "ok");
    eprintln!(
        "{OPENS} alternating opens beside 2 writers in {rolled:?}, {} rows acknowledged, all \
         present; with the contraction {:?}",
        rows.len(),
        started.elapsed()
    );
    drop(conn);
}
