//! Proves, on the bundled SQLite, the behaviour the rebuild relies on: `ALTER TABLE parent
//! RENAME TO temp_parent` rewrites a child's `REFERENCES parent` (and views and triggers) to
//! `"temp_parent"` unless BOTH `legacy_alter_table=ON` and `foreign_keys=OFF`. If a SQLite
//! upgrade changes this, these tests fail and `apply.rs` must be revisited.

use rusqlite::Connection;

fn schema_after_rename(legacy: bool, foreign_keys: bool) -> String {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(
        "CREATE TABLE parent (id INTEGER PRIMARY KEY);
         CREATE TABLE child (id INTEGER PRIMARY KEY, p INTEGER REFERENCES parent(id));
         CREATE VIEW v AS SELECT id FROM parent;
         CREATE TRIGGER t AFTER INSERT ON child BEGIN SELECT id FROM parent; END;",
    )
    .unwrap();
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = {}; PRAGMA legacy_alter_table = {};",
        u8::from(foreign_keys),
        u8::from(legacy)
    ))
    .unwrap();
    conn.execute_batch("ALTER TABLE parent RENAME TO temp_parent")
        .unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT group_concat(sql, ' | ') FROM sqlite_schema WHERE name IN ('child', 'v', 't')",
        )
        .unwrap();
    stmt.query_row([], |r| r.get(0)).unwrap()
}

#[test]
fn rename_rewrites_references_unless_legacy_and_foreign_keys_off() {
    for (legacy, fk) in [(false, false), (false, true), (true, true)] {
        let sql = schema_after_rename(legacy, fk);
        assert!(
            sql.contains("\"temp_parent\""),
            "legacy={legacy} foreign_keys={fk}: expected references rewritten, got {sql}"
        );
    }
}

#[test]
fn legacy_alter_table_with_foreign_keys_off_keeps_references() {
    let sql = schema_after_rename(true, false);
    assert!(
        !sql.contains("temp_parent"),
        "references were rewritten: {sql}"
    );
}
