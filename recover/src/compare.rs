//! Row-level comparison of a leftover table with its original, done in SQL so that no table is
//! ever loaded into memory: which of the leftover's rows are already in the original, which
//! could be inserted without touching an existing key, and which conflict.

use rusqlite::Connection;

use crate::catalog::{TableInfo, count_at};
use crate::sql::quote_ident;

/// How to pair a leftover's rows with the original's.
#[derive(Debug, Clone)]
pub struct Pairing {
    /// Key expressions, the same on both sides: a rowid name or the primary key columns.
    pub key: Vec<String>,
    /// Stored columns both tables have (the ones a copy carries).
    pub common: Vec<String>,
    /// Stored columns only the leftover has.
    pub temp_only: Vec<String>,
    /// Whether the key is the rowid (then copies must carry it explicitly unless `common`
    /// holds the original's rowid alias).
    pub by_rowid: bool,
}

/// The counts a repair decision needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overlap {
    /// The leftover's rows that are in the original: same key, every common column equal.
    pub present: u64,
    /// The leftover's rows whose key the original does not have.
    pub free: u64,
    /// The leftover's rows whose key the original has with other values.
    pub conflicting: u64,
}

/// How the rows of `temp` pair with the rows of `original`, or `None` when they share no key.
pub fn pairing(temp: &TableInfo, original: &TableInfo) -> Option<Pairing> {
    let common: Vec<String> = original
        .columns
        .iter()
        .filter(|c| temp.has_column(c))
        .cloned()
        .collect();
    let temp_only = temp
        .columns
        .iter()
        .filter(|c| !original.has_column(c))
        .cloned()
        .collect();
    if !temp.without_rowid && !original.without_rowid {
        // A column may be called rowid; pick a spelling of the rowid no column shadows.
        let free_name = ["rowid", "_rowid_", "oid"]
            .into_iter()
            .find(|n| !temp.has_column(n) && !original.has_column(n))?;
        return Some(Pairing {
            key: vec![free_name.to_owned()],
            common,
            temp_only,
            by_rowid: true,
        });
    }
    let key = original.primary_key.clone();
    let keyed = !key.is_empty() && key.iter().all(|k| temp.has_column(k));
    keyed.then_some(Pairing {
        key,
        common,
        temp_only,
        by_rowid: false,
    })
}

/// Counts how the rows of `temp` relate to the rows of `original` under `p`.
pub fn overlap(
    conn: &Connection,
    temp: &str,
    original: &str,
    p: &Pairing,
) -> rusqlite::Result<Overlap> {
    let (t, o) = (quote_ident(temp), quote_ident(original));
    let key_match = join_on(&p.key);
    let all_match = match_row(p);
    let sql = format!(
        "SELECT
           count(*) FILTER (WHERE EXISTS (SELECT 1 FROM {o} o WHERE {all_match})),
           count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM {o} o WHERE {key_match}))
         FROM {t} t"
    );
    let total = conn.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| count_at(r, 0))?;
    let (present, free) = conn.query_row(&sql, [], |r| Ok((count_at(r, 0)?, count_at(r, 1)?)))?;
    Ok(Overlap {
        present,
        free,
        conflicting: total.saturating_sub(present + free),
    })
}

/// Up to 5 keys of the leftover's conflicting rows, rendered for a message.
pub fn conflicting_keys(
    conn: &Connection,
    temp: &str,
    original: &str,
    p: &Pairing,
) -> rusqlite::Result<Vec<String>> {
    let (t, o) = (quote_ident(temp), quote_ident(original));
    let key_match = join_on(&p.key);
    let all_match = match_row(p);
    let keys = p
        .key
        .iter()
        .map(|k| format!("quote(t.{})", quote_ident(k)))
        .collect::<Vec<_>>()
        .join(" || ', ' || ");
    let sql = format!(
        "SELECT {keys} FROM {t} t
          WHERE EXISTS (SELECT 1 FROM {o} o WHERE {key_match})
            AND NOT EXISTS (SELECT 1 FROM {o} o WHERE {all_match})
          LIMIT 5"
    );
    let mut stmt = conn.prepare(&sql)?;
    stmt.query_map([], |r| r.get(0))?.collect()
}

/// Whether any of the leftover's rows holds a non-NULL value in a column the original lacks:
/// dropping the leftover would lose it.
pub fn temp_only_values(conn: &Connection, temp: &str, p: &Pairing) -> rusqlite::Result<bool> {
    if p.temp_only.is_empty() {
        return Ok(false);
    }
    let any = p
        .temp_only
        .iter()
        .map(|c| format!("{} IS NOT NULL", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(" OR ");
    conn.query_row(
        &format!(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE {any})",
            quote_ident(temp)
        ),
        [],
        |r| r.get(0),
    )
}

/// Copies the leftover's rows whose key the original lacks (all of them when the original is
/// empty), keys included. Returns the number of rows copied.
pub fn copy_missing(
    conn: &Connection,
    temp: &str,
    original: &TableInfo,
    p: &Pairing,
) -> rusqlite::Result<usize> {
    let (t, o) = (quote_ident(temp), quote_ident(&original.name));
    // The key travels with the row: as the rowid, unless the original's rowid alias is among
    // the common columns anyway; as primary key columns, which are common by construction.
    let mut cols: Vec<String> = Vec::new();
    if p.by_rowid
        && !original
            .rowid_alias
            .as_ref()
            .is_some_and(|a| p.common.iter().any(|c| c.eq_ignore_ascii_case(a)))
    {
        cols.push(p.key[0].clone());
    }
    cols.extend(p.common.iter().map(|c| quote_ident(c)));
    let list = cols.join(", ");
    let select = cols
        .iter()
        .map(|c| format!("t.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let key_match = join_on(&p.key);
    conn.execute(
        &format!(
            "INSERT INTO {o} ({list}) SELECT {select} FROM {t} t
              WHERE NOT EXISTS (SELECT 1 FROM {o} o WHERE {key_match})"
        ),
        [],
    )
}

/// `o.a IS t.a AND o.b IS t.b …`: equality that treats NULLs as equal and applies the columns'
/// affinities, so a value converted by a type change still matches its original (with the one
/// conversion `IS` does not make spelled out).
fn join_on<'a>(cols: impl IntoIterator<Item = &'a String>) -> String {
    join(cols, false)
}

/// [`join_on`] for the key columns, then the value columns with the conversion spelled out.
fn match_row(p: &Pairing) -> String {
    format!("{} AND {}", join(&p.key, false), join(&p.common, true))
}

fn join<'a>(cols: impl IntoIterator<Item = &'a String>, converted: bool) -> String {
    let parts: Vec<String> = cols
        .into_iter()
        .map(|c| {
            // rowid spellings stay bare: quoted, they would name a column that does not exist.
            let c = if matches!(c.as_str(), "rowid" | "_rowid_" | "oid") {
                c.clone()
            } else {
                quote_ident(c)
            };
            if converted {
                // `IS` applies the columns' affinities, except between TEXT and an untyped
                // (BLOB affinity) column: there a number copied into TEXT became its text.
                format!(
                    "(o.{c} IS t.{c} OR (typeof(o.{c}) = 'text' AND typeof(t.{c}) IN ('integer', 'real') \
                     AND o.{c} = CAST(t.{c} AS TEXT)))"
                )
            } else {
                // Plain, so that SQLite looks keys up by index.
                format!("o.{c} IS t.{c}")
            }
        })
        .collect();
    if parts.is_empty() {
        "1".to_owned()
    } else {
        parts.join(" AND ")
    }
}
