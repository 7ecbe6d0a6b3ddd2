//! Virtual tables as SQLite reports them: which tables are virtual, which are their modules'
//! shadow tables (never part of a user's schema), which modules this connection has, and what
//! a `CREATE VIRTUAL TABLE` statement says about where the rows live (`content=`).
//!
//! `PRAGMA table_list` types each table `table`, `virtual` or `shadow` — but it can only tell a
//! shadow table when the module that owns it is loaded on the connection (the module's
//! `xShadowName` decides). A virtual table whose module is missing is therefore an error
//! ([`MigrateError::MissingModule`]), never a guess.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::Connection;

use crate::error::MigrateError;
use crate::schema::{Content, VirtualTable};
use crate::tokens::{Kind, Token, tokenize};

/// What `PRAGMA table_list` says about the tables of `main`: lower-cased name → type
/// (`table`, `virtual`, `shadow`, `view`).
pub(crate) fn table_types(conn: &Connection) -> rusqlite::Result<BTreeMap<String, String>> {
    let mut stmt =
        conn.prepare("SELECT name, type FROM pragma_table_list WHERE schema = 'main'")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?.to_ascii_lowercase(), r.get(1)?))
    })?;
    rows.collect()
}

/// The modules registered on `conn`, lower-cased.
pub(crate) fn modules(conn: &Connection) -> rusqlite::Result<BTreeSet<String>> {
    let mut stmt = conn.prepare("SELECT lower(name) FROM pragma_module_list")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// The module a `CREATE VIRTUAL TABLE` statement names, lower-cased.
pub(crate) fn module_of(sql: &str) -> Option<String> {
    let tokens = tokenize(sql);
    let mut code = tokens.iter().filter(|t| !t.is_comment());
    code.find(|t| t.is_word("using"))?;
    code.next()
        .and_then(Token::ident)
        .map(|m| m.to_ascii_lowercase())
}

/// The module arguments of a `CREATE VIRTUAL TABLE` statement, each as (key, value) when it
/// is `key = value` (value unquoted), or (text, None) otherwise.
fn arguments(sql: &str) -> Vec<(String, Option<String>)> {
    let tokens = tokenize(sql);
    let code: Vec<&Token<'_>> = tokens.iter().filter(|t| !t.is_comment()).collect();
    let Some(open) = code.iter().position(|t| t.kind == Kind::Punct('(')) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut current: Vec<&Token<'_>> = Vec::new();
    for t in &code[open + 1..] {
        match t.kind {
            Kind::Punct('(') => depth += 1,
            Kind::Punct(')') if depth == 0 => break,
            Kind::Punct(')') => depth -= 1,
            Kind::Punct(',') if depth == 0 => {
                out.push(argument(&current));
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(t);
    }
    if !current.is_empty() {
        out.push(argument(&current));
    }
    out
}

fn argument(tokens: &[&Token<'_>]) -> (String, Option<String>) {
    match tokens {
        [key, eq, value @ ..] if eq.kind == Kind::Punct('=') && !value.is_empty() => {
            let value = match value {
                [one] => one.ident().unwrap_or_else(|| one.text.to_owned()),
                more => more.iter().map(|t| t.text).collect::<Vec<_>>().join(" "),
            };
            (
                key.ident()
                    .unwrap_or_else(|| key.text.to_owned())
                    .to_ascii_lowercase(),
                Some(value),
            )
        }
        _ => (
            tokens.iter().map(|t| t.text).collect::<Vec<_>>().join(" "),
            None,
        ),
    }
}

/// Where the rows of a virtual table of `module` declared by `sql` live.
pub(crate) fn content_of(module: &str, sql: &str) -> Content {
    if !matches!(module, "fts4" | "fts5") {
        return Content::Own;
    }
    match arguments(sql)
        .into_iter()
        .find(|(k, v)| k == "content" && v.is_some())
        .and_then(|(_, v)| v)
    {
        Some(table) if table.is_empty() => Content::None,
        Some(table) => Content::External(table),
        None => Content::Own,
    }
}

/// Reads the virtual table `name` (its statement `sql`) of `conn`, whose module must be loaded.
pub(crate) fn read(conn: &Connection, name: String, sql: String) -> rusqlite::Result<VirtualTable> {
    let module = module_of(&sql).unwrap_or_default();
    let mut stmt = conn
        .prepare("SELECT name FROM pragma_table_xinfo(?1, 'main') WHERE hidden = 0 ORDER BY cid")?;
    let columns = stmt
        .query_map([&name], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    let content = content_of(&module, &sql);
    Ok(VirtualTable {
        name,
        sql,
        module,
        columns,
        content,
    })
}

/// The error for a virtual table whose module `conn` lacks, if any (`tables`: name → sql of the
/// virtual tables).
pub(crate) fn missing_module<'a>(
    conn: &Connection,
    tables: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), MigrateError> {
    let have = modules(conn).map_err(|e| MigrateError::sqlite("listing the loaded modules", e))?;
    for (name, sql) in tables {
        let module = module_of(sql).unwrap_or_default();
        if !have.contains(&module) {
            return Err(MigrateError::MissingModule {
                table: name.to_owned(),
                module,
            });
        }
    }
    Ok(())
}

/// The module a "no such module: m" error names.
pub(crate) fn no_such_module(e: &rusqlite::Error) -> Option<String> {
    let rusqlite::Error::SqliteFailure(_, Some(msg)) = e else {
        return None;
    };
    msg.strip_prefix("no such module: ")
        .map(|m| m.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_options_are_read_from_the_module_arguments() {
        let c = |sql: &str| content_of(&module_of(sql).unwrap(), sql);
        assert_eq!(
            c("CREATE VIRTUAL TABLE f USING fts5(path, body, content='docs', content_rowid='id')"),
            Content::External("docs".into())
        );
        assert_eq!(
            c("CREATE VIRTUAL TABLE f USING FTS4(a, content=\"Docs\")"),
            Content::External("Docs".into())
        );
        assert_eq!(
            c("CREATE VIRTUAL TABLE f USING fts5(a, content='')"),
            Content::None
        );
        assert_eq!(c("CREATE VIRTUAL TABLE f USING fts5(a, b)"), Content::Own);
        assert_eq!(
            c("CREATE VIRTUAL TABLE b USING rtree(id, minx, maxx)"),
            Content::Own
        );
        assert_eq!(
            module_of("create virtual table x using /* c */ Vec0(e float[4])").as_deref(),
            Some("vec0")
        );
    }
}
