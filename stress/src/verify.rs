//! The final verification of a campaign, with a plain connection after every worker stopped:
//! `integrity_check`, `foreign_key_check`, no leftover tables, the schema one of the two
//! versions, every acknowledged write present (embedder versions at least the acknowledged
//! ones), every acknowledged write's id in `write_ids` exactly once and no id there twice (a
//! write applied twice), and nothing a searcher saw vanish.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use litekeep::migrate::Schema;
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use crate::schema;

/// What the verification found.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Verdict {
    /// `integrity_check` said "ok".
    pub integrity_ok: bool,
    /// Everything that is wrong (empty: all good).
    pub violations: Vec<String>,
    /// Acknowledged files checked.
    pub files_checked: u64,
    /// Acknowledged embedder versions checked.
    pub versions_checked: u64,
    /// Acknowledged write ids checked (each must be in `write_ids` exactly once).
    pub ids_checked: u64,
}

/// Verifies the database at `db` against the ledgers.
pub fn verify(db: &Path, ledgers: &[PathBuf]) -> Verdict {
    let mut v = Verdict::default();
    let conn = match Connection::open(db) {
        Ok(c) => c,
        Err(e) => {
            v.violations.push(format!("cannot open the database: {e}"));
            return v;
        }
    };
    let _ = conn.busy_timeout(std::time::Duration::from_secs(30));
    match conn.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0)) {
        Ok(s) if s == "ok" => v.integrity_ok = true,
        Ok(s) => v.violations.push(format!("integrity_check: {s}")),
        Err(e) => v.violations.push(format!("integrity_check failed: {e}")),
    }
    match conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(0) => {}
        Ok(n) => v
            .violations
            .push(format!("foreign_key_check: {n} violations")),
        Err(e) => v.violations.push(format!("foreign_key_check failed: {e}")),
    }
    match litekeep::recover::scan(&conn) {
        Ok(found) => {
            for f in found {
                v.violations.push(format!("leftover: {f}"));
            }
        }
        Err(e) => v
            .violations
            .push(format!("scanning for leftovers failed: {e}")),
    }
    let versions =
        [schema::V1, schema::V2].map(|s| Schema::from_sql(s).map(|s| s.fingerprint()).ok());
    match Schema::read(&conn) {
        Ok(s) if versions.contains(&Some(s.fingerprint())) => {}
        Ok(s) => v.violations.push(format!(
            "the schema is neither version: {}",
            Schema::from_sql(schema::V1)
                .map(|want| s.describe_difference(&want).join("; "))
                .unwrap_or_default()
        )),
        Err(e) => v.violations.push(format!("reading the schema failed: {e}")),
    }
    check_ledgers(&conn, ledgers, &mut v);
    check_doubled(&conn, &mut v);
    v
}

/// No write id twice in `write_ids`, acknowledged or not: a request applied twice.
fn check_doubled(conn: &Connection, v: &mut Verdict) {
    let doubled = conn
        .prepare("SELECT op, count(*) FROM write_ids GROUP BY op HAVING count(*) > 1 ORDER BY op")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                .collect::<Result<Vec<_>, _>>()
        });
    match doubled {
        Ok(d) if d.is_empty() => {}
        Ok(d) => v.violations.push(format!(
            "{} writes applied more than once (e.g. {})",
            d.len(),
            d.iter()
                .take(3)
                .map(|(op, n)| format!("{op} {n} times"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Err(e) => v
            .violations
            .push(format!("cannot look for writes applied twice: {e}")),
    }
}

/// How many times the write id `op` is in `write_ids`.
fn times_applied(conn: &Connection, op: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT count(*) FROM write_ids WHERE op = ?1")?
        .query_row([op], |r| r.get(0))
}

fn check_ledgers(conn: &Connection, ledgers: &[PathBuf], v: &mut Verdict) {
    let mut lost_files = Vec::new();
    let mut versions: HashMap<i64, i64> = HashMap::new();
    // Acknowledged write ids not there exactly once: (id, times there).
    let mut not_once: Vec<(String, i64)> = Vec::new();
    for ledger in ledgers {
        let Ok(text) = std::fs::read_to_string(ledger) else {
            continue;
        };
        for line in text.lines() {
            let mut parts = line.split(' ');
            let tag = parts.next();
            if matches!(tag, Some("F" | "E")) {
                let Some(op) = parts.nth(1) else { continue };
                v.ids_checked += 1;
                match times_applied(conn, op) {
                    Ok(1) => {}
                    Ok(n) => not_once.push((op.to_owned(), n)),
                    Err(e) => {
                        v.violations
                            .push(format!("cannot look up acknowledged write ids: {e}"));
                        return;
                    }
                }
            }
            match tag {
                Some("F") => {
                    for path in parts {
                        v.files_checked += 1;
                        let found: Result<Option<i64>, _> = conn
                            .query_row("SELECT 1 FROM files WHERE path = ?1", [path], |r| r.get(0))
                            .optional();
                        match found {
                            Ok(Some(_)) => {}
                            Ok(None) => lost_files.push(path.to_owned()),
                            Err(e) => {
                                v.violations
                                    .push(format!("cannot look up acknowledged files: {e}"));
                                return;
                            }
                        }
                    }
                }
                Some("E") => {
                    for pair in parts {
                        if let Some((id, ver)) = pair.split_once(':')
                            && let (Ok(id), Ok(ver)) = (id.parse::<i64>(), ver.parse::<i64>())
                        {
                            let e = versions.entry(id).or_insert(ver);
                            *e = (*e).max(ver);
                        }
                    }
                }
                Some("V") => v.violations.push(format!("a searcher saw:{}", &line[1..])),
                _ => {}
            }
        }
    }
    if !lost_files.is_empty() {
        v.violations.push(format!(
            "{} acknowledged files missing (e.g. {})",
            lost_files.len(),
            lost_files
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !not_once.is_empty() {
        v.violations.push(format!(
            "{} acknowledged writes not applied exactly once (e.g. {})",
            not_once.len(),
            not_once
                .iter()
                .take(3)
                .map(|(op, n)| format!("{op} {n} times"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut behind = 0;
    for (id, acked) in &versions {
        v.versions_checked += 1;
        let have: Result<Option<i64>, _> = conn
            .query_row(
                "SELECT version FROM code_entries WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional();
        match have {
            Ok(Some(h)) if h >= *acked => {}
            Ok(_) => behind += 1,
            Err(e) => {
                v.violations
                    .push(format!("cannot look up embedder versions: {e}"));
                return;
            }
        }
    }
    if behind > 0 {
        v.violations.push(format!(
            "{behind} code entries behind their acknowledged embedder version"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("lk-stress-verify-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn db_with_one_file(dir: &Path) -> PathBuf {
        let db = dir.join("v.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(schema::V1).unwrap();
        conn.execute_batch(
            "INSERT INTO files (path) VALUES ('a.rs');
             INSERT INTO symbols (file_id, name) VALUES (1, 's');
             INSERT INTO code_entries (symbol_id, version) VALUES (1, 3);
             INSERT INTO write_ids (op) VALUES ('w1'), ('w2');",
        )
        .unwrap();
        db
    }

    #[test]
    fn a_healthy_database_matching_its_ledger_passes() {
        let dir = scratch("ok");
        let db = db_with_one_file(&dir);
        let ledger = dir.join("ledger-indexer-0-0.txt");
        std::fs::write(
            &ledger,
            "F 10 w1 a.rs\nE 5 w2 1:3\nX busy database is locked\n",
        )
        .unwrap();
        let v = verify(&db, &[ledger]);
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        assert!(v.integrity_ok);
        assert_eq!(
            (v.files_checked, v.versions_checked, v.ids_checked),
            (1, 1, 2)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn lost_writes_stale_versions_leftovers_and_searcher_reports_are_violations() {
        let dir = scratch("bad");
        let db = db_with_one_file(&dir);
        Connection::open(&db)
            .unwrap()
            .execute_batch("PRAGMA foreign_keys = OFF; ALTER TABLE symbols RENAME TO temp_symbols; CREATE TABLE symbols (id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL REFERENCES files(id), name TEXT NOT NULL, kind TEXT);")
            .unwrap();
        Connection::open(&db)
            .unwrap()
            .execute_batch("INSERT INTO write_ids (op) VALUES ('w1'), ('twice'), ('twice')")
            .unwrap();
        let ledger = dir.join("ledger-indexer-0-0.txt");
        std::fs::write(
            &ledger,
            "F 10 w1 a.rs gone.rs\nE 5 w3 1:4\nV file x.rs was seen, then vanished\n",
        )
        .unwrap();
        let v = verify(&db, &[ledger]);
        let all = v.violations.join("\n");
        assert!(
            all.contains("1 acknowledged files missing (e.g. gone.rs)"),
            "{all}"
        );
        assert!(all.contains("1 code entries behind"), "{all}");
        assert!(all.contains("leftover: temp_symbols"), "{all}");
        assert!(all.contains("neither version"), "{all}");
        assert!(all.contains("x.rs was seen, then vanished"), "{all}");
        // w1 is there twice (once from the fixture), w3 never; `twice` was not acknowledged.
        assert!(
            all.contains(
                "2 acknowledged writes not applied exactly once (e.g. w1 2 times, w3 0 times)"
            ),
            "{all}"
        );
        assert!(
            all.contains("2 writes applied more than once (e.g. twice 2 times, w1 2 times)"),
            "{all}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
