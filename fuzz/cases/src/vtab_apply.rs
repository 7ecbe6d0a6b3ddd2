//! The `vtab_apply` campaign: schemas as search applications write them — a content table
//! `docs` (AUTOINCREMENT or not), an external-content FTS5 index over it (kept up by triggers
//! or not), an FTS5 table `notes` with rows of its own, an R*Tree `boxes`, a view `live` over
//! `docs` with an INSTEAD OF trigger — two of them drawn independently from the same small
//! pools, rows in the first, then `diff` + `apply` from the first to the second.
//!
//! - `Ok`: the schema is the second one; `integrity_check` is ok (it runs FTS5's and R*Tree's
//!   own checks too), and so is FTS5's `'integrity-check'` of the external index against
//!   `docs`; every row of `docs` is there with its values; a search of the external index for
//!   each word of the pool finds exactly the rows of `docs` whose indexed columns hold it; a
//!   search of `notes` (per column both versions have) and the rows of `boxes` (the columns both
//!   have) are what they were; `sqlite_sequence` never goes down for `docs`, and the next row
//!   gets an id above every id it ever gave out; an insert through the view's trigger works
//!   where the second schema has one.
//! - `Err`: the schema, `docs`, the searches, `boxes` and `sqlite_sequence` are as they were;
//!   `MigrateError::Verify` and a failed virtual-table check are violations in themselves.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use arbitrary::Arbitrary;
use litekeep_migrate::{MigrateError, Options, Schema, apply, diff};
use rusqlite::Connection;
use rusqlite::types::Value;

/// The words documents are made of: none of them changes under the porter stemmer, so a search
/// finds the same rows whichever tokenizer a version uses.
const WORDS: [&str; 6] = ["cat", "dog", "fox", "owl", "sun", "sky"];

#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
struct Fts {
    porter: bool,
    /// Which of the table's columns it has (bit per column; none means the first).
    columns: u8,
    prefix: bool,
}

#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
struct Rtree {
    two_dims: bool,
    label: bool,
    int32: bool,
}

#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
struct Version {
    autoincrement: bool,
    /// `docs.body` declared `TEXT NOT NULL` instead of `TEXT` (a rebuild of `docs`).
    body_not_null: bool,
    /// An extra column `docs.lang`.
    lang: bool,
    index: Option<Fts>,
    sync_triggers: bool,
    notes: Option<Fts>,
    boxes: Option<Rtree>,
    view: bool,
    view_trigger: bool,
    view_filter: bool,
}

/// A row to insert before the migration.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
enum Row {
    Doc {
        path: u8,
        body: [u8; 3],
    },
    /// Deletes the doc with the largest id (AUTOINCREMENT must not give it out again).
    DeleteLastDoc,
    Note {
        title: u8,
        body: [u8; 2],
        tags: u8,
    },
    Box {
        id: u8,
        x: u8,
        w: u8,
        y: u8,
        h: u8,
    },
}

/// One case of the campaign.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub struct VtabCase {
    v1: Version,
    v2: Version,
    allow_data_loss: bool,
    /// Last: takes whatever bytes are left.
    rows: Vec<Row>,
}

/// What [`vtab_apply_outcome`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VtabOutcome {
    /// The plan was empty.
    UpToDate,
    /// Applied, and every property held.
    Applied,
    /// Refused or failed, and nothing changed.
    Refused,
}

const NOTE_COLUMNS: [&str; 3] = ["title", "body", "tags"];
const INDEX_COLUMNS: [&str; 2] = ["path", "body"];

fn chosen<'a>(bits: u8, pool: &[&'a str]) -> Vec<&'a str> {
    let cols: Vec<&str> = pool
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, c)| *c)
        .collect();
    if cols.is_empty() { vec![pool[0]] } else { cols }
}

fn fts_options(f: &Fts) -> String {
    let mut o = String::new();
    if f.porter {
        o.push_str(", tokenize='porter'");
    }
    if f.prefix {
        o.push_str(", prefix='2'");
    }
    o
}

impl Version {
    fn index_columns(&self) -> Option<Vec<&'static str>> {
        self.index
            .as_ref()
            .map(|f| chosen(f.columns, &INDEX_COLUMNS))
    }

    fn note_columns(&self) -> Option<Vec<&'static str>> {
        self.notes
            .as_ref()
            .map(|f| chosen(f.columns, &NOTE_COLUMNS))
    }

    fn box_columns(&self) -> Option<Vec<&'static str>> {
        self.boxes.as_ref().map(|b| {
            let mut c = vec!["id", "minx", "maxx"];
            if b.two_dims {
                c.extend(["miny", "maxy"]);
            }
            if b.label {
                c.push("+label");
            }
            c
        })
    }

    fn sql(&self) -> String {
        let mut s = String::new();
        let key = if self.autoincrement {
            "INTEGER PRIMARY KEY AUTOINCREMENT"
        } else {
            "INTEGER PRIMARY KEY"
        };
        let body = if self.body_not_null {
            "TEXT NOT NULL DEFAULT ''"
        } else {
            "TEXT"
        };
        let lang = if self.lang { ", lang TEXT" } else { "" };
        let _ = writeln!(
            s,
            "CREATE TABLE docs (id {key}, path TEXT NOT NULL, body {body}{lang});"
        );
        if let (Some(f), Some(cols)) = (&self.index, self.index_columns()) {
            let _ = writeln!(
                s,
                "CREATE VIRTUAL TABLE docs_fts USING fts5({}, content='docs', content_rowid='id'{});",
                cols.join(", "),
                fts_options(f)
            );
            if self.sync_triggers {
                let new: Vec<String> = cols.iter().map(|c| format!("new.{c}")).collect();
                let old: Vec<String> = cols.iter().map(|c| format!("old.{c}")).collect();
                let list = cols.join(", ");
                let _ = writeln!(
                    s,
                    "CREATE TRIGGER docs_ai AFTER INSERT ON docs BEGIN INSERT INTO docs_fts (rowid, {list}) VALUES (new.id, {}); END;",
                    new.join(", ")
                );
                let _ = writeln!(
                    s,
                    "CREATE TRIGGER docs_ad AFTER DELETE ON docs BEGIN INSERT INTO docs_fts (docs_fts, rowid, {list}) VALUES ('delete', old.id, {}); END;",
                    old.join(", ")
                );
            }
        }
        if let (Some(f), Some(cols)) = (&self.notes, self.note_columns()) {
            let _ = writeln!(
                s,
                "CREATE VIRTUAL TABLE notes USING fts5({}{});",
                cols.join(", "),
                fts_options(f)
            );
        }
        if let (Some(b), Some(cols)) = (&self.boxes, self.box_columns()) {
            let module = if b.int32 { "rtree_i32" } else { "rtree" };
            let _ = writeln!(
                s,
                "CREATE VIRTUAL TABLE boxes USING {module}({});",
                cols.join(", ")
            );
        }
        if self.view {
            let filter = if self.view_filter {
                " WHERE id > 0"
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "CREATE VIEW live AS SELECT id, path, body FROM docs{filter};"
            );
            if self.view_trigger {
                let _ = writeln!(
                    s,
                    "CREATE TRIGGER live_insert INSTEAD OF INSERT ON live BEGIN INSERT INTO docs (path, body) VALUES (new.path, new.body); END;"
                );
            }
        }
        s
    }
}

fn word(i: u8) -> &'static str {
    WORDS[usize::from(i) % WORDS.len()]
}

/// Everything the properties compare before and after.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    fingerprint: u64,
    docs: Vec<Vec<Value>>,
    sequence: Option<i64>,
    /// (column, word) → rowids, for `notes`.
    notes: Vec<(String, String, Vec<i64>)>,
    /// (word) → rowids of the external index.
    index: Vec<(String, Vec<i64>)>,
    boxes: Vec<Vec<Value>>,
}

fn rows(conn: &Connection, sql: &str) -> Vec<Vec<Value>> {
    let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let n = stmt.column_count();
    stmt.query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .map(|r| r.unwrap_or_else(|e| panic!("{sql}: {e}")))
        .collect()
}

fn ids(conn: &Connection, sql: &str) -> Vec<i64> {
    rows(conn, sql)
        .into_iter()
        .map(|r| match r[0] {
            Value::Integer(i) => i,
            ref other => panic!("{sql}: {other:?}"),
        })
        .collect()
}

fn sequence(conn: &Connection) -> Option<i64> {
    conn.query_row(
        "SELECT seq FROM sqlite_sequence WHERE name = 'docs'",
        [],
        |r| r.get(0),
    )
    .ok()
}

fn see(conn: &Connection, v: &Version, both: &Version) -> Seen {
    let fingerprint = Schema::read(conn).expect("read schema").fingerprint().0;
    let docs = rows(
        conn,
        "SELECT id, path, CAST(body AS TEXT) FROM docs ORDER BY id",
    );
    let mut notes = Vec::new();
    if let (Some(a), Some(b)) = (v.note_columns(), both.note_columns()) {
        for col in a.iter().filter(|c| b.contains(c)) {
            for w in WORDS {
                let found = ids(
                    conn,
                    &format!(
                        "SELECT rowid FROM notes WHERE notes MATCH '{col} : {w}' ORDER BY rowid"
                    ),
                );
                notes.push((col.to_string(), w.to_string(), found));
            }
        }
    }
    let mut index = Vec::new();
    if v.index.is_some() {
        for w in WORDS {
            let found = ids(
                conn,
                &format!("SELECT rowid FROM docs_fts WHERE docs_fts MATCH '{w}' ORDER BY rowid"),
            );
            index.push((w.to_string(), found));
        }
    }
    let boxes = match (v.box_columns(), both.box_columns()) {
        (Some(a), Some(b)) => {
            // Coordinates as numbers: an rtree_i32 stores integers, an rtree reals.
            let shared: Vec<String> = a
                .iter()
                .filter(|c| b.contains(c))
                .map(|c| match *c {
                    "+label" => "label".to_owned(),
                    "id" => "id".to_owned(),
                    coord => format!("CAST({coord} AS REAL)"),
                })
                .collect();
            rows(
                conn,
                &format!("SELECT {} FROM boxes ORDER BY id", shared.join(", ")),
            )
        }
        _ => Vec::new(),
    };
    Seen {
        fingerprint,
        docs,
        sequence: sequence(conn),
        notes,
        index,
        boxes,
    }
}

/// The rows of `docs` whose `columns` hold `w` as a word: what a search must find.
fn truth(conn: &Connection, columns: &[&str], w: &str) -> Vec<i64> {
    let holds: Vec<String> = columns
        .iter()
        .map(|c| format!("(' ' || coalesce({c}, '') || ' ') LIKE '% {w} %'"))
        .collect();
    ids(
        conn,
        &format!(
            "SELECT id FROM docs WHERE {} ORDER BY id",
            holds.join(" OR ")
        ),
    )
}

fn fill(conn: &Connection, rows: &[Row]) {
    for row in rows.iter().take(64) {
        // Rows SQLite refuses (an R*Tree id taken twice, say) are skipped.
        let _ = match row {
            Row::Doc { path, body } => conn.execute(
                "INSERT INTO docs (path, body) VALUES (?1, ?2)",
                (
                    format!("src {}", word(*path)),
                    body.iter().map(|b| word(*b)).collect::<Vec<_>>().join(" "),
                ),
            ),
            Row::DeleteLastDoc => {
                conn.execute("DELETE FROM docs WHERE id = (SELECT max(id) FROM docs)", [])
            }
            Row::Note { title, body, tags } => insert_note(
                conn,
                word(*title),
                &format!("{} {}", word(body[0]), word(body[1])),
                word(*tags),
            ),
            Row::Box { id, x, w, y, h } => insert_box(conn, *id, *x, *w, *y, *h),
        };
    }
}

fn columns_of(conn: &Connection, table: &str) -> Vec<String> {
    rows(
        conn,
        &format!("SELECT name FROM pragma_table_xinfo('{table}') WHERE hidden = 0"),
    )
    .into_iter()
    .map(|r| match &r[0] {
        Value::Text(s) => s.clone(),
        other => panic!("{other:?}"),
    })
    .collect()
}

fn insert_note(conn: &Connection, title: &str, body: &str, tags: &str) -> rusqlite::Result<usize> {
    let cols = columns_of(conn, "notes");
    if cols.is_empty() {
        return Ok(0);
    }
    let values: Vec<&str> = cols
        .iter()
        .map(|c| match c.as_str() {
            "title" => title,
            "body" => body,
            _ => tags,
        })
        .collect();
    let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    conn.execute(
        &format!(
            "INSERT INTO notes ({}) VALUES ({})",
            cols.join(", "),
            marks.join(", ")
        ),
        rusqlite::params_from_iter(values),
    )
}

fn insert_box(conn: &Connection, id: u8, x: u8, w: u8, y: u8, h: u8) -> rusqlite::Result<usize> {
    let cols = columns_of(conn, "boxes");
    if cols.is_empty() {
        return Ok(0);
    }
    let values: Vec<Value> = cols
        .iter()
        .map(|c| match c.as_str() {
            "id" => Value::Integer(i64::from(id % 32)),
            "minx" => Value::Integer(i64::from(x)),
            "maxx" => Value::Integer(i64::from(x) + i64::from(w % 16)),
            "miny" => Value::Integer(i64::from(y)),
            "maxy" => Value::Integer(i64::from(y) + i64::from(h % 16)),
            _ => Value::Text(word(x).to_owned()),
        })
        .collect();
    let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    conn.execute(
        &format!(
            "INSERT INTO boxes ({}) VALUES ({})",
            cols.join(", "),
            marks.join(", ")
        ),
        rusqlite::params_from_iter(values),
    )
}

/// Runs the case and checks its properties; panics on a violation.
pub fn vtab_apply(case: &VtabCase) {
    vtab_apply_outcome(case);
}

/// [`vtab_apply`], returning what happened.
pub fn vtab_apply_outcome(case: &VtabCase) -> VtabOutcome {
    let (v1, v2) = (&case.v1, &case.v2);
    let (sql1, sql2) = (v1.sql(), v2.sql());
    let ctx = |what: &str| format!("{what}\n-- v1:\n{sql1}\n-- v2:\n{sql2}");
    let mut conn = Connection::open_in_memory().expect("in-memory database");
    conn.execute_batch(&sql1)
        .unwrap_or_else(|e| panic!("{}: {e}", ctx("v1")));
    fill(&conn, &case.rows);
    if v1.index.is_some() {
        // Without the triggers the index lags behind `docs`; make it agree, so that searches
        // have one truth.
        conn.execute("INSERT INTO docs_fts (docs_fts) VALUES ('rebuild')", [])
            .unwrap_or_else(|e| panic!("{}: {e}", ctx("rebuild")));
    }
    let before = see(&conn, v1, v2);
    let max_id = ids(&conn, "SELECT coalesce(max(id), 0) FROM docs")[0];
    let options = Options::default().allow_data_loss(case.allow_data_loss);
    let current = Schema::read(&conn).expect("read v1");
    let desired = Schema::from_sql(&sql2).unwrap_or_else(|e| panic!("{}: {e}", ctx("parse v2")));
    let plan =
        diff(&current, &desired, &options).unwrap_or_else(|e| panic!("{}: {e}", ctx("diff")));
    if plan.is_empty() {
        assert_eq!(
            current.fingerprint(),
            desired.fingerprint(),
            "{}",
            ctx("an empty plan for different schemas")
        );
        return VtabOutcome::UpToDate;
    }
    let planned = plan.to_string();
    match apply(&mut conn, plan, &options) {
        Ok(_) => {
            check_applied(
                &conn,
                case,
                &before,
                max_id,
                &ctx(&format!("after\n{planned}")),
            );
            VtabOutcome::Applied
        }
        Err(e @ (MigrateError::Verify { .. } | MigrateError::VirtualTableCheck { .. })) => {
            panic!("{}: {e}", ctx(&planned))
        }
        Err(e) => {
            let after = see(&conn, v1, v2);
            assert_eq!(
                before,
                after,
                "{}",
                ctx(&format!("refused ({e}) but changed\n{planned}"))
            );
            VtabOutcome::Refused
        }
    }
}

fn check_applied(conn: &Connection, case: &VtabCase, before: &Seen, max_id: i64, ctx: &str) {
    let (v1, v2) = (&case.v1, &case.v2);
    let after = see(conn, v2, v1);
    let want = Schema::from_sql(&v2.sql()).expect("v2").fingerprint().0;
    assert_eq!(after.fingerprint, want, "{ctx}: not the desired schema");
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(ok, "ok", "{ctx}");
    assert_eq!(after.docs, before.docs, "{ctx}: rows of docs");
    if let Some(cols) = v2.index_columns() {
        conn.execute(
            "INSERT INTO docs_fts (docs_fts, rank) VALUES ('integrity-check', 1)",
            [],
        )
        .unwrap_or_else(|e| panic!("{ctx}: FTS5 index against docs: {e}"));
        for (w, found) in &after.index {
            assert_eq!(*found, truth(conn, &cols, w), "{ctx}: search for {w}");
        }
    }
    assert_eq!(after.notes, before.notes, "{ctx}: searches of notes");
    assert_eq!(after.boxes, before.boxes, "{ctx}: rows of boxes");
    if v2.autoincrement {
        if v1.autoincrement {
            assert!(
                after.sequence >= before.sequence,
                "{ctx}: sqlite_sequence went down: {:?} → {:?}",
                before.sequence,
                after.sequence
            );
        }
        let ever = if v1.autoincrement {
            before.sequence.unwrap_or(0).max(max_id)
        } else {
            max_id
        };
        conn.execute("INSERT INTO docs (path, body) VALUES ('new', 'cat')", [])
            .unwrap_or_else(|e| panic!("{ctx}: insert: {e}"));
        let id = conn.last_insert_rowid();
        assert!(
            id > ever,
            "{ctx}: id {id} given out again (ids up to {ever} were)"
        );
    }
    if v2.view && v2.view_trigger {
        conn.execute(
            "INSERT INTO live (path, body) VALUES ('via view', 'dog')",
            [],
        )
        .unwrap_or_else(|e| panic!("{ctx}: insert through the view's trigger: {e}"));
    }
    let names: BTreeSet<String> = rows(
        conn,
        "SELECT name FROM main.sqlite_schema WHERE name LIKE 'temp\\_%' ESCAPE '\\' \
         UNION ALL SELECT name FROM temp.sqlite_schema WHERE name LIKE '\\_litekeep\\_copy%' ESCAPE '\\'",
    )
        .into_iter()
        .map(|r| format!("{r:?}"))
        .collect();
    assert!(names.is_empty(), "{ctx}: left behind {names:?}");
}
