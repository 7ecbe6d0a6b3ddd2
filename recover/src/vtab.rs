//! Virtual tables, as far as recovery and checks care: which tables are virtual, with which
//! module, and which tables are their modules' shadow tables — never leftovers, whatever their
//! names (`PRAGMA table_list` types them `shadow`; without the module loaded it cannot, so every
//! `<vtab>_*` table of a virtual table whose module is missing counts as one).

use rusqlite::Connection;

use crate::sql::identifiers;

/// One virtual table.
#[derive(Debug, Clone)]
pub struct VirtualTableInfo {
    /// Its name.
    pub name: String,
    /// Its module, lower-cased (`fts5`, `rtree`, `vec0`, …).
    pub module: String,
    /// Whether that module is loaded on the connection that read it.
    pub loaded: bool,
    /// Its external content table (FTS4/FTS5 `content=`), if any.
    pub content: Option<String>,
}

/// The virtual tables of `main`.
pub(crate) fn read(conn: &Connection) -> rusqlite::Result<Vec<VirtualTableInfo>> {
    let mut stmt = conn.prepare(
        "SELECT l.name, s.sql FROM pragma_table_list AS l JOIN main.sqlite_schema AS s \
           ON s.name = l.name AND s.type = 'table' \
         WHERE l.schema = 'main' AND l.type = 'virtual' ORDER BY l.name",
    )?;
    let rows: Vec<(String, Option<String>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut modules =
        conn.prepare("SELECT count(*) > 0 FROM pragma_module_list WHERE name = ?1 COLLATE NOCASE")?;
    let mut out = Vec::with_capacity(rows.len());
    for (name, sql) in rows {
        let sql = sql.unwrap_or_default();
        let words: Vec<String> = identifiers(&sql).collect();
        let module = words
            .iter()
            .position(|w| w.eq_ignore_ascii_case("using"))
            .and_then(|at| words.get(at + 1))
            .map(|m| m.to_ascii_lowercase())
            .unwrap_or_default();
        let loaded = modules.query_row([&module], |r| r.get(0))?;
        let content = content_option(&sql);
        out.push(VirtualTableInfo {
            name,
            module,
            loaded,
            content: content.filter(|c| !c.is_empty()),
        });
    }
    Ok(out)
}

/// The value of an FTS `content=` option: `content='x'`, `content="x"`, `content=x`.
fn content_option(sql: &str) -> Option<String> {
    let lower = sql.to_ascii_lowercase();
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(found) = lower[from..].find("content") {
        let at = from + found;
        from = at + "content".len();
        if lower[..at].ends_with(word) {
            continue;
        }
        let Some(rest) = sql[from..].trim_start().strip_prefix('=') else {
            continue;
        };
        let rest = rest.trim_start();
        let value = match rest.chars().next() {
            Some(q @ ('\'' | '"' | '`')) => rest[1..].split(q).next().unwrap_or(""),
            Some('[') => rest[1..].split(']').next().unwrap_or(""),
            _ => rest.split(|c: char| !word(c)).next().unwrap_or(""),
        };
        return Some(value.to_owned());
    }
    None
}

/// Whether `table` is (by its name) a shadow table of one of `virtuals` whose module is not
/// loaded.
pub(crate) fn shadow_of_unloaded(virtuals: &[VirtualTableInfo], table: &str) -> bool {
    let lower = table.to_ascii_lowercase();
    virtuals.iter().filter(|v| !v.loaded).any(|v| {
        lower
            .strip_prefix(&v.name.to_ascii_lowercase())
            .is_some_and(|rest| rest.starts_with('_'))
    })
}

#[cfg(test)]
mod tests {
    use super::content_option;

    #[test]
    fn content_options() {
        let c = |s: &str| content_option(s);
        assert_eq!(
            c("USING fts5(a, content='docs', content_rowid='id')").as_deref(),
            Some("docs")
        );
        assert_eq!(
            c("USING fts5(a, content_rowid='id', content = \"d d\")").as_deref(),
            Some("d d")
        );
        assert_eq!(c("USING fts4(a, content=docs)").as_deref(), Some("docs"));
        assert_eq!(c("USING fts5(a, content='')").as_deref(), Some(""));
        assert_eq!(c("USING fts5(a, mycontent)"), None);
    }
}
