//! The owner's record of calls, `_litekeep_calls`: (client, seq) → encoded outcome, written in
//! the same transaction as the call's writes, so a retry at the next owner finds it.

use std::sync::OnceLock;

use rusqlite::{Connection, OptionalExtension, params};

/// Creates the table when missing (the diff ignores `_litekeep_` tables).
pub(crate) const CREATE: &str = "CREATE TABLE IF NOT EXISTS _litekeep_calls (
    client BLOB NOT NULL,
    seq INTEGER NOT NULL,
    outcome BLOB NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (client, seq)
) WITHOUT ROWID";

/// The outcome recorded for (client, seq), if any.
pub(crate) fn recorded(
    conn: &Connection,
    client: &[u8],
    seq: u64,
) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.prepare_cached("SELECT outcome FROM _litekeep_calls WHERE client = ?1 AND seq = ?2")?
        .query_row(params![client, seq as i64], |r| r.get(0))
        .optional()
}

/// One call's record: (client, seq, encoded outcome).
pub(crate) type Record = ([u8; 16], u64, Vec<u8>);

/// How many records one `INSERT` takes: a batch's records go in as few statements as these
/// sizes allow (each size one cached statement), not one statement per call.
const CHUNKS: [usize; 4] = [64, 16, 4, 1];

/// The `INSERT` of `rows` records.
fn insert_sql(rows: usize) -> &'static str {
    static SQL: [OnceLock<String>; CHUNKS.len()] = [const { OnceLock::new() }; CHUNKS.len()];
    let at = CHUNKS
        .iter()
        .position(|&c| c == rows)
        .unwrap_or(CHUNKS.len() - 1);
    SQL[at].get_or_init(|| {
        let values = vec!["(?, ?, ?, ?)"; CHUNKS[at]].join(", ");
        format!("INSERT INTO _litekeep_calls (client, seq, outcome, at) VALUES {values}")
    })
}

/// Records every call of `records` at `now` (unix seconds).
pub(crate) fn record_all(conn: &Connection, records: &[Record], now: i64) -> rusqlite::Result<()> {
    let mut rest = records;
    while !rest.is_empty() {
        let rows = CHUNKS.into_iter().find(|&c| c <= rest.len()).unwrap_or(1);
        let (chunk, after) = rest.split_at(rows);
        let mut stmt = conn.prepare_cached(insert_sql(rows))?;
        for (i, (client, seq, outcome)) in chunk.iter().enumerate() {
            stmt.raw_bind_parameter(4 * i + 1, &client[..])?;
            stmt.raw_bind_parameter(4 * i + 2, *seq as i64)?;
            stmt.raw_bind_parameter(4 * i + 3, &outcome[..])?;
            stmt.raw_bind_parameter(4 * i + 4, now)?;
        }
        stmt.raw_execute()?;
        rest = after;
    }
    Ok(())
}

/// Forgets the client's calls below `acked_below` (it will not send them again).
pub(crate) fn forget_below(
    conn: &Connection,
    client: &[u8],
    acked_below: u64,
) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM _litekeep_calls WHERE client = ?1 AND seq < ?2")?
        .execute(params![client, acked_below as i64])
        .map(drop)
}

/// Forgets every call recorded before `before` (unix seconds): clients gone for good.
pub(crate) fn forget_older(conn: &Connection, before: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM _litekeep_calls WHERE at < ?1")?
        .execute(params![before])
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_go_in_whole_in_chunks() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(CREATE).unwrap();
        for n in [0usize, 1, 3, 4, 21, 64, 150] {
            conn.execute("DELETE FROM _litekeep_calls", []).unwrap();
            let records: Vec<Record> = (0..n as u64)
                .map(|i| ([7; 16], i, vec![i as u8; 3]))
                .collect();
            record_all(&conn, &records, 42).unwrap();
            let back: Vec<(u64, Vec<u8>)> = conn
                .prepare("SELECT seq, outcome FROM _litekeep_calls WHERE at = 42 ORDER BY seq")
                .unwrap()
                .query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let want: Vec<(u64, Vec<u8>)> = records.into_iter().map(|(_, s, o)| (s, o)).collect();
            assert_eq!(back, want, "{n} records");
        }
    }
}
