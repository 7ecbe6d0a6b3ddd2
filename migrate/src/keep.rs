//! Additive mode ([`Options::keep_undeclared`]): the schema a migration aims at is the desired
//! one plus whatever the database has that the desired schema does not declare.
//!
//! Undeclared tables, indexes, views and triggers are kept as they are. An undeclared column is
//! kept in its table: its definition, as the database's `CREATE TABLE` has it, is written into
//! the desired `CREATE TABLE` right after the column that precedes it in the database (so a
//! table that only gained columns stays as it is, and one that needs a rebuild for another
//! reason carries the column and its values through the rebuild). The migration then verifies
//! against that combined schema before `COMMIT`.

use std::collections::BTreeSet;

use rusqlite::Connection;

use crate::error::MigrateError;
use crate::options::{Options, Rename};
use crate::plan::{Kept, ObjectKind};
use crate::renames::{column_origin, current_table};
use crate::schema::{Column, Object, Schema, Table};
use crate::tokens::{Shape, statements, tokenize};
use litekeep_recover::mentions;

/// `desired` plus what `current` has and `desired` does not declare, and the list of those.
///
/// # Errors
/// [`MigrateError::Keep`] when an undeclared column's definition cannot be combined with the
/// desired table, or an undeclared index, view or trigger names a table renamed by the same
/// migration.
pub(crate) fn keep_undeclared(
    current: &Schema,
    desired: &Schema,
    options: &Options,
) -> Result<(Schema, Vec<Kept>), MigrateError> {
    let mut out = desired.clone();
    let mut kept = Vec::new();
    let mut sources = BTreeSet::new();
    // Current tables whose name goes away: renamed to another name by this migration; and
    // columns renamed by it, as (table's current name, old column, new column).
    let mut renamed_away = Vec::new();
    let mut renamed_columns = Vec::new();
    for (key, want) in &desired.tables {
        let Some(have) = current_table(current, &want.name, options) else {
            continue;
        };
        sources.insert(have.name.to_ascii_lowercase());
        if !have.name.eq_ignore_ascii_case(&want.name) {
            renamed_away.push(have.name.clone());
        }
        for w in &want.columns {
            if let Some(o) = column_origin(have, want, w, options)
                && !o.name.eq_ignore_ascii_case(&w.name)
            {
                renamed_columns.push((have.name.clone(), o.name.clone(), w.name.clone()));
            }
        }
        let undeclared: Vec<&Column> = have
            .columns
            .iter()
            .filter(|c| !is_origin(have, want, c, options))
            .collect();
        if undeclared.is_empty() {
            continue;
        }
        let table = with_columns(have, want, &undeclared, options)?;
        kept.extend(undeclared.iter().map(|c| Kept {
            kind: ObjectKind::Column,
            name: c.name.clone(),
            table: Some(want.name.clone()),
        }));
        out.tables.insert(key.clone(), table);
    }
    for (key, have) in &current.tables {
        if !sources.contains(key) && !desired.tables.contains_key(key) {
            out.tables.insert(key.clone(), have.clone());
            kept.push(Kept {
                kind: ObjectKind::Table,
                name: have.name.clone(),
                table: None,
            });
        }
    }
    for (key, have) in &current.virtual_tables {
        let renamed = options.renames.iter().any(|r| {
            matches!(r, Rename::Table { from, to }
                if from.eq_ignore_ascii_case(&have.name) && desired.has_table(to))
        });
        if !renamed && !desired.has_table(key) {
            out.virtual_tables.insert(key.clone(), have.clone());
            kept.push(Kept {
                kind: ObjectKind::VirtualTable,
                name: have.name.clone(),
                table: None,
            });
        }
    }
    let index_renamed = |name: &str| {
        options.renames.iter().any(|r| {
            matches!(r, Rename::Index { from, to }
                if from.eq_ignore_ascii_case(name) && desired.indexes.contains_key(&to.to_ascii_lowercase()))
        })
    };
    for (kind, have, want, into) in [
        (
            ObjectKind::Index,
            &current.indexes,
            &desired.indexes,
            &mut out.indexes,
        ),
        (
            ObjectKind::View,
            &current.views,
            &desired.views,
            &mut out.views,
        ),
        (
            ObjectKind::Trigger,
            &current.triggers,
            &desired.triggers,
            &mut out.triggers,
        ),
    ] {
        for (key, object) in have {
            if want.contains_key(key) || (kind == ObjectKind::Index && index_renamed(key)) {
                continue;
            }
            refuse_renamed(kind, object, &renamed_away, &renamed_columns)?;
            into.insert(key.clone(), object.clone());
            kept.push(Kept {
                kind,
                name: object.name.clone(),
                table: (kind != ObjectKind::View).then(|| object.table.clone()),
            });
        }
    }
    Ok((out, kept))
}

/// Whether some desired column of `want` takes its values from `col` of `have`.
fn is_origin(have: &Table, want: &Table, col: &Column, options: &Options) -> bool {
    want.columns.iter().any(|w| {
        column_origin(have, want, w, options)
            .is_some_and(|o| o.name.eq_ignore_ascii_case(&col.name))
    })
}

/// An undeclared index, view or trigger that names a table or column renamed in this migration
/// would need its text rewritten, which only SQLite's own rename does (and a rebuild does not):
/// refused rather than guessed (a view naming the old column would be committed broken, found
/// by the tests of this mode).
fn refuse_renamed(
    kind: ObjectKind,
    object: &Object,
    tables: &[String],
    columns: &[(String, String, String)],
) -> Result<(), MigrateError> {
    let refuse = |problem: String| {
        Err(MigrateError::Keep {
            object: format!("{kind} {}", object.name),
            problem,
        })
    };
    if let Some(table) = tables.iter().find(|t| mentions(&object.sql, t)) {
        return refuse(format!(
            "it names table {table}, which this migration renames"
        ));
    }
    let on = |table: &str| object.table.eq_ignore_ascii_case(table) || mentions(&object.sql, table);
    match columns
        .iter()
        .find(|(table, old, _)| on(table) && mentions(&object.sql, old))
    {
        Some((table, old, new)) => refuse(format!(
            "it names column {table}.{old}, which this migration renames to {new}"
        )),
        None => Ok(()),
    }
}

/// `want` with the `undeclared` columns of `have` written into its `CREATE TABLE`.
fn with_columns(
    have: &Table,
    want: &Table,
    undeclared: &[&Column],
    options: &Options,
) -> Result<Table, MigrateError> {
    let object = |c: &Column| format!("column {}.{}", want.name, c.name);
    let defs = column_defs(&have.sql);
    let spans = column_defs(&want.sql);
    let Some(&(_, first_start, _)) = spans.first() else {
        return Err(MigrateError::Keep {
            object: object(undeclared[0]),
            problem: format!("the desired table {} has no column list", want.name),
        });
    };
    // (byte offset in want.sql, text to insert there), in the database's column order.
    let mut inserts: Vec<(usize, String)> = Vec::new();
    for col in undeclared {
        let Some((_, start, end)) = defs
            .iter()
            .find(|(n, ..)| n.eq_ignore_ascii_case(&col.name))
        else {
            return Err(MigrateError::Keep {
                object: object(col),
                problem: "its definition could not be found in the table's CREATE TABLE".into(),
            });
        };
        let def = &have.sql[*start..*end];
        let at = have
            .columns
            .iter()
            .position(|c| c.name == col.name)
            .unwrap_or(0);
        // The nearest declared column before it in the database, by its desired name.
        let anchor = have.columns[..at].iter().rev().find_map(|c| {
            want.columns
                .iter()
                .find(|w| column_origin(have, want, w, options).is_some_and(|o| o.name == c.name))
        });
        let anchor_end = anchor.and_then(|w| {
            spans
                .iter()
                .find(|(n, ..)| n.eq_ignore_ascii_case(&w.name))
                .map(|&(_, _, end)| end)
        });
        match anchor_end {
            Some(end) => inserts.push((end, format!(", {def}"))),
            None => inserts.push((first_start, format!("{def}, "))),
        }
    }
    // Stable by offset, applied from the end: earlier offsets stay valid, and texts at one
    // offset end up in the database's order.
    inserts.sort_by_key(|(at, _)| *at);
    let mut sql = want.sql.clone();
    for (at, text) in inserts.iter().rev() {
        sql.insert_str(*at, text);
    }
    parse_table(&sql, &want.name).map_err(|problem| MigrateError::Keep {
        object: object(undeclared[0]),
        problem,
    })
}

/// The column definitions of a `CREATE TABLE` text: (name, start, end) byte spans.
fn column_defs(sql: &str) -> Vec<(String, usize, usize)> {
    let tokens = tokenize(sql);
    let Some(stmt) = statements(&tokens).into_iter().next() else {
        return Vec::new();
    };
    let Shape::Table { items, .. } = stmt.shape() else {
        return Vec::new();
    };
    items
        .iter()
        .filter(|i| i.column)
        .map(|i| {
            let first = &stmt.tokens[i.first];
            (
                first.ident().unwrap_or_default(),
                first.start,
                stmt.tokens[i.last].end,
            )
        })
        .collect()
}

/// The table `name` as SQLite reads the statement `sql`.
fn parse_table(sql: &str, name: &str) -> Result<Table, String> {
    let conn = Connection::open_in_memory().map_err(|e| e.to_string())?;
    conn.execute_batch(sql).map_err(|e| e.to_string())?;
    let schema = Schema::read(&conn).map_err(|e| e.to_string())?;
    schema
        .tables
        .get(&name.to_ascii_lowercase())
        .cloned()
        .ok_or_else(|| format!("the combined statement does not define table {name}"))
}
