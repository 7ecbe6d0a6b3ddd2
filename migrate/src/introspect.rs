//! Reading a [`Schema`] out of a database, and out of desired-schema DDL by letting SQLite
//! itself parse it into an in-memory database. Both sides go through the same code, so they
//! compare like for like.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::fallible_iterator::FallibleIterator;
use rusqlite::{Batch, Connection};

use crate::error::MigrateError;
use crate::extension::Extension;
use crate::schema::{Column, ForeignKeyMismatch, Object, Schema, Table};

/// Names that belong to SQLite or to litekeep and are never part of a user schema.
pub fn is_internal(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("sqlite_") || lower.starts_with("_litekeep_")
}

impl Schema {
    /// Reads the schema of the `main` database of `conn`.
    ///
    /// # Errors
    /// [`MigrateError::Sqlite`] when the schema cannot be read (for example the file is not a
    /// database); [`MigrateError::MissingModule`] when a virtual table's module is not loaded on `conn`
    /// (see [`Options::load_extension`](crate::Options::load_extension)).
    pub fn read(conn: &Connection) -> Result<Schema, MigrateError> {
        read(conn)
    }

    /// Parses desired-schema DDL (`CREATE TABLE/INDEX/VIEW/TRIGGER` statements) by executing
    /// it into a fresh in-memory database, then reads that database's schema.
    ///
    /// # Errors
    /// [`MigrateError::Ddl`] naming the statement (its number and text) that SQLite rejected,
    /// or a statement that is not a `CREATE`; [`MigrateError::Annotation`] for a `@renamed`
    /// comment that is malformed or misplaced (see [`Annotation`](crate::Annotation)).
    ///
    /// ```
    /// use litekeep_migrate::Schema;
    /// let s = Schema::from_sql("CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT);").unwrap();
    /// assert!(s.tables.contains_key("files"));
    /// // Comments anywhere, before a statement too.
    /// assert!(Schema::from_sql("-- files\nCREATE TABLE f (a);").is_ok());
    /// let err = Schema::from_sql("CREATE TABLE a (x);\nCREATE TABEL b (y);").unwrap_err();
    /// assert!(err.to_string().contains("statement 2"), "{err}");
    /// ```
    pub fn from_sql(sql: &str) -> Result<Schema, MigrateError> {
        Schema::from_sql_with(sql, &[])
    }

    /// [`Schema::from_sql`] on a scratch database that first loads `extensions` (the modules of
    /// the virtual tables the schema declares: `vec0` of sqlite-vec, say).
    ///
    /// # Errors
    /// As [`Schema::from_sql`], and [`MigrateError::MissingModule`] for a `CREATE VIRTUAL
    /// TABLE` whose module neither SQLite nor `extensions` provides;
    /// [`MigrateError::Extension`] for an extension that cannot be loaded.
    ///
    /// ```
    /// use litekeep_migrate::{MigrateError, Schema};
    /// let err = Schema::from_sql_with("CREATE VIRTUAL TABLE v USING vec0(e float[4]);", &[]).unwrap_err();
    /// assert!(matches!(err, MigrateError::MissingModule { ref module, .. } if module == "vec0"), "{err}");
    /// ```
    pub fn from_sql_with(sql: &str, extensions: &[Extension]) -> Result<Schema, MigrateError> {
        let mut conn = Connection::open_in_memory()
            .map_err(|e| MigrateError::sqlite("opening an in-memory database", e))?;
        crate::extension::load_all(&conn, extensions)?;
        let budget = bound(&mut conn, sql.len())
            .map_err(|e| MigrateError::sqlite("limiting the scratch database", e))?;
        let mut batch = Batch::new(&conn, sql);
        let mut index = 0;
        let mut rest = sql;
        loop {
            index += 1;
            let stmt = match batch.next() {
                Ok(Some(stmt)) => stmt,
                Ok(None) => break,
                Err(source) => {
                    return Err(MigrateError::Ddl {
                        index,
                        statement: snippet(rest),
                        source,
                    });
                }
            };
            let text = stmt.expanded_sql().unwrap_or_default();
            rest = advance(rest, &text);
            // SQLite's text of a statement keeps the comments before it.
            let first = crate::tokens::tokenize(&text)
                .into_iter()
                .find(|t| !t.is_comment());
            if !first.is_some_and(|t| t.is_word("create")) {
                return Err(MigrateError::NotDdl {
                    index,
                    statement: snippet(&text),
                });
            }
            renew(&budget);
            let mut stmt = stmt;
            if let Err(source) = stmt.raw_execute() {
                if let Some(module) = crate::vtab::no_such_module(&source) {
                    return Err(MigrateError::MissingModule {
                        table: statement_name(&text).unwrap_or_default(),
                        module,
                    });
                }
                return Err(MigrateError::Ddl {
                    index,
                    statement: snippet(&text),
                    source,
                });
            }
        }
        let mut schema = Schema::read(&conn)?;
        schema.annotations = crate::annotations::read(sql)?;
        schema.foreign_key_mismatches = mismatches(&conn, &schema)
            .map_err(|e| MigrateError::sqlite("checking the desired foreign keys", e))?;
        Ok(schema)
    }
}

/// The name a `CREATE …` statement gives its object.
fn statement_name(sql: &str) -> Option<String> {
    let tokens = crate::tokens::tokenize(sql);
    let stmt = crate::tokens::statements(&tokens).into_iter().next()?;
    match stmt.shape() {
        crate::tokens::Shape::Table { name, .. } | crate::tokens::Shape::Index { name, .. } => {
            name.ident()
        }
        crate::tokens::Shape::Other => None,
    }
}

/// The foreign keys of `schema` (loaded, without rows, on `conn`) whose parent key is neither
/// PRIMARY KEY nor UNIQUE: `foreign_key_check` on an empty table costs nothing and names
/// exactly those ("foreign key mismatch - "p" referencing "u"").
fn mismatches(conn: &Connection, schema: &Schema) -> rusqlite::Result<Vec<ForeignKeyMismatch>> {
    let mut out = Vec::new();
    for table in schema.tables.values().filter(|t| !t.references.is_empty()) {
        let checked = conn.query_row(
            "SELECT count(*) FROM pragma_foreign_key_check(?1, 'main')",
            [&table.name],
            |r| r.get::<_, i64>(0),
        );
        let Err(e) = checked else { continue };
        let Some(parent) = crate::violations::mismatched_parent(&e) else {
            return Err(e);
        };
        let mut stmt = conn.prepare(
            "SELECT \"to\" FROM pragma_foreign_key_list(?1, 'main') \
             WHERE \"table\" = ?2 COLLATE NOCASE ORDER BY id, seq",
        )?;
        let columns = stmt
            .query_map([&table.name, &parent], |r| r.get::<_, Option<String>>(0))?
            .filter_map(|c| c.transpose())
            .collect::<rusqlite::Result<Vec<String>>>()?;
        out.push(ForeignKeyMismatch {
            table: table.name.clone(),
            parent,
            columns,
        });
    }
    Ok(out)
}

/// The schema of the `main` database of `conn` as DDL that [`migrate`](crate::migrate)
/// accepts: every `CREATE` statement as SQLite stored it, tables (virtual ones too) first, then
/// indexes, views (a view on a view after it) and triggers, each kind in creation order,
/// without SQLite's and litekeep's own objects and without the shadow tables of virtual tables
/// (their modules create them). A fresh
/// database migrated to it gets the same schema (the same [`Schema::fingerprint`]).
///
/// # Errors
/// [`MigrateError::Sqlite`] when the schema cannot be read; [`MigrateError::MissingModule`]
/// when a virtual table's module is not loaded on `conn` (its shadow tables cannot be told).
///
/// ```
/// use litekeep_migrate::{export_sql, Schema};
/// let conn = rusqlite::Connection::open_in_memory().unwrap();
/// conn.execute_batch("CREATE TABLE t (a INT); CREATE INDEX t_a ON t (a);").unwrap();
/// let sql = export_sql(&conn).unwrap();
/// assert_eq!(sql, "CREATE TABLE t (a INT);\nCREATE INDEX t_a ON t (a);\n");
/// assert_eq!(Schema::from_sql(&sql).unwrap().fingerprint(), Schema::read(&conn).unwrap().fingerprint());
/// ```
pub fn export_sql(conn: &Connection) -> Result<String, MigrateError> {
    let read = || -> rusqlite::Result<Vec<(String, String, String, String)>> {
        let mut stmt = conn.prepare(
            "SELECT type, name, tbl_name, sql FROM main.sqlite_schema WHERE sql IS NOT NULL \
             ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 WHEN 'view' THEN 2 \
             ELSE 3 END, rowid",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        rows.collect()
    };
    let rows = read().map_err(|e| MigrateError::sqlite("reading the schema", e))?;
    let types = crate::vtab::table_types(conn)
        .map_err(|e| MigrateError::sqlite("reading the schema", e))?;
    let kind_of = |name: &str| types.get(&name.to_ascii_lowercase()).map(String::as_str);
    // A shadow table is told only by its module: without it, refuse rather than guess.
    crate::vtab::missing_module(
        conn,
        rows.iter()
            .filter(|(_, name, ..)| kind_of(name) == Some("virtual"))
            .map(|(_, name, _, sql)| (name.as_str(), sql.as_str())),
    )?;
    let user: Vec<&(String, String, String, String)> = rows
        .iter()
        .filter(|(_, name, table, _)| {
            !is_internal(name) && !is_internal(table) && kind_of(name) != Some("shadow")
        })
        .collect();
    let views: Vec<Object> = user
        .iter()
        .filter(|(kind, ..)| kind == "view")
        .map(|(_, name, table, sql)| Object {
            name: name.clone(),
            table: table.clone(),
            sql: sql.clone(),
        })
        .collect();
    let mut out = String::new();
    let mut push = |sql: &str| {
        let sql = sql.trim_end();
        out.push_str(sql);
        // A stored text may end in a `--` comment, which would swallow the `;`.
        if sql.lines().last().is_some_and(|l| l.contains("--")) {
            out.push('\n');
        }
        out.push_str(";\n");
    };
    for (kind, _, _, sql) in &user {
        if kind != "view" && kind != "trigger" {
            push(sql);
        }
    }
    // Views in dependency order (a view on a view after it), then triggers (on views too).
    for view in crate::order::views_in_order(views.iter()) {
        push(&view.sql);
    }
    for (_, _, _, sql) in user.iter().filter(|(kind, ..)| kind == "trigger") {
        push(sql);
    }
    Ok(out)
}

/// How much one desired-schema statement may compute before it is interrupted.
#[derive(Debug)]
struct Budget {
    deadline: Instant,
    ticks: u32,
}

/// Wall-clock time one desired-schema statement may take.
const STATEMENT_TIME: Duration = Duration::from_secs(2);
/// Virtual-machine steps (in units of [`TICK_OPS`]) one desired-schema statement may take.
const STATEMENT_TICKS: u32 = 50_000;
/// Virtual-machine steps between two checks of the budget.
const TICK_OPS: i32 = 1_000;
/// The smallest cap on a value's length; a longer schema raises it (SQLite stores each
/// statement's text in `sqlite_schema` as one value).
const MIN_VALUE_LENGTH: usize = 64 << 10;

/// A desired schema only declares; a statement that computes (`CREATE TABLE t AS SELECT …`
/// over a recursive CTE, a DEFAULT of `randomblob(1e9)`) must not hang or fill memory. Each
/// statement gets [`STATEMENT_TIME`] and ~50 million virtual-machine steps, and values are
/// capped near the schema's own length (one step over long values, `instr` say, can itself be
/// slow: found by the schema_text fuzz target).
fn bound(conn: &mut Connection, sql_len: usize) -> rusqlite::Result<Arc<Mutex<Budget>>> {
    let cap = MIN_VALUE_LENGTH.max(sql_len.saturating_mul(2).saturating_add(4096));
    conn.set_limit(
        rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH,
        i32::try_from(cap).unwrap_or(i32::MAX),
    )?;
    let budget = Arc::new(Mutex::new(Budget {
        deadline: Instant::now() + STATEMENT_TIME,
        ticks: 0,
    }));
    let shared = Arc::clone(&budget);
    conn.progress_handler(
        TICK_OPS,
        Some(move || match shared.lock() {
            Ok(mut b) => {
                b.ticks += 1;
                b.ticks > STATEMENT_TICKS || Instant::now() > b.deadline
            }
            Err(_) => true,
        }),
    )?;
    Ok(budget)
}

/// Gives the next statement a fresh budget.
fn renew(budget: &Mutex<Budget>) {
    if let Ok(mut b) = budget.lock() {
        b.deadline = Instant::now() + STATEMENT_TIME;
        b.ticks = 0;
    }
}

/// The part of `rest` after the statement `text` (best effort, for pointing at the next one).
fn advance<'a>(rest: &'a str, text: &str) -> &'a str {
    match rest.find(text) {
        Some(at) => rest.get(at + text.len()..).unwrap_or(""),
        None => rest,
    }
}

/// The first line of a statement, shortened, for error messages.
fn snippet(sql: &str) -> String {
    let sql = sql.trim_start_matches(|c: char| c.is_whitespace() || c == ';');
    let line: String = sql.lines().next().unwrap_or("").chars().take(80).collect();
    if line.len() < sql.trim_end().len() {
        format!("{line} …")
    } else {
        line
    }
}

fn read(conn: &Connection) -> Result<Schema, MigrateError> {
    let sqlite = |e| MigrateError::sqlite("reading the schema", e);
    let mut schema = Schema::default();
    let types = crate::vtab::table_types(conn).map_err(sqlite)?;
    let rows = || -> rusqlite::Result<Vec<(String, String, String, String)>> {
        let mut stmt = conn.prepare(
            "SELECT type, name, tbl_name, sql FROM main.sqlite_schema \
             WHERE sql IS NOT NULL ORDER BY rowid",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        rows.collect()
    };
    let rows = rows().map_err(sqlite)?;
    let mut virtuals = Vec::new();
    for (kind, name, table, sql) in rows {
        if is_internal(&name) || is_internal(&table) {
            continue;
        }
        let key = name.to_ascii_lowercase();
        let object = Object { name, table, sql };
        match kind.as_str() {
            "table" => match types.get(&key).map(String::as_str) {
                // The module's own tables: never part of a user's schema.
                Some("shadow") => {}
                Some("virtual") => virtuals.push((key, object)),
                _ => {
                    let table = read_table(conn, object).map_err(sqlite)?;
                    schema.tables.insert(key, table);
                }
            },
            "index" => insert(&mut schema.indexes, key, object),
            "view" => insert(&mut schema.views, key, object),
            "trigger" => insert(&mut schema.triggers, key, object),
            _ => {}
        }
    }
    crate::vtab::missing_module(
        conn,
        virtuals
            .iter()
            .map(|(_, o)| (o.name.as_str(), o.sql.as_str())),
    )?;
    for (key, object) in virtuals {
        let table = crate::vtab::read(conn, object.name, object.sql).map_err(sqlite)?;
        schema.virtual_tables.insert(key, table);
    }
    Ok(schema)
}

fn insert(map: &mut BTreeMap<String, Object>, key: String, object: Object) {
    map.insert(key, object);
}

fn read_table(conn: &Connection, object: Object) -> rusqlite::Result<Table> {
    let mut cols = conn.prepare("SELECT name, type, \"notnull\", dflt_value, pk, hidden FROM pragma_table_xinfo(?1, 'main')")?;
    let columns = cols
        .query_map([&object.name], |r| {
            Ok(Column {
                name: r.get(0)?,
                decl_type: r.get(1)?,
                not_null: r.get(2)?,
                default: r.get(3)?,
                pk: r.get(4)?,
                hidden: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut fks =
        conn.prepare("SELECT DISTINCT \"table\" FROM pragma_foreign_key_list(?1, 'main')")?;
    let references = fks
        .query_map([&object.name], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    let without_rowid = conn
        .query_row(
            "SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?1",
            [&object.name],
            |r| r.get::<_, bool>(0),
        )
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(false),
            other => Err(other),
        })?;
    let pk_indexed = conn.query_row(
        "SELECT count(*) > 0 FROM pragma_index_list(?1, 'main') WHERE origin = 'pk'",
        [&object.name],
        |r| r.get::<_, bool>(0),
    )?;
    let autoincrement = crate::tokens::tokenize(&object.sql)
        .iter()
        .any(|t| t.is_word("autoincrement"));
    Ok(Table {
        autoincrement,
        name: object.name,
        sql: object.sql,
        columns,
        without_rowid,
        references,
        pk_indexed,
    })
}
