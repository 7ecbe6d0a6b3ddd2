//! The workload's schema, in the two versions the migrator flips between. Both keep every row
//! and value: version 2 only makes `symbols.kind` case-insensitive (a rebuild of `symbols`,
//! which `code_entries` references) and adds an index.
//!
//! `write_ids` is the runner's own: every write request inserts its unique id there, in the
//! same transaction as its effects, with no uniqueness constraint, so that a request applied
//! twice (a retry after a lost owner run again instead of answered from its record) shows as
//! two rows (see `verify.rs`).

/// Version 1.
pub const V1: &str = "
CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, hash TEXT, size INTEGER);
CREATE TABLE symbols (id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL REFERENCES files(id), name TEXT NOT NULL, kind TEXT);
CREATE TABLE code_entries (id INTEGER PRIMARY KEY, symbol_id INTEGER NOT NULL REFERENCES symbols(id), body TEXT, vector BLOB, version INTEGER NOT NULL DEFAULT 0);
CREATE INDEX symbols_by_file ON symbols(file_id);
CREATE INDEX entries_by_symbol ON code_entries(symbol_id);
CREATE TABLE write_ids (id INTEGER PRIMARY KEY, op TEXT NOT NULL);
CREATE INDEX write_ids_by_op ON write_ids(op);
";

/// Version 2.
pub const V2: &str = "
CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, hash TEXT, size INTEGER);
CREATE TABLE symbols (id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL REFERENCES files(id), name TEXT NOT NULL, kind TEXT COLLATE NOCASE);
CREATE TABLE code_entries (id INTEGER PRIMARY KEY, symbol_id INTEGER NOT NULL REFERENCES symbols(id), body TEXT, vector BLOB, version INTEGER NOT NULL DEFAULT 0);
CREATE INDEX symbols_by_file ON symbols(file_id);
CREATE INDEX entries_by_symbol ON code_entries(symbol_id);
CREATE INDEX symbols_by_kind ON symbols(kind);
CREATE TABLE write_ids (id INTEGER PRIMARY KEY, op TEXT NOT NULL);
CREATE INDEX write_ids_by_op ON write_ids(op);
";

/// What the naive code runs on every connection (seed 003): the tables with `IF NOT EXISTS`.
pub fn create_if_not_exists() -> String {
    V1.replace("CREATE TABLE ", "CREATE TABLE IF NOT EXISTS ")
        .replace("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ")
}

/// The naive migrator's rebuild of `symbols` to `target`'s definition, statement by statement
/// (seed 001's driver: rename to `temp_symbols`, create, copy, drop; no lock, no transaction).
pub fn naive_rebuild(to_v2: bool) -> Vec<String> {
    let kind = if to_v2 {
        "kind TEXT COLLATE NOCASE"
    } else {
        "kind TEXT"
    };
    let mut steps = vec![
        "ALTER TABLE symbols RENAME TO temp_symbols".to_owned(),
        format!(
            "CREATE TABLE symbols (id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL REFERENCES files(id), name TEXT NOT NULL, {kind})"
        ),
        "INSERT INTO symbols (id, file_id, name, kind) SELECT id, file_id, name, kind FROM temp_symbols".to_owned(),
        "DROP TABLE temp_symbols".to_owned(),
        "CREATE INDEX IF NOT EXISTS symbols_by_file ON symbols(file_id)".to_owned(),
    ];
    if to_v2 {
        steps.push("CREATE INDEX IF NOT EXISTS symbols_by_kind ON symbols(kind)".to_owned());
    } else {
        steps.push("DROP INDEX IF EXISTS symbols_by_kind".to_owned());
    }
    steps
}
