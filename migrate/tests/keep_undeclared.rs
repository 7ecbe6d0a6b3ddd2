//! Additive mode (`Options::keep_undeclared`) end to end on real database files: every kind of
//! undeclared object is kept with its rows (and dropped or refused as before without the
//! option), a rebuild carries undeclared columns and their values, the rolling-deploy shape is
//! up to date, and renames interact with what is kept.

use std::collections::BTreeMap;
use std::path::Path;

use litekeep_migrate::{
    Kept, MigrateError, ObjectKind, Options, Schema, StepKind, migrate, up_to_date,
};
use rusqlite::Connection;

mod common;
use common::*;
use rusqlite::types::Value;

/// The column names of `table`, in order.
fn columns(db: &Path, table: &str) -> Vec<String> {
    rows(
        db,
        &format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid"),
    )
    .into_iter()
    .map(|r| match &r[0] {
        Value::Text(s) => s.clone(),
        other => panic!("name {other:?}"),
    })
    .collect()
}

/// Every table's rows: table → rowid → column → value.
type Rows = BTreeMap<String, BTreeMap<i64, BTreeMap<String, Value>>>;

fn snapshot(db: &Path) -> Rows {
    let mut all = Rows::new();
    for table in names(db, "table") {
        let cols = columns(db, &table);
        let select: Vec<String> = cols.iter().map(|c| format!("\"{c}\"")).collect();
        let query = format!("SELECT rowid, {} FROM \"{table}\"", select.join(", "));
        let t = all.entry(table).or_default();
        for row in rows(db, &query) {
            let Value::Integer(rowid) = row[0] else {
                panic!("rowid {:?}", row[0]);
            };
            t.insert(rowid, cols.iter().cloned().zip(row[1..].to_vec()).collect());
        }
    }
    all
}

/// Every table, row (by rowid) and value of `before` is in `after`; `after` may have more
/// columns, not more or fewer rows.
fn carried(before: &Rows, after: &Rows) {
    for (table, rows) in before {
        let new_rows = after
            .get(table)
            .unwrap_or_else(|| panic!("table {table} vanished"));
        assert_eq!(
            rows.keys().collect::<Vec<_>>(),
            new_rows.keys().collect::<Vec<_>>(),
            "rowids of {table}"
        );
        for (rowid, values) in rows {
            for (col, value) in values {
                assert_eq!(
                    new_rows[rowid].get(col),
                    Some(value),
                    "{table}.{col} of rowid {rowid}"
                );
            }
        }
    }
}

fn keep() -> Options {
    Options::default().keep_undeclared(true)
}

fn kept(kind: ObjectKind, name: &str, table: Option<&str>) -> Kept {
    Kept {
        kind,
        name: name.into(),
        table: table.map(Into::into),
    }
}

/// Whether the file is up to date with `desired` under `opts`, by [`up_to_date`].
fn file_up_to_date(db: &Path, desired: &str, opts: &Options) -> bool {
    let current = Schema::read(&Connection::open(db).unwrap()).unwrap();
    up_to_date(&current, &Schema::from_sql(desired).unwrap(), opts).unwrap()
}

/// Every kind of object; the desired schemas below leave one out.
const ALL_V1: &str = "
CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, extra TEXT);
CREATE TABLE other (id INTEGER PRIMARY KEY, note TEXT);
CREATE TABLE log (id INTEGER PRIMARY KEY, msg TEXT);
CREATE INDEX t_a ON t (a);
CREATE VIEW t_view AS SELECT id, a FROM t;
CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN INSERT INTO log (msg) VALUES ('t ' || new.id); END;
INSERT INTO t (id, a, extra) VALUES (2, 20, 'two'), (5, NULL, 'five'), (11, 110, NULL);
INSERT INTO other (id, note) VALUES (1, 'one'), (4, NULL);
DELETE FROM log;
INSERT INTO log (id, msg) VALUES (3, 'old');
";

/// The desired schema: `ALL_V1` with a new column `added` on `t` (so something is applied),
/// without `missing`.
fn desired_without(missing: ObjectKind) -> String {
    let mut sql = Vec::new();
    sql.push(if missing == ObjectKind::Column {
        "CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, added TEXT);"
    } else {
        "CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, extra TEXT, added TEXT);"
    });
    if missing != ObjectKind::Table {
        sql.push("CREATE TABLE other (id INTEGER PRIMARY KEY, note TEXT);");
    }
    sql.push("CREATE TABLE log (id INTEGER PRIMARY KEY, msg TEXT);");
    if missing != ObjectKind::Index {
        sql.push("CREATE INDEX t_a ON t (a);");
    }
    if missing != ObjectKind::View {
        sql.push("CREATE VIEW t_view AS SELECT id, a FROM t;");
    }
    if missing != ObjectKind::Trigger {
        sql.push("CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN INSERT INTO log (msg) VALUES ('t ' || new.id); END;");
    }
    sql.join("\n")
}

/// The database has `missing`, the desired schema lacks it: kept (with its rows) in additive
/// mode; without it, a table or column is refused as data loss and anything else is dropped.
fn undeclared(missing: ObjectKind, expected: Kept) {
    let desired = desired_without(missing);

    // Additive.
    let db = make_db(&format!("keep {missing}"), ALL_V1);
    let before = snapshot(&db);
    let report = migrate(&db, &desired, &keep()).unwrap_or_else(|e| panic!("{missing}: {e}"));
    assert!(report.applied, "{missing}: {}", report.plan);
    assert_eq!(
        report.plan.kept,
        std::slice::from_ref(&expected),
        "{missing}"
    );
    assert!(report.plan.data_loss.is_empty(), "{missing}");
    assert!(
        report
            .plan
            .to_string()
            .contains(&format!("= keeps {expected} (not declared)")),
        "{missing}: {}",
        report.plan
    );
    check_healthy(&db);
    carried(&before, &snapshot(&db));
    assert!(
        columns(&db, "t").contains(&"added".to_owned()),
        "{missing}: the declared change was not applied"
    );
    // Everything v1 had is still there.
    assert_eq!(names(&db, "table"), ["log", "other", "t"], "{missing}");
    assert_eq!(names(&db, "index"), ["t_a"], "{missing}");
    assert_eq!(names(&db, "view"), ["t_view"], "{missing}");
    assert_eq!(names(&db, "trigger"), ["t_ins"], "{missing}");
    assert!(columns(&db, "t").contains(&"extra".to_owned()), "{missing}");
    // ... and works.
    assert_eq!(
        rows(&db, "SELECT count(*) FROM t_view"),
        [vec![Value::Integer(3)]],
        "{missing}"
    );
    Connection::open(&db)
        .unwrap()
        .execute_batch("INSERT INTO t (id, a, extra) VALUES (20, 1, 'new')")
        .unwrap();
    assert_eq!(
        rows(&db, "SELECT msg FROM log ORDER BY id"),
        [
            vec![Value::Text("old".into())],
            vec![Value::Text("t 20".into())]
        ],
        "{missing}: trigger"
    );
    // Converged, and the kept object is still listed.
    let again = migrate(&db, &desired, &keep()).unwrap();
    assert!(
        again.up_to_date(),
        "{missing}: not converged:\n{}",
        again.plan
    );
    assert_eq!(
        again.plan.kept,
        std::slice::from_ref(&expected),
        "{missing}"
    );
    assert!(file_up_to_date(&db, &desired, &keep()), "{missing}");
    assert!(
        !file_up_to_date(&db, &desired, &Options::default()),
        "{missing}"
    );

    // Strict (today's behaviour).
    let db = make_db(&format!("strict {missing}"), ALL_V1);
    match missing {
        ObjectKind::Table | ObjectKind::Column => {
            let err = refused(&db, &desired, &Options::default());
            let column = (missing == ObjectKind::Column).then(|| "extra".to_owned());
            let table = if missing == ObjectKind::Table {
                "other"
            } else {
                "t"
            };
            assert!(
                matches!(&err, MigrateError::DataLoss { table: t, column: c, .. } if t == table && *c == column),
                "{missing}: {err}"
            );
        }
        _ => {
            let before = snapshot(&db);
            let report = migrate(&db, &desired, &Options::default()).unwrap();
            assert!(report.applied);
            assert!(report.plan.kept.is_empty());
            assert!(
                report
                    .plan
                    .steps
                    .iter()
                    .any(|s| s.kind == StepKind::Drop
                        && s.target.eq_ignore_ascii_case(&expected.name)),
                "{missing}: {}",
                report.plan
            );
            assert!(
                !names(&db, &missing.to_string()).contains(&expected.name),
                "{missing} was not dropped"
            );
            carried(&before, &snapshot(&db));
            check_healthy(&db);
        }
    }
}

#[test]
fn an_undeclared_table_is_kept_with_its_rows() {
    undeclared(ObjectKind::Table, kept(ObjectKind::Table, "other", None));
}

#[test]
fn an_undeclared_column_is_kept_with_its_values() {
    undeclared(
        ObjectKind::Column,
        kept(ObjectKind::Column, "extra", Some("t")),
    );
}

#[test]
fn an_undeclared_index_is_kept() {
    undeclared(ObjectKind::Index, kept(ObjectKind::Index, "t_a", Some("t")));
}

#[test]
fn an_undeclared_view_is_kept() {
    undeclared(ObjectKind::View, kept(ObjectKind::View, "t_view", None));
}

#[test]
fn an_undeclared_trigger_is_kept() {
    undeclared(
        ObjectKind::Trigger,
        kept(ObjectKind::Trigger, "t_ins", Some("t")),
    );
}

const REBUILD_V1: &str = "
CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, extra TEXT);
INSERT INTO t (id, a, extra) VALUES (2, 20, 'two'), (5, NULL, 'five'), (11, 110, NULL), (40, -3, 'forty');
";
const REBUILD_V2: &str = "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b INTEGER DEFAULT 7);";

#[test]
fn a_rebuild_keeps_an_undeclared_column_and_its_values() {
    let db = make_db("rebuild keeps column", REBUILD_V1);
    let expected = rows(
        &db,
        "SELECT rowid, id, CAST(a AS TEXT), extra, 7 FROM t ORDER BY rowid",
    );
    let report = migrate(&db, REBUILD_V2, &keep()).unwrap();
    assert!(report.applied);
    assert!(
        report
            .plan
            .steps
            .iter()
            .any(|s| s.kind == StepKind::RebuildTable),
        "expected a rebuild:\n{}",
        report.plan
    );
    assert_eq!(
        report.plan.kept,
        [kept(ObjectKind::Column, "extra", Some("t"))]
    );
    assert!(report.plan.data_loss.is_empty());
    assert_ne!(report.plan.to, report.plan.declared);
    check_healthy(&db);
    assert_eq!(columns(&db, "t"), ["id", "a", "extra", "b"]);
    assert_eq!(
        rows(&db, "SELECT rowid, id, a, extra, b FROM t ORDER BY rowid"),
        expected
    );
    assert_eq!(
        rows(&db, "SELECT DISTINCT typeof(a) FROM t WHERE a IS NOT NULL"),
        [vec![Value::Text("text".into())]]
    );
    // The kept column keeps its declaration too.
    assert_eq!(
        rows(
            &db,
            "SELECT type FROM pragma_table_info('t') WHERE name = 'extra'"
        ),
        [vec![Value::Text("TEXT".into())]]
    );
    let again = migrate(&db, REBUILD_V2, &keep()).unwrap();
    assert!(again.up_to_date(), "not converged:\n{}", again.plan);
    assert!(file_up_to_date(&db, REBUILD_V2, &keep()));
    assert!(!file_up_to_date(&db, REBUILD_V2, &Options::default()));
}

#[test]
fn a_rebuild_keeps_the_undeclared_index_and_trigger_of_its_table() {
    let v1 = "
CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, extra TEXT);
CREATE TABLE log (id INTEGER PRIMARY KEY, msg TEXT);
CREATE INDEX t_extra ON t (extra);
CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN INSERT INTO log (msg) VALUES (new.extra); END;
INSERT INTO t (id, a, extra) VALUES (2, 20, 'two'), (5, NULL, 'five');
DELETE FROM log;
INSERT INTO log (id, msg) VALUES (9, 'old');
";
    let desired = "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b INTEGER DEFAULT 7);
CREATE TABLE log (id INTEGER PRIMARY KEY, msg TEXT);";
    let db = make_db("rebuild keeps index and trigger", v1);
    let before = snapshot(&db);
    let report = migrate(&db, desired, &keep()).unwrap();
    assert!(report.applied);
    assert!(
        report
            .plan
            .steps
            .iter()
            .any(|s| s.kind == StepKind::RebuildTable)
    );
    assert_eq!(report.plan.kept.len(), 3, "{:?}", report.plan.kept);
    for k in [
        kept(ObjectKind::Column, "extra", Some("t")),
        kept(ObjectKind::Index, "t_extra", Some("t")),
        kept(ObjectKind::Trigger, "t_ins", Some("t")),
    ] {
        assert!(
            report.plan.kept.contains(&k),
            "{k} not in {:?}",
            report.plan.kept
        );
    }
    check_healthy(&db);
    let after = snapshot(&db);
    assert_eq!(
        before["t"].keys().collect::<Vec<_>>(),
        after["t"].keys().collect::<Vec<_>>()
    );
    assert_eq!(before["log"], after["log"]);
    assert_eq!(names(&db, "index"), ["t_extra"]);
    assert_eq!(names(&db, "trigger"), ["t_ins"]);
    Connection::open(&db)
        .unwrap()
        .execute_batch("INSERT INTO t (id, extra) VALUES (30, 'fired')")
        .unwrap();
    assert_eq!(
        rows(&db, "SELECT msg FROM log ORDER BY id"),
        [
            vec![Value::Text("old".into())],
            vec![Value::Text("fired".into())]
        ]
    );
    assert!(migrate(&db, desired, &keep()).unwrap().up_to_date());
}

#[test]
fn an_older_schema_against_a_newer_file_is_up_to_date_and_keeps_three_things() {
    let v1 = "CREATE TABLE files (
  id INTEGER PRIMARY KEY,
  path TEXT NOT NULL -- where it lives
);";
    let v2 = "CREATE TABLE files (
  id INTEGER PRIMARY KEY,
  path TEXT NOT NULL, -- where it lives
  size INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX files_size ON files (size);
CREATE TABLE tags (file INTEGER REFERENCES files (id), tag TEXT);";
    let db = temp_db("rolling deploy");
    migrate(&db, v1, &Options::default()).unwrap();
    Connection::open(&db)
        .unwrap()
        .execute_batch("INSERT INTO files (id, path) VALUES (1, 'a.rs'), (4, 'b.rs');")
        .unwrap();
    let up = migrate(&db, v2, &Options::default()).unwrap();
    assert!(up.applied);
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "INSERT INTO files (id, path, size) VALUES (7, 'c.rs', 300);
             UPDATE files SET size = 10 WHERE id = 1;
             INSERT INTO tags (file, tag) VALUES (1, 'x'), (7, 'y');",
        )
        .unwrap();
    let before = snapshot(&db);
    let bytes = std::fs::read(&db).unwrap();

    // The older program opens the newer file.
    let report = migrate(&db, v1, &keep()).unwrap();
    assert!(report.up_to_date(), "{}", report.plan);
    assert!(!report.applied);
    assert!(report.plan.data_loss.is_empty());
    assert_eq!(report.plan.kept.len(), 3, "{:?}", report.plan.kept);
    for k in [
        kept(ObjectKind::Column, "size", Some("files")),
        kept(ObjectKind::Index, "files_size", Some("files")),
        kept(ObjectKind::Table, "tags", None),
    ] {
        assert!(
            report.plan.kept.contains(&k),
            "{k} not in {:?}",
            report.plan.kept
        );
    }
    assert!(file_up_to_date(&db, v1, &keep()));
    assert_eq!(std::fs::read(&db).unwrap(), bytes);
    carried(&before, &snapshot(&db));

    // Without additive mode the older schema would take them away: refused.
    let err = refused(&db, v1, &Options::default());
    assert!(matches!(err, MigrateError::DataLoss { .. }), "{err}");
    assert!(!file_up_to_date(&db, v1, &Options::default()));

    // And the newer program still finds the file up to date.
    assert!(migrate(&db, v2, &Options::default()).unwrap().up_to_date());
}

#[test]
fn an_undeclared_object_naming_a_table_this_migration_renames_is_refused() {
    let v1 = "
CREATE TABLE t_old (id INTEGER PRIMARY KEY, a TEXT);
INSERT INTO t_old (id, a) VALUES (1, 'x'), (6, 'y');
";
    let annotated = "CREATE TABLE t_new ( -- @renamed from=t_old
  id INTEGER PRIMARY KEY,
  a TEXT
);";
    let plain = "CREATE TABLE t_new (id INTEGER PRIMARY KEY, a TEXT);";
    for (label, extra, object) in [
        (
            "index",
            "CREATE INDEX t_old_a ON t_old (a);",
            "index t_old_a",
        ),
        (
            "view",
            "CREATE VIEW t_old_view AS SELECT a FROM t_old;",
            "view t_old_view",
        ),
    ] {
        for (how, desired, opts) in [
            ("annotation", annotated, keep()),
            ("hint", plain, keep().rename("t_old=t_new").unwrap()),
        ] {
            let db = make_db(&format!("renamed {label} {how}"), &format!("{v1}{extra}"));
            let err = refused(&db, desired, &opts);
            let msg = err.to_string();
            assert!(
                matches!(&err, MigrateError::Keep { object: o, .. } if o == object),
                "{label} {how}: {msg}"
            );
            assert!(
                msg.contains("t_old") && msg.contains("renames"),
                "{label} {how}: {msg}"
            );
            assert_eq!(
                rows(&db, "SELECT id, a FROM t_old ORDER BY id").len(),
                2,
                "{label} {how}"
            );
        }
    }
}

#[test]
fn a_renamed_column_is_not_kept_under_its_old_name() {
    let v1 = "
CREATE TABLE t (id INTEGER PRIMARY KEY, username TEXT, extra TEXT);
INSERT INTO t (id, username, extra) VALUES (3, 'ann', 'e3'), (8, NULL, 'e8'), (9, 'cy', NULL);
";
    let annotated = "CREATE TABLE t (
  id INTEGER PRIMARY KEY,
  user_name TEXT, -- @renamed from=username
  added INTEGER
);";
    let plain = "CREATE TABLE t (id INTEGER PRIMARY KEY, user_name TEXT, added INTEGER);";
    for (how, desired, opts) in [
        ("annotation", annotated, keep()),
        (
            "hint",
            plain,
            keep().rename("t.username=t.user_name").unwrap(),
        ),
    ] {
        let db = make_db(&format!("renamed column {how}"), v1);
        let before = rows(
            &db,
            "SELECT rowid, id, username, extra FROM t ORDER BY rowid",
        );
        let report = migrate(&db, desired, &opts).unwrap_or_else(|e| panic!("{how}: {e}"));
        assert!(report.applied, "{how}");
        assert_eq!(
            report.plan.kept,
            [kept(ObjectKind::Column, "extra", Some("t"))],
            "{how}"
        );
        assert_eq!(
            report.plan.renames.len(),
            1,
            "{how}: {:?}",
            report.plan.renames
        );
        assert!(report.plan.data_loss.is_empty(), "{how}");
        check_healthy(&db);
        assert_eq!(
            columns(&db, "t"),
            ["id", "user_name", "extra", "added"],
            "{how}"
        );
        assert_eq!(
            rows(
                &db,
                "SELECT rowid, id, user_name, extra FROM t ORDER BY rowid"
            ),
            before,
            "{how}"
        );
        let again = migrate(&db, desired, &opts).unwrap();
        assert!(again.up_to_date(), "{how}: not converged:\n{}", again.plan);
        assert_eq!(
            again.plan.kept,
            [kept(ObjectKind::Column, "extra", Some("t"))],
            "{how}"
        );
    }
}

#[test]
fn a_renamed_table_keeps_its_undeclared_column() {
    let v1 = "
CREATE TABLE t_old (id INTEGER PRIMARY KEY, a TEXT, extra TEXT);
INSERT INTO t_old (id, a, extra) VALUES (2, 'x', 'e2'), (7, NULL, 'e7');
";
    let desired = "CREATE TABLE t_new ( -- @renamed from=t_old
  id INTEGER PRIMARY KEY,
  a TEXT
);";
    let db = make_db("renamed table keeps column", v1);
    let before = rows(&db, "SELECT rowid, id, a, extra FROM t_old ORDER BY rowid");
    let report = migrate(&db, desired, &keep()).unwrap();
    assert!(report.applied);
    assert_eq!(
        report.plan.kept,
        [kept(ObjectKind::Column, "extra", Some("t_new"))]
    );
    assert!(report.plan.data_loss.is_empty());
    assert_eq!(names(&db, "table"), ["t_new"]);
    assert_eq!(
        rows(&db, "SELECT rowid, id, a, extra FROM t_new ORDER BY rowid"),
        before
    );
    check_healthy(&db);
    assert!(migrate(&db, desired, &keep()).unwrap().up_to_date());
}

#[test]
fn an_undeclared_object_naming_a_column_this_migration_renames_is_refused_or_kept_working() {
    // Like a table rename (above), a column rename changes what an undeclared index, view or
    // trigger must say. Either it is refused as `Keep` (nothing changed), or it is kept and
    // still works; it must never be committed naming the old column (a trigger that names it
    // makes every INSERT into the table fail) nor fail as a bare SQLite error.
    let rows_sql = "INSERT INTO t (id, username, n) VALUES (3, 'ann', 1), (8, NULL, 2);";
    let mut failures = Vec::new();
    for (label, extra, object, works) in [
        (
            "index",
            "CREATE INDEX t_username ON t (username);",
            "index t_username",
            "SELECT name FROM pragma_index_info('t_username') WHERE name = 'user_name'",
        ),
        (
            "view",
            "CREATE VIEW names AS SELECT username FROM t;",
            "view names",
            "SELECT * FROM names",
        ),
        (
            "trigger",
            "CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN INSERT INTO log VALUES (new.username); END;",
            "trigger t_ins",
            "INSERT INTO t (id, user_name) VALUES (99, 'new') RETURNING id",
        ),
    ] {
        let v1 = format!(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, username TEXT, n INTEGER); CREATE TABLE log (m TEXT); {extra} {rows_sql}"
        );
        let native = "CREATE TABLE log (m TEXT);\nCREATE TABLE t (id INTEGER PRIMARY KEY, user_name TEXT, -- @renamed from=username\n n INTEGER);";
        let rebuild = "CREATE TABLE log (m TEXT);\nCREATE TABLE t (id INTEGER PRIMARY KEY, user_name TEXT, -- @renamed from=username\n n TEXT);";
        let plain = "CREATE TABLE log (m TEXT); CREATE TABLE t (id INTEGER PRIMARY KEY, user_name TEXT, n INTEGER);";
        for (how, desired, opts) in [
            ("annotation, native", native, keep()),
            ("annotation, rebuild", rebuild, keep()),
            (
                "hint, native",
                plain,
                keep().rename("t.username=t.user_name").unwrap(),
            ),
        ] {
            let what = format!("{label} ({how})");
            let db = make_db(&format!("renamed column {what}"), &v1);
            let bytes = std::fs::read(&db).unwrap();
            match migrate(&db, desired, &opts) {
                Err(err @ MigrateError::Keep { .. }) => {
                    let msg = err.to_string();
                    if !matches!(&err, MigrateError::Keep { object: o, .. } if o == object)
                        || !msg.contains("username")
                    {
                        failures.push(format!(
                            "{what}: refused without naming {object} and username: {msg}"
                        ));
                    }
                    if std::fs::read(&db).unwrap() != bytes {
                        failures.push(format!("{what}: refused, but the file changed"));
                    }
                }
                Err(other) => failures.push(format!(
                    "{what}: refused, but not as MigrateError::Keep: {other}"
                )),
                Ok(_) => {
                    let conn = Connection::open(&db).unwrap();
                    let result = conn
                        .prepare(works)
                        .and_then(|mut s| s.query_map([], |_| Ok(())).map(|r| r.count()));
                    if !matches!(result, Ok(n) if n > 0) {
                        failures.push(format!(
                            "{what}: migration committed, but the kept {label} no longer works ({}); it says: {:?}",
                            result.map_or_else(|e| e.to_string(), |n| format!("{n} rows")),
                            rows(&db, &format!("SELECT sql FROM sqlite_schema WHERE type = '{label}'"))
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
