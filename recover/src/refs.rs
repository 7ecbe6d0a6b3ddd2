//! Putting one table in the original's place with every reference pointing at it.
//!
//! The references to fix are the foreign keys, views and triggers elsewhere that name either
//! table: those that name the original (they must still do) and those that name the leftover
//! (a rename with `legacy_alter_table=OFF` rewrote them from the original to the leftover).
//! SQLite rewrites them itself; this module only orders the renames so that it does:
//!
//! - `ALTER TABLE … RENAME` with `legacy_alter_table=OFF` moves every reference along with the
//!   table, but refuses to run while any view or trigger names a table that does not exist;
//! - with `legacy_alter_table=ON` (and `foreign_keys=OFF`, which the caller sets) it moves the
//!   table alone and leaves every reference's text as it was.
//!
//! So: views and triggers naming the original are set aside (their text already says the
//! original), the original steps aside with a legacy rename (its references keep naming it),
//! the leftover takes the original's name with a modern rename (its references follow), and
//! when the original's table is the one to keep, two legacy renames swap the tables back under
//! the names. Last, the views and triggers set aside come back. The tests in
//! `tests/sqlite_behaviour.rs` prove each of these behaviours on the bundled SQLite.

use rusqlite::Connection;

use crate::catalog::Catalog;
use crate::sql::{mentions, quote_ident};

/// Which table ends up under the original's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keep {
    /// The leftover (renamed back).
    Temp,
    /// The original (the leftover is dropped).
    Original,
}

/// A failed step of a repair.
#[derive(Debug)]
pub(crate) enum StepError {
    /// SQLite refused `op`.
    Sql {
        /// The statement or what was being done.
        op: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A check of our own failed: the repair would not be lossless.
    Check(String),
}

impl StepError {
    pub(crate) fn sql(op: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> StepError {
        let op = op.into();
        move |source| StepError::Sql { op, source }
    }
}

/// Names no user table has (internal to litekeep and gone at the end of the transaction).
const HOLD: &str = "_litekeep_recover_hold";
const GONE: &str = "_litekeep_recover_gone";

/// Puts `keep` under the name `original`, drops the other table, and leaves every foreign key,
/// view and trigger that named `temp` or `original` naming `original`. `temp` must exist;
/// `original` may not. Indexes and triggers of the dropped leftover that the kept original
/// lacks are recreated on it where they fit; the notes say which could not be.
pub(crate) fn put_in_place(
    conn: &Connection,
    temp: &str,
    original: &str,
    keep: Keep,
) -> Result<Vec<String>, StepError> {
    let legacy_was: bool = conn
        .query_row("PRAGMA legacy_alter_table", [], |r| r.get(0))
        .map_err(StepError::sql("reading legacy_alter_table"))?;
    let result = shuffle(conn, temp, original, keep);
    let restore = conn
        .execute_batch(&format!(
            "PRAGMA legacy_alter_table = {}",
            u8::from(legacy_was)
        ))
        .map_err(StepError::sql("restoring legacy_alter_table"));
    let notes = result?;
    restore?;
    Ok(notes)
}

fn shuffle(
    conn: &Connection,
    temp: &str,
    original: &str,
    keep: Keep,
) -> Result<Vec<String>, StepError> {
    let exec = |sql: String| conn.execute_batch(&sql).map_err(StepError::sql(sql));
    let legacy = |on: bool| exec(format!("PRAGMA legacy_alter_table = {}", u8::from(on)));
    let cat = Catalog::read(conn).map_err(StepError::sql("reading the schema"))?;
    let original_exists = cat.table(original).is_some();
    let (t, o) = (quote_ident(temp), quote_ident(original));

    // 1. Set aside the views and triggers of other tables that name the original, and the
    //    original's own triggers (whose bodies may name it too); the latter come back only
    //    when the original's table is kept.
    let aside: Vec<(String, String, String, bool)> = cat
        .objects
        .iter()
        .filter(|x| x.kind == "view" || x.kind == "trigger")
        .filter(|x| !x.table.eq_ignore_ascii_case(temp))
        .filter_map(|x| {
            let sql = x.sql.as_deref()?;
            let own = x.table.eq_ignore_ascii_case(original);
            // One that names the leftover too stays: the rename in step 3 rewrites it. (It may
            // name the original only as a column; if it names the original table as well,
            // SQLite refuses the rename and the repair rolls back with that error.)
            let names_original = mentions(sql, original) && !mentions(sql, temp);
            (own || names_original).then(|| (x.kind.clone(), x.name.clone(), sql.to_owned(), own))
        })
        .collect();
    for (kind, name, _, _) in &aside {
        exec(format!(
            "DROP {} {}",
            kind.to_uppercase(),
            quote_ident(name)
        ))?;
    }
    // 2. The original steps aside; whatever names it keeps naming it.
    if original_exists {
        legacy(true)?;
        exec(format!("ALTER TABLE {o} RENAME TO {HOLD}"))?;
    }
    // 3. The leftover takes the name; whatever names it follows.
    legacy(false)?;
    exec(format!("ALTER TABLE {t} RENAME TO {o}"))?;
    let mut notes = Vec::new();
    match (keep, original_exists) {
        (Keep::Temp, true) => exec(format!("DROP TABLE {HOLD}"))?,
        (Keep::Temp, false) => {}
        (Keep::Original, false) => {
            return Err(StepError::Check(format!(
                "keeping {original}, which does not exist"
            )));
        }
        (Keep::Original, true) => {
            // 4. Swap the tables back under the names; the references stay on the name.
            let cat = Catalog::read(conn).map_err(StepError::sql("reading the schema"))?;
            let attached: Vec<(String, String)> = cat
                .objects
                .iter()
                .filter(|x| x.kind != "view" && x.table.eq_ignore_ascii_case(original))
                .filter_map(|x| Some((x.name.clone(), x.sql.clone()?)))
                .collect();
            legacy(true)?;
            exec(format!("ALTER TABLE {o} RENAME TO {GONE}"))?;
            exec(format!("ALTER TABLE {HOLD} RENAME TO {o}"))?;
            exec(format!("DROP TABLE {GONE}"))?;
            legacy(false)?;
            let now = Catalog::read(conn).map_err(StepError::sql("reading the schema"))?;
            for (name, sql) in attached {
                if now.name_taken(&name) {
                    continue;
                }
                let tried =
                    conn.execute_batch(&format!("SAVEPOINT lk_attach; {sql}; RELEASE lk_attach"));
                if let Err(e) = tried {
                    // Only "does not fit this table" is a note; an I/O error, a full disk or
                    // damage may have rolled the whole transaction back, and the repair must
                    // stop there (found by the power-cut tests: it went on in autocommit).
                    if !doesnt_fit(&e) || conn.is_autocommit() {
                        return Err(StepError::sql(sql)(e));
                    }
                    let _ = conn.execute_batch("ROLLBACK TO lk_attach; RELEASE lk_attach");
                    notes.push(format!(
                        "{name} of the dropped leftover not recreated on {original}: {e}"
                    ));
                } else {
                    notes.push(format!("{name} recreated on {original}"));
                }
            }
        }
    }
    // 5. The views and triggers set aside come back, still naming the original.
    for (_, _, sql, own) in aside {
        if !own || keep == Keep::Original {
            exec(sql)?;
        }
    }
    Ok(notes)
}

/// Whether `e` says a statement does not fit the schema (a column it names is gone, say), as
/// opposed to a failure of the database itself (I/O, full disk, damage, memory).
fn doesnt_fit(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::Unknown | rusqlite::ErrorCode::ConstraintViolation)
    )
}
