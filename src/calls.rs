//! The owner's record of calls, `_litekeep_calls`: (client, seq) → encoded outcome, written in
//! the same transaction as the call's writes, so a retry at the next owner finds it.

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

/// Records (client, seq)'s outcome at `now` (unix seconds).
pub(crate) fn record(
    conn: &Connection,
    client: &[u8],
    seq: u64,
    outcome: &[u8],
    now: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO _litekeep_calls (client, seq, outcome, at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![client, seq as i64, outcome, now])
    .map(drop)
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
