//! The workers' writes as requests: serde types that one handler, [`apply`], runs on a
//! connection inside a write transaction. Every mode runs the same handler: the naive mode in
//! its own deferred transaction, the litekeep mode in `Database::write`, the owner mode at the
//! owner (`Database::service`), in its group commit.
//!
//! Each request carries a unique id (`op`), which the handler inserts into `write_ids` with
//! the request's effects: the verification checks that every acknowledged id is there exactly
//! once, and that no id is there twice.

use rusqlite::Connection;
use serde::{Deserialize, Serialize};

/// A write a worker asks for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Write {
    /// An indexer batch: these files, 3 symbols each, one code entry per symbol.
    Index {
        /// The request's unique id.
        op: String,
        /// The files' paths (unique).
        paths: Vec<String>,
        /// Their size.
        size: i64,
    },
    /// An embedder update: new vectors for up to 4 entries, from a random one on.
    Embed {
        /// The request's unique id.
        op: String,
        /// Picks the first entry: `pick % max(id) + 1`.
        pick: u64,
    },
}

/// What a write did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Written {
    /// The batch is in.
    Indexed,
    /// The entries updated, with their new versions (none when the table was empty).
    Embedded(Vec<(i64, i64)>),
}

impl Write {
    /// The request's unique id.
    pub fn op(&self) -> &str {
        match self {
            Write::Index { op, .. } | Write::Embed { op, .. } => op,
        }
    }
}

/// Runs `write` on `conn`, which is inside a write transaction.
pub fn apply(conn: &Connection, write: &Write) -> rusqlite::Result<Written> {
    let written = match write {
        Write::Index { paths, size, .. } => {
            index(conn, paths, *size)?;
            Written::Indexed
        }
        Write::Embed { pick, .. } => {
            let updated = embed(conn, *pick)?;
            if updated.is_empty() {
                // Nothing written: no id to account for.
                return Ok(Written::Embedded(updated));
            }
            Written::Embedded(updated)
        }
    };
    conn.prepare_cached("INSERT INTO write_ids (op) VALUES (?1)")?
        .execute([write.op()])?;
    Ok(written)
}

fn index(conn: &Connection, paths: &[String], size: i64) -> rusqlite::Result<()> {
    let mut file =
        conn.prepare_cached("INSERT INTO files (path, hash, size) VALUES (?1, ?2, ?3)")?;
    let mut symbol =
        conn.prepare_cached("INSERT INTO symbols (file_id, name, kind) VALUES (?1, ?2, ?3)")?;
    let mut entry = conn
        .prepare_cached("INSERT INTO code_entries (symbol_id, body, version) VALUES (?1, ?2, 0)")?;
    for path in paths {
        file.execute((path, format!("{:016x}", size as u64 * 31), size))?;
        let file_id = conn.last_insert_rowid();
        for (s, kind) in ["fn", "struct", "impl"].iter().enumerate() {
            symbol.execute((file_id, format!("sym{s}"), kind))?;
            let symbol_id = conn.last_insert_rowid();
            entry.execute((symbol_id, "fn body() { /* … */ }"))?;
        }
    }
    Ok(())
}

fn embed(conn: &Connection, pick: u64) -> rusqlite::Result<Vec<(i64, i64)>> {
    let max: i64 = conn.query_row("SELECT coalesce(max(id), 0) FROM code_entries", [], |r| {
        r.get(0)
    })?;
    if max == 0 {
        return Ok(Vec::new());
    }
    let from = (pick % max as u64) as i64 + 1;
    let ids: Vec<i64> = conn
        .prepare_cached("SELECT id FROM code_entries WHERE id >= ?1 ORDER BY id LIMIT 4")?
        .query_map([from], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut bump = conn.prepare_cached(
        "UPDATE code_entries SET vector = randomblob(64), version = version + 1 WHERE id = ?1 RETURNING version",
    )?;
    let mut done = Vec::new();
    for id in ids {
        let version: i64 = bump.query_row([id], |r| r.get(0))?;
        done.push((id, version));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_leaves_its_id_and_an_empty_embed_leaves_none() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(crate::schema::V1).unwrap();
        let empty = Write::Embed {
            op: "e0".into(),
            pick: 7,
        };
        assert!(matches!(apply(&conn, &empty), Ok(Written::Embedded(v)) if v.is_empty()));
        let batch = Write::Index {
            op: "i1".into(),
            paths: vec!["a.rs".into(), "b.rs".into()],
            size: 10,
        };
        apply(&conn, &batch).unwrap();
        let embed = Write::Embed {
            op: "e1".into(),
            pick: 3,
        };
        let Written::Embedded(updated) = apply(&conn, &embed).unwrap() else {
            panic!("an embed answers Embedded")
        };
        assert_eq!(updated, [(4, 1), (5, 1), (6, 1)]);
        let ids: Vec<String> = conn
            .prepare("SELECT op FROM write_ids ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(ids, ["i1", "e1"]);
    }
}
