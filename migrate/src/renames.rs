//! Rename hints against the current schema: which current table and column a desired one
//! comes from, which hints are still to be carried out, and which make no sense.

use crate::error::MigrateError;
use crate::options::{Options, Rename};
use crate::plan::{Origin, PlannedRename};
use crate::schema::{Column, Schema, Table};

/// `options` with the desired schema's annotations added to its hints: each one whose old name
/// the database has (an annotation naming nothing is not applicable: a fresh database, or a
/// rename carried out long ago). Table annotations go first, since column annotations name
/// their table by its desired name.
///
/// # Errors
/// [`MigrateError::Rename`] for an annotation that contradicts a hint (naming both), and
/// [`MigrateError::Annotation`] for two annotations that contradict each other.
pub(crate) fn with_annotations(
    options: &Options,
    current: &Schema,
    desired: &Schema,
) -> Result<Options, MigrateError> {
    let annotations = &desired.annotations;
    if annotations.is_empty() {
        return Ok(options.clone());
    }
    for (i, a) in annotations.iter().enumerate() {
        if let Some(hint) = options.renames.iter().find(|h| h.contradicts(&a.rename)) {
            return Err(MigrateError::Rename {
                hint: hint.to_string(),
                problem: format!(
                    "contradicts the annotation on line {} of the desired schema, which renames {} from {}; keep one of them",
                    a.line,
                    a.rename.target_text(),
                    from_of(&a.rename)
                ),
            });
        }
        if let Some(b) = annotations[..i]
            .iter()
            .find(|b| b.rename.contradicts(&a.rename))
        {
            return Err(MigrateError::Annotation {
                line: a.line,
                problem: format!(
                    "renames {} from {}, which contradicts the annotation on line {} ({} from {}); keep one of them",
                    a.rename.target_text(),
                    from_of(&a.rename),
                    b.line,
                    b.rename.target_text(),
                    from_of(&b.rename)
                ),
            });
        }
    }
    let mut merged = options.clone();
    let add = |merged: &mut Options, rename: &Rename| {
        if !merged.renames.contains(rename) {
            merged.renames.push(rename.clone());
        }
    };
    let has_table = |t: &str| current.has_table(t);
    let has_index = |i: &str| current.indexes.contains_key(&i.to_ascii_lowercase());
    let names = |kind: fn(&Rename) -> Option<(&str, &str)>| -> Vec<(&str, &str)> {
        annotations.iter().filter_map(|a| kind(&a.rename)).collect()
    };
    let tables = names(|r| match r {
        Rename::Table { from, to } => Some((from, to)),
        _ => None,
    });
    let indexes = names(|r| match r {
        Rename::Index { from, to } => Some((from, to)),
        _ => None,
    });
    let hinted = |kind: fn(&Rename) -> Option<(&str, &str)>| -> Vec<(&str, &str)> {
        options.renames.iter().filter_map(kind).collect()
    };
    let table_hints = hinted(|r| match r {
        Rename::Table { from, to } => Some((from, to)),
        _ => None,
    });
    let index_hints = hinted(|r| match r {
        Rename::Index { from, to } => Some((from, to)),
        _ => None,
    });
    for a in annotations {
        let applies = match &a.rename {
            Rename::Table { from, to } => pending(from, to, &tables, &table_hints, &has_table),
            Rename::Index { from, to } => pending(from, to, &indexes, &index_hints, &has_index),
            Rename::Column { .. } => false,
        };
        if applies {
            add(&mut merged, &a.rename);
        }
    }
    // Columns: against the table each comes from, once the table renames are known.
    for a in annotations {
        let Rename::Column { table, from, to } = &a.rename else {
            continue;
        };
        let Some(have) = current_table(current, table, &merged) else {
            continue;
        };
        let columns: Vec<(&str, &str)> = annotations
            .iter()
            .filter_map(|a| column_of(&a.rename, table))
            .collect();
        let hints: Vec<(&str, &str)> = options
            .renames
            .iter()
            .filter_map(|r| column_of(r, table))
            .collect();
        if pending(from, to, &columns, &hints, &|c: &str| {
            have.column(c).is_some()
        }) {
            add(&mut merged, &a.rename);
        }
    }
    Ok(merged)
}

/// (from, to) of a column rename on `table`.
fn column_of<'a>(rename: &'a Rename, table: &str) -> Option<(&'a str, &'a str)> {
    match rename {
        Rename::Column { table: t, from, to } if t.eq_ignore_ascii_case(table) => {
            Some((from.as_str(), to.as_str()))
        }
        _ => None,
    }
}

/// Whether the annotation `from → to` is still to be carried out: the database has `from` and
/// either lacks `to` or a pending rename (an annotation or hint of the same namespace) moves
/// `to` away first (a chain). An annotation whose new name exists is done, even where its old
/// name exists again (a new table or column reusing it since: found by the diff_apply fuzz
/// target); one whose old name the database lacks names nothing here. Both are ignored, so an
/// annotation can stay in a schema file for good.
fn pending(
    from: &str,
    to: &str,
    annotations: &[(&str, &str)],
    hints: &[(&str, &str)],
    has: &dyn Fn(&str) -> bool,
) -> bool {
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    if !has(from) || eq(from, to) {
        return false;
    }
    let all: Vec<(&str, &str)> = annotations.iter().chain(hints).copied().collect();
    let mut pending: Vec<(&str, &str)> = all
        .iter()
        .copied()
        .filter(|(f, t)| has(f) && !has(t) && !eq(f, t))
        .collect();
    loop {
        let freed: Vec<(&str, &str)> = all
            .iter()
            .copied()
            .filter(|r| !pending.contains(r) && has(r.0) && !eq(r.0, r.1))
            .filter(|(_, t)| pending.iter().any(|(f, _)| eq(f, t)))
            .collect();
        if freed.is_empty() {
            break;
        }
        pending.extend(freed);
    }
    pending.iter().any(|(f, t)| eq(f, from) && eq(t, to))
}

fn from_of(rename: &Rename) -> &str {
    match rename {
        Rename::Table { from, .. } | Rename::Column { from, .. } | Rename::Index { from, .. } => {
            from
        }
    }
}

/// The renames of `options` that a migration from `current` to `desired` carries out, each with
/// where it came from.
pub(crate) fn planned(current: &Schema, desired: &Schema, options: &Options) -> Vec<PlannedRename> {
    let carried_out = |r: &Rename| match r {
        Rename::Table { from, to } => {
            !from.eq_ignore_ascii_case(to) && current.has_table(from) && desired.has_table(to)
        }
        Rename::Column { table, from, to } => {
            let want = desired.tables.get(&table.to_ascii_lowercase());
            let have = current_table(current, table, options);
            match (want, have, want.and_then(|w| w.column(to))) {
                (Some(want), Some(have), Some(col)) => {
                    !from.eq_ignore_ascii_case(to)
                        && column_origin(have, want, col, options)
                            .is_some_and(|o| o.name.eq_ignore_ascii_case(from))
                }
                _ => false,
            }
        }
        Rename::Index { from, to } => {
            current.indexes.contains_key(&from.to_ascii_lowercase())
                && !current.indexes.contains_key(&to.to_ascii_lowercase())
                && desired.indexes.contains_key(&to.to_ascii_lowercase())
        }
    };
    options
        .renames
        .iter()
        .filter(|r| carried_out(r))
        .map(|r| PlannedRename {
            rename: r.clone(),
            origin: desired
                .annotations
                .iter()
                .find(|a| a.rename == *r)
                .map_or(Origin::Hint, |a| Origin::Annotation { line: a.line }),
        })
        .collect()
}

/// The current table the desired table `name` comes from: the one a table hint names, unless
/// that hint was carried out already (only the new name exists), else the same name — unless
/// a pending hint moves that one away (the desired table of that name is then a new one, found
/// by the diff_apply fuzz target).
pub(crate) fn current_table<'a>(
    current: &'a Schema,
    name: &str,
    options: &Options,
) -> Option<&'a Table> {
    let has = |t: &str| current.tables.get(&t.to_ascii_lowercase());
    let hinted = options.table_source(name);
    if !hinted.eq_ignore_ascii_case(name)
        && let Some(source) = has(hinted)
    {
        return Some(source);
    }
    let moved_away = options.renames.iter().any(|r| {
        matches!(r, Rename::Table { from, to }
            if from.eq_ignore_ascii_case(name)
                && !to.eq_ignore_ascii_case(name)
                && has(to).is_none())
    });
    if moved_away { None } else { has(name) }
}

/// The current column the desired column `col` of `want` takes its values from: the `from` of
/// a pending column hint to it; none when a pending hint moves its name away (the desired
/// column of that name is a new one); else the column of its name.
pub(crate) fn column_origin<'a>(
    have: &'a Table,
    want: &Table,
    col: &Column,
    options: &Options,
) -> Option<&'a Column> {
    let pending = pending_columns(have, &want.name, options).unwrap_or_default();
    if let Some((from, _)) = pending
        .iter()
        .find(|(_, to)| to.eq_ignore_ascii_case(&col.name))
    {
        return have.column(from);
    }
    if pending
        .iter()
        .any(|(from, _)| from.eq_ignore_ascii_case(&col.name))
    {
        return None;
    }
    have.column(&col.name)
}

/// The column hints on the desired table `table` still to be carried out on `have`, as
/// (from, to). A hint is pending when `have` has `from` and either lacks `to` or a pending
/// hint moves `to` away (a chain `a→c`, `b→a`); it was carried out when `have` has `to` only.
///
/// # Errors
/// (hint, problem) for a hint whose two names `have` both has with nothing freeing `to`: a
/// swap, or a hint carried out before whose old name was reused since; either way, guessing
/// would move values into the wrong column.
fn pending_columns<'o>(
    have: &Table,
    table: &'o str,
    options: &'o Options,
) -> Result<Vec<(&'o str, &'o str)>, (String, String)> {
    let hints: Vec<(&str, &str)> = options
        .column_hints(table)
        .filter(|(from, to)| !from.eq_ignore_ascii_case(to) && have.column(from).is_some())
        .collect();
    let mut pending: Vec<(&str, &str)> = hints
        .iter()
        .copied()
        .filter(|(_, to)| have.column(to).is_none())
        .collect();
    loop {
        let freed: Vec<(&str, &str)> = hints
            .iter()
            .copied()
            .filter(|h| !pending.contains(h))
            .filter(|(_, to)| pending.iter().any(|(f, _)| f.eq_ignore_ascii_case(to)))
            .collect();
        if freed.is_empty() {
            break;
        }
        pending.extend(freed);
    }
    if let Some((from, to)) = hints.iter().find(|h| !pending.contains(h)) {
        return Err((
            format!("{table}.{from}={table}.{to}"),
            format!(
                "the table has both columns {from} and {to}; to swap columns, rename one through a third name in two migrations, and drop hints already applied"
            ),
        ));
    }
    Ok(pending)
}

/// Refuses hints that form a cycle (`a=b` with `b=a`, or longer): a swap, which native renames
/// cannot do in one step and which a database that looks up to date cannot tell from done.
///
/// # Errors
/// [`MigrateError::Rename`] naming the first hint of the cycle.
pub(crate) fn check_cycles(
    options: &Options,
    annotations: &[crate::annotations::Annotation],
) -> Result<(), MigrateError> {
    // (namespace, from, to): tables share one namespace, each table's columns have their own.
    let edges: Vec<(String, String, String, String)> = options
        .renames
        .iter()
        .map(|r| match r {
            Rename::Table { from, to } => (String::new(), from, to, format!("{from}={to}")),
            // Index names share SQLite's one namespace with tables, but a table and an index
            // hint never chain: a separate namespace (no table has this name: it has a space).
            Rename::Index { from, to } => (
                "index ns".to_owned(),
                from,
                to,
                format!("index:{from}={to}"),
            ),
            Rename::Column { table, from, to } => (
                table.to_ascii_lowercase(),
                from,
                to,
                format!("{table}.{from}={table}.{to}"),
            ),
        })
        .map(|(ns, from, to, hint)| (ns, from.to_ascii_lowercase(), to.to_ascii_lowercase(), hint))
        .filter(|(_, from, to, _)| from != to)
        .collect();
    for (ns, start, first, hint) in &edges {
        let mut at = first.clone();
        for _ in 0..edges.len() {
            if at == *start {
                if let Some(a) = annotations.iter().find(|a| a.rename.to_string() == *hint) {
                    return Err(MigrateError::Annotation {
                        line: a.line,
                        problem: format!(
                            "renames {} from {}, and with the other renames that forms a cycle (a swap); rename one through a third name in two migrations",
                            a.rename.target_text(),
                            from_of(&a.rename)
                        ),
                    });
                }
                return Err(MigrateError::Rename {
                    hint: hint.clone(),
                    problem: "the rename hints form a cycle (a swap); rename one through a third name in two migrations".to_owned(),
                });
            }
            match edges.iter().find(|(n, from, _, _)| n == ns && *from == at) {
                Some((_, _, to, _)) => at = to.clone(),
                None => break,
            }
        }
    }
    Ok(())
}

pub(crate) fn check_renames(
    current: &Schema,
    desired: &Schema,
    options: &Options,
) -> Result<(), MigrateError> {
    for rename in &options.renames {
        let bad = |hint: String, problem: String| MigrateError::Rename { hint, problem };
        match rename {
            Rename::Table { from, to } => {
                let hint = format!("{from}={to}");
                let done = current.has_table(to);
                let source_exists = current.has_table(from);
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
                if !desired.has_table(to) {
                    return Err(bad(hint, format!("the desired schema has no table {to}")));
                }
            }
            Rename::Index { from, to } => {
                let hint = format!("index:{from}={to}");
                let has = |i: &str| current.indexes.contains_key(&i.to_ascii_lowercase());
                if !has(from) && !has(to) {
                    return Err(bad(hint, format!("the database has no index {from}")));
                }
                if !desired.indexes.contains_key(&to.to_ascii_lowercase()) {
                    return Err(bad(hint, format!("the desired schema has no index {to}")));
                }
            }
            Rename::Column { table, from, to } => {
                let hint = format!("{table}.{from}={table}.{to}");
                // A virtual table's columns are carried by name in its rebuild.
                if let Some(vt) = desired.virtual_tables.get(&table.to_ascii_lowercase()) {
                    if !vt.columns.iter().any(|c| c.eq_ignore_ascii_case(to)) {
                        return Err(bad(
                            hint,
                            format!("the desired virtual table {table} has no column {to}"),
                        ));
                    }
                    continue;
                }
                let want = desired.tables.get(&table.to_ascii_lowercase());
                if want.and_then(|t| t.column(to)).is_none() {
                    return Err(bad(
                        hint,
                        format!("the desired table {table} has no column {to}"),
                    ));
                }
                let have = current_table(current, table, options);
                let source = have.map_or(table.as_str(), |t| t.name.as_str());
                let done = have.and_then(|t| t.column(to)).is_some();
                if !done && have.and_then(|t| t.column(from)).is_none() {
                    return Err(bad(
                        hint,
                        format!("the database's table {source} has no column {from}"),
                    ));
                }
                if let Some(have) = have {
                    pending_columns(have, table, options)
                        .map_err(|(hint, problem)| bad(hint, problem))?;
                }
            }
        }
    }
    Ok(())
}
