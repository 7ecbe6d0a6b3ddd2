//! A small pool of read-only connections: at most `max` are opened, lazily; a reader waits for
//! one to come back when all are in use.

use std::path::Path;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use litekeep_migrate::Extension;
use rusqlite::{Connection, OpenFlags};

pub(crate) struct Pool {
    max: usize,
    busy: Duration,
    extensions: Vec<Extension>,
    state: Mutex<State>,
    returned: Condvar,
}

struct State {
    idle: Vec<Connection>,
    opened: usize,
}

/// A connection taken from the pool; it goes back when dropped.
pub(crate) struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<Connection>,
}

impl Pool {
    pub(crate) fn new(max: usize, busy: Duration, extensions: Vec<Extension>) -> Pool {
        Pool {
            max: max.max(1),
            busy,
            extensions,
            state: Mutex::new(State {
                idle: Vec::new(),
                opened: 0,
            }),
            returned: Condvar::new(),
        }
    }

    /// An idle connection, a new one while fewer than `max` are open, or the next one returned.
    pub(crate) fn get(&self, path: &Path) -> rusqlite::Result<Pooled<'_>> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(conn) = st.idle.pop() {
                return Ok(Pooled {
                    pool: self,
                    conn: Some(conn),
                });
            }
            if st.opened < self.max {
                st.opened += 1;
                drop(st);
                return match self.open(path) {
                    Ok(conn) => Ok(Pooled {
                        pool: self,
                        conn: Some(conn),
                    }),
                    Err(e) => {
                        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                        st.opened -= 1;
                        self.returned.notify_one();
                        Err(e)
                    }
                };
            }
            st = self
                .returned
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn open(&self, path: &Path) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(self.busy)?;
        for e in &self.extensions {
            e.load_raw(&conn)?;
        }
        Ok(conn)
    }
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        // Invariant: `conn` is Some until drop.
        self.conn
            .as_ref()
            .unwrap_or_else(|| unreachable!("a pooled connection is taken only in drop"))
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // A reader left inside a transaction (the caller's BEGIN, or an I/O error in the
            // middle of one) would pin its WAL snapshot for good: no checkpoint could reset the
            // WAL past it, and the -wal file would grow without end.
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            let mut st = self
                .pool
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if conn.is_autocommit() {
                st.idle.push(conn);
            } else {
                // Closed (which ends its transaction) and replaced by a new one when needed.
                st.opened -= 1;
                drop(st);
                if let Err((conn, _)) = conn.close() {
                    // It cannot even close (dropping it would panic): leaked, never handed out
                    // again with its stale snapshot.
                    std::mem::forget(conn);
                }
                self.pool.returned.notify_one();
                return;
            }
            self.pool.returned.notify_one();
        }
    }
}
