//! Room for a migration: the bytes its rebuilds will write, against the free space of the disk
//! holding the database, checked before the transaction begins, so that a rebuild that cannot
//! fit is refused at once instead of after writing (and rolling back) most of a table.
//!
//! What a rebuild writes: a second copy of the table and of each of its indexes. In WAL mode
//! every page of it goes to the `-wal` file (freed pages of the database are not reused until a
//! checkpoint), so the disk needs the whole copy; with a rollback journal the new pages come
//! from the database's free list first and the file grows by the rest, while the journal keeps
//! only the few existing pages the rebuild changes. The sizes are `dbstat`'s (the bundled
//! SQLite has it), read only when a cheap bound (twice the database's used pages) does not
//! already fit in the free space.

use std::path::Path;

use rusqlite::Connection;

use crate::options::Rename;
use crate::plan::{Plan, StepKind};

/// Room for what the estimate leaves out: the WAL index (`-shm`), the pages of the schema and
/// of the free list the migration rewrites, the journal's header.
const MARGIN: u64 = 256 << 10;

/// Bytes free on the disk of `path` and bytes the plan is estimated to need there, when the
/// second is more than the first (and both could be read). `None`: it fits, or nothing is
/// rebuilt, or the numbers could not be read (then the migration just runs; a disk that fills
/// up still rolls it back).
pub(crate) fn shortfall(conn: &Connection, path: &Path, plan: &Plan) -> Option<(u64, u64)> {
    if path.as_os_str().is_empty() {
        return None;
    }
    let tables = rebuilt_tables(plan);
    if tables.is_empty() {
        return None;
    }
    let free = litekeep_recover::free_space(path)?;
    let page = pragma(conn, "page_size")?;
    let used = pragma(conn, "page_count")?.saturating_sub(pragma(conn, "freelist_count")?) * page;
    if free >= used.saturating_mul(2).saturating_add(MARGIN) {
        return None;
    }
    let needed = needed(conn, &tables, page)?;
    (free < needed).then_some((free, needed))
}

/// The estimate alone, for the message of a disk that filled up during the migration.
pub(crate) fn needed_by(conn: &Connection, plan: &Plan) -> Option<u64> {
    let tables = rebuilt_tables(plan);
    if tables.is_empty() {
        return None;
    }
    needed(conn, &tables, pragma(conn, "page_size")?)
}

fn needed(conn: &Connection, tables: &[String], page: u64) -> Option<u64> {
    let mut copy = 0u64;
    for table in tables {
        copy = copy.saturating_add(table_bytes(conn, table).ok()?);
    }
    let wal = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))
        .ok()?
        .eq_ignore_ascii_case("wal");
    let bytes = if wal {
        // Each page in the WAL carries a 24-byte frame header.
        copy.saturating_add(copy / page * 24)
    } else {
        copy.saturating_sub(pragma(conn, "freelist_count")? * page)
    };
    Some(bytes.saturating_add(MARGIN))
}

/// The tables the plan rebuilds, by the names they have in the database now.
fn rebuilt_tables(plan: &Plan) -> Vec<String> {
    plan.steps
        .iter()
        .filter(|s| s.kind == StepKind::RebuildTable)
        .map(|s| {
            // A table renamed on its way to the desired name is rebuilt from its old name.
            plan.renames
                .iter()
                .find_map(|r| match &r.rename {
                    Rename::Table { from, to } if to.eq_ignore_ascii_case(&s.target) => {
                        Some(from.clone())
                    }
                    _ => None,
                })
                .unwrap_or_else(|| s.target.clone())
        })
        .collect()
}

/// The bytes of `table`'s b-tree and of its indexes' (0 when it is not there).
fn table_bytes(conn: &Connection, table: &str) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT coalesce(sum(s.pgsize), 0) FROM main.sqlite_schema m
           JOIN dbstat('main', 1) s ON s.name = m.name
          WHERE m.tbl_name = ?1 COLLATE NOCASE AND m.type IN ('table', 'index')",
        [table],
        |r| r.get::<_, i64>(0),
    )
    .map(|b| u64::try_from(b).unwrap_or(0))
}

fn pragma(conn: &Connection, name: &str) -> Option<u64> {
    conn.query_row(&format!("PRAGMA main.{name}"), [], |r| r.get::<_, i64>(0))
        .ok()
        .and_then(|v| u64::try_from(v).ok())
}

/// `bytes` for a person: KiB below 10 MiB, MiB above.
pub(crate) fn human(bytes: u64) -> String {
    if bytes < 10 << 20 {
        format!("{} KiB", bytes.div_ceil(1024))
    } else {
        format!("{} MiB", bytes.div_ceil(1 << 20))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Options, Schema, diff};

    fn plan_for(conn: &Connection, desired: &str) -> Plan {
        let current = Schema::read(conn).unwrap();
        diff(
            &current,
            &Schema::from_sql(desired).unwrap(),
            &Options::default(),
        )
        .unwrap()
    }

    #[test]
    fn a_rebuild_needs_about_the_size_of_its_table_and_indexes() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT);
             CREATE INDEX t_body ON t(body);
             CREATE TABLE other (x BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO t (body) SELECT printf('%.200c', 'a') || i FROM n;
             INSERT INTO other SELECT randomblob(1 << 20);",
        )
        .unwrap();
        let page: u64 = 4096;
        let t_pages: u64 = conn
            .query_row(
                "SELECT sum(pgsize) FROM dbstat WHERE name IN ('t', 't_body')",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
            .try_into()
            .unwrap();
        assert!(t_pages > 800 * 1024, "{t_pages}");
        // `size` becomes TEXT: a rebuild of t only; `other` (1 MiB) is not counted.
        let plan = plan_for(
            &conn,
            "CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
             CREATE INDEX t_body ON t(body);
             CREATE TABLE other (x BLOB);",
        );
        let needed = needed_by(&conn, &plan).unwrap();
        assert_eq!(needed, t_pages + MARGIN, "page size {page}");
        // Nothing rebuilt, nothing needed.
        let plan = plan_for(
            &conn,
            "CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT);
             CREATE INDEX t_body ON t(body);
             CREATE TABLE other (x BLOB);
             CREATE TABLE new (y);",
        );
        assert_eq!(needed_by(&conn, &plan), None);
    }

    #[test]
    fn sizes_read_as_people_read_them() {
        assert_eq!(human(1), "1 KiB");
        assert_eq!(human(1536 * 1024), "1536 KiB");
        assert_eq!(human(64 << 20), "64 MiB");
    }
}
