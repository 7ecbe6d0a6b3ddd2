//! The plan for virtual tables: create, rename, drop, and the rebuild of a changed one.
//!
//! SQLite cannot alter a virtual table's definition, so a changed one is dropped and created
//! again in the migration's transaction, its rows carried across:
//!
//! - with rows of its own (FTS without `content=`, R*Tree, a loadable module's table): copied
//!   out to a TEMP table, rowids kept, and inserted into the new table — streamed by SQLite,
//!   never through Rust; a TEMP table lives outside the database file, so a crash leaves
//!   nothing behind;
//! - an external-content FTS index (`content=docs`): re-read from its content table with the
//!   FTS `'rebuild'` command (a new index over existing rows too);
//! - a contentless FTS index (`content=''`): nothing can be read back, so its rebuild is data
//!   loss and needs [`Options::allow_data_loss`](crate::Options::allow_data_loss).
//!
//! A rename (hint or annotation) of an unchanged virtual table is SQLite's own `ALTER TABLE …
//! RENAME` (FTS and R*Tree rename their shadow tables with it). Every virtual table the plan
//! creates or fills passes its module's integrity check before `COMMIT` ([`verify`]).

use std::collections::BTreeSet;

use rusqlite::Connection;

use crate::diff::step;
use crate::error::MigrateError;
use crate::options::{Options, Rename};
use crate::plan::{DataLoss, Plan, Step, StepKind};
use crate::schema::{Content, Schema, VirtualTable};
use litekeep_recover::{normalize, quote_ident};

/// The TEMP table a virtual table's rows wait in while it is re-created.
const COPY: &str = "_litekeep_copy";
/// The column of [`COPY`] that keeps each row's rowid.
const ROWID: &str = "_litekeep_rowid";

/// What happens to the virtual tables.
#[derive(Default)]
pub(crate) struct VirtualPlan {
    /// Drops of virtual tables the desired schema does not have: first, so that a table of the
    /// same name can be created.
    pub(crate) drops: Vec<Step>,
    /// Creates, renames and rebuilds: after the tables (an external-content index reads its
    /// content table).
    pub(crate) steps: Vec<Step>,
    pub(crate) data_loss: Vec<DataLoss>,
    /// Names of the virtual tables created, renamed or rebuilt.
    pub(crate) touched: Vec<String>,
}

/// Plans the virtual tables from `current` to `desired`.
pub(crate) fn plan(current: &Schema, desired: &Schema, options: &Options) -> VirtualPlan {
    let mut out = VirtualPlan::default();
    let mut sources = BTreeSet::new();
    for (key, want) in &desired.virtual_tables {
        let (have, renamed) = match source(current, want, options) {
            Some(have) => (Some(have), !have.name.eq_ignore_ascii_case(&want.name)),
            None => (current.virtual_tables.get(key), false),
        };
        let Some(have) = have else {
            out.steps.push(create(want));
            out.touched.push(want.name.clone());
            continue;
        };
        sources.insert(have.name.to_ascii_lowercase());
        let same = normalize(&want.sql) == normalize(&renamed_sql(have, &want.name));
        if same && !renamed {
            continue;
        }
        out.touched.push(want.name.clone());
        if same {
            let sql = format!(
                "ALTER TABLE {} RENAME TO {}",
                quote_ident(&have.name),
                quote_ident(&want.name)
            );
            let text = format!("rename virtual table {} to {}", have.name, want.name);
            out.steps
                .push(step(StepKind::RenameTable, &want.name, text, vec![sql]));
            continue;
        }
        let (rebuild, lost) = rebuild(have, want, options);
        out.steps.push(rebuild);
        out.data_loss.extend(lost);
    }
    for (key, have) in &current.virtual_tables {
        if sources.contains(key) || desired.virtual_tables.contains_key(key) {
            continue;
        }
        out.data_loss.push(DataLoss {
            table: have.name.clone(),
            column: None,
        });
        let sql = format!("DROP TABLE {}", quote_ident(&have.name));
        let text = format!("drop virtual table {}", have.name);
        out.drops
            .push(step(StepKind::DropTable, &have.name, text, vec![sql]));
    }
    out
}

/// The current virtual table a pending rename hint or annotation moves to `want`'s name.
fn source<'a>(
    current: &'a Schema,
    want: &VirtualTable,
    options: &Options,
) -> Option<&'a VirtualTable> {
    options.renames.iter().find_map(|r| match r {
        Rename::Table { from, to }
            if to.eq_ignore_ascii_case(&want.name) && !current.has_table(to) =>
        {
            current.virtual_tables.get(&from.to_ascii_lowercase())
        }
        _ => None,
    })
}

/// `have`'s statement as SQLite's `ALTER TABLE … RENAME TO name` leaves it: the name token
/// replaced (quoted, as SQLite writes it).
fn renamed_sql(have: &VirtualTable, name: &str) -> String {
    if have.name.eq_ignore_ascii_case(name) {
        return have.sql.clone();
    }
    let tokens = crate::tokens::tokenize(&have.sql);
    let Some(t) = tokens
        .iter()
        .filter(|t| !t.is_comment())
        .take_while(|t| !t.is_word("using"))
        .filter(|t| {
            t.ident()
                .is_some_and(|i| i.eq_ignore_ascii_case(&have.name))
        })
        .last()
    else {
        return have.sql.clone();
    };
    format!(
        "{}{}{}",
        &have.sql[..t.start],
        quote_ident(name),
        &have.sql[t.end..]
    )
}

/// `CREATE VIRTUAL TABLE`, and for an external-content index the `'rebuild'` that indexes the
/// rows its content table already holds.
fn create(want: &VirtualTable) -> Step {
    let mut sql = vec![want.sql.clone()];
    sql.extend(refill(want));
    let text = format!("create virtual table {} ({})", want.name, want.module);
    step(StepKind::CreateVirtualTable, &want.name, text, sql)
}

/// The FTS `'rebuild'` of an external-content index.
fn refill(want: &VirtualTable) -> Option<String> {
    matches!(want.content, Content::External(_)).then(|| {
        let name = quote_ident(&want.name);
        format!("INSERT INTO {name} ({name}) VALUES ('rebuild')")
    })
}

/// Drop and create `want` in place of `have`, rows carried, and what it loses.
fn rebuild(have: &VirtualTable, want: &VirtualTable, options: &Options) -> (Step, Vec<DataLoss>) {
    let old = quote_ident(&have.name);
    let new = quote_ident(&want.name);
    let describe = |how: String| {
        format!(
            "rebuild virtual table {} ({}): {how}",
            want.name, want.module
        )
    };
    if let Content::External(content) = &want.content {
        let mut sql = vec![format!("DROP TABLE {old}"), want.sql.clone()];
        sql.extend(refill(want));
        let text = describe(format!("re-index content table {content}"));
        return (
            step(StepKind::RebuildVirtualTable, &want.name, text, sql),
            Vec::new(),
        );
    }
    if have.content == Content::None {
        let sql = vec![format!("DROP TABLE {old}"), want.sql.clone()];
        let lost = vec![DataLoss {
            table: want.name.clone(),
            column: None,
        }];
        let text = describe("a contentless index cannot be read back; it starts empty".into());
        return (
            step(StepKind::RebuildVirtualTable, &want.name, text, sql),
            lost,
        );
    }
    let mut into = Vec::new();
    let mut from = Vec::new();
    let mut used = BTreeSet::new();
    for col in &want.columns {
        if let Some(src) = column_origin(have, &want.name, col, options) {
            into.push(quote_ident(col));
            from.push(quote_ident(src));
            used.insert(src.to_ascii_lowercase());
        }
    }
    // An R*Tree's first column is its rowid; every other module keeps a rowid of its own.
    let rowid = !have.is_rtree() && !want.is_rtree();
    let copy = quote_ident(COPY);
    let mut out_cols = from.clone();
    if rowid {
        out_cols.insert(0, format!("rowid AS {}", quote_ident(ROWID)));
        into.insert(0, "rowid".to_owned());
    }
    let mut back = from.clone();
    if rowid {
        back.insert(0, quote_ident(ROWID));
    }
    let sql = vec![
        format!(
            "CREATE TEMP TABLE {copy} AS SELECT {} FROM {old}",
            out_cols.join(", ")
        ),
        format!("DROP TABLE {old}"),
        want.sql.clone(),
        format!(
            "INSERT INTO {new} ({}) SELECT {} FROM temp.{copy}",
            into.join(", "),
            back.join(", ")
        ),
        format!("DROP TABLE temp.{copy}"),
    ];
    let lost = have
        .columns
        .iter()
        .filter(|c| !used.contains(&c.to_ascii_lowercase()))
        .map(|c| DataLoss {
            table: want.name.clone(),
            column: Some(c.clone()),
        })
        .collect();
    let text = describe("copy its rows".into());
    (
        step(StepKind::RebuildVirtualTable, &want.name, text, sql),
        lost,
    )
}

/// The column of `have` whose values go to column `col` of the desired virtual table `table`:
/// a column hint's old name, or the same name.
fn column_origin<'a>(
    have: &'a VirtualTable,
    table: &str,
    col: &str,
    options: &Options,
) -> Option<&'a str> {
    let find = |name: &str| {
        have.columns
            .iter()
            .find(|c| c.eq_ignore_ascii_case(name))
            .map(String::as_str)
    };
    let hinted = options
        .column_hints(table)
        .find(|(_, to)| to.eq_ignore_ascii_case(col))
        .and_then(|(from, _)| find(from));
    hinted.or_else(|| {
        let renamed_away = options
            .column_hints(table)
            .any(|(from, to)| from.eq_ignore_ascii_case(col) && find(to).is_none());
        if renamed_away { None } else { find(col) }
    })
}

/// Runs the module's own integrity check on every virtual table the plan created, renamed or
/// rebuilt, and on every FTS index whose content table it rebuilt.
///
/// # Errors
/// [`MigrateError::VirtualTableCheck`] for the first that fails.
pub(crate) fn verify(conn: &Connection, plan: &Plan) -> Result<(), MigrateError> {
    let touched = |name: &str| plan.touched.iter().any(|t| t.eq_ignore_ascii_case(name));
    for vt in plan.desired.virtual_tables.values() {
        // FTS5 checks an external-content index apart from its content at rank 0; FTS4's
        // check reads the content table, and would refuse for what was out of step before.
        let content_touched =
            vt.module == "fts5" && matches!(&vt.content, Content::External(c) if touched(c));
        if touched(&vt.name) || content_touched {
            check(conn, vt)?;
        }
    }
    Ok(())
}

/// The module's integrity check of `vt`: FTS5's and FTS3/4's `'integrity-check'` command,
/// `rtreecheck()`; other modules have none.
///
/// # Errors
/// [`MigrateError::VirtualTableCheck`] when it fails.
pub(crate) fn check(conn: &Connection, vt: &VirtualTable) -> Result<(), MigrateError> {
    let name = quote_ident(&vt.name);
    let fail = |detail: String| MigrateError::VirtualTableCheck {
        table: vt.name.clone(),
        module: vt.module.clone(),
        detail,
    };
    match vt.module.as_str() {
        "fts5" | "fts4" | "fts3" => conn
            .execute(
                &format!("INSERT INTO {name} ({name}) VALUES ('integrity-check')"),
                [],
            )
            .map(drop)
            .map_err(|e| fail(e.to_string())),
        "rtree" | "rtree_i32" => {
            let said: String = conn
                .query_row("SELECT rtreecheck(?1)", [&vt.name], |r| r.get(0))
                .map_err(|e| fail(e.to_string()))?;
            if said == "ok" {
                Ok(())
            } else {
                Err(fail(said))
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rename_rewrites_only_the_name() {
        let vt = VirtualTable {
            name: "notes".into(),
            sql: "CREATE VIRTUAL TABLE notes USING fts5(notes_title, body)".into(),
            module: "fts5".into(),
            columns: vec!["notes_title".into(), "body".into()],
            content: Content::Own,
        };
        assert_eq!(
            renamed_sql(&vt, "memo"),
            "CREATE VIRTUAL TABLE \"memo\" USING fts5(notes_title, body)"
        );
    }
}
