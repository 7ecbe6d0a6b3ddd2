//! Native `ALTER TABLE` steps, kept only where a scratch in-memory copy of the current schema
//! proves they yield exactly the desired table.

use rusqlite::Connection;

use crate::diff::step;
use crate::options::Options;
use crate::plan::{Step, StepKind};
use crate::renames::column_origin;
use crate::schema::{Column, Schema, Table};
use litekeep_recover::{normalize, quote_ident};

/// A scratch in-memory database holding the current schema, for trying native ALTERs.
pub(crate) struct Scratch(Connection);

impl Scratch {
    /// Creation order: tables, virtual tables, indexes, views (a view after those it reads),
    /// triggers (an INSTEAD OF trigger needs its view).
    pub(crate) fn load(current: &Schema, options: &Options) -> Option<Scratch> {
        let conn = Connection::open_in_memory().ok()?;
        crate::extension::load_all(&conn, &options.extensions).ok()?;
        let tables = current.tables.values().map(|t| &t.sql);
        let virtuals = current.virtual_tables.values().map(|t| &t.sql);
        let indexes = current.indexes.values().map(|o| &o.sql);
        let views = crate::order::views_in_order(current.views.values());
        let triggers = current.triggers.values().map(|o| &o.sql);
        let all = tables
            .chain(virtuals)
            .chain(indexes)
            .chain(views.into_iter().map(|o| &o.sql))
            .chain(triggers);
        for sql in all {
            conn.execute_batch(sql).ok()?;
        }
        Some(Scratch(conn))
    }

    pub(crate) fn schema(&self) -> Option<Schema> {
        Schema::read(&self.0).ok()
    }

    fn table_sql(&self, name: &str) -> Option<String> {
        self.0
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
                [name],
                |r| r.get(0),
            )
            .ok()
    }

    fn run(&self, sql: &[String]) -> bool {
        sql.iter().all(|s| self.0.execute_batch(s).is_ok())
    }

    /// The native rename of `have` to `want`'s name, if SQLite does it (views and triggers
    /// naming the table are rewritten too).
    pub(crate) fn rename(&self, have: &Table, want: &Table) -> Option<Step> {
        let sql = vec![
            "PRAGMA legacy_alter_table = OFF".to_owned(),
            format!(
                "ALTER TABLE {} RENAME TO {}",
                quote_ident(&have.name),
                quote_ident(&want.name)
            ),
            "PRAGMA legacy_alter_table = ON".to_owned(),
        ];
        if !self.run(&sql) {
            // Back to the pragma's default, whatever statement failed.
            let _ = self.0.execute_batch("PRAGMA legacy_alter_table = ON");
            return None;
        }
        let text = format!("rename table {} to {}", have.name, want.name);
        Some(step(StepKind::RenameTable, &want.name, text, sql))
    }

    /// The column steps that turn `want`'s table (already under its new name) into exactly
    /// `want`, if native ALTERs can.
    pub(crate) fn try_columns(
        &self,
        have: &Table,
        want: &Table,
        options: &Options,
    ) -> Option<Vec<Step>> {
        self.0.execute_batch("SAVEPOINT native").ok()?;
        let steps = column_steps(have, want, options);
        let exact = steps.as_ref().is_some_and(|steps| {
            self.run(&steps.iter().flat_map(|s| s.sql.clone()).collect::<Vec<_>>())
                && self
                    .table_sql(&want.name)
                    .is_some_and(|s| normalize(&s) == normalize(&want.sql))
        });
        if exact {
            self.0.execute_batch("RELEASE native").ok()?;
            return steps;
        }
        self.0
            .execute_batch("ROLLBACK TO native; RELEASE native")
            .ok()?;
        None
    }
}

/// Column renames (from hints) then added columns, when the desired columns are the current
/// ones (renamed) followed by new ones that `ADD COLUMN` can add.
fn column_steps(have: &Table, want: &Table, options: &Options) -> Option<Vec<Step>> {
    let table = quote_ident(&want.name);
    let mut steps = Vec::new();
    let mut kept = 0;
    for (i, col) in want.columns.iter().enumerate() {
        let origin = column_origin(have, want, col, options);
        let Some(old) = have
            .columns
            .get(i)
            .filter(|c| origin.is_some_and(|o| o.name == c.name))
        else {
            break;
        };
        if !old.name.eq_ignore_ascii_case(&col.name) {
            let sql = format!(
                "ALTER TABLE {table} RENAME COLUMN {} TO {}",
                quote_ident(&old.name),
                quote_ident(&col.name)
            );
            let text = format!("rename column {}.{} to {}", want.name, old.name, col.name);
            steps.push(step(StepKind::RenameColumn, &want.name, text, vec![sql]));
        }
        kept = i + 1;
    }
    if kept != have.columns.len() {
        return None; // a column is dropped or reordered
    }
    for col in &want.columns[kept..] {
        let sql = format!("ALTER TABLE {table} ADD COLUMN {}", column_def(col)?);
        let text = format!("add column {}.{} {}", want.name, col.name, col.decl_type);
        steps.push(step(StepKind::AddColumn, &want.name, text, vec![sql]));
    }
    Some(steps)
}

/// A column definition `ADD COLUMN` accepts, rebuilt from what the pragmas show. Whatever they
/// cannot show (COLLATE, CHECK, REFERENCES) makes the scratch comparison fail, and the table is
/// rebuilt instead.
fn column_def(col: &Column) -> Option<String> {
    if col.pk > 0 || col.is_generated() {
        return None;
    }
    // The scratch copy has no rows, and SQLite refuses these only on a table that has some:
    // a NOT NULL column needs a default other than NULL, and a default must be a constant
    // (not CURRENT_TIMESTAMP, not an expression in parentheses).
    match col.default.as_deref() {
        None if col.not_null => return None,
        Some(d) if !is_literal(d) || (col.not_null && d.eq_ignore_ascii_case("null")) => {
            return None;
        }
        _ => {}
    }
    let mut def = quote_ident(&col.name);
    if !col.decl_type.is_empty() {
        def.push(' ');
        def.push_str(&col.decl_type);
    }
    if col.not_null {
        def.push_str(" NOT NULL");
    }
    if let Some(d) = &col.default {
        def.push_str(" DEFAULT ");
        def.push_str(d);
    }
    Some(def)
}

/// Whether a default as `pragma_table_info` shows it is a literal `ADD COLUMN` accepts on a
/// table with rows: a signed number, a string, a blob, NULL, TRUE or FALSE. Anything else is
/// left to a rebuild, which evaluates any default.
fn is_literal(default: &str) -> bool {
    let d = default.trim();
    let quoted = |q: char| {
        d.len() >= 2
            && d.starts_with(q)
            && d.ends_with(q)
            && !d[1..d.len() - 1]
                .replace(&format!("{q}{q}"), "")
                .contains(q)
    };
    if quoted('\'') {
        return true;
    }
    if let Some(hex) = d.strip_prefix(['x', 'X']) {
        return hex.len() >= 2
            && hex.starts_with('\'')
            && hex.ends_with('\'')
            && hex[1..hex.len() - 1].chars().all(|c| c.is_ascii_hexdigit());
    }
    if ["null", "true", "false"]
        .iter()
        .any(|k| d.eq_ignore_ascii_case(k))
    {
        return true;
    }
    let number = d.strip_prefix(['+', '-']).unwrap_or(d).trim_start();
    !number.is_empty()
        && number.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && number
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '+' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::is_literal;

    #[test]
    fn literals_add_column_accepts_on_tables_with_rows() {
        for d in [
            "0", "-1", "+2.5", "1e10", "0x1F", "'x'", "'it''s'", "''", "x'00ff'", "NULL", "TRUE",
            "false",
        ] {
            assert!(is_literal(d), "{d}");
        }
        for d in [
            "CURRENT_TIMESTAMP",
            "current_date",
            "(1 + 1)",
            "('x')",
            "\"x\"",
            "'a' || 'b'",
            "x'0g'",
            "abs(1)",
            "-",
            "'unterminated",
        ] {
            assert!(!is_literal(d), "{d}");
        }
    }
}
