//! Transactions held across calls: one per connection, rolled back the moment its connection
//! ends, or when it stays idle or open too long (a write transaction holds up every other
//! writer).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use litekeep_owner::{ClientId, ConnId};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A connection's transaction.
pub(crate) enum Slot<S> {
    /// Open: the engine's session, whether it may write, when it began and was last used.
    Open {
        session: S,
        write: bool,
        began: Instant,
        used: Instant,
    },
    /// Rolled back by litekeep (a failed statement, idle or open too long): every call on the
    /// connection fails until the client ends it with `rollback` (or `commit`).
    Aborted(String),
}

/// A connection's place for its transaction: locked while one of its calls runs.
pub(crate) type SharedSlot<S> = Arc<Mutex<Option<Slot<S>>>>;

/// The connections' transactions, and the transaction calls running now.
pub(crate) struct Sessions<S> {
    slots: Mutex<HashMap<ConnId, SharedSlot<S>>>,
    /// (client, seq) of the calls running in a transaction now: a retry of one (from a new
    /// connection) waits for it to finish before it looks up the recorded outcome.
    running: Mutex<HashSet<(ClientId, u64)>>,
    finished: Condvar,
}

impl<S> Default for Sessions<S> {
    fn default() -> Self {
        Sessions {
            slots: Mutex::new(HashMap::new()),
            running: Mutex::new(HashSet::new()),
            finished: Condvar::new(),
        }
    }
}

/// A call's mark in [`Sessions::running`], removed when dropped.
pub(crate) struct Running<'a, S> {
    sessions: &'a Sessions<S>,
    key: (ClientId, u64),
}

impl<S> Drop for Running<'_, S> {
    fn drop(&mut self) {
        lock(&self.sessions.running).remove(&self.key);
        self.sessions.finished.notify_all();
    }
}

impl<S> Sessions<S> {
    /// The slot of connection `conn`, made empty when it has none.
    pub fn slot(&self, conn: ConnId) -> SharedSlot<S> {
        lock(&self.slots).entry(conn).or_default().clone()
    }

    /// Whether connection `conn` has a transaction (open or aborted).
    pub fn has(&self, conn: ConnId) -> bool {
        lock(&self.slots)
            .get(&conn)
            .is_some_and(|s| lock(s).is_some())
    }

    /// Takes connection `conn`'s transaction away (its connection ended).
    pub fn remove(&self, conn: ConnId) -> Option<Slot<S>> {
        let slot = lock(&self.slots).remove(&conn)?;
        lock(&slot).take()
    }

    /// Takes every connection's transaction away, rolling back (with `rollback`) those open
    /// (the server steps down).
    pub fn clear(&self, mut rollback: impl FnMut(S)) {
        let slots: Vec<_> = lock(&self.slots).drain().map(|(_, v)| v).collect();
        for slot in slots {
            if let Some(Slot::Open { session, .. }) = lock(&slot).take() {
                rollback(session);
            }
        }
    }

    /// Marks (client, seq) as running until the mark is dropped.
    pub fn running(&self, key: (ClientId, u64)) -> Running<'_, S> {
        lock(&self.running).insert(key);
        Running {
            sessions: self,
            key,
        }
    }

    /// Waits, at most `bound`, until (client, seq) is not running.
    pub fn wait_finished(&self, key: &(ClientId, u64), bound: Duration) {
        let deadline = Instant::now() + bound;
        let mut running = lock(&self.running);
        while running.contains(key) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            running = self
                .finished
                .wait_timeout(running, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Rolls back (with `rollback`) every open transaction that has been idle for `idle` or
    /// open for `open` and is not running a call now; each becomes [`Slot::Aborted`] saying
    /// why. Slots left empty are forgotten.
    pub fn reap(&self, idle: Duration, open: Duration, mut rollback: impl FnMut(S)) {
        let slots: Vec<_> = lock(&self.slots)
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        for (conn, slot) in slots {
            // A slot locked by its connection's thread is running a call: not idle.
            let Ok(mut guard) = slot.try_lock() else {
                continue;
            };
            let why = match &*guard {
                Some(Slot::Open { used, began, .. }) if used.elapsed() >= idle => format!(
                    "the transaction was rolled back: no call came for {:.1} s (the server's --tx-idle)",
                    idle.as_secs_f64()
                ),
                Some(Slot::Open { began, .. }) if began.elapsed() >= open => format!(
                    "the transaction was rolled back: it was open for {:.1} s (the server's --tx-timeout)",
                    open.as_secs_f64()
                ),
                Some(_) => continue,
                None => {
                    drop(guard);
                    let mut slots = lock(&self.slots);
                    if slots.get(&conn).is_some_and(|s| Arc::ptr_eq(s, &slot))
                        && Arc::strong_count(&slot) == 2
                    {
                        slots.remove(&conn);
                    }
                    continue;
                }
            };
            if let Some(Slot::Open { session, .. }) = guard.replace(Slot::Aborted(why)) {
                rollback(session);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_transactions_are_rolled_back_and_busy_ones_left() {
        let sessions: Sessions<u32> = Sessions::default();
        let now = Instant::now();
        *lock(&sessions.slot(1)) = Some(Slot::Open {
            session: 10,
            write: true,
            began: now,
            used: now,
        });
        *lock(&sessions.slot(2)) = Some(Slot::Open {
            session: 20,
            write: true,
            began: now,
            used: now,
        });
        let busy = sessions.slot(2);
        let held = lock(&busy);
        let mut rolled = Vec::new();
        sessions.reap(Duration::ZERO, Duration::from_secs(60), |s| rolled.push(s));
        drop(held);
        assert_eq!(rolled, [10]);
        assert!(
            matches!(&*lock(&sessions.slot(1)), Some(Slot::Aborted(why)) if why.contains("--tx-idle"))
        );
        assert!(matches!(
            sessions.remove(2),
            Some(Slot::Open { session: 20, .. })
        ));
        assert!(!sessions.has(2));
    }
}
