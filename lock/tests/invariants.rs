//! Property: any random sequences of acquire / try / reentrant acquire / release, run by several
//! threads on one lock file, never put two exclusive holders inside, never an exclusive holder
//! beside a shared one, and never hang; a holder asking again is refused or counted.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use litekeep_lock::{FileLock, LockError, LockGuard, Mode, Wait};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Acquire {
        mode: Mode,
        wait: Wait,
        reentrant: bool,
    },
    Release,
    Hold(u16),
}

fn op() -> impl Strategy<Value = Op> {
    let mode = prop_oneof![Just(Mode::Shared), Just(Mode::Exclusive)];
    let wait = prop_oneof![
        Just(Wait::None),
        (0u64..3).prop_map(|ms| Wait::Timeout(Duration::from_millis(ms))),
        Just(Wait::Forever),
    ];
    prop_oneof![
        4 => (mode, wait, any::<bool>())
            .prop_map(|(mode, wait, reentrant)| Op::Acquire { mode, wait, reentrant }),
        3 => Just(Op::Release),
        1 => (0u16..200).prop_map(Op::Hold),
    ]
}

/// (exclusive holders, shared holders) inside, counted by the test itself.
static INSIDE: Mutex<(u32, u32)> = Mutex::new((0, 0));

fn enter(mode: Mode) {
    let mut inside = INSIDE.lock().unwrap();
    match mode {
        Mode::Exclusive => {
            assert_eq!(*inside, (0, 0), "exclusive beside another holder");
            inside.0 += 1;
        }
        Mode::Shared => {
            assert_eq!(inside.0, 0, "shared beside an exclusive holder");
            inside.1 += 1;
        }
    }
}

fn leave(mode: Mode) {
    let mut inside = INSIDE.lock().unwrap();
    match mode {
        Mode::Exclusive => inside.0 -= 1,
        Mode::Shared => inside.1 -= 1,
    }
}

/// Runs one thread's ops. A thread that holds the lock never waits (asking again is refused or
/// counted at once), so no interleaving can deadlock.
fn run(lock: &FileLock, ops: &[Op]) {
    // The first guard of this thread is the one that "entered"; the rest are re-entries.
    let mut guards: Vec<LockGuard> = Vec::new();
    for op in ops {
        match *op {
            Op::Acquire {
                mode,
                wait,
                reentrant,
            } => {
                let held = guards.first().map(LockGuard::mode);
                let result = if reentrant {
                    lock.acquire_reentrant(mode, wait)
                } else {
                    lock.acquire(mode, wait)
                };
                match (held, result) {
                    (None, Ok(g)) => {
                        enter(g.mode());
                        guards.push(g);
                    }
                    (None, Err(e)) => assert!(e.is_transient(), "unexpected {e}"),
                    (Some(h), Ok(g)) => {
                        assert!(reentrant, "a second non-reentrant guard was granted");
                        assert!(h == Mode::Exclusive || mode == Mode::Shared);
                        assert_eq!(g.mode(), h);
                        guards.push(g);
                    }
                    (Some(h), Err(LockError::WouldDeadlock { held, .. })) => {
                        assert_eq!(held, h);
                        assert!(!reentrant || (h == Mode::Shared && mode == Mode::Exclusive));
                    }
                    (Some(_), Err(e)) => panic!("a holder asking again got {e}"),
                }
            }
            Op::Release => {
                if guards.len() == 1 {
                    leave(guards[0].mode());
                }
                guards.pop();
            }
            Op::Hold(us) => std::thread::sleep(Duration::from_micros(us.into())),
        }
    }
    if let Some(first) = guards.first() {
        leave(first.mode());
    }
}

fn lock_file() -> PathBuf {
    let dir = litekeep_faults::harness::process_scratch("invariants");
    dir.join("app.db.lock")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_threads_keep_the_lock_invariants(
        threads in proptest::collection::vec(proptest::collection::vec(op(), 1..24), 2..5)
    ) {
        let lock = FileLock::open(lock_file()).unwrap();
        std::thread::scope(|s| {
            for ops in &threads {
                let lock = lock.clone();
                s.spawn(move || run(&lock, ops));
            }
        });
        prop_assert_eq!(*INSIDE.lock().unwrap(), (0, 0));
        // Everything released: this process can take the lock exclusively at once.
        prop_assert!(lock.exclusive(Wait::None).is_ok());
    }
}
