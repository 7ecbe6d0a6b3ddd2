//! What recovery needs to know about a database's schema, read from `sqlite_schema` and the
//! table-valued pragmas. Nothing here writes.

use rusqlite::Connection;

/// One table.
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// Its name, as stored.
    pub name: String,
    /// Whether it is a `WITHOUT ROWID` table.
    pub without_rowid: bool,
    /// Its stored columns (generated ones left out: they cannot be inserted).
    pub columns: Vec<String>,
    /// Its primary key columns, in key order (empty for a rowid table without one).
    pub primary_key: Vec<String>,
    /// The column that aliases the rowid (`INTEGER PRIMARY KEY`), if any.
    pub rowid_alias: Option<String>,
    /// The tables its foreign keys point at.
    pub references: Vec<String>,
}

impl TableInfo {
    /// Whether it has a stored column called `name` (ASCII case-insensitive).
    pub fn has_column(&self, name: &str) -> bool {
        self.columns.iter().any(|c| c.eq_ignore_ascii_case(name))
    }
}

/// An index, view or trigger.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    /// `index`, `view` or `trigger`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// The table it belongs to (for a view: itself).
    pub table: String,
    /// Its `CREATE` statement (`None` for indexes SQLite makes for constraints).
    pub sql: Option<String>,
}

/// The schema of the `main` database.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Tables, internal ones (`sqlite_*`) left out.
    pub tables: Vec<TableInfo>,
    /// Indexes, views and triggers.
    pub objects: Vec<ObjectInfo>,
    /// Virtual tables (their shadow tables are not in [`Catalog::tables`]).
    pub virtual_tables: Vec<crate::vtab::VirtualTableInfo>,
}

impl Catalog {
    /// Reads the schema.
    pub fn read(conn: &Connection) -> rusqlite::Result<Catalog> {
        let mut stmt = conn.prepare(
            "SELECT name, wr FROM pragma_table_list WHERE schema = 'main' AND type = 'table'
               AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        )?;
        let names: Vec<(String, bool)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let virtual_tables = crate::vtab::read(conn)?;
        let mut tables = Vec::with_capacity(names.len());
        for (name, without_rowid) in names {
            // A shadow table of a virtual table whose module is not loaded (PRAGMA table_list
            // then types it `table`): the module's, never a leftover.
            if crate::vtab::shadow_of_unloaded(&virtual_tables, &name) {
                continue;
            }
            tables.push(read_table(conn, name, without_rowid)?);
        }
        let mut stmt = conn.prepare(
            "SELECT type, name, tbl_name, sql FROM sqlite_schema
              WHERE type IN ('index', 'view', 'trigger') ORDER BY rowid",
        )?;
        let objects = stmt
            .query_map([], |r| {
                Ok(ObjectInfo {
                    kind: r.get(0)?,
                    name: r.get(1)?,
                    table: r.get(2)?,
                    sql: r.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(Catalog {
            tables,
            objects,
            virtual_tables,
        })
    }

    /// The table called `name` (ASCII case-insensitive, as SQLite resolves names).
    pub fn table(&self, name: &str) -> Option<&TableInfo> {
        self.tables
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
    }

    /// Whether any table, virtual table, view or index is called `name`.
    pub fn name_taken(&self, name: &str) -> bool {
        self.table(name).is_some()
            || self
                .virtual_tables
                .iter()
                .any(|v| v.name.eq_ignore_ascii_case(name))
            || self
                .objects
                .iter()
                .any(|o| o.name.eq_ignore_ascii_case(name))
    }
}

fn read_table(conn: &Connection, name: String, without_rowid: bool) -> rusqlite::Result<TableInfo> {
    let mut stmt =
        conn.prepare("SELECT name, type, pk, hidden FROM pragma_table_xinfo(?1) ORDER BY cid")?;
    let rows: Vec<(String, String, i64, i64)> = stmt
        .query_map([&name], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut columns = Vec::new();
    let mut keyed: Vec<(i64, String, String)> = Vec::new();
    for (col, ty, pk, hidden) in rows {
        // hidden: 0 ordinary, 1 hidden (virtual tables), 2 virtual generated, 3 stored generated.
        if hidden == 0 {
            columns.push(col.clone());
        }
        if pk > 0 {
            keyed.push((pk, col, ty));
        }
    }
    keyed.sort();
    // `INTEGER PRIMARY KEY DESC` is not an alias (SQLite's quirk): its key gets an index of
    // its own, which a true alias never has.
    let pk_indexed: bool = conn.query_row(
        "SELECT count(*) > 0 FROM pragma_index_list(?1) WHERE origin = 'pk'",
        [&name],
        |r| r.get(0),
    )?;
    let rowid_alias = match keyed.as_slice() {
        [(_, col, ty)] if !without_rowid && !pk_indexed && ty.eq_ignore_ascii_case("INTEGER") => {
            Some(col.clone())
        }
        _ => None,
    };
    let primary_key = keyed.into_iter().map(|(_, c, _)| c).collect();
    let mut stmt = conn.prepare("SELECT DISTINCT \"table\" FROM pragma_foreign_key_list(?1)")?;
    let references = stmt
        .query_map([&name], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(TableInfo {
        name,
        without_rowid,
        columns,
        primary_key,
        rowid_alias,
        references,
    })
}

/// Reads column `idx` of a row as a count (SQLite integers are signed; counts never negative).
pub(crate) fn count_at(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    row.get::<_, i64>(idx)
        .map(|n| u64::try_from(n).unwrap_or(0))
}
