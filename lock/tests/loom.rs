//! loom model of the in-process lock state: every interleaving of a few threads over
//! `state::Core` (the code that ships, built against loom's primitives) keeps the invariants:
//! never two exclusive holders, never exclusive beside shared, re-entry refused or counted but
//! never a hang, timeouts that give everything back, the OS lock released when idle, and
//! another process (played by a thread on the fake OS lock) never beside a holder; and the
//! schema lock with the write gate, taken in litekeep's order, never deadlock.
//!
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p litekeep-lock --test loom --release`
#![cfg(loom)]

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use litekeep_lock::Mode;
use litekeep_lock::state::{Core, OsLock, OsOutcome, OsWait, Owner, Refusal, Request};
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

/// The OS lock as flock keeps it for this process's descriptor and for one other process, which
/// a test thread may play ([`FakeOs::foreign_hold`]). Without that thread it is always granted.
#[derive(Default)]
struct FakeOs {
    /// This process: 0 none, 1 shared, 2 exclusive; plus [`FOREIGN`] while the other holds.
    held: AtomicUsize,
}

/// The other process holds the lock (exclusively).
const FOREIGN: usize = 4;

impl FakeOs {
    /// What this process holds: 0 none, 1 shared, 2 exclusive.
    fn ours(&self) -> usize {
        self.held.load(Ordering::SeqCst) & !FOREIGN
    }

    /// The other process takes the lock, waiting while this one holds it.
    fn foreign_hold(&self) {
        while self
            .held
            .compare_exchange(0, FOREIGN, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            thread::yield_now();
        }
    }

    fn foreign_release(&self) {
        self.held.fetch_and(!FOREIGN, Ordering::SeqCst);
    }
}

impl OsLock for FakeOs {
    fn lock(&self, mode: Mode, wait: OsWait, _: bool) -> io::Result<OsOutcome> {
        let want = if mode == Mode::Shared { 1 } else { 2 };
        loop {
            let now = self.held.load(Ordering::SeqCst);
            if now & FOREIGN == 0 {
                // Taking, or converting what this process holds.
                if self
                    .held
                    .compare_exchange(now, want, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    return Ok(OsOutcome::Acquired { contended: false });
                }
                continue;
            }
            match wait {
                // Time does not pass in the model: a deadline has passed as soon as it waits.
                OsWait::NoWait | OsWait::Until(_) => return Ok(OsOutcome::NotAcquired),
                OsWait::Forever => thread::yield_now(),
            }
        }
    }
    fn unlock(&self) -> io::Result<()> {
        self.held.fetch_and(FOREIGN, Ordering::SeqCst);
        Ok(())
    }
}

/// Who is inside: exclusive holders in the high half, shared holders in the low half.
#[derive(Default)]
struct Inside(AtomicUsize);

const EXCL: usize = 1 << 16;

impl Inside {
    fn enter(&self, mode: Mode) {
        let add = if mode == Mode::Exclusive { EXCL } else { 1 };
        let before = self.0.fetch_add(add, Ordering::SeqCst);
        match mode {
            Mode::Exclusive => assert_eq!(before, 0, "exclusive beside another holder"),
            Mode::Shared => assert!(before < EXCL, "shared beside an exclusive holder"),
        }
    }
    fn leave(&self, mode: Mode) {
        self.0.fetch_sub(
            if mode == Mode::Exclusive { EXCL } else { 1 },
            Ordering::SeqCst,
        );
    }
}

fn req(mode: Mode, reentrant: bool) -> Request<'static> {
    Request {
        mode,
        reentrant,
        label: Box::leak(Box::new(Arc::from("loom"))),
    }
}

fn me() -> Owner {
    Owner::current_thread()
}

fn model(slice: Duration, body: fn(Arc<Core<FakeOs>>, Arc<Inside>)) {
    loom::model(move || {
        let core = Arc::new(Core::with_slice(FakeOs::default(), slice));
        let inside = Arc::new(Inside::default());
        body(core.clone(), inside);
        assert_eq!(core.snapshot(), (None, 0, 0), "everything released");
        assert_eq!(core.os().ours(), 0, "OS lock released");
    });
}

fn hold(core: &Core<FakeOs>, inside: &Inside, mode: Mode) {
    let grant = core.acquire(&req(mode, false), me(), None, false).unwrap();
    assert_eq!(grant.mode, mode);
    held_by_us(core, mode);
    inside.enter(mode);
    inside.leave(mode);
    core.release(me()).unwrap();
}

/// A holder in this process is covered by the process's OS lock, and the other process holds
/// nothing.
fn held_by_us(core: &Core<FakeOs>, mode: Mode) {
    let held = core.os().held.load(Ordering::SeqCst);
    assert_eq!(
        held & FOREIGN,
        0,
        "the other process holds the lock beside us"
    );
    let ours = held & !FOREIGN;
    assert!(
        ours == 2 || (ours == 1 && mode == Mode::Shared),
        "{mode:?} held by the OS as {ours}"
    );
}

const KEEP: Duration = Duration::from_secs(3600);

#[test]
fn exclusive_handoff_between_threads() {
    for slice in [KEEP, Duration::ZERO] {
        model(slice, |core, inside| {
            let (c, i) = (core.clone(), inside.clone());
            let t = thread::spawn(move || hold(&c, &i, Mode::Exclusive));
            hold(&core, &inside, Mode::Exclusive);
            t.join().unwrap();
        });
    }
}

#[test]
fn shared_and_exclusive_never_overlap() {
    model(KEEP, |core, inside| {
        let (c1, i1) = (core.clone(), inside.clone());
        let (c2, i2) = (core.clone(), inside.clone());
        let a = thread::spawn(move || hold(&c1, &i1, Mode::Shared));
        let b = thread::spawn(move || hold(&c2, &i2, Mode::Shared));
        hold(&core, &inside, Mode::Exclusive);
        a.join().unwrap();
        b.join().unwrap();
    });
}

#[test]
fn reentry_is_refused_or_counted_never_a_hang() {
    model(KEEP, |core, inside| {
        let (c, i) = (core.clone(), inside.clone());
        let other = thread::spawn(move || hold(&c, &i, Mode::Exclusive));
        core.acquire(&req(Mode::Exclusive, false), me(), None, false)
            .unwrap();
        inside.enter(Mode::Exclusive);
        let again = core.acquire(&req(Mode::Exclusive, false), me(), None, false);
        assert!(matches!(
            again,
            Err(Refusal::WouldDeadlock {
                held: Mode::Exclusive
            })
        ));
        let counted = core
            .acquire(&req(Mode::Shared, true), me(), None, false)
            .unwrap();
        assert!(counted.reentered);
        core.release(me()).unwrap(); // the reentrant count
        inside.leave(Mode::Exclusive);
        core.release(me()).unwrap();
        other.join().unwrap();
    });
}

#[test]
fn an_expired_wait_times_out_and_gives_everything_back() {
    model(KEEP, |core, inside| {
        let (c, i) = (core.clone(), inside.clone());
        let holder = thread::spawn(move || hold(&c, &i, Mode::Exclusive));
        match core.acquire(&req(Mode::Shared, false), me(), Some(Instant::now()), false) {
            Ok(_) => {
                inside.enter(Mode::Shared);
                inside.leave(Mode::Shared);
                core.release(me()).unwrap();
            }
            Err(Refusal::TimedOut) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
        holder.join().unwrap();
    });
}

#[test]
fn another_process_is_refused_or_waited_for_never_beside_us() {
    model(KEEP, |core, inside| {
        let c = core.clone();
        let other_process = thread::spawn(move || {
            c.os().foreign_hold();
            c.os().foreign_release();
        });
        // A non-waiting attempt (the uncontended path's one OS call) is granted or refused.
        match core.acquire(&req(Mode::Exclusive, false), me(), None, true) {
            Ok(_) => {
                held_by_us(&core, Mode::Exclusive);
                inside.enter(Mode::Exclusive);
                inside.leave(Mode::Exclusive);
                core.release(me()).unwrap();
            }
            Err(Refusal::WouldBlock) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
        // A waiting one goes on to wait the slow way until the other process lets go.
        hold(&core, &inside, Mode::Shared);
        other_process.join().unwrap();
    });
}

/// The two locks of a database, as litekeep takes them: the schema lock (`<db>.lock`) and the
/// write gate (`<db>.write.lock`), each a `Core` of its own. Lock order: schema, then gate.
/// A writer takes the gate alone; a migration the schema lock exclusively, then the gate; an
/// opener the schema lock shared. Every interleaving ends (loom reports a deadlock as a
/// failure), each lock keeps its own exclusion, and a migration asked for from inside a write
/// (the gate held by the same thread) is refused at the gate, never a wait on itself.
#[test]
fn schema_lock_then_gate_never_deadlocks() {
    loom::model(|| {
        let schema = Arc::new(Core::with_slice(FakeOs::default(), KEEP));
        let gate = Arc::new(Core::with_slice(FakeOs::default(), KEEP));
        let (in_schema, in_gate) = (Arc::new(Inside::default()), Arc::new(Inside::default()));

        let migrator = {
            let (s, g, is, ig) = (
                schema.clone(),
                gate.clone(),
                in_schema.clone(),
                in_gate.clone(),
            );
            thread::spawn(move || {
                s.acquire(&req(Mode::Exclusive, true), me(), None, false)
                    .unwrap();
                is.enter(Mode::Exclusive);
                hold(&g, &ig, Mode::Exclusive);
                is.leave(Mode::Exclusive);
                s.release(me()).unwrap();
            })
        };
        let opener = {
            let (s, is) = (schema.clone(), in_schema.clone());
            thread::spawn(move || hold(&s, &is, Mode::Shared))
        };

        // The writer: the gate, and inside its transaction a migration is asked for.
        gate.acquire(&req(Mode::Exclusive, false), me(), None, false)
            .unwrap();
        in_gate.enter(Mode::Exclusive);
        match schema.acquire(
            &req(Mode::Exclusive, true),
            me(),
            Some(Instant::now()),
            false,
        ) {
            Ok(_) => {
                // The gate is the migration's second lock: refused, as this thread holds it.
                let again = gate.acquire(&req(Mode::Exclusive, false), me(), None, false);
                assert!(
                    matches!(again, Err(Refusal::WouldDeadlock { .. })),
                    "{again:?}"
                );
                schema.release(me()).unwrap();
            }
            // The migrator or the opener has the schema lock: the deadline has passed.
            Err(Refusal::TimedOut) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
        in_gate.leave(Mode::Exclusive);
        gate.release(me()).unwrap();

        migrator.join().unwrap();
        opener.join().unwrap();
        for core in [&schema, &gate] {
            assert_eq!(core.snapshot(), (None, 0, 0), "everything released");
            assert_eq!(core.os().ours(), 0, "OS lock released");
        }
    });
}
