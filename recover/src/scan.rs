//! [`scan`]: find the leftovers of interrupted table rebuilds and decide, from the rows, what
//! repair loses nothing. Read-only.

use std::path::PathBuf;

use rusqlite::Connection;

use crate::catalog::count_at;
use crate::catalog::{Catalog, TableInfo};
use crate::compare;
use crate::error::RecoverError;
use crate::finding::{Action, Case, Finding};
use crate::names::{TempName, parse_temp_name};
use crate::options::Options;
use crate::sql::{mentions, quote_ident};

/// Lists the leftovers of interrupted table rebuilds in the database `conn` is open on, each with
/// the repair that loses nothing (or the reason none is safe). Changes nothing; a read-only
/// connection is enough. Same as [`scan_with`] with default [`Options`].
///
/// ```
/// use rusqlite::Connection;
/// use litekeep_recover::{scan, Action, Case};
/// let conn = Connection::open_in_memory().unwrap();
/// // A rebuild that died after renaming the original away:
/// conn.execute_batch("
///     CREATE TABLE new__files (id INTEGER PRIMARY KEY, path TEXT);
///     INSERT INTO new__files (path) VALUES ('a.rs'), ('b.rs');
/// ").unwrap();
/// let found = scan(&conn).unwrap();
/// assert_eq!(found.len(), 1);
/// assert_eq!(found[0].case, Case::OriginalMissing);
/// assert_eq!(found[0].action, Action::RenameBack);
/// ```
///
/// # Errors
/// [`RecoverError`] when the schema or the rows cannot be read.
pub fn scan(conn: &Connection) -> Result<Vec<Finding>, RecoverError> {
    scan_with(conn, &Options::default())
}

/// [`scan`] with [`Options`]: tables the application expects and leftovers the user confirmed
/// count as evidence for names that ordinary tables also have.
///
/// # Errors
/// As [`scan`].
///
/// ```
/// use litekeep_recover::{Action, Options, scan, scan_with};
/// let conn = rusqlite::Connection::open_in_memory().unwrap();
/// // `temp_files` and no `files`: people name ordinary tables `temp_X` too, so the name alone
/// // is no evidence; an application that expects `files` is.
/// conn.execute_batch("CREATE TABLE temp_files (id INTEGER PRIMARY KEY);").unwrap();
/// assert!(matches!(scan(&conn)?[0].action, Action::Leave { .. }));
/// let expected = scan_with(&conn, &Options::default().expect_table("files"))?;
/// assert_eq!(expected[0].action, Action::RenameBack);
/// # Ok::<(), litekeep_recover::RecoverError>(())
/// ```
pub fn scan_with(conn: &Connection, options: &Options) -> Result<Vec<Finding>, RecoverError> {
    let path = db_path(conn);
    if nothing_named_like_a_leftover(conn).map_err(RecoverError::db(&path, "reading the schema"))? {
        return Ok(Vec::new());
    }
    let cat = Catalog::read(conn).map_err(RecoverError::db(&path, "reading the schema"))?;
    let mut found = Vec::new();
    for table in &cat.tables {
        if table.name.to_ascii_lowercase().starts_with("_litekeep_") {
            continue;
        }
        if let Some(name) = parse_temp_name(&table.name)
            && let Some(f) = leftover(conn, &cat, table, name, options).map_err(
                RecoverError::db(&path, "comparing a leftover table with its original"),
            )?
        {
            found.push(f);
        }
    }
    found.extend(
        dangling(conn, &cat).map_err(RecoverError::db(&path, "looking for dangling references"))?,
    );
    Ok(found)
}

/// The common case, cheaply: no table, and no identifier in any `CREATE` statement, is named
/// like a leftover — so there is neither a leftover nor a reference to one.
fn nothing_named_like_a_leftover(conn: &Connection) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare("SELECT name, sql FROM sqlite_schema")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let name: String = row.get(0)?;
        let sql: Option<String> = row.get(1)?;
        let suspicious = |id: &str| {
            parse_temp_name(id).is_some() && !id.to_ascii_lowercase().starts_with("_litekeep_")
        };
        if suspicious(&name)
            || sql
                .as_deref()
                .is_some_and(|s| crate::sql::identifiers(s).any(|id| suspicious(&id)))
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The file `conn` is open on (empty for an in-memory database).
pub(crate) fn db_path(conn: &Connection) -> PathBuf {
    PathBuf::from(conn.path().unwrap_or(""))
}

/// The foreign keys, views and triggers outside `table` that name it, described for people.
pub(crate) fn references_to(cat: &Catalog, table: &str) -> Vec<String> {
    let fks = cat
        .tables
        .iter()
        .filter(|t| !t.name.eq_ignore_ascii_case(table))
        .filter(|t| t.references.iter().any(|r| r.eq_ignore_ascii_case(table)))
        .map(|t| format!("foreign key of {}", t.name));
    let objects = cat
        .objects
        .iter()
        .filter(|o| o.kind != "index" && !o.table.eq_ignore_ascii_case(table))
        .filter(|o| o.sql.as_deref().is_some_and(|s| mentions(s, table)))
        .map(|o| format!("{} {}", o.kind, o.name));
    fks.chain(objects).collect()
}

fn count(conn: &Connection, table: &str) -> rusqlite::Result<u64> {
    conn.query_row(
        &format!("SELECT count(*) FROM {}", quote_ident(table)),
        [],
        |r| count_at(r, 0),
    )
}

fn leftover(
    conn: &Connection,
    cat: &Catalog,
    temp: &TableInfo,
    name: TempName,
    options: &Options,
) -> rusqlite::Result<Option<Finding>> {
    let vouched = name.tool.is_strong() || options.confirms(&temp.name);
    let original = if name.truncated {
        let mut candidates = cat.tables.iter().filter(|t| {
            !t.name.eq_ignore_ascii_case(&temp.name)
                && t.name
                    .to_ascii_lowercase()
                    .starts_with(&name.original.to_ascii_lowercase())
        });
        match (candidates.next(), candidates.next()) {
            (Some(one), None) => Some(one),
            _ => None,
        }
    } else {
        cat.table(&name.original)
    };
    let original_name = original.map_or(name.original.clone(), |o| o.name.clone());
    let mut finding = Finding {
        table: temp.name.clone(),
        original: original_name.clone(),
        tool: name.tool,
        temp_rows: count(conn, &temp.name)?,
        original_rows: None,
        references: references_to(cat, &temp.name),
        case: Case::OriginalMissing,
        action: Action::RenameBack,
    };
    let leave = |mut f: Finding, reason: String| {
        f.action = Action::Leave { reason };
        Ok(Some(f))
    };
    let Some(original) = original else {
        if name.truncated {
            return leave(
                finding,
                "Alembic cut its name to 50 characters and no single table starts with what is \
                 left; rename it back by hand"
                    .to_owned(),
            );
        }
        if cat.name_taken(&original_name) {
            return leave(
                finding,
                format!("a view or index is called {original_name}; rename it back by hand"),
            );
        }
        let evidence = vouched
            || options.expects(&original_name)
            || !references_to(cat, &original_name).is_empty();
        if !evidence {
            return leave(
                finding,
                format!(
                    "ordinary tables are named like this too, and nothing names {original_name}; \
                     if it is a leftover, confirm it (Options::confirm, --confirm {})",
                    temp.name
                ),
            );
        }
        return Ok(Some(finding));
    };
    let Some(pairing) = compare::pairing(temp, original) else {
        if !vouched {
            return Ok(None);
        }
        return leave(
            finding,
            format!(
                "it shares no key with {original_name} to compare rows by; compare them by hand"
            ),
        );
    };
    if !vouched && !options.expects(&original_name) {
        // A weak name: a leftover only if it looks like a copy of the original.
        let similar = !pairing.common.is_empty() && pairing.common.len() * 2 >= temp.columns.len();
        if !similar {
            return Ok(None);
        }
    }
    finding.original_rows = Some(count(conn, &original.name)?);
    if finding.temp_rows == 0 {
        finding.case = Case::TempEmptyOrSubset;
        finding.action = Action::DropTemp;
        return Ok(Some(finding));
    }
    let extra_values = compare::temp_only_values(conn, &temp.name, &pairing)?;
    if finding.original_rows == Some(0) {
        finding.case = Case::OriginalEmpty;
        finding.action = if extra_values {
            // The original cannot hold every value; the leftover goes back in its place, which
            // loses nothing because the original is empty.
            Action::RenameBack
        } else {
            Action::RestoreRows {
                rows: finding.temp_rows,
            }
        };
        return Ok(Some(finding));
    }
    let overlap = compare::overlap(conn, &temp.name, &original.name, &pairing)?;
    finding.case = if overlap.present == finding.temp_rows {
        Case::TempEmptyOrSubset
    } else {
        Case::BothHoldRows
    };
    if overlap.conflicting > 0 {
        let keys = compare::conflicting_keys(conn, &temp.name, &original.name, &pairing)?;
        return leave(
            finding,
            format!(
                "{} of its rows have keys {original_name} holds with other values (keys {}); \
                 compare them by hand and delete the copy you do not want",
                overlap.conflicting,
                keys.join("; ")
            ),
        );
    }
    if extra_values {
        return leave(
            finding,
            format!(
                "it holds values in columns {original_name} lacks ({}); dropping it would lose \
                 them — copy what you need, then drop it",
                pairing.temp_only.join(", ")
            ),
        );
    }
    finding.action = if overlap.free == 0 {
        Action::DropTemp
    } else {
        Action::InsertMissing { rows: overlap.free }
    };
    Ok(Some(finding))
}

/// Names that foreign keys, views or triggers still use for a leftover table that is gone while
/// its original exists.
fn dangling(conn: &Connection, cat: &Catalog) -> rusqlite::Result<Vec<Finding>> {
    let mut names: Vec<String> = cat
        .tables
        .iter()
        .flat_map(|t| t.references.iter().cloned())
        .collect();
    for o in cat.objects.iter().filter(|o| o.kind != "index") {
        let Some(sql) = &o.sql else { continue };
        for id in crate::sql::identifiers(sql) {
            if parse_temp_name(&id).is_none() || cat.table(&id).is_some() {
                continue;
            }
            // A view that names a missing table fails to prepare; one that merely has a
            // column called like that does not. Triggers cannot be tested that way: a column
            // of that name anywhere rules the name out instead.
            let broken = if o.kind == "view" {
                view_is_broken(conn, &o.name, &id)
            } else {
                !cat.tables.iter().any(|t| t.has_column(&id))
            };
            if broken {
                names.push(id);
            }
        }
    }
    names.sort_by_key(|n| n.to_ascii_lowercase());
    names.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    let mut found = Vec::new();
    for name in names {
        if cat.name_taken(&name) {
            continue;
        }
        let Some(tn) = parse_temp_name(&name) else {
            continue;
        };
        let Some(original) = cat.table(&tn.original) else {
            continue;
        };
        found.push(Finding {
            table: name.clone(),
            original: original.name.clone(),
            tool: tn.tool,
            temp_rows: 0,
            original_rows: Some(count(conn, &original.name)?),
            references: references_to(cat, &name),
            case: Case::DanglingReferences,
            action: Action::Repoint,
        });
    }
    Ok(found)
}

fn view_is_broken(conn: &Connection, view: &str, missing: &str) -> bool {
    match conn.prepare(&format!("SELECT * FROM {} LIMIT 0", quote_ident(view))) {
        Ok(_) => false,
        Err(e) => e.to_string().to_ascii_lowercase().contains(&format!(
            "no such table: main.{}",
            missing.to_ascii_lowercase()
        )),
    }
}
