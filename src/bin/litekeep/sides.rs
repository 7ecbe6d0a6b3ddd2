//! The two sides of `litekeep diff`: each a `.sql` file of CREATE statements or a database file,
//! told apart by the SQLite header, never by the file's name.

use std::path::Path;

use litekeep::migrate::{Extension, MigrateError, Schema};
use rusqlite::{Connection, OpenFlags};

use crate::Failure;

/// The 16 bytes every SQLite database file starts with.
const HEADER: &[u8] = b"SQLite format 3\0";

/// The schema in `path`: a database's, read without changing the file, or a SQL file's (its
/// `@renamed` annotations included). An empty file is an empty schema either way.
pub fn load(path: &Path, extensions: &[Extension]) -> Result<Schema, Failure> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| {
        Failure::new(format!(
            "cannot read {shown}: {e}; give a .sql file of CREATE statements or a SQLite database"
        ))
    })?;
    if bytes.starts_with(HEADER) {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| Failure::new(format!("cannot open the database {shown}: {e}")))?;
        load_extensions(&conn, extensions, path)?;
        return read_db(&conn, path);
    }
    let text = std::str::from_utf8(&bytes)
        .ok()
        .filter(|t| !t.contains('\0'))
        .ok_or_else(|| {
            Failure::new(format!(
                "{shown} is neither a SQL schema file (it is not text) nor a SQLite database; check the path"
            ))
        })?;
    Schema::from_sql_with(text, extensions).map_err(|e| match e {
        MigrateError::Ddl { .. }
        | MigrateError::NotDdl { .. }
        | MigrateError::Annotation { .. } => Failure::new(format!("{shown}: {e}")),
        other => Failure::new(format!("{shown}: {other}")),
    })
}

/// Loads `extensions` on `conn`, opened on `path`.
pub fn load_extensions(
    conn: &Connection,
    extensions: &[Extension],
    path: &Path,
) -> Result<(), Failure> {
    for e in extensions {
        e.load(conn)
            .map_err(|e| Failure::new(format!("{}: {e}", path.display())))?;
    }
    Ok(())
}

/// The schema of an open database, with errors naming the file.
pub fn read_db(conn: &Connection, path: &Path) -> Result<Schema, Failure> {
    Schema::read(conn).map_err(|e| {
        if matches!(e, MigrateError::MissingModule { .. }) {
            return Failure::new(format!("{}: {e}", path.display()));
        }
        Failure::new(format!(
            "cannot read the schema of {} ({e}); is it a SQLite database?",
            path.display()
        ))
    })
}
