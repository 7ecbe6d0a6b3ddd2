//! `--faults`: workers whose file operations fail now and then, through the fault-injecting
//! VFS of `litekeep-faults` (made the process's default, so every connection litekeep opens
//! goes through it). A watcher thread re-arms the next fault each time one fires, at a random
//! distance, and appends an `I <kind>` line to the worker's ledger for each fault injected.

use std::path::Path;
use std::time::Duration;

use clap::ValueEnum;
use litekeep_faults::{Config, Op};
use serde::Serialize;

use crate::ledger::Ledger;

/// Which faults the workers meet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize)]
pub enum Faults {
    /// None.
    #[default]
    None,
    /// A read, write or sync fails (`SQLITE_IOERR_*`) every few hundred to few thousand of them.
    Ioerr,
    /// The disk is full (`SQLITE_FULL`) once a few KiB to a few MiB of growth are spent.
    Full,
}

impl std::fmt::Display for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Faults::None => "none",
            Faults::Ioerr => "ioerr",
            Faults::Full => "full",
        })
    }
}

/// Arms the faults for this worker process; `ledger` gets one `I` line per fault injected.
pub fn arm(faults: Faults, seed: u64, ledger: &Path) -> Result<(), String> {
    if faults == Faults::None {
        return Ok(());
    }
    litekeep_faults::register_as_default()
        .map_err(|e| format!("registering the fault VFS: {e}"))?;
    let mut ledger = Ledger::open(ledger).map_err(|e| format!("opening the ledger: {e}"))?;
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x5eed_fa17);
    litekeep_faults::configure(next(faults, &mut rng));
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(2));
            let c = litekeep_faults::counters();
            let fired = c.faults.max(c.disk_full);
            if fired > 0 {
                for _ in 0..fired {
                    ledger.line(&format!("I {faults}"));
                }
                litekeep_faults::configure(next(faults, &mut rng));
            }
        }
    });
    Ok(())
}

/// The next fault, at a random distance (counted from now: `configure` zeroes the counters).
fn next(faults: Faults, rng: &mut fastrand::Rng) -> Config {
    match faults {
        Faults::Ioerr => {
            let op = [Op::Read, Op::Write, Op::Sync][rng.usize(..3)];
            let nth = match op {
                Op::Sync => rng.u64(20..400),
                _ => rng.u64(200..4000),
            };
            Config::new().fail_once(op, nth)
        }
        Faults::Full => Config::new().disk_budget(rng.u64(16 << 10..4 << 20)),
        Faults::None => Config::new(),
    }
}
