//! [`diff`]: from the current schema to the desired one, as a [`Plan`].
//!
//! Native `ALTER TABLE` is used only where it provably yields the desired table: the candidate
//! statements (a table rename, column renames, added columns) are tried on a scratch in-memory
//! copy of the current schema, and kept only if SQLite's resulting `CREATE TABLE` normalizes to
//! the desired one. Table renames go first, since SQLite rewrites other tables' `REFERENCES`,
//! views and triggers to the new name: every other table is compared as the rename left it,
//! and one left different from its desired text is rebuilt.
//! Everything else is a rename-copy-drop rebuild. Indexes, views and triggers
//! that change are dropped and created again; those of a rebuilt table are always re-created,
//! because dropping the renamed-away table drops them.

use std::collections::BTreeSet;

use crate::error::MigrateError;
use crate::keep::keep_undeclared;
use crate::native::Scratch;
use crate::options::Options;
use crate::plan::Kept;
use crate::plan::{DataLoss, Plan, Step, StepKind};
use crate::rebuild::rebuild;
use crate::renames::{check_cycles, check_renames, current_table, planned, with_annotations};
use crate::schema::{Object, Schema, Table};
use litekeep_recover::{normalize, quote_ident};

/// The prefix of the table a rebuild renames the original to.
pub const TEMP_PREFIX: &str = "temp_";

/// Plans the migration from `current` to `desired`.
///
/// The desired schema's `@renamed` annotations count as hints (see
/// [`Annotation`](crate::Annotation)); with [`Options::keep_undeclared`] the plan aims at the
/// desired schema plus what `current` has beyond it ([`Plan::kept`]).
///
/// # Errors
/// [`MigrateError::Rename`] for a rename hint that names nothing or contradicts an annotation;
/// [`MigrateError::Leftover`] when a `temp_X` table of an interrupted migration is in the way;
/// [`MigrateError::Keep`] when something undeclared cannot be kept.
///
/// ```
/// use litekeep_migrate::{diff, Options, Schema, StepKind};
/// let current = Schema::from_sql("CREATE TABLE t (a INTEGER);").unwrap();
/// let desired = Schema::from_sql("CREATE TABLE t (a INTEGER, b TEXT);").unwrap();
/// let plan = diff(&current, &desired, &Options::default()).unwrap();
/// assert_eq!(plan.steps[0].kind, StepKind::AddColumn);
/// ```
pub fn diff(current: &Schema, desired: &Schema, options: &Options) -> Result<Plan, MigrateError> {
    // Cycles among every hint and annotation, applicable or not, first: a swap of two tables
    // of one definition looks up to date (found by the diff_apply fuzz target), and a swap
    // written as two annotations has both new names existing, so neither is pending.
    let mut all = options.clone();
    for a in &desired.annotations {
        if !all.renames.contains(&a.rename) {
            all.renames.push(a.rename.clone());
        }
    }
    check_cycles(&all, &desired.annotations)?;
    // A database that already has the desired schema (plus, in additive mode, what it keeps)
    // needs nothing, whatever the hints and annotations say: they were carried out before, and
    // an old name may have been reused since (found by the diff_apply fuzz target).
    if let Some((target, kept)) = already_there(current, desired, options)? {
        return Ok(Plan {
            steps: Vec::new(),
            data_loss: Vec::new(),
            from: current.fingerprint(),
            to: target.fingerprint(),
            declared: desired.fingerprint(),
            desired: target,
            touched: Vec::new(),
            renames: Vec::new(),
            kept,
            warnings: mismatch_warnings(desired),
        });
    }
    let options = &with_annotations(options, current, desired)?;
    // A database that already has the desired schema needs nothing, whatever the other hints
    // say: they were carried out before (and an old name may have been reused since).
    if current.statements() != desired.statements() {
        check_renames(current, desired, options)?;
    }
    let declared = desired.fingerprint();
    let (desired, kept) = target(current, desired, options)?;
    let desired = &desired;
    // A native rename also rewrites other tables' `REFERENCES` (found by the diff_apply fuzz
    // target): a table whose text then differs from its desired text is rebuilt to it, and the
    // native steps are tried again without its own, until nothing more needs a rebuild.
    let mut forced = BTreeSet::new();
    let tables = loop {
        let tables = plan_tables(current, desired, options, &forced);
        let more: Vec<String> = desired
            .tables
            .iter()
            .filter(|(key, want)| {
                // A forced table is rebuilt unless it is created (a pending hint moved its
                // name away, and the scratch copy could not rename that table): never twice.
                !forced.contains(*key)
                    && !tables.rebuilt.contains(*key)
                    && tables
                        .after
                        .tables
                        .get(*key)
                        .is_some_and(|now| normalize(&now.sql) != normalize(&want.sql))
            })
            .map(|(key, _)| key.clone())
            .collect();
        if more.is_empty() {
            break tables;
        }
        forced.extend(more);
    };
    let TablePlan {
        native,
        creates,
        rebuilds,
        rebuilt,
        sources,
        touched,
        after,
    } = tables;
    let mut plan = Plan {
        steps: Vec::new(),
        data_loss: Vec::new(),
        from: current.fingerprint(),
        to: desired.fingerprint(),
        declared,
        desired: desired.clone(),
        touched,
        renames: Vec::new(),
        kept,
        warnings: mismatch_warnings(desired),
    };
    for (name, have, want) in &rebuilds {
        let leftover = format!("{TEMP_PREFIX}{}", want.name);
        if current.tables.contains_key(&leftover.to_ascii_lowercase()) {
            return Err(MigrateError::Leftover {
                leftover,
                table: want.name.clone(),
            });
        }
        let (rebuild, lost) = rebuild(name, have, want, options);
        plan.data_loss.extend(lost);
        plan.steps.push(rebuild);
    }
    let rebuild_steps = std::mem::take(&mut plan.steps);
    let virtuals = crate::vtab_plan::plan(current, desired, options);
    plan.data_loss.extend(virtuals.data_loss);
    plan.touched.extend(virtuals.touched);
    // Virtual tables that go away first: a table may take the name.
    plan.steps.extend(virtuals.drops);
    let changed = |have: &Object, want: Option<&Object>, table_rebuilt: bool| {
        table_rebuilt || want.is_none_or(|w| normalize(&w.sql) != normalize(&have.sql))
    };
    let is_rebuilt = |table: &str| rebuilt.contains(&table.to_ascii_lowercase());
    // Views dropped (to change) take their INSTEAD OF triggers with them.
    let dropped_views: BTreeSet<String> = after
        .views
        .iter()
        .filter(|(key, have)| changed(have, desired.views.get(*key), false))
        .map(|(key, _)| key.clone())
        .collect();
    let goes_with_view = |table: &str| dropped_views.contains(&table.to_ascii_lowercase());
    // Indexes and triggers of a rebuilt table go with its renamed-away copy: dropping them
    // first would only cost time (an index of a million rows is ~10% of a rebuild).
    for (key, have) in &after.triggers {
        if !is_rebuilt(&have.table)
            && !goes_with_view(&have.table)
            && changed(have, desired.triggers.get(key), false)
        {
            plan.steps.push(drop_step("TRIGGER", have));
        }
    }
    for key in &dropped_views {
        if let Some(have) = after.views.get(key) {
            plan.steps.push(drop_step("VIEW", have));
        }
    }
    for (key, have) in &after.indexes {
        if !is_rebuilt(&have.table) && changed(have, desired.indexes.get(key), false) {
            plan.steps.push(drop_step("INDEX", have));
        }
    }
    let new_tables: BTreeSet<String> = creates
        .iter()
        .map(|s| s.target.to_ascii_lowercase())
        .collect();
    let is_new = |table: &str| new_tables.contains(&table.to_ascii_lowercase());
    plan.steps.extend(native);
    plan.steps.extend(rebuild_steps);
    // After the rebuilds: a rebuild that also renames frees the old name, which a new table
    // may take (found by the diff_apply fuzz target).
    plan.steps.extend(creates);
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
    // Virtual tables after the tables: an external-content index reads its content table, and
    // a dropped table may have held the name.
    plan.steps.extend(virtuals.steps);
    // Then indexes, views (a view on a view after it) and triggers (on views too).
    for (key, want) in &desired.indexes {
        let table_rebuilt = is_rebuilt(&want.table) || is_new(&want.table);
        if after
            .indexes
            .get(key)
            .is_none_or(|h| changed(h, Some(want), table_rebuilt))
        {
            plan.steps.push(create_step("index", want));
        }
    }
    for want in crate::order::views_in_order(desired.views.values()) {
        let key = want.name.to_ascii_lowercase();
        if after
            .views
            .get(&key)
            .is_none_or(|h| changed(h, Some(want), false))
        {
            plan.steps.push(create_step("view", want));
        }
    }
    for (key, want) in &desired.triggers {
        // A new table has none of its indexes and triggers yet, even where a table of its name
        // had the same ones (it was renamed away, and they went with it); a re-created view
        // has none of its INSTEAD OF triggers.
        let table_rebuilt =
            is_rebuilt(&want.table) || is_new(&want.table) || goes_with_view(&want.table);
        if after
            .triggers
            .get(key)
            .is_none_or(|h| changed(h, Some(want), table_rebuilt))
        {
            plan.steps.push(create_step("trigger", want));
        }
    }
    if !plan.is_empty() {
        plan.renames = planned(current, desired, options);
    }
    Ok(plan)
}

/// Whether a database with the schema `current` needs no migration to `desired` — the same
/// question as `diff(..).is_empty()`, answered without planning (no scratch database).
///
/// # Errors
/// As [`diff`], for annotations and hints that contradict each other and undeclared objects
/// that cannot be kept.
///
/// ```
/// use litekeep_migrate::{up_to_date, Options, Schema};
/// let file = Schema::from_sql("CREATE TABLE t (a INT, b INT);").unwrap();
/// let older = Schema::from_sql("CREATE TABLE t (a INT);").unwrap();
/// assert!(!up_to_date(&file, &older, &Options::default()).unwrap());
/// assert!(up_to_date(&file, &older, &Options::default().keep_undeclared(true)).unwrap());
/// ```
pub fn up_to_date(
    current: &Schema,
    desired: &Schema,
    options: &Options,
) -> Result<bool, MigrateError> {
    Ok(already_there(current, desired, options)?.is_some())
}

/// The schema a plan would aim at and what it keeps, when `current` is that schema already.
/// Renames play no part: a database that is there has carried them out (in additive mode what
/// it keeps is then found by name).
fn already_there(
    current: &Schema,
    desired: &Schema,
    options: &Options,
) -> Result<Option<(Schema, Vec<Kept>)>, MigrateError> {
    if current.statements() == desired.statements() {
        return Ok(Some((desired.clone(), Vec::new())));
    }
    if !options.keep_undeclared {
        return Ok(None);
    }
    let mut plain = options.clone();
    plain.renames.clear();
    let mut bare = desired.clone();
    bare.annotations.clear();
    // Anything that cannot be kept is for the real plan to report.
    let Ok((mut target, kept)) = keep_undeclared(current, &bare, &plain) else {
        return Ok(None);
    };
    target.annotations = desired.annotations.clone();
    Ok((current.statements() == target.statements()).then_some((target, kept)))
}

/// The schema a plan aims at: `desired`, plus what is kept in additive mode.
fn target(
    current: &Schema,
    desired: &Schema,
    options: &Options,
) -> Result<(Schema, Vec<Kept>), MigrateError> {
    if options.keep_undeclared {
        keep_undeclared(current, desired, options)
    } else {
        Ok((desired.clone(), Vec::new()))
    }
}

/// What happens to the tables: native steps, creates, rebuilds, and the schema the scratch copy
/// shows after the native steps.
struct TablePlan<'a> {
    native: Vec<Step>,
    creates: Vec<Step>,
    /// (the table's name when its rebuild starts, current table, desired table)
    rebuilds: Vec<(String, &'a Table, &'a Table)>,
    /// Keys of the desired tables that are rebuilt.
    rebuilt: BTreeSet<String>,
    /// Keys of the current tables the desired ones come from.
    sources: BTreeSet<String>,
    touched: Vec<String>,
    after: Schema,
}

/// Plans the tables: table renames first (so that other tables see them), then each table's
/// column steps, natively where the scratch copy proves them exact and the table is not in
/// `forced`; a rebuild otherwise.
fn plan_tables<'a>(
    current: &'a Schema,
    desired: &'a Schema,
    options: &Options,
    forced: &BTreeSet<String>,
) -> TablePlan<'a> {
    let scratch = Scratch::load(current, options);
    let mut out = TablePlan {
        native: Vec::new(),
        creates: Vec::new(),
        rebuilds: Vec::new(),
        rebuilt: BTreeSet::new(),
        sources: BTreeSet::new(),
        touched: Vec::new(),
        after: Schema::default(),
    };
    let pairs: Vec<(&String, &Table, Option<&Table>)> = desired
        .tables
        .iter()
        .map(|(key, want)| (key, want, current_table(current, &want.name, options)))
        .collect();
    let mut renamed = BTreeSet::new();
    for (key, want, have) in &pairs {
        if let Some(have) = have
            && !have.name.eq_ignore_ascii_case(&want.name)
            && let Some(step) = scratch.as_ref().and_then(|s| s.rename(have, want))
        {
            out.native.push(step);
            renamed.insert((*key).clone());
        }
    }
    for (key, want, have) in pairs {
        let Some(have) = have else {
            out.creates.push(step(
                StepKind::CreateTable,
                &want.name,
                format!("create table {}", want.name),
                vec![want.sql.clone()],
            ));
            out.touched.push(want.name.clone());
            continue;
        };
        out.sources.insert(have.name.to_ascii_lowercase());
        let same = normalize(&have.sql) == normalize(&want.sql);
        if same && have.name.eq_ignore_ascii_case(&want.name) && !forced.contains(key) {
            continue;
        }
        out.touched.push(want.name.clone());
        let columns = scratch
            .as_ref()
            .filter(|_| !forced.contains(key))
            .and_then(|s| s.try_columns(have, want, options));
        match columns {
            Some(steps) => out.native.extend(steps),
            None => {
                let name = if renamed.contains(key) {
                    &want.name
                } else {
                    &have.name
                };
                out.rebuilds.push((name.clone(), have, want));
                out.rebuilt.insert(key.clone());
            }
        }
    }
    out.after = scratch
        .and_then(|s| s.schema())
        .unwrap_or_else(|| current.clone());
    out
}

pub(crate) fn step(kind: StepKind, target: &str, description: String, sql: Vec<String>) -> Step {
    Step {
        kind,
        target: target.to_owned(),
        description,
        sql,
    }
}

fn create_step(kind: &str, want: &Object) -> Step {
    let text = format!("create {kind} {}", want.name);
    step(StepKind::Create, &want.name, text, vec![want.sql.clone()])
}

/// The plan's warnings about the desired schema itself: foreign keys to non-unique parents.
fn mismatch_warnings(desired: &Schema) -> Vec<crate::plan::Warning> {
    desired
        .foreign_key_mismatches
        .iter()
        .cloned()
        .map(crate::plan::Warning::NonUniqueParent)
        .collect()
}

fn drop_step(kind: &str, object: &Object) -> Step {
    let sql = format!("DROP {kind} {}", quote_ident(&object.name));
    let text = format!("drop {} {}", kind.to_ascii_lowercase(), object.name);
    step(StepKind::Drop, &object.name, text, vec![sql])
}
