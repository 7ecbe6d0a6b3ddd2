//! Deferred foreign keys in a group commit: a request whose writes leave a row without its
//! parent under a deferred constraint would fail the COMMIT of every request batched with it,
//! so each request's count is looked at before its savepoint is released.

use rusqlite::{Connection, ffi};

/// Whether the transaction on `conn` holds foreign key violations that COMMIT would find: rows
/// of deferred constraints (`DEFERRABLE INITIALLY DEFERRED`, `PRAGMA defer_foreign_keys`)
/// whose parents are missing. Before each request of a batch there are none (a request that
/// left some was rolled back), so a count after it is its own.
pub(crate) fn violations(conn: &Connection) -> bool {
    let (mut current, mut highest) = (0, 0);
    // SAFETY: `conn.handle()` is the open connection this borrow keeps alive, used on this
    // thread only for the call; sqlite3_db_status writes the two ints it is given.
    let rc = unsafe {
        ffi::sqlite3_db_status(
            conn.handle(),
            ffi::SQLITE_DBSTATUS_DEFERRED_FKS,
            &mut current,
            &mut highest,
            0,
        )
    };
    rc == ffi::SQLITE_OK && current > 0
}
