//! [`diff`]: from the current schema to the desired one, as a [`Plan`].
//!
//! Native `ALTER TABLE` is used only where it provably yields the desired table: the candidate
//! statements (a table rename, column renames, added columns) are tried on a scratch in-memory
//! copy of the current schema, and kept only if SQLite's resulting `CREATE TABLE` normalizes to
//! the desired one. Everything else is a rename-copy-drop rebuild. Indexes, views and triggers
//! that change are dropped and created again; those of a rebuilt table are always re-created,
//! because dropping the renamed-away table drops them.

use std::collections::BTreeSet;

use rusqlite::Connection;

use crate::error::MigrateError;
use crate::options::{Options, Rename};
use crate::plan::{DataLoss, Plan, Step, StepKind};
use crate::schema::{Column, Object, Schema, Table};
use litekeep_recover::{normalize, quote_ident};

/// The prefix of the table a rebuild renames the original to.
pub const TEMP_PREFIX: &str = "temp_";

/// Plans the migration from `current` to `desired`.
///
/// # Errors
/// [`MigrateError::Rename`] for a rename hint that names nothing;
/// [`MigrateError::Leftover`] when a `temp_X` table of an interrupted migration is in the way.
///
/// ```
/// use litekeep_migrate::{diff, Options, Schema, StepKind};
/// let current = Schema::from_sql("CREATE TABLE t (a INTEGER);").unwrap();
/// let desired = Schema::from_sql("CREATE TABLE t (a INTEGER, b TEXT);").unwrap();
/// let plan = diff(&current, &desired, &Options::default()).unwrap();
/// assert_eq!(plan.steps[0].kind, StepKind::AddColumn);
/// ```
pub fn diff(current: &Schema, desired: &Schema, options: &Options) -> Result<Plan, MigrateError> {
    check_renames(current, desired, options)?;
    let scratch = Scratch::load(current);
    let mut plan = Plan {
        steps: Vec::new(),
        data_loss: Vec::new(),
        from: current.fingerprint(),
        to: desired.fingerprint(),
        desired: desired.clone(),
        touched: Vec::new(),
    };
    let mut native = Vec::new();
    let mut creates = Vec::new();
    let mut rebuilds = Vec::new();
    let mut rebuilt = BTreeSet::new();
    let mut sources = BTreeSet::new();
    for (key, want) in &desired.tables {
        let hinted = options.table_source(&want.name);
        // A hint already carried out (only the new name exists) no longer applies.
        let source = if current.tables.contains_key(&hinted.to_ascii_lowercase()) {
            hinted
        } else {
            want.name.as_str()
        };
        let Some(have) = current.tables.get(&source.to_ascii_lowercase()) else {
            creates.push(step(
                StepKind::CreateTable,
                &want.name,
                format!("create table {}", want.name),
                vec![want.sql.clone()],
            ));
            plan.touched.push(want.name.clone());
            continue;
        };
        sources.insert(source.to_ascii_lowercase());
        let same = normalize(&have.sql) == normalize(&want.sql);
        if same && source.eq_ignore_ascii_case(&want.name) {
            continue;
        }
        plan.touched.push(want.name.clone());
        let tried = scratch
            .as_ref()
            .and_then(|s| s.try_native(have, want, options));
        match tried {
            Some(Native::Exact(steps)) => native.extend(steps),
            Some(Native::RenamedOnly(rename)) => {
                native.push(rename);
                rebuilds.push((have, want));
                rebuilt.insert(key.clone());
            }
            None => {
                rebuilds.push((have, want));
                rebuilt.insert(key.clone());
            }
        }
    }
    for (have, want) in &rebuilds {
        let leftover = format!("{TEMP_PREFIX}{}", want.name);
        if current.tables.contains_key(&leftover.to_ascii_lowercase()) {
            return Err(MigrateError::Leftover {
                leftover,
                table: want.name.clone(),
            });
        }
        let (rebuild, lost) = rebuild(have, want, options);
        plan.data_loss.extend(lost);
        plan.steps.push(rebuild);
    }
    let rebuild_steps = std::mem::take(&mut plan.steps);
    // After native renames the scratch copy shows what the other objects look like.
    let after = scratch
        .and_then(|s| s.schema())
        .unwrap_or_else(|| current.clone());
    let changed = |have: &Object, want: Option<&Object>, table_rebuilt: bool| {
        table_rebuilt || want.is_none_or(|w| normalize(&w.sql) != normalize(&have.sql))
    };
    let is_rebuilt = |table: &str| rebuilt.contains(&table.to_ascii_lowercase());
    for (key, have) in &after.views {
        if changed(have, desired.views.get(key), false) {
            plan.steps.push(drop_step("VIEW", have));
        }
    }
    // Indexes and triggers of a rebuilt table go with its renamed-away copy: dropping them
    // first would only cost time (an index of a million rows is ~10% of a rebuild).
    for (key, have) in &after.triggers {
        if !is_rebuilt(&have.table) && changed(have, desired.triggers.get(key), false) {
            plan.steps.push(drop_step("TRIGGER", have));
        }
    }
    for (key, have) in &after.indexes {
        if !is_rebuilt(&have.table) && changed(have, desired.indexes.get(key), false) {
            plan.steps.push(drop_step("INDEX", have));
        }
    }
    plan.steps.extend(native);
    plan.steps.extend(creates);
    plan.steps.extend(rebuild_steps);
    for (key, have) in &current.tables {
        if !sources.contains(key) && !desired.tables.contains_key(key) {
            plan.data_loss.push(DataLoss {
                table: have.name.clone(),
                column: None,
            });
            let sql = format!("DROP TABLE {}", quote_ident(&have.name));
            plan.steps.push(step(
                StepKind::DropTable,
                &have.name,
                format!("drop table {}", have.name),
                vec![sql],
            ));
        }
    }
    for (kind, wanted, had) in [
        ("index", &desired.indexes, &after.indexes),
        ("trigger", &desired.triggers, &after.triggers),
        ("view", &desired.views, &after.views),
    ] {
        for (key, want) in wanted {
            let table_rebuilt = kind != "view" && is_rebuilt(&want.table);
            if had
                .get(key)
                .is_none_or(|h| changed(h, Some(want), table_rebuilt))
            {
                let text = format!("create {kind} {}", want.name);
                plan.steps.push(step(
                    StepKind::Create,
                    &want.name,
                    text,
                    vec![want.sql.clone()],
                ));
            }
        }
    }
    Ok(plan)
}

fn step(kind: StepKind, target: &str, description: String, sql: Vec<String>) -> Step {
    Step {
        kind,
        target: target.to_owned(),
        description,
        sql,
    }
}

fn drop_step(kind: &str, object: &Object) -> Step {
    let sql = format!("DROP {kind} {}", quote_ident(&object.name));
    let text = format!("drop {} {}", kind.to_ascii_lowercase(), object.name);
    step(StepKind::Drop, &object.name, text, vec![sql])
}

fn check_renames(
    current: &Schema,
    desired: &Schema,
    options: &Options,
) -> Result<(), MigrateError> {
    for rename in &options.renames {
        let bad = |hint: String, problem: String| MigrateError::Rename { hint, problem };
        match rename {
            Rename::Table { from, to } => {
                let hint = format!("{from}={to}");
                let done = current.tables.contains_key(&to.to_ascii_lowercase());
                let source_exists = current.tables.contains_key(&from.to_ascii_lowercase());
                if !done && !source_exists {
                    return Err(bad(hint, format!("the database has no table {from}")));
                }
                // Both names taken: a swap (found by the diff_apply fuzz target), or a hint
                // applied before with a new `from` since. Either way, guessing would move rows
                // into the wrong table.
                if done && source_exists && !from.eq_ignore_ascii_case(to) {
                    return Err(bad(
                        hint,
                        format!(
                            "the database has both {from} and {to}; to swap tables, rename one through a third name in two migrations, and drop hints already applied"
                        ),
                    ));
                }
                if !desired.tables.contains_key(&to.to_ascii_lowercase()) {
                    return Err(bad(hint, format!("the desired schema has no table {to}")));
                }
            }
            Rename::Column { table, from, to } => {
                let hint = format!("{table}.{from}={table}.{to}");
                let want = desired.tables.get(&table.to_ascii_lowercase());
                if want.and_then(|t| t.column(to)).is_none() {
                    return Err(bad(
                        hint,
                        format!("the desired table {table} has no column {to}"),
                    ));
                }
                let source = options.table_source(table);
                let have = current.tables.get(&source.to_ascii_lowercase());
                let done = have.and_then(|t| t.column(to)).is_some();
                if !done && have.and_then(|t| t.column(from)).is_none() {
                    return Err(bad(
                        hint,
                        format!("the database's table {source} has no column {from}"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The rename-copy-drop rebuild of `have` into `want`, and the columns it drops.
fn rebuild(have: &Table, want: &Table, options: &Options) -> (Step, Vec<DataLoss>) {
    let name = quote_ident(&want.name);
    let temp = quote_ident(&format!("{TEMP_PREFIX}{}", want.name));
    let mut into = Vec::new();
    let mut from = Vec::new();
    let mut used = BTreeSet::new();
    for col in want.columns.iter().filter(|c| !c.is_generated()) {
        let source = options.column_source(&want.name, &col.name);
        let src = have.column(source).or_else(|| have.column(&col.name));
        if let Some(src) = src.filter(|c| !c.is_generated()) {
            into.push(quote_ident(&col.name));
            from.push(quote_ident(&src.name));
            used.insert(src.name.to_ascii_lowercase());
        }
    }
    let alias_copied = want
        .rowid_alias()
        .is_some_and(|a| into.contains(&quote_ident(&a.name)));
    if !want.without_rowid && !have.without_rowid && !alias_copied {
        into.insert(0, "rowid".to_owned());
        from.insert(0, "rowid".to_owned());
    }
    let lost: Vec<DataLoss> = have
        .columns
        .iter()
        .filter(|c| !c.is_generated() && !used.contains(&c.name.to_ascii_lowercase()))
        .map(|c| DataLoss {
            table: want.name.clone(),
            column: Some(c.name.clone()),
        })
        .collect();
    let mut sql = vec![
        format!("ALTER TABLE {} RENAME TO {temp}", quote_ident(&want.name)),
        want.sql.clone(),
    ];
    if !into.is_empty() {
        sql.push(format!(
            "INSERT INTO {name} ({}) SELECT {} FROM {temp}",
            into.join(", "),
            from.join(", ")
        ));
    }
    sql.push(format!("DROP TABLE {temp}"));
    let description = format!(
        "rebuild table {} ({})",
        want.name,
        describe_columns(have, want, options)
    );
    (
        step(StepKind::RebuildTable, &want.name, description, sql),
        lost,
    )
}

fn describe_columns(have: &Table, want: &Table, options: &Options) -> String {
    let mut parts = Vec::new();
    let mut used = BTreeSet::new();
    for col in &want.columns {
        let source = options.column_source(&want.name, &col.name);
        let old = have.column(source).or_else(|| have.column(&col.name));
        match old {
            None => parts.push(format!("+{}", col.name)),
            Some(old) => {
                used.insert(old.name.to_ascii_lowercase());
                let renamed = !old.name.eq_ignore_ascii_case(&col.name);
                let changed = old.decl_type != col.decl_type
                    || old.not_null != col.not_null
                    || old.default != col.default
                    || old.pk != col.pk;
                match (renamed, changed) {
                    (true, _) => parts.push(format!("{}→{}", old.name, col.name)),
                    (false, true) => parts.push(format!("~{}", col.name)),
                    (false, false) => {}
                }
            }
        }
    }
    for col in &have.columns {
        if !used.contains(&col.name.to_ascii_lowercase()) {
            parts.push(format!("-{}", col.name));
        }
    }
    if parts.is_empty() {
        "constraints changed".to_owned()
    } else {
        parts.join(" ")
    }
}

enum Native {
    /// These steps alone turn the table into the desired one.
    Exact(Vec<Step>),
    /// Only the table rename applies; the rest needs a rebuild.
    RenamedOnly(Step),
}

/// A scratch in-memory database holding the current schema, for trying native ALTERs.
struct Scratch(Connection);

impl Scratch {
    fn load(current: &Schema) -> Option<Scratch> {
        let conn = Connection::open_in_memory().ok()?;
        let tables = current.tables.values().map(|t| &t.sql);
        let others = current
            .indexes
            .values()
            .chain(current.triggers.values())
            .chain(current.views.values())
            .map(|o| &o.sql);
        for sql in tables.chain(others) {
            conn.execute_batch(sql).ok()?;
        }
        Some(Scratch(conn))
    }

    fn schema(&self) -> Option<Schema> {
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

    fn try_native(&self, have: &Table, want: &Table, options: &Options) -> Option<Native> {
        let mut steps = Vec::new();
        if !have.name.eq_ignore_ascii_case(&want.name) {
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
                return None;
            }
            let text = format!("rename table {} to {}", have.name, want.name);
            steps.push(step(StepKind::RenameTable, &want.name, text, sql));
        }
        let rename_only = steps.first().cloned();
        self.0.execute_batch("SAVEPOINT native").ok()?;
        let rest = column_steps(have, want, options);
        let exact = rest.as_ref().is_some_and(|rest| {
            self.run(&rest.iter().flat_map(|s| s.sql.clone()).collect::<Vec<_>>())
                && self
                    .table_sql(&want.name)
                    .is_some_and(|s| normalize(&s) == normalize(&want.sql))
        });
        if exact {
            self.0.execute_batch("RELEASE native").ok()?;
            steps.extend(rest.unwrap_or_default());
            return Some(Native::Exact(steps));
        }
        self.0
            .execute_batch("ROLLBACK TO native; RELEASE native")
            .ok()?;
        rename_only.map(Native::RenamedOnly)
    }
}

/// Column renames (from hints) then added columns, when the desired columns are the current
/// ones (renamed) followed by new ones that `ADD COLUMN` can add.
fn column_steps(have: &Table, want: &Table, options: &Options) -> Option<Vec<Step>> {
    let table = quote_ident(&want.name);
    let mut steps = Vec::new();
    let mut kept = 0;
    for (i, col) in want.columns.iter().enumerate() {
        let source = options.column_source(&want.name, &col.name);
        let matches = |c: &&Column| {
            c.name.eq_ignore_ascii_case(source) || c.name.eq_ignore_ascii_case(&col.name)
        };
        let Some(old) = have.columns.get(i).filter(matches) else {
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
    if col.pk > 0 || col.is_generated() || (col.not_null && col.default.is_none()) {
        return None;
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
