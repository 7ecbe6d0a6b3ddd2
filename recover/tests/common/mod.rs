//! Crash states made the way real tools make them, and the checks every repaired state must
//! pass. Shared by the integration tests of this crate.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use litekeep_faults::harness;
use litekeep_recover::parse_temp_name;
use rusqlite::Connection;

/// The rest of the schema around `files`: a child table with a foreign key, an audit trigger, a
/// view and an index — everything a rebuild must keep pointing at `files` — and an FTS5 table
/// whose name, and its shadow tables' (`temp_search_data`, …), look like litekeep's own
/// leftovers: they must never be taken for one.
pub const SCHEMA: &str = "
CREATE VIRTUAL TABLE temp_search USING fts5(path, body);
CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size INTEGER);
CREATE INDEX files_path ON files(path);
CREATE TABLE symbols (id INTEGER PRIMARY KEY, file_id INTEGER REFERENCES files(id), name TEXT);
CREATE TABLE audit (file_id INTEGER);
CREATE TRIGGER files_audit AFTER UPDATE ON files BEGIN INSERT INTO audit VALUES (new.id); END;
CREATE VIEW big AS SELECT path FROM files WHERE size > 10;
";

/// The new definition of `files` (under `name`): `size` changes type and `lang` is added.
pub fn new_files(name: &str) -> String {
    format!(
        "CREATE TABLE \"{name}\" (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size TEXT, lang TEXT)"
    )
}

/// The order of a tool's rebuild.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// litekeep and seed 001: rename the original to the temporary name first.
    RenameFirst,
    /// Everyone else: fill a new temporary table, drop the original, rename.
    CreateFirst,
}

/// One way of rebuilding `files`: the temporary name, the order, and `legacy_alter_table`.
#[derive(Debug, Clone)]
pub struct Rebuild {
    pub temp: String,
    pub order: Order,
    pub legacy: bool,
}

/// The rebuilds the tests crash: every tool's naming, both orders, both rename modes.
pub fn rebuilds() -> Vec<Rebuild> {
    let mut all = vec![
        Rebuild {
            temp: "temp_files".into(),
            order: Order::RenameFirst,
            legacy: true,
        },
        Rebuild {
            temp: "temp_files".into(),
            order: Order::RenameFirst,
            legacy: false,
        },
    ];
    for temp in [
        "new__files",
        "files__new",
        "_alembic_tmp_files",
        "files_new_0123456789ab",
        "__new_files",
        "new_files",
    ] {
        for legacy in [true, false] {
            all.push(Rebuild {
                temp: temp.into(),
                order: Order::CreateFirst,
                legacy,
            });
        }
    }
    all
}

impl Rebuild {
    /// The pragmas the tool sets, then its statements, each meant to run in autocommit mode.
    pub fn statements(&self) -> (String, Vec<String>) {
        let pragmas = format!(
            "PRAGMA foreign_keys = OFF; PRAGMA legacy_alter_table = {};",
            u8::from(self.legacy)
        );
        let t = &self.temp;
        let copy = "(id, path, size) SELECT id, path, size";
        let tail = [
            "CREATE INDEX IF NOT EXISTS files_path ON files(path)".to_owned(),
            "CREATE TRIGGER IF NOT EXISTS files_audit AFTER UPDATE ON files BEGIN INSERT INTO audit VALUES (new.id); END"
                .to_owned(),
        ];
        let body = match self.order {
            Order::RenameFirst => vec![
                format!("ALTER TABLE files RENAME TO \"{t}\""),
                new_files("files"),
                format!("INSERT INTO files {copy} FROM \"{t}\""),
                format!("DROP TABLE \"{t}\""),
            ],
            Order::CreateFirst => vec![
                new_files(t),
                format!("INSERT INTO \"{t}\" {copy} FROM files"),
                "DROP TABLE files".to_owned(),
                format!("ALTER TABLE \"{t}\" RENAME TO files"),
            ],
        };
        (pragmas, body.into_iter().chain(tail).collect())
    }
}

/// Creates the database at `path` with `rows` files (and a symbol for every fifth).
pub fn fresh(path: &Path, rows: i64) -> Expected {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    conn.execute_batch(&format!(
        "BEGIN;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
         INSERT INTO files (id, path, size) SELECT i, 'src/' || i || '.rs', i % 23 FROM n;
         INSERT INTO symbols (file_id, name) SELECT id, 'sym' || id FROM files WHERE id % 5 = 0;
         INSERT INTO temp_search (rowid, path, body) SELECT id, path, 'searching' FROM files;
         COMMIT;"
    ))
    .unwrap();
    expected(&conn)
}

/// What a repaired database must still hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// id → (path, size as text).
    pub files: BTreeMap<i64, (String, Option<String>)>,
    pub symbols: i64,
    /// Rows of the FTS5 table `temp_search`.
    pub search: i64,
}

pub fn expected(conn: &Connection) -> Expected {
    Expected {
        files: file_rows(conn, "files"),
        symbols: conn
            .query_row("SELECT count(*) FROM symbols", [], |r| r.get(0))
            .unwrap(),
        search: conn
            .query_row("SELECT count(*) FROM temp_search", [], |r| r.get(0))
            .unwrap(),
    }
}

pub fn file_rows(conn: &Connection, table: &str) -> BTreeMap<i64, (String, Option<String>)> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT id, path, CAST(size AS TEXT) FROM \"{table}\""
        ))
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Column names and declared types of a table.
pub fn columns(conn: &Connection, table: &str) -> Vec<(String, String)> {
    let mut stmt = conn
        .prepare("SELECT name, type FROM pragma_table_info(?1) ORDER BY cid")
        .unwrap();
    stmt.query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The checks every repaired state must pass; `what` names the state in failure messages.
pub fn verify(path: &Path, want: &Expected, what: &str) {
    let conn = Connection::open(path).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok", "{what}: integrity");
    // Virtual tables and their shadow tables are the module's, whatever their names.
    let tables: Vec<String> = harness::column(
        &conn,
        "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table'",
    )
    .unwrap();
    let leftovers: Vec<&String> = tables
        .iter()
        .filter(|t| parse_temp_name(t).is_some() || t.starts_with("_litekeep_recover"))
        .collect();
    assert!(leftovers.is_empty(), "{what}: leftovers {leftovers:?}");
    let cols = columns(&conn, "files");
    let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
    let old = names == ["id", "path", "size"] && cols[2].1 == "INTEGER";
    let new = names == ["id", "path", "size", "lang"] && cols[2].1 == "TEXT";
    assert!(old || new, "{what}: files is neither old nor new: {cols:?}");
    assert!(
        file_rows(&conn, "files") == want.files,
        "{what}: rows of files differ"
    );
    let symbols: i64 = conn
        .query_row("SELECT count(*) FROM symbols", [], |r| r.get(0))
        .unwrap();
    assert_eq!(symbols, want.symbols, "{what}: symbols");
    let found: i64 = conn
        .query_row(
            "SELECT count(*) FROM temp_search WHERE temp_search MATCH 'search*'",
            [],
            |r| r.get(0),
        )
        .unwrap_or_else(|e| panic!("{what}: FTS5 table temp_search: {e}"));
    assert_eq!(found, want.search, "{what}: search results of temp_search");
    conn.execute(
        "INSERT INTO temp_search (temp_search) VALUES ('integrity-check')",
        [],
    )
    .unwrap_or_else(|e| panic!("{what}: FTS5 integrity-check of temp_search: {e}"));
    let target: String = conn
        .query_row(
            "SELECT \"table\" FROM pragma_foreign_key_list('symbols')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        target.eq_ignore_ascii_case("files"),
        "{what}: symbols' foreign key points at {target}"
    );
    let violations: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(violations, 0, "{what}: foreign key violations");
    let big: i64 = conn
        .query_row("SELECT count(*) FROM big", [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{what}: view big broken: {e}"));
    assert!(big > 0, "{what}: view big empty");
    let triggers: Vec<String> = harness::column(
        &conn,
        "SELECT tbl_name FROM sqlite_schema WHERE type = 'trigger'",
    )
    .unwrap();
    assert!(
        triggers.iter().all(|t| t.eq_ignore_ascii_case("files")),
        "{what}: a trigger is on {triggers:?}"
    );
}

/// A scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lk-recover-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
