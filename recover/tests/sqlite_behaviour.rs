//! The bundled SQLite's rename behaviour that the repair's order of renames relies on (see
//! `src/refs.rs`). If an upgrade of SQLite changes any of it, these fail first.

use rusqlite::Connection;

fn db() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(
        "PRAGMA foreign_keys = OFF;
         CREATE TABLE x (id INTEGER PRIMARY KEY, v TEXT);
         CREATE INDEX x_v ON x(v);
         CREATE TABLE child (id INTEGER PRIMARY KEY, xid INTEGER REFERENCES x(id));
         CREATE TABLE log (m);
         CREATE TRIGGER x_upd AFTER UPDATE ON x BEGIN INSERT INTO log VALUES (new.v); END;
         CREATE TRIGGER child_ins AFTER INSERT ON child BEGIN UPDATE x SET v = 'c' WHERE id = new.xid; END;
         CREATE VIEW vx AS SELECT v FROM x;",
    )
    .unwrap();
    conn
}

fn sql_of(conn: &Connection, name: &str) -> String {
    conn.query_row(
        "SELECT sql FROM sqlite_schema WHERE name = ?1",
        [name],
        |r| r.get(0),
    )
    .unwrap()
}

fn fk_target(conn: &Connection) -> String {
    conn.query_row(
        "SELECT \"table\" FROM pragma_foreign_key_list('child')",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn a_modern_rename_moves_every_reference_with_the_table() {
    let conn = db();
    conn.execute_batch("PRAGMA legacy_alter_table = OFF; ALTER TABLE x RENAME TO temp_x;")
        .unwrap();
    assert_eq!(fk_target(&conn), "temp_x");
    assert!(sql_of(&conn, "vx").contains("\"temp_x\""));
    assert!(sql_of(&conn, "child_ins").contains("\"temp_x\""));
    let (idx_table, trg_table): (String, String) = conn
        .query_row(
            "SELECT (SELECT tbl_name FROM sqlite_schema WHERE name = 'x_v'),
                    (SELECT tbl_name FROM sqlite_schema WHERE name = 'x_upd')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (idx_table.as_str(), trg_table.as_str()),
        ("temp_x", "temp_x")
    );
}

#[test]
fn a_modern_rename_refuses_while_a_view_names_a_missing_table() {
    let conn = db();
    conn.execute_batch("PRAGMA legacy_alter_table = ON; ALTER TABLE x RENAME TO hold;")
        .unwrap();
    conn.execute_batch("CREATE TABLE other (a);").unwrap();
    let err = conn
        .execute_batch("PRAGMA legacy_alter_table = OFF; ALTER TABLE other RENAME TO other2;")
        .unwrap_err();
    assert!(err.to_string().contains("no such table"), "{err}");
}

#[test]
fn a_legacy_rename_with_foreign_keys_off_leaves_references_alone() {
    let conn = db();
    conn.execute_batch("PRAGMA legacy_alter_table = ON; ALTER TABLE x RENAME TO hold;")
        .unwrap();
    assert_eq!(fk_target(&conn), "x");
    assert!(!sql_of(&conn, "vx").contains("hold"));
    assert!(!sql_of(&conn, "child_ins").contains("hold"));
    // The table's own index and trigger go with it and still work.
    let (idx_table, trg_table): (String, String) = conn
        .query_row(
            "SELECT (SELECT tbl_name FROM sqlite_schema WHERE name = 'x_v'),
                    (SELECT tbl_name FROM sqlite_schema WHERE name = 'x_upd')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((idx_table.as_str(), trg_table.as_str()), ("hold", "hold"));
    conn.execute_batch(
        "INSERT INTO hold (v) VALUES ('a'); UPDATE hold SET v = 'b';
         ALTER TABLE hold RENAME TO x;",
    )
    .unwrap();
    let logged: i64 = conn
        .query_row("SELECT count(*) FROM log", [], |r| r.get(0))
        .unwrap();
    assert_eq!(logged, 1);
    let through_view: String = conn
        .query_row("SELECT v FROM vx", [], |r| r.get(0))
        .unwrap();
    assert_eq!(through_view, "b");
}

#[test]
fn with_foreign_keys_on_even_a_legacy_rename_rewrites_foreign_keys() {
    let conn = db();
    conn.execute_batch(
        "PRAGMA foreign_keys = ON; PRAGMA legacy_alter_table = ON; ALTER TABLE x RENAME TO hold;",
    )
    .unwrap();
    assert_eq!(fk_target(&conn), "hold");
}
