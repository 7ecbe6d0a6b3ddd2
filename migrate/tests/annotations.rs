//! `@renamed` annotations in the desired schema, end to end on real database files: every form
//! the issue shows, quoted old names, renames through a rebuild, annotations combined with
//! hints, fresh databases, malformed and misplaced annotations, swaps, and comment-looking
//! text inside string literals. Every table has rows; values and rowids must be carried.

use std::path::Path;

use litekeep_migrate::{
    MigrateError, Options, Origin, PlannedRename, Rename, Schema, StepKind, migrate,
};
use rusqlite::Connection;

mod common;
use common::*;
use rusqlite::types::Value;

/// The schema of the file equals the desired one.
fn check_schema(db: &Path, desired: &str) {
    let now = Schema::read(&Connection::open(db).unwrap()).unwrap();
    let want = Schema::from_sql(desired).unwrap();
    assert_eq!(now.describe_difference(&want), Vec::<String>::new());
}

fn annotated(rename: Rename, line: usize) -> PlannedRename {
    PlannedRename {
        rename,
        origin: Origin::Annotation { line },
    }
}

fn hinted(rename: Rename) -> PlannedRename {
    PlannedRename {
        rename,
        origin: Origin::Hint,
    }
}

fn table(from: &str, to: &str) -> Rename {
    Rename::Table {
        from: from.into(),
        to: to.into(),
    }
}

fn column(table: &str, from: &str, to: &str) -> Rename {
    Rename::Column {
        table: table.into(),
        from: from.into(),
        to: to.into(),
    }
}

fn index(from: &str, to: &str) -> Rename {
    Rename::Index {
        from: from.into(),
        to: to.into(),
    }
}

/// `got` and `want` hold the same renames, whatever the order.
fn same_renames(got: &[PlannedRename], want: &[PlannedRename]) {
    assert_eq!(got.len(), want.len(), "renames: {got:?}");
    for w in want {
        assert!(got.contains(w), "missing {w:?} in {got:?}");
    }
}

/// The issue's schema, line for line (line 1 is `CREATE TABLE users (`).
const ISSUE: &str = r#"CREATE TABLE users ( -- @renamed from=user_accounts
  id bigint NOT NULL,
  user_name text NOT NULL, -- @renamed from=username
  age integer
);
CREATE TABLE new_users /* @renamed from=old_users */ (id integer);
CREATE TABLE "user_profiles" ( -- @renamed from="user accounts"
  id integer
);
CREATE INDEX email_idx /* @renamed from=idx_email */ ON users (user_name);
"#;

const ISSUE_V1: &str = r#"
CREATE TABLE user_accounts (id bigint NOT NULL, username text NOT NULL, age integer);
CREATE INDEX idx_email ON user_accounts (username);
CREATE TABLE old_users (id integer);
CREATE TABLE "user accounts" (id integer);
INSERT INTO user_accounts (rowid, id, username, age) VALUES (3, 10, 'ann', 31), (7, 11, 'bob', NULL), (12, 12, 'cy', 40);
INSERT INTO old_users (rowid, id) VALUES (2, 100), (5, 200), (6, NULL);
INSERT INTO "user accounts" (rowid, id) VALUES (4, 1), (9, 2);
"#;

#[test]
fn every_annotation_form_of_the_issue_carries_values_rowids_and_the_index() {
    for (label, opts) in [
        ("strict", Options::default()),
        ("keep undeclared", Options::default().keep_undeclared(true)),
    ] {
        let db = make_db(&format!("issue {label}"), ISSUE_V1);
        let accounts = rows(
            &db,
            "SELECT rowid, id, username, age FROM user_accounts ORDER BY rowid",
        );
        let old = rows(&db, "SELECT rowid, id FROM old_users ORDER BY rowid");
        let spaced = rows(
            &db,
            "SELECT rowid, id FROM \"user accounts\" ORDER BY rowid",
        );

        let report = migrate(&db, ISSUE, &opts).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert!(report.applied, "{label}");
        assert!(report.plan.data_loss.is_empty(), "{label}");
        assert!(
            report.plan.kept.is_empty(),
            "{label}: {:?}",
            report.plan.kept
        );
        same_renames(
            &report.plan.renames,
            &[
                annotated(table("user_accounts", "users"), 1),
                annotated(column("users", "username", "user_name"), 3),
                annotated(table("old_users", "new_users"), 6),
                annotated(table("user accounts", "user_profiles"), 7),
                annotated(index("idx_email", "email_idx"), 10),
            ],
        );
        let shown = report.plan.to_string();
        for line in [
            "renames table user_accounts → users (@renamed on schema line 1)",
            "renames column users.username → user_name (@renamed on schema line 3)",
            "renames table old_users → new_users (@renamed on schema line 6)",
            "renames table user accounts → user_profiles (@renamed on schema line 7)",
            "renames index idx_email → email_idx (@renamed on schema line 10)",
        ] {
            assert!(shown.contains(line), "{label}: `{line}` not in\n{shown}");
        }

        check_schema(&db, ISSUE);
        check_healthy(&db);
        assert_eq!(
            names(&db, "table"),
            ["new_users", "user_profiles", "users"],
            "{label}"
        );
        assert_eq!(names(&db, "index"), ["email_idx"], "{label}");
        let index_cols = rows(&db, "SELECT name FROM pragma_index_info('email_idx')");
        assert_eq!(index_cols, [vec![Value::Text("user_name".into())]]);
        assert_eq!(
            rows(
                &db,
                "SELECT rowid, id, user_name, age FROM users ORDER BY rowid"
            ),
            accounts,
            "{label}"
        );
        assert_eq!(
            rows(&db, "SELECT rowid, id FROM new_users ORDER BY rowid"),
            old,
            "{label}"
        );
        assert_eq!(
            rows(&db, "SELECT rowid, id FROM user_profiles ORDER BY rowid"),
            spaced,
            "{label}"
        );

        // The annotations stay in the file: the next run has nothing to do.
        let bytes = std::fs::read(&db).unwrap();
        let again = migrate(&db, ISSUE, &opts).unwrap();
        assert!(
            again.up_to_date(),
            "{label}: not converged:\n{}",
            again.plan
        );
        assert!(!again.applied);
        assert!(again.plan.renames.is_empty(), "{label}");
        assert_eq!(std::fs::read(&db).unwrap(), bytes, "{label}");
    }
}

#[test]
fn quoted_old_names_in_every_quote_style() {
    let v1 = r#"
CREATE TABLE "old one" (id INTEGER PRIMARY KEY, "first name" TEXT, b TEXT, c TEXT, d TEXT);
CREATE INDEX "old idx" ON "old one" (b);
CREATE TABLE "it's" (x INTEGER);
INSERT INTO "old one" (id, "first name", b, c, d) VALUES (2, 'ann', 'b1', 'c1', 'd1'), (8, NULL, 'b2', NULL, 'd2'), (9, 'cy', NULL, 'c3', NULL);
INSERT INTO "it's" (rowid, x) VALUES (5, 50), (6, 60);
"#;
    let desired = r#"CREATE TABLE people ( -- @renamed from="old one"
  id INTEGER PRIMARY KEY,
  first_name TEXT, -- @renamed from="first name"
  bee TEXT, -- @renamed from='b'
  cee TEXT /* @renamed from=`c` */,
  dee TEXT -- @renamed from=[d]
);
CREATE INDEX people_bee /* @renamed from=[old idx] */ ON people (bee);
CREATE TABLE its /* @renamed from='it''s' */ (x INTEGER);
"#;
    let db = make_db("quoted names", v1);
    let before = rows(
        &db,
        "SELECT rowid, id, \"first name\", b, c, d FROM \"old one\" ORDER BY rowid",
    );
    let its = rows(&db, "SELECT rowid, x FROM \"it's\" ORDER BY rowid");
    let report = migrate(&db, desired, &Options::default()).unwrap();
    assert!(report.applied);
    same_renames(
        &report.plan.renames,
        &[
            annotated(table("old one", "people"), 1),
            annotated(column("people", "first name", "first_name"), 3),
            annotated(column("people", "b", "bee"), 4),
            annotated(column("people", "c", "cee"), 5),
            annotated(column("people", "d", "dee"), 6),
            annotated(index("old idx", "people_bee"), 8),
            annotated(table("it's", "its"), 9),
        ],
    );
    check_schema(&db, desired);
    check_healthy(&db);
    assert_eq!(names(&db, "table"), ["its", "people"]);
    assert_eq!(names(&db, "index"), ["people_bee"]);
    assert_eq!(
        rows(
            &db,
            "SELECT rowid, id, first_name, bee, cee, dee FROM people ORDER BY rowid"
        ),
        before
    );
    assert_eq!(rows(&db, "SELECT rowid, x FROM its ORDER BY rowid"), its);
    assert!(
        migrate(&db, desired, &Options::default())
            .unwrap()
            .up_to_date()
    );
}

#[test]
fn a_rename_with_a_type_change_and_a_new_not_null_column_carries_values_through_a_rebuild() {
    // No INTEGER PRIMARY KEY: the rebuild must carry the rowids themselves.
    let v1 = "
CREATE TABLE t (n INTEGER, label TEXT);
CREATE INDEX t_label ON t (label);
INSERT INTO t (rowid, n, label) VALUES (1, 10, 'a'), (4, 20, NULL), (9, NULL, 'c'), (30, -5, 'd');
";
    let desired = "CREATE TABLE items ( -- @renamed from=t
  count TEXT, -- @renamed from=n
  label TEXT,
  flag INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX items_label /* @renamed from=t_label */ ON items (label);
";
    let db = make_db("rename through rebuild", v1);
    let before = rows(
        &db,
        "SELECT rowid, CAST(n AS TEXT), label, 1 FROM t ORDER BY rowid",
    );
    let report = migrate(&db, desired, &Options::default()).unwrap();
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
    same_renames(
        &report.plan.renames,
        &[
            annotated(table("t", "items"), 1),
            annotated(column("items", "n", "count"), 2),
            annotated(index("t_label", "items_label"), 6),
        ],
    );
    check_schema(&db, desired);
    check_healthy(&db);
    assert_eq!(
        rows(
            &db,
            "SELECT rowid, count, label, flag FROM items ORDER BY rowid"
        ),
        before
    );
    let types = rows(
        &db,
        "SELECT DISTINCT typeof(count) FROM items WHERE count IS NOT NULL",
    );
    assert_eq!(types, [vec![Value::Text("text".into())]]);
    assert_eq!(names(&db, "index"), ["items_label"]);
    assert!(
        migrate(&db, desired, &Options::default())
            .unwrap()
            .up_to_date()
    );
}

const ITEMS_V1: &str = "
CREATE TABLE items (id INTEGER PRIMARY KEY, a TEXT, n INTEGER);
INSERT INTO items (id, a, n) VALUES (3, 'x', 1), (5, NULL, 2), (8, 'z', NULL);
";

#[test]
fn annotations_combine_with_hints() {
    let before_query = "SELECT rowid, id, a, n FROM items ORDER BY rowid";
    let after_query = "SELECT rowid, id, name, n FROM orders ORDER BY rowid";

    // A table annotation and a column hint on that table.
    let desired = "CREATE TABLE orders ( -- @renamed from=items
  id INTEGER PRIMARY KEY,
  name TEXT,
  n INTEGER
);";
    let db = make_db("table annotation column hint", ITEMS_V1);
    let before = rows(&db, before_query);
    let opts = Options::default().rename("orders.a=orders.name").unwrap();
    let report = migrate(&db, desired, &opts).unwrap();
    same_renames(
        &report.plan.renames,
        &[
            annotated(table("items", "orders"), 1),
            hinted(column("orders", "a", "name")),
        ],
    );
    check_schema(&db, desired);
    check_healthy(&db);
    assert_eq!(rows(&db, after_query), before);
    assert!(migrate(&db, desired, &opts).unwrap().up_to_date());

    // A table hint and a column annotation naming the table by its new name.
    let desired = "CREATE TABLE orders (
  id INTEGER PRIMARY KEY,
  name TEXT, -- @renamed from=a
  n INTEGER
);";
    let db = make_db("table hint column annotation", ITEMS_V1);
    let opts = Options::default().rename("items=orders").unwrap();
    let report = migrate(&db, desired, &opts).unwrap();
    same_renames(
        &report.plan.renames,
        &[
            hinted(table("items", "orders")),
            annotated(column("orders", "a", "name"), 3),
        ],
    );
    check_schema(&db, desired);
    assert_eq!(rows(&db, after_query), before);
    assert!(migrate(&db, desired, &opts).unwrap().up_to_date());

    // The same rename as an annotation and as a hint: fine, carried out once.
    let desired = "CREATE TABLE orders ( -- @renamed from=items
  id INTEGER PRIMARY KEY,
  name TEXT, -- @renamed from=a
  n INTEGER
);";
    let db = make_db("identical annotation and hint", ITEMS_V1);
    let opts = Options::default()
        .rename("items=orders")
        .unwrap()
        .rename("orders.a=orders.name")
        .unwrap();
    let report = migrate(&db, desired, &opts).unwrap();
    assert_eq!(report.plan.renames.len(), 2, "{:?}", report.plan.renames);
    assert!(
        report
            .plan
            .renames
            .iter()
            .any(|r| r.rename == table("items", "orders"))
    );
    assert!(
        report
            .plan
            .renames
            .iter()
            .any(|r| r.rename == column("orders", "a", "name"))
    );
    check_schema(&db, desired);
    assert_eq!(rows(&db, after_query), before);
    assert!(migrate(&db, desired, &opts).unwrap().up_to_date());
}

#[test]
fn an_annotation_contradicting_a_hint_is_refused_naming_both() {
    let desired = "CREATE TABLE orders ( -- @renamed from=items
  id INTEGER PRIMARY KEY,
  name TEXT, -- @renamed from=a
  n INTEGER
);";
    for (hint, line) in [
        // Another old name for the same table.
        ("goods=orders", 1),
        // The same old table to another name.
        ("items=purchases", 1),
        // Another old name for the same column.
        ("orders.n=orders.name", 3),
        // The same old column to another name.
        ("orders.a=orders.title", 3),
    ] {
        let db = make_db(&format!("contradiction {hint}"), ITEMS_V1);
        let opts = Options::default().rename(hint).unwrap();
        let err = refused(&db, desired, &opts);
        let msg = err.to_string();
        assert!(
            matches!(&err, MigrateError::Rename { hint: h, .. } if h == hint),
            "{hint}: {msg}"
        );
        assert!(
            msg.contains(&format!("annotation on line {line}")),
            "{hint}: {msg}"
        );
        assert_eq!(
            rows(&db, "SELECT count(*) FROM items"),
            [vec![Value::Integer(3)]]
        );
    }
}

#[test]
fn a_fresh_database_takes_an_annotated_schema() {
    let db = temp_db("fresh");
    assert!(!db.exists());
    let report = migrate(&db, ISSUE, &Options::default()).unwrap();
    assert!(report.applied);
    assert!(report.plan.renames.is_empty(), "{:?}", report.plan.renames);
    assert!(
        report
            .plan
            .steps
            .iter()
            .all(|s| matches!(s.kind, StepKind::CreateTable | StepKind::Create)),
        "{}",
        report.plan
    );
    check_schema(&db, ISSUE);
    check_healthy(&db);
    assert_eq!(names(&db, "index"), ["email_idx"]);
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "INSERT INTO users (id, user_name, age) VALUES (1, 'ann', 3);
         INSERT INTO new_users (id) VALUES (7);
         INSERT INTO user_profiles (id) VALUES (9);",
    )
    .unwrap();
    drop(conn);
    let again = migrate(&db, ISSUE, &Options::default()).unwrap();
    assert!(again.up_to_date(), "{}", again.plan);
    assert_eq!(
        rows(&db, "SELECT rowid, id, user_name, age FROM users"),
        [vec![
            Value::Integer(1),
            Value::Integer(1),
            Value::Text("ann".into()),
            Value::Integer(3)
        ]]
    );

    // Also an existing database that never had the old names.
    let db = make_db(
        "no old names",
        "CREATE TABLE unrelated (x INTEGER); INSERT INTO unrelated VALUES (1);",
    );
    let report = migrate(&db, ISSUE, &Options::default().keep_undeclared(true)).unwrap();
    assert!(report.applied);
    assert!(report.plan.renames.is_empty(), "{:?}", report.plan.renames);
    assert_eq!(
        names(&db, "table"),
        ["new_users", "unrelated", "user_profiles", "users"]
    );
    assert_eq!(
        rows(&db, "SELECT rowid, x FROM unrelated"),
        [vec![Value::Integer(1), Value::Integer(1)]]
    );
}

#[test]
fn malformed_or_misplaced_annotations_name_their_line_and_change_nothing() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "CREATE TABLE items (\n  id INTEGER PRIMARY KEY,\n  a TEXT, -- @renamed form=x\n  n INTEGER\n);",
            3,
            "expected `@renamed from=OLD_NAME`",
        ),
        (
            "CREATE TABLE items (\n  id INTEGER PRIMARY KEY,\n  a TEXT,\n  n INTEGER -- @renamed from=\n);",
            4,
            "expected `@renamed from=OLD_NAME`",
        ),
        (
            "CREATE TABLE items (id INTEGER PRIMARY KEY, a TEXT, n INTEGER);\nCREATE TABLE x ( -- @renamed from=\"unterminated\n  y INTEGER\n);",
            2,
            "expected `@renamed from=OLD_NAME`",
        ),
        (
            "CREATE TABLE items (\n  id INTEGER PRIMARY KEY,\n  -- @renamed from=b\n  a TEXT,\n  n INTEGER\n);",
            3,
            "a line of its own",
        ),
        (
            "CREATE TABLE items (\n  id INTEGER,\n  a TEXT,\n  n INTEGER,\n  PRIMARY KEY (id) -- @renamed from=pk\n);",
            5,
            "table constraint",
        ),
        (
            "CREATE TABLE items (id INTEGER PRIMARY KEY, a TEXT, n INTEGER);\n\nCREATE VIEW v AS SELECT a FROM items; -- @renamed from=w",
            3,
            "another statement",
        ),
        (
            "CREATE TABLE items (id INTEGER PRIMARY KEY, a TEXT, n INTEGER); -- @renamed from=goods",
            1,
            "after the closing `)`",
        ),
        (
            "CREATE TABLE items (\n  id INTEGER PRIMARY KEY,\n  a /* @renamed from=x */ TEXT, -- @renamed from=y\n  n INTEGER\n);",
            3,
            "already has an annotation on line 3",
        ),
        (
            "CREATE TABLE items (\n  id INTEGER PRIMARY KEY,\n  a TEXT, -- @renamed from=x @renamed from=y\n  n INTEGER\n);",
            3,
            "two annotations in one comment",
        ),
        (
            "-- @renamed from=elsewhere\nCREATE TABLE items (id INTEGER PRIMARY KEY, a TEXT, n INTEGER);",
            1,
            "not on the line of what it renames",
        ),
    ];
    for (i, &(desired, line, says)) in cases.iter().enumerate() {
        let db = make_db(&format!("malformed {i}"), ITEMS_V1);
        let err = refused(&db, desired, &Options::default());
        let msg = err.to_string();
        assert!(
            matches!(&err, MigrateError::Annotation { line: l, .. } if *l == line),
            "{desired}\n→ {msg}"
        );
        assert!(
            msg.contains(&format!("line {line}")) && msg.contains(says),
            "{desired}\n→ {msg}"
        );
    }

    // Two annotations that contradict each other (one old table for two new ones): the later
    // one is named, and nothing changes.
    let db = make_db("two annotations one source", ITEMS_V1);
    let desired = "CREATE TABLE orders /* @renamed from=items */ (id INTEGER PRIMARY KEY, a TEXT, n INTEGER);\nCREATE TABLE goods /* @renamed from=items */ (id INTEGER PRIMARY KEY, a TEXT, n INTEGER);";
    let err = refused(&db, desired, &Options::default());
    assert!(
        matches!(&err, MigrateError::Annotation { line: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("line 1"), "{err}");
}

#[test]
fn a_swap_through_annotations_is_refused() {
    // Two tables.
    let db = make_db(
        "swap tables",
        "CREATE TABLE a (id INTEGER PRIMARY KEY, x TEXT); CREATE TABLE b (id INTEGER PRIMARY KEY, y TEXT);
         INSERT INTO a (x) VALUES ('from a'); INSERT INTO b (y) VALUES ('from b');",
    );
    let desired = "CREATE TABLE a /* @renamed from=b */ (id INTEGER PRIMARY KEY, y TEXT);
CREATE TABLE b /* @renamed from=a */ (id INTEGER PRIMARY KEY, x TEXT);";
    let err = refused(&db, desired, &Options::default());
    assert!(matches!(err, MigrateError::Annotation { .. }), "{err}");
    assert!(err.to_string().contains("swap"), "{err}");

    // Two columns of one table.
    let db = make_db(
        "swap columns",
        "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT); INSERT INTO t (a, b) VALUES ('x', 'y');",
    );
    let desired = "CREATE TABLE t (
  id INTEGER PRIMARY KEY,
  b TEXT, -- @renamed from=a
  a TEXT -- @renamed from=b
);";
    let err = refused(&db, desired, &Options::default());
    assert!(matches!(err, MigrateError::Annotation { .. }), "{err}");
    assert!(err.to_string().contains("swap"), "{err}");
}

#[test]
fn comment_lookalikes_inside_string_literals_and_quoted_names_are_not_annotations() {
    let db = make_db(
        "string literals",
        "CREATE TABLE t (id INTEGER PRIMARY KEY, x TEXT, y INTEGER);
         INSERT INTO t (id, x, y) VALUES (2, 'a', 1), (6, NULL, 2);",
    );
    let before = rows(&db, "SELECT rowid, id, x, y FROM t ORDER BY rowid");
    let desired = "CREATE TABLE t (
  id INTEGER PRIMARY KEY,
  x TEXT,
  y INTEGER,
  note TEXT DEFAULT '-- @renamed from=x',
  \"/* @renamed from=y */\" INTEGER,
  other TEXT DEFAULT '/* @renamed from=x */'
);";
    let report = migrate(&db, desired, &Options::default()).unwrap();
    assert!(report.applied);
    assert!(report.plan.renames.is_empty(), "{:?}", report.plan.renames);
    assert!(report.plan.data_loss.is_empty());
    check_schema(&db, desired);
    check_healthy(&db);
    assert_eq!(
        rows(&db, "SELECT rowid, id, x, y FROM t ORDER BY rowid"),
        before
    );
    let added = rows(
        &db,
        "SELECT note, \"/* @renamed from=y */\", other FROM t ORDER BY rowid",
    );
    let row = vec![
        Value::Text("-- @renamed from=x".into()),
        Value::Null,
        Value::Text("/* @renamed from=x */".into()),
    ];
    assert_eq!(added, [row.clone(), row]);
    assert!(
        migrate(&db, desired, &Options::default())
            .unwrap()
            .up_to_date()
    );
}

/// Found by the diff_apply fuzz target: an annotation stays in the schema file after it ran, and
/// its old name may be taken again (here by a new table of the same schema); it is done, not
/// pending, so the next run is up to date and the file can change again.
#[test]
fn an_annotation_whose_old_name_is_reused_is_done_and_the_file_can_change_again() {
    let db = make_db(
        "reused old name",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users (name) VALUES ('ann');",
    );
    let v2 = "CREATE TABLE accounts ( -- @renamed from=users
  id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT);";
    let first = migrate(&db, v2, &Options::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(first.applied);
    let again = migrate(&db, v2, &Options::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(again.up_to_date(), "{}", again.plan);
    let v3 = format!("{v2}\nCREATE INDEX users_email ON users (email);");
    let third = migrate(&db, &v3, &Options::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        third.applied && third.plan.renames.is_empty(),
        "{}",
        third.plan
    );
    let conn = Connection::open(&db).unwrap();
    let name: String = conn
        .query_row("SELECT name FROM accounts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(name, "ann");
    // The same for a column, in additive mode with something kept elsewhere.
    let db = make_db(
        "reused old column",
        "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT); CREATE TABLE extra (x);
         INSERT INTO t (a) VALUES ('kept');",
    );
    let keep = Options::default().keep_undeclared(true);
    let v2 = "CREATE TABLE t (id INTEGER PRIMARY KEY,
  b TEXT, -- @renamed from=a
  a INTEGER);";
    migrate(&db, v2, &keep).unwrap_or_else(|e| panic!("{e}"));
    let again = migrate(&db, v2, &keep).unwrap_or_else(|e| panic!("{e}"));
    assert!(again.up_to_date(), "{}", again.plan);
    let b: String = Connection::open(&db)
        .unwrap()
        .query_row("SELECT b FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(b, "kept");
}
