//! Connections for checking what a child left, and the checks themselves.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

/// A connection through SQLite's own unix VFS, whatever the default is: for looking at what a
/// child left, never through the faults.
///
/// # Panics
/// When SQLite cannot open the file.
#[track_caller]
pub fn open_plain(path: &Path) -> Connection {
    Connection::open_with_flags_and_vfs(path, OpenFlags::default(), "unix")
        .unwrap_or_else(|e| panic!("open {} with the unix VFS: {e}", path.display()))
}

/// A connection through the fault VFS (registered first, not as the default).
pub fn open_faulty(path: &Path) -> rusqlite::Result<Connection> {
    crate::register().map_err(|e| {
        rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(e.to_string()),
        )
    })?;
    Connection::open_with_flags_and_vfs(path, OpenFlags::default(), crate::VFS_NAME)
}

/// The first column of every row `sql` returns (a query without parameters).
pub fn column<T: rusqlite::types::FromSql>(
    conn: &Connection,
    sql: &str,
) -> rusqlite::Result<Vec<T>> {
    conn.prepare(sql)?.query_map([], |r| r.get(0))?.collect()
}

/// `PRAGMA integrity_check`'s verdict, all its lines joined: `"ok"` for a sound file. A
/// failure to run it is a verdict too (`"error: …"`), not a panic.
pub fn integrity(conn: &Connection) -> String {
    match column::<String>(conn, "PRAGMA integrity_check") {
        Ok(lines) => lines.join("; "),
        Err(e) => format!("error: {e}"),
    }
}

/// `PRAGMA foreign_key_check`'s rows as `table rowid parent fkid`: empty for a sound file. A
/// failure to run it is one row `"error: …"`.
pub fn foreign_key_check(conn: &Connection) -> Vec<String> {
    let run = || -> rusqlite::Result<Vec<String>> {
        conn.prepare("SELECT \"table\", rowid, parent, fkid FROM pragma_foreign_key_check")?
            .query_map([], |r| {
                Ok(format!(
                    "{} {} {} {}",
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<i64>>(1)?
                        .map_or("-".to_owned(), |v| v.to_string()),
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?
                ))
            })?
            .collect()
    };
    run().unwrap_or_else(|e| vec![format!("error: {e}")])
}

/// The journal mode, lower case (`"wal"`, `"delete"`); `"error: …"` when it cannot be read.
pub fn journal_mode(conn: &Connection) -> String {
    conn.query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))
        .map_or_else(|e| format!("error: {e}"), |m| m.to_lowercase())
}

/// The extended result code of a SQLite failure.
pub fn code(err: &rusqlite::Error) -> Option<i32> {
    match err {
        rusqlite::Error::SqliteFailure(e, _) => Some(e.extended_code),
        _ => None,
    }
}

/// The logical content of a database, for "is it as it was" checks: every schema object's SQL
/// and every row of every table (sorted, each value with its type), one line each. Two files
/// with the same dump hold the same data, whatever their pages look like.
pub fn dump(conn: &Connection) -> rusqlite::Result<String> {
    use rusqlite::types::ValueRef;
    use std::fmt::Write as _;
    let objects: Vec<(String, String, Option<String>)> = conn
        .prepare("SELECT type, name, sql FROM sqlite_schema ORDER BY type, name")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut out = String::new();
    for (kind, name, sql) in objects {
        let _ = writeln!(out, "{kind} {name}: {}", sql.unwrap_or_default());
        if kind != "table" {
            continue;
        }
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{}\"", name.replace('"', "\"\"")))?;
        let width = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let mut row = String::new();
                for i in 0..width {
                    let _ = match r.get_ref(i)? {
                        ValueRef::Null => write!(row, "|NULL"),
                        ValueRef::Integer(v) => write!(row, "|i{v}"),
                        ValueRef::Real(v) => write!(row, "|r{v:?}"),
                        ValueRef::Text(v) => write!(row, "|t{:?}", String::from_utf8_lossy(v)),
                        ValueRef::Blob(v) => write!(row, "|b{v:02x?}"),
                    };
                }
                Ok(row)
            })?
            .collect::<Result<_, _>>()?;
        rows.sort_unstable();
        for row in rows {
            let _ = writeln!(out, "  {row}");
        }
    }
    Ok(out)
}
