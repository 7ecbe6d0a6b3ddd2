//! Schemas as real applications write them: full-text search (FTS5, FTS4) kept up by triggers,
//! R*Tree, AUTOINCREMENT, triggers on views — from an empty file, across a change of the content
//! table and of the virtual table itself, with rows: search results, R*Tree query results,
//! sequences and `integrity_check` checked after each migration.

mod common;

use std::path::Path;

use common::{check_healthy, make_db, refused, rows, temp_db};
use litekeep_migrate::{
    MigrateError, Options, Schema, StepKind, Warning, diff, export_sql, migrate,
};
use rusqlite::Connection;
use rusqlite::types::Value;

/// A code indexer's schema: files, an external-content FTS5 index over them kept up by
/// triggers, and a table of symbols.
const INDEXER: &str = "
CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, body TEXT);
CREATE VIRTUAL TABLE files_fts USING fts5(path, body, content='files', content_rowid='id');
CREATE TRIGGER files_ai AFTER INSERT ON files BEGIN
  INSERT INTO files_fts (rowid, path, body) VALUES (new.id, new.path, new.body);
END;
CREATE TRIGGER files_ad AFTER DELETE ON files BEGIN
  INSERT INTO files_fts (files_fts, rowid, path, body) VALUES ('delete', old.id, old.path, old.body);
END;
CREATE TRIGGER files_au AFTER UPDATE ON files BEGIN
  INSERT INTO files_fts (files_fts, rowid, path, body) VALUES ('delete', old.id, old.path, old.body);
  INSERT INTO files_fts (rowid, path, body) VALUES (new.id, new.path, new.body);
END;
";

/// Rows for [`INDEXER`]: 200 files, every tenth mentions `needle`.
const FILL: &str = "
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
INSERT INTO files (id, path, body)
  SELECT i, 'src/f' || i || '.rs', CASE WHEN i % 10 = 0 THEN 'fn needle() {}' ELSE 'fn hay' || i || '() {}' END FROM n;
";

fn ids(db: &Path, query: &str) -> Vec<i64> {
    rows(db, query)
        .into_iter()
        .map(|r| match r[0] {
            Value::Integer(i) => i,
            ref other => panic!("{query}: {other:?}"),
        })
        .collect()
}

/// FTS5's own check of `table`, against its content too (rank 1).
fn fts5_ok(db: &Path, table: &str) {
    let conn = Connection::open(db).unwrap();
    conn.execute(
        &format!("INSERT INTO {table} ({table}, rank) VALUES ('integrity-check', 1)"),
        [],
    )
    .unwrap_or_else(|e| panic!("{table} integrity-check: {e}"));
}

fn needles(db: &Path) -> Vec<i64> {
    ids(
        db,
        "SELECT rowid FROM files_fts WHERE files_fts MATCH 'needle' ORDER BY rowid",
    )
}

/// A migration to `desired` is refused as data loss, file unchanged, then applied when allowed.
fn lossy(db: &Path, desired: &str) {
    let err = refused(db, desired, &Options::default());
    assert!(matches!(err, MigrateError::DataLoss { .. }), "{err}");
    migrate(db, desired, &Options::default().allow_data_loss(true)).unwrap();
}

fn user_tables(db: &Path) -> Vec<String> {
    common::names(db, "table")
}

#[test]
fn bundled_sqlite_has_fts5_fts4_and_rtree() {
    let conn = Connection::open_in_memory().unwrap();
    let options: Vec<String> = conn
        .prepare("PRAGMA compile_options")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for want in ["ENABLE_FTS5", "ENABLE_FTS3", "ENABLE_RTREE"] {
        assert!(
            options.iter().any(|o| o == want),
            "{want} missing: {options:?}"
        );
    }
}

#[test]
fn an_fts5_indexer_schema_is_created_on_an_empty_file_and_then_up_to_date() {
    let db = temp_db("indexer_from_empty");
    let report = migrate(&db, INDEXER, &Options::default()).unwrap();
    assert!(report.applied, "{}", report.plan);
    // The shadow tables are the module's: created once, by CREATE VIRTUAL TABLE.
    assert!(
        report
            .plan
            .steps
            .iter()
            .all(|s| !s.target.starts_with("files_fts_")),
        "{}",
        report.plan
    );
    assert!(
        migrate(&db, INDEXER, &Options::default())
            .unwrap()
            .up_to_date()
    );
    Connection::open(&db).unwrap().execute_batch(FILL).unwrap();
    assert_eq!(needles(&db), (1..=20).map(|i| i * 10).collect::<Vec<_>>());
    check_healthy(&db);
    fts5_ok(&db, "files_fts");
    // The exported schema is what the user wrote: no shadow table.
    let conn = Connection::open(&db).unwrap();
    let sql = export_sql(&conn).unwrap();
    assert!(!sql.contains("files_fts_data"), "{sql}");
    assert!(sql.contains("CREATE VIRTUAL TABLE files_fts"), "{sql}");
    assert_eq!(
        Schema::from_sql(&sql).unwrap().fingerprint(),
        Schema::read(&conn).unwrap().fingerprint()
    );
    // Applied to an empty file, the export is the same schema: nothing more to do.
    let again = temp_db("indexer_export_reapplied");
    migrate(&again, &sql, &Options::default()).unwrap();
    let conn2 = Connection::open(&again).unwrap();
    let plan = diff(
        &Schema::read(&conn2).unwrap(),
        &Schema::read(&conn).unwrap(),
        &Options::default(),
    )
    .unwrap();
    assert!(plan.is_empty(), "{plan}");
}

#[test]
fn a_rebuild_of_the_content_table_keeps_the_index_consistent() {
    let db = temp_db("content_rebuilt");
    migrate(&db, INDEXER, &Options::default()).unwrap();
    Connection::open(&db).unwrap().execute_batch(FILL).unwrap();
    // `path` gets a COLLATE: SQLite cannot ALTER that, so `files` is rebuilt.
    let v2 = INDEXER.replace("path TEXT NOT NULL", "path TEXT NOT NULL COLLATE NOCASE");
    let report = migrate(&db, &v2, &Options::default()).unwrap();
    assert!(
        report
            .plan
            .steps
            .iter()
            .any(|s| s.kind == StepKind::RebuildTable && s.target == "files"),
        "{}",
        report.plan
    );
    assert_eq!(needles(&db), (1..=20).map(|i| i * 10).collect::<Vec<_>>());
    fts5_ok(&db, "files_fts");
    check_healthy(&db);
    // The triggers came back: a new row is found, a deleted one is not.
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "INSERT INTO files (id, path, body) VALUES (500, 'new.rs', 'needle here');
         DELETE FROM files WHERE id = 10;",
    )
    .unwrap();
    let mut want: Vec<i64> = (2..=20).map(|i| i * 10).collect();
    want.push(500);
    assert_eq!(needles(&db), want);
    fts5_ok(&db, "files_fts");
}

#[test]
fn a_changed_external_content_index_is_rebuilt_from_its_content() {
    let db = temp_db("external_changed");
    migrate(&db, INDEXER, &Options::default()).unwrap();
    Connection::open(&db).unwrap().execute_batch(FILL).unwrap();
    // A prefix index, and `body` indexed alone.
    let v2 = INDEXER.replace(
        "fts5(path, body, content='files', content_rowid='id')",
        "fts5(path UNINDEXED, body, content='files', content_rowid='id', prefix='2')",
    );
    let report = migrate(&db, &v2, &Options::default()).unwrap();
    let step = report
        .plan
        .steps
        .iter()
        .find(|s| s.kind == StepKind::RebuildVirtualTable)
        .unwrap_or_else(|| panic!("{}", report.plan));
    assert!(step.sql.iter().any(|s| s.contains("'rebuild'")), "{step:?}");
    assert_eq!(needles(&db), (1..=20).map(|i| i * 10).collect::<Vec<_>>());
    // The prefix index answers prefix queries.
    assert_eq!(
        ids(
            &db,
            "SELECT count(*) FROM files_fts WHERE files_fts MATCH 'ne*'"
        ),
        [20]
    );
    fts5_ok(&db, "files_fts");
    check_healthy(&db);
    assert!(migrate(&db, &v2, &Options::default()).unwrap().up_to_date());
}

#[test]
fn a_changed_fts5_table_with_its_own_rows_is_rebuilt_with_them() {
    let v1 = "CREATE VIRTUAL TABLE notes USING fts5(title, body);";
    let db = make_db(
        "own_content_changed",
        &format!(
            "{v1}
             INSERT INTO notes (rowid, title, body) VALUES (7, 'groceries', 'milk eggs'), (9, 'work', 'ship the release'), (12, 'ideas', 'a release party');
             DELETE FROM notes WHERE rowid = 7;"
        ),
    );
    migrate(&db, v1, &Options::default()).unwrap();
    let v2 = "CREATE VIRTUAL TABLE notes USING fts5(title, body, tags, tokenize = 'porter');";
    let report = migrate(&db, v2, &Options::default()).unwrap();
    assert!(report.applied);
    // Rowids kept; porter stems `releases` to `release`.
    assert_eq!(
        ids(
            &db,
            "SELECT rowid FROM notes WHERE notes MATCH 'releases' ORDER BY rowid"
        ),
        [9, 12]
    );
    assert_eq!(
        rows(&db, "SELECT title, tags FROM notes WHERE rowid = 9"),
        [vec![Value::Text("work".into()), Value::Null]]
    );
    fts5_ok(&db, "notes");
    check_healthy(&db);
    assert_eq!(
        user_tables(&db)
            .iter()
            .filter(|t| !t.starts_with("notes"))
            .count(),
        0
    );
    // Dropping a column of a virtual table is data loss, refused unless allowed.
    let v3 = "CREATE VIRTUAL TABLE notes USING fts5(title, tokenize = 'porter');";
    lossy(&db, v3);
    assert_eq!(
        ids(&db, "SELECT rowid FROM notes WHERE notes MATCH 'work'"),
        [9]
    );
}

#[test]
fn fts4_and_rtree_tables_are_rebuilt_with_their_rows() {
    let v1 = "
        CREATE VIRTUAL TABLE docs USING fts4(title, body);
        CREATE VIRTUAL TABLE boxes USING rtree(id, minx, maxx, miny, maxy);";
    let db = make_db(
        "fts4_rtree",
        &format!(
            "{v1}
             INSERT INTO docs (docid, title, body) VALUES (3, 'a', 'sqlite full text'), (5, 'b', 'text search');
             INSERT INTO boxes VALUES (1, 0, 10, 0, 10), (2, 5, 15, 5, 15), (3, 20, 30, 20, 30);"
        ),
    );
    migrate(&db, v1, &Options::default()).unwrap();
    let v2 = "
        CREATE VIRTUAL TABLE docs USING fts4(title, body, tokenize=porter);
        CREATE VIRTUAL TABLE boxes USING rtree(id, minx, maxx, miny, maxy, +label);";
    let report = migrate(&db, v2, &Options::default()).unwrap();
    assert_eq!(
        report
            .plan
            .steps
            .iter()
            .filter(|s| s.kind == StepKind::RebuildVirtualTable)
            .count(),
        2,
        "{}",
        report.plan
    );
    assert_eq!(
        ids(
            &db,
            "SELECT docid FROM docs WHERE docs MATCH 'texts' ORDER BY docid"
        ),
        [3, 5]
    );
    assert_eq!(
        ids(
            &db,
            "SELECT id FROM boxes WHERE maxx >= 8 AND minx <= 12 ORDER BY id"
        ),
        [1, 2]
    );
    let conn = Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("SELECT rtreecheck('boxes')", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    conn.execute("INSERT INTO docs (docs) VALUES ('integrity-check')", [])
        .unwrap();
    check_healthy(&db);
}

#[test]
fn a_rename_hint_renames_a_virtual_table_in_place() {
    let v1 = "CREATE VIRTUAL TABLE notes USING fts5(title, body);";
    let db = make_db(
        "vtab_rename",
        &format!("{v1} INSERT INTO notes VALUES ('a', 'alpha'), ('b', 'beta');"),
    );
    let v2 = "CREATE VIRTUAL TABLE memos USING fts5(title, body);";
    let opts = Options::default().rename("notes=memos").unwrap();
    let report = migrate(&db, v2, &opts).unwrap();
    assert_eq!(report.plan.steps.len(), 1, "{}", report.plan);
    assert_eq!(report.plan.steps[0].kind, StepKind::RenameTable);
    assert_eq!(
        ids(&db, "SELECT rowid FROM memos WHERE memos MATCH 'beta'"),
        [2]
    );
    assert!(user_tables(&db).iter().all(|t| !t.starts_with("notes")));
    // An annotation, with a changed definition: rebuilt under the new name, rows copied.
    let v3 =
        "CREATE VIRTUAL TABLE jottings /* @renamed from=memos */ USING fts5(title, body, extra);";
    migrate(&db, v3, &Options::default()).unwrap();
    assert_eq!(
        ids(
            &db,
            "SELECT rowid FROM jottings WHERE jottings MATCH 'alpha'"
        ),
        [1]
    );
    fts5_ok(&db, "jottings");
    check_healthy(&db);
}

#[test]
fn a_contentless_index_is_rebuilt_only_when_data_loss_is_allowed() {
    let v1 = "CREATE VIRTUAL TABLE c USING fts5(body, content='');";
    let db = make_db(
        "contentless",
        &format!("{v1} INSERT INTO c (rowid, body) VALUES (1, 'hello world');"),
    );
    let v2 = "CREATE VIRTUAL TABLE c USING fts5(body, content='', tokenize='porter');";
    lossy(&db, v2);
    assert_eq!(
        ids(&db, "SELECT count(*) FROM c WHERE c MATCH 'hello'"),
        [0]
    );
}

#[test]
fn autoincrement_sequences_never_go_down_in_a_rebuild() {
    let v1 = "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT, at INTEGER);
              CREATE TABLE empty (id INTEGER PRIMARY KEY AUTOINCREMENT, x);";
    let db = make_db(
        "autoincrement",
        &format!(
            "{v1}
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10)
             INSERT INTO events (kind, at) SELECT 'e', i FROM n;
             DELETE FROM events WHERE id > 7;
             INSERT INTO empty (x) VALUES (1), (2), (3);
             DELETE FROM empty;"
        ),
    );
    let v2 =
        "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, at TEXT);
              CREATE TABLE empty (id INTEGER PRIMARY KEY AUTOINCREMENT, x NOT NULL);";
    let report = migrate(&db, v2, &Options::default()).unwrap();
    assert_eq!(
        report
            .plan
            .steps
            .iter()
            .filter(|s| s.kind == StepKind::RebuildTable)
            .count(),
        2
    );
    assert_eq!(
        rows(&db, "SELECT name, seq FROM sqlite_sequence ORDER BY name"),
        [
            vec![Value::Text("empty".into()), Value::Integer(3)],
            vec![Value::Text("events".into()), Value::Integer(10)]
        ]
    );
    let conn = Connection::open(&db).unwrap();
    conn.execute("INSERT INTO events (kind, at) VALUES ('next', 'x')", [])
        .unwrap();
    assert_eq!(conn.last_insert_rowid(), 11, "an id was given out twice");
    conn.execute("INSERT INTO empty (x) VALUES (9)", [])
        .unwrap();
    assert_eq!(conn.last_insert_rowid(), 4);
    check_healthy(&db);
}

#[test]
fn triggers_on_views_and_views_on_views_are_created_after_what_they_need() {
    // Written out of order on purpose: the trigger first, the view it is on after.
    let v1 = "
        CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, deleted INTEGER NOT NULL DEFAULT 0);
        CREATE VIEW live AS SELECT id, name FROM items WHERE deleted = 0;
        CREATE VIEW live_names AS SELECT name FROM live;
        CREATE TRIGGER live_insert INSTEAD OF INSERT ON live BEGIN
          INSERT INTO items (id, name) VALUES (new.id, new.name);
        END;
        CREATE TRIGGER live_delete INSTEAD OF DELETE ON live BEGIN
          UPDATE items SET deleted = 1 WHERE id = old.id;
        END;";
    let db = temp_db("view_triggers");
    migrate(&db, v1, &Options::default()).unwrap();
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "INSERT INTO live (id, name) VALUES (1, 'a'), (2, 'b'); DELETE FROM live WHERE id = 1;",
    )
    .unwrap();
    assert_eq!(
        rows(&db, "SELECT name FROM live_names"),
        [vec![Value::Text("b".into())]]
    );
    // The view changes: it is dropped (its INSTEAD OF triggers go with it) and created again,
    // then its triggers; the view on it still reads.
    let v2 = v1.replace(
        "SELECT id, name FROM items",
        "SELECT id, name, 1 AS live FROM items",
    );
    let report = migrate(&db, &v2, &Options::default()).unwrap();
    let order: Vec<&str> = report
        .plan
        .steps
        .iter()
        .map(|s| s.description.as_str())
        .collect();
    let at = |what: &str| {
        order
            .iter()
            .position(|d| *d == what)
            .unwrap_or_else(|| panic!("{what}: {order:?}"))
    };
    assert!(
        at("create view live") < at("create trigger live_insert"),
        "{order:?}"
    );
    conn.execute("INSERT INTO live (id, name) VALUES (3, 'c')", [])
        .unwrap();
    assert_eq!(ids(&db, "SELECT id FROM live ORDER BY id"), [2, 3]);
    check_healthy(&db);
    assert!(migrate(&db, &v2, &Options::default()).unwrap().up_to_date());
}

#[test]
fn a_module_sqlite_lacks_is_a_clear_error_and_the_file_is_unchanged() {
    let db = make_db(
        "missing_module",
        "CREATE TABLE t (a); INSERT INTO t VALUES (1);",
    );
    let desired =
        "CREATE TABLE t (a); CREATE VIRTUAL TABLE embeddings USING vec0(embedding float[4]);";
    let err = refused(&db, desired, &Options::default());
    match &err {
        MigrateError::MissingModule { table, module } => {
            assert_eq!((table.as_str(), module.as_str()), ("embeddings", "vec0"));
        }
        other => panic!("{other}"),
    }
    let text = err.to_string();
    assert!(text.contains("vec0") && text.contains("load"), "{text}");
    // An extension file that is not there: named, file unchanged.
    let opts = Options::default().load_extension("/nonexistent/vec0.so", None);
    let err = refused(&db, desired, &opts);
    assert!(
        matches!(err, MigrateError::Extension { .. })
            && err.to_string().contains("/nonexistent/vec0.so"),
        "{err}"
    );
}

#[test]
fn a_file_whose_virtual_table_module_is_missing_is_refused_not_misread() {
    // Another program's file: a virtual table of a module this SQLite lacks, with its shadow
    // table, which without the module looks like an ordinary table.
    let db = make_db(
        "foreign_module",
        "CREATE TABLE notes (a); CREATE TABLE emb_chunks (id INTEGER PRIMARY KEY, d BLOB);
         PRAGMA writable_schema = ON;
         INSERT INTO sqlite_schema VALUES ('table', 'emb', 'emb', 0, 'CREATE VIRTUAL TABLE emb USING vec0(e float[4])');
         PRAGMA writable_schema = OFF;",
    );
    let err = refused(&db, "CREATE TABLE notes (a, b);", &Options::default());
    assert!(
        matches!(err, MigrateError::MissingModule { ref module, .. } if module == "vec0"),
        "{err}"
    );
    let conn = Connection::open(&db).unwrap();
    let err = export_sql(&conn).unwrap_err();
    assert!(matches!(err, MigrateError::MissingModule { .. }), "{err}");
}

#[test]
fn old_foreign_key_violations_never_block_and_new_ones_are_named_once() {
    let v1 = "
        CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
        CREATE TABLE admins (id INTEGER PRIMARY KEY);
        CREATE TABLE friendships (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), friend_id INTEGER REFERENCES users(id));";
    // Row 3 points at user 9 twice (both keys): an orphan from before (another program wrote
    // it with foreign_keys off, SQLite's default).
    let db = make_db(
        "old_violations",
        &format!(
            "{v1}
             PRAGMA foreign_keys = OFF;
             INSERT INTO users VALUES (1, 'a'), (2, 'b');
             INSERT INTO admins VALUES (1), (9);
             INSERT INTO friendships VALUES (1, 1, 2), (2, 2, 1), (3, 9, 9), (4, 1, 2), (5, 2, 1);"
        ),
    );
    // `users` is rebuilt (a NOT NULL): the orphan is reported, not a reason to refuse.
    let v2 = v1.replace("name TEXT)", "name TEXT NOT NULL)");
    let report = migrate(&db, &v2, &Options::default()).unwrap();
    assert!(report.applied);
    let warned: Vec<&Warning> = report.plan.warnings.iter().collect();
    match warned.as_slice() {
        [Warning::ExistingViolations(v)] => {
            assert_eq!(
                (v.table.as_str(), v.parent.as_str(), v.count),
                ("friendships", "users", 1)
            );
            assert_eq!(v.rowids, [3]);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        report
            .plan
            .to_string()
            .contains("warning: 1 row of friendships"),
        "{}",
        report.plan
    );
    // `friend_id` now points at admins: rows 1 and 4 (friend 2) are new violations and are
    // refused, each named once; row 3 still dangles on users, as before, and is not counted.
    let v3 = v2.replace(
        "friend_id INTEGER REFERENCES users(id)",
        "friend_id INTEGER REFERENCES admins(id)",
    );
    let err = refused(&db, &v3, &Options::default());
    match &err {
        MigrateError::Constraint {
            table,
            rowids,
            constraint,
        } => {
            assert_eq!(table, "friendships");
            assert_eq!(rowids, &[1, 4]);
            assert!(constraint.contains("admins"), "{constraint}");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn a_foreign_key_to_a_non_unique_parent_is_accepted_with_a_warning() {
    let schema = "CREATE TABLE u (id int); CREATE TABLE p (x int REFERENCES u(id));";
    let db = temp_db("non_unique_parent");
    let report = migrate(&db, schema, &Options::default()).unwrap();
    assert!(report.applied);
    match report.plan.warnings.as_slice() {
        [Warning::NonUniqueParent(m)] => {
            assert_eq!((m.table.as_str(), m.parent.as_str()), ("p", "u"));
            assert_eq!(m.columns, ["id"]);
        }
        other => panic!("{other:?}"),
    }
    let text = report.plan.to_string();
    assert!(text.contains("neither PRIMARY KEY nor UNIQUE"), "{text}");
    // With rows, a rebuild of p works too.
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "PRAGMA foreign_keys = OFF; INSERT INTO u VALUES (1); INSERT INTO p VALUES (1), (2);",
        )
        .unwrap();
    let v2 = "CREATE TABLE u (id int); CREATE TABLE p (x int NOT NULL REFERENCES u(id));";
    migrate(&db, v2, &Options::default()).unwrap();
    assert_eq!(ids(&db, "SELECT x FROM p ORDER BY x"), [1, 2]);
}

#[test]
fn a_unique_index_over_duplicates_is_refused_naming_the_index_and_the_rows() {
    let v1 = "CREATE TABLE t (id INTEGER PRIMARY KEY, email TEXT, org INTEGER);";
    let db = make_db(
        "unique_index_dups",
        &format!(
            "{v1} INSERT INTO t VALUES (1, 'a', 1), (2, 'b', 1), (3, 'A', 1), (4, NULL, 1), (5, NULL, 1), (6, 'a', 2);"
        ),
    );
    let v2 = format!("{v1} CREATE UNIQUE INDEX t_email ON t (email COLLATE NOCASE DESC, org);");
    let err = refused(&db, &v2, &Options::default());
    match &err {
        MigrateError::UniqueIndex {
            index,
            table,
            rowids,
            ..
        } => {
            assert_eq!((index.as_str(), table.as_str()), ("t_email", "t"));
            assert_eq!(rowids, &[1, 3]);
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("unique index t_email"), "{err}");
}

#[test]
fn virtual_tables_the_schema_does_not_declare_are_kept_in_additive_mode() {
    let db = make_db(
        "keep_vtab",
        "CREATE TABLE t (a); CREATE VIRTUAL TABLE s USING fts5(a); INSERT INTO s VALUES ('x');",
    );
    let opts = Options::default().keep_undeclared(true);
    let report = migrate(&db, "CREATE TABLE t (a, b);", &opts).unwrap();
    assert!(
        report.plan.kept.iter().any(|k| k.name == "s"),
        "{}",
        report.plan
    );
    assert_eq!(ids(&db, "SELECT count(*) FROM s WHERE s MATCH 'x'"), [1]);
    // Without it, dropping the virtual table is data loss.
    let err = refused(&db, "CREATE TABLE t (a, b);", &Options::default());
    assert!(
        matches!(err, MigrateError::DataLoss { ref table, .. } if table == "s"),
        "{err}"
    );
}
