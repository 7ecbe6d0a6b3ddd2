//! The rename-copy-drop rebuild of one table, streamed by SQLite (`INSERT … SELECT`).

use std::collections::BTreeSet;

use crate::diff::{TEMP_PREFIX, step};
use crate::options::Options;
use crate::plan::{DataLoss, Step, StepKind};
use crate::renames::column_origin;
use crate::schema::Table;
use litekeep_recover::quote_ident;

/// The rename-copy-drop rebuild of `have` into `want`, and the columns it drops.
pub(crate) fn rebuild(
    name_now: &str,
    have: &Table,
    want: &Table,
    options: &Options,
) -> (Step, Vec<DataLoss>) {
    let name = quote_ident(&want.name);
    let temp = quote_ident(&format!("{TEMP_PREFIX}{}", want.name));
    let mut into = Vec::new();
    let mut from = Vec::new();
    let mut used = BTreeSet::new();
    for col in want.columns.iter().filter(|c| !c.is_generated()) {
        let src = column_origin(have, want, col, options);
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
        format!("ALTER TABLE {} RENAME TO {temp}", quote_ident(name_now)),
        want.sql.clone(),
    ];
    if !into.is_empty() {
        sql.push(format!(
            "INSERT INTO {name} ({}) SELECT {} FROM {temp}",
            into.join(", "),
            from.join(", ")
        ));
    }
    if want.autoincrement {
        sql.extend(keep_sequence(&want.name));
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

/// AUTOINCREMENT promises an id is never given out twice: the copy sets `sqlite_sequence` to
/// the largest id still present, so the renamed-away table's entry (the largest id ever given
/// out) is carried over where it is higher (an entry is added when the copy made none: no rows).
fn keep_sequence(table: &str) -> [String; 2] {
    let name = litekeep_recover::sql::quote_literal(table);
    let temp = litekeep_recover::sql::quote_literal(&format!("{TEMP_PREFIX}{table}"));
    let old = format!("(SELECT max(seq) FROM sqlite_sequence WHERE name = {temp})");
    [
        format!("UPDATE sqlite_sequence SET seq = {old} WHERE name = {name} AND seq < {old}"),
        format!(
            "INSERT INTO sqlite_sequence (name, seq) SELECT {name}, seq FROM sqlite_sequence \
             WHERE name = {temp} AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = {name})"
        ),
    ]
}

fn describe_columns(have: &Table, want: &Table, options: &Options) -> String {
    let mut parts = Vec::new();
    let mut used = BTreeSet::new();
    for col in &want.columns {
        match column_origin(have, want, col, options) {
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
