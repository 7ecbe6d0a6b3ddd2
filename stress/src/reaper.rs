//! Killed workers on their way out. A SIGKILLed process in uninterruptible sleep (state D: an
//! `fsync` on a disk stalled on writeback) dies only when that kernel call returns, which took
//! tens of seconds in the stress runs; a blocking `wait` for it stopped the whole campaign (no
//! more kills, no restarts) and made it overrun. So a killed worker goes to the [`Reaper`],
//! which reaps it with `try_wait` at each turn of the coordinator's loop and, at the end, waits
//! for the rest with a bounded total, naming those that never died.

use std::process::Child;
use std::time::{Duration, Instant};

/// Killed workers not reaped yet.
#[derive(Default)]
pub struct Reaper {
    dying: Vec<Dying>,
}

struct Dying {
    child: Child,
    /// The worker, for messages: `indexer 2`.
    what: String,
    since: Instant,
}

impl Reaper {
    /// SIGKILLs `child` and keeps it until it is reaped; never waits.
    pub fn kill(&mut self, child: Child, what: String) {
        sigkill(&child);
        self.track(child, what);
    }

    /// Keeps `child` (already signalled) until it is reaped.
    fn track(&mut self, child: Child, what: String) {
        self.dying.push(Dying {
            child,
            what,
            since: Instant::now(),
        });
    }

    /// Reaps those that have died; gives how many are still dying.
    pub fn reap(&mut self) -> usize {
        // An error from try_wait means there is nothing left to wait for.
        self.dying
            .retain_mut(|d| matches!(d.child.try_wait(), Ok(None)));
        self.dying.len()
    }

    /// Waits up to `bound` in all for the dying to die; describes those still alive after it
    /// (they stay tracked).
    pub fn drain(&mut self, bound: Duration) -> Vec<String> {
        let deadline = Instant::now() + bound;
        while self.reap() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.dying
            .iter()
            .map(|d| {
                let pid = d.child.id();
                format!(
                    "{} (pid {pid}) still alive {:.1} s after its SIGKILL{}",
                    d.what,
                    d.since.elapsed().as_secs_f64(),
                    state(pid).map_or(String::new(), |s| format!(", state {s}"))
                )
            })
            .collect()
    }
}

/// SIGKILL to a child this process has not reaped yet.
fn sigkill(child: &Child) {
    // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet (we hold its
    // `Child`, and only the reaper waits for it), with a valid signal number.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
    }
}

/// The process's state letter from `/proc/<pid>/stat` (`D`: uninterruptible sleep), if any.
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) S …`: comm may hold spaces and parentheses; the state follows the last `)`.
    stat.get(stat.rfind(')')? + 1..)?
        .trim_start()
        .chars()
        .next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn sleeper() -> Child {
        Command::new("sleep")
            .arg("60")
            .stdin(Stdio::null())
            .spawn()
            .unwrap()
    }

    #[test]
    fn a_killed_child_is_reaped_without_a_blocking_wait() {
        let mut reaper = Reaper::default();
        reaper.kill(sleeper(), "sleeper 0".into());
        reaper.kill(sleeper(), "sleeper 1".into());
        assert!(reaper.reap() <= 2);
        assert_eq!(reaper.drain(Duration::from_secs(60)), Vec::<String>::new());
        assert_eq!(reaper.reap(), 0);
    }

    #[test]
    fn one_that_does_not_die_is_named_and_kept() {
        let mut reaper = Reaper::default();
        // Tracked but never signalled: it outlives a bound of zero.
        let child = sleeper();
        let pid = child.id();
        reaper.track(child, "sleeper 7".into());
        let undead = reaper.drain(Duration::ZERO);
        assert_eq!(undead.len(), 1, "{undead:?}");
        assert!(
            undead[0].starts_with(&format!("sleeper 7 (pid {pid}) still alive")),
            "{undead:?}"
        );
        assert!(undead[0].contains(", state "), "{undead:?}");
        // Still tracked: once it is killed, it is reaped.
        sigkill(&reaper.dying[0].child);
        assert_eq!(reaper.drain(Duration::from_secs(60)), Vec::<String>::new());
    }
}
