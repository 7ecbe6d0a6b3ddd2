//! End-to-end tests of the schema-file workflow of the `litekeep` command: `diff` between any
//! two of a `.sql` file and a database file, `schema` to print a database's DDL, and `migrate`
//! with `@renamed` annotations and `--keep-undeclared`. Every command is the built binary; each
//! test checks the exit status, the output and that nothing changed where nothing may.

#![cfg(feature = "cli")]

use std::path::Path;

use rusqlite::Connection;

mod cli_support;
use cli_support::*;

const V1: &str =
    "CREATE TABLE user_accounts (id INTEGER PRIMARY KEY, username TEXT NOT NULL, email TEXT);
CREATE INDEX idx_email ON user_accounts (email);
CREATE TABLE audit (at TEXT);
";

const V2: &str = "CREATE TABLE users ( -- @renamed from=user_accounts
  id INTEGER PRIMARY KEY,
  user_name TEXT NOT NULL, -- @renamed from=username
  email TEXT,
  age INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX email_idx /* @renamed from=idx_email */ ON users (email);
";

/// A database at v1 holding two users and one audit row.
fn v1_db(dir: &TempDir) -> std::path::PathBuf {
    let db = dir.join("app.db");
    make_db(
        &db,
        &format!(
            "{V1}INSERT INTO user_accounts VALUES (1, 'ann', 'a@x'), (2, 'bob', NULL);
             INSERT INTO audit VALUES ('now');"
        ),
    );
    db
}

fn fingerprint_of(db: &Path) -> String {
    let conn = Connection::open(db).expect("open");
    litekeep::migrate::Schema::read(&conn)
        .expect("schema")
        .fingerprint()
        .to_string()
}

#[test]
fn diff_from_a_database_to_an_annotated_file_shows_renames_and_changes_nothing() {
    let dir = TempDir::new("diff-db-file");
    let db = v1_db(&dir);
    let v2 = dir.write("v2.sql", V2);
    let before = bytes(&db);
    let out = litekeep(["diff", "--from", s(&db), "--to", s(&v2)]);
    let text = out.success();
    for want in [
        "renames table user_accounts → users (@renamed on schema line 1)",
        "renames column users.username → user_name (@renamed on schema line 3)",
        "renames index idx_email → email_idx (@renamed on schema line 7)",
        "! drops table audit",
        "ALTER TABLE \"user_accounts\" RENAME TO \"users\"",
    ] {
        assert!(text.contains(want), "missing `{want}`\n{out}");
    }
    assert_unchanged(&db, &before);
    // Additive: the table v2 lacks is kept, not dropped.
    let out = litekeep([
        "diff",
        "--from",
        s(&db),
        "--to",
        s(&v2),
        "--keep-undeclared",
    ]);
    let text = out.success();
    assert!(text.contains("= keeps table audit (not declared)"), "{out}");
    assert!(!text.contains("drops"), "{out}");
    assert_unchanged(&db, &before);
}

#[test]
fn diff_between_two_files_and_two_databases_and_json() {
    let dir = TempDir::new("diff-files");
    let v1 = dir.write("v1.sql", V1);
    let v2 = dir.write("v2.sql", V2);
    let out = litekeep(["diff", "--from", s(&v1), "--to", s(&v2), "--json"]);
    let doc: serde_json::Value = serde_json::from_str(out.success()).expect("one JSON document");
    assert_eq!(doc["up_to_date"], false, "{out}");
    assert_eq!(
        doc["data_loss"],
        serde_json::json!(["table audit"]),
        "{out}"
    );
    let renames = doc["renames"].as_array().expect("renames");
    assert_eq!(renames.len(), 3, "{out}");
    assert!(
        renames.iter().any(|r| r["kind"] == "column"
            && r["from"] == "username"
            && r["to"] == "user_name"
            && r["origin"] == "annotation"
            && r["line"] == 3),
        "{out}"
    );
    assert!(
        doc["sql"]
            .as_str()
            .is_some_and(|s| s.contains("DROP TABLE \"audit\""))
    );
    // The same schema on both sides, one a database: nothing to do.
    let db = v1_db(&dir);
    let out = litekeep(["diff", "--from", s(&db), "--to", s(&v1)]);
    assert!(out.success().starts_with("up to date"), "{out}");
    let other = dir.join("other.db");
    make_db(&other, V1);
    let out = litekeep(["diff", "--from", s(&db), "--to", s(&other), "--json"]);
    let doc: serde_json::Value = serde_json::from_str(out.success()).expect("JSON");
    assert_eq!(doc["up_to_date"], true, "{out}");
}

#[test]
fn diff_with_a_hint_and_bad_inputs() {
    let dir = TempDir::new("diff-bad");
    let v1 = dir.write("a.sql", "CREATE TABLE t (a INT);");
    let v2 = dir.write("b.sql", "CREATE TABLE t (b INT);");
    let out = litekeep([
        "diff",
        "--from",
        s(&v1),
        "--to",
        s(&v2),
        "--rename",
        "t.a=t.b",
    ]);
    let text = out.success();
    assert!(
        text.contains("renames column t.a → b (rename hint)"),
        "{out}"
    );
    // A hint contradicting an annotation: refused, naming both.
    let annotated = dir.write("c.sql", "CREATE TABLE t (\n c INT -- @renamed from=a\n);");
    let out = litekeep([
        "diff",
        "--from",
        s(&v1),
        "--to",
        s(&annotated),
        "--rename",
        "t.a=t.d",
    ]);
    let line = out.failure(1);
    assert!(line.contains("t.a=t.d") && line.contains("line 2"), "{out}");
    // A missing file, a binary file, malformed DDL: one line naming the file, exit 1.
    let missing = dir.join("missing.sql");
    let line = litekeep(["diff", "--from", s(&missing), "--to", s(&v2)])
        .failure(1)
        .to_owned();
    assert!(line.contains(s(&missing)), "{line}");
    let binary = dir.join("blob.bin");
    std::fs::write(&binary, [0u8, 159, 146, 150, 1, 2, 3]).expect("write");
    let line = litekeep(["diff", "--from", s(&v1), "--to", s(&binary)])
        .failure(1)
        .to_owned();
    assert!(
        line.contains(s(&binary)) && line.contains("neither"),
        "{line}"
    );
    let bad = dir.write(
        "bad.sql",
        "CREATE TABLE ok (a);\nCREATE TABEL broken (b);\n",
    );
    let line = litekeep(["diff", "--from", s(&v1), "--to", s(&bad)])
        .failure(1)
        .to_owned();
    assert!(
        line.contains(s(&bad)) && line.contains("statement 2") && line.contains("TABEL"),
        "{line}"
    );
    let misplaced = dir.write("m.sql", "-- @renamed from=x\nCREATE TABLE t (a INT);\n");
    let line = litekeep(["diff", "--from", s(&v1), "--to", s(&misplaced)])
        .failure(1)
        .to_owned();
    assert!(
        line.contains(s(&misplaced)) && line.contains("line 1"),
        "{line}"
    );
}

#[test]
fn schema_prints_ddl_that_diffs_empty_and_rebuilds_the_same_schema() {
    let dir = TempDir::new("schema");
    let db = v1_db(&dir);
    make_db(
        &db,
        "CREATE VIEW names AS SELECT username FROM user_accounts;
         CREATE TRIGGER stamp AFTER INSERT ON user_accounts BEGIN INSERT INTO audit VALUES ('x'); END;
         CREATE TABLE odd (a TEXT -- a comment at the end
         );",
    );
    // litekeep's own table is not part of the schema.
    let keep = litekeep::migrate::Options::default().keep_undeclared(true);
    litekeep::migrate::migrate(&db, &(V1.to_owned() + "CREATE TABLE more (z);"), &keep)
        .map(|_| ())
        .unwrap_or_else(|e| panic!("{e}"));
    let before = bytes(&db);
    let out = litekeep(["schema", "--db", s(&db)]);
    let sql = out.success().to_owned();
    assert!(
        !sql.contains("_litekeep_history") && !sql.contains("sqlite_"),
        "{out}"
    );
    assert!(
        sql.find("CREATE TABLE").unwrap_or(usize::MAX) < sql.find("CREATE INDEX").unwrap_or(0),
        "{out}"
    );
    assert_unchanged(&db, &before);
    let file = dir.write("exported.sql", &sql);
    let out = litekeep(["diff", "--from", s(&db), "--to", s(&file)]);
    assert!(out.success().starts_with("up to date"), "{out}");
    let fresh = dir.join("fresh.db");
    litekeep(["migrate", "--db", s(&fresh), "--schema", s(&file)]).success();
    assert_eq!(fingerprint_of(&fresh), fingerprint_of(&db));
    // Bad input: a missing database, a file that is not one.
    let line = litekeep(["schema", "--db", s(&dir.join("nope.db"))])
        .failure(1)
        .to_owned();
    assert!(line.contains("nope.db"), "{line}");
    let notes = dir.write("notes.db", &"not a database at all\n".repeat(10));
    let line = litekeep(["schema", "--db", s(&notes)])
        .failure(1)
        .to_owned();
    assert!(line.contains("notes.db"), "{line}");
}

#[test]
fn migrate_carries_annotated_renames_and_keeps_undeclared_with_the_flag() {
    let dir = TempDir::new("migrate-annotated");
    let db = v1_db(&dir);
    let v2 = dir.write("v2.sql", V2);
    // Strict: the undeclared table would be dropped, so it is refused; nothing changes.
    let before = bytes(&db);
    let line = litekeep(["migrate", "--db", s(&db), "--schema", s(&v2)])
        .failure(1)
        .to_owned();
    assert!(line.contains("drop") && line.contains("audit"), "{line}");
    assert_unchanged(&db, &before);
    let out = litekeep([
        "migrate",
        "--db",
        s(&db),
        "--schema",
        s(&v2),
        "--keep-undeclared",
        "--json",
    ]);
    let doc: serde_json::Value = serde_json::from_str(out.success()).expect("JSON");
    assert_eq!(doc["applied"], true, "{out}");
    assert_eq!(doc["kept"][0]["name"], "audit", "{out}");
    assert_eq!(
        rows(&db, "SELECT id, user_name FROM users ORDER BY id"),
        [(1, "ann".to_owned()), (2, "bob".to_owned())]
    );
    assert_eq!(
        rows(&db, "SELECT rowid, at FROM audit"),
        [(1, "now".to_owned())]
    );
    // The annotations stay in the file and are done now: up to date.
    let out = litekeep([
        "migrate",
        "--db",
        s(&db),
        "--schema",
        s(&v2),
        "--keep-undeclared",
    ]);
    assert!(out.success().contains("up to date"), "{out}");
}
