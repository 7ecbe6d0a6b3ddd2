//! One campaign: start the worker processes (this binary, re-executed), keep them running,
//! SIGKILL them at random moments and restart them, stop them, verify, and gather the report.
//! In the owner mode every third SIGKILL goes to the process that owns the service then (found
//! as the holder of the owner lock), and every kill of the owner is counted.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::access::Mode;
use crate::reaper::Reaper;
use crate::report::{CampaignReport, RoleStats};
use crate::verify::verify;
use fastrand::Rng;

/// What a campaign runs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// naive, litekeep or owner.
    pub mode: Mode,
    /// The database file.
    pub db: PathBuf,
    /// Where the ledgers go.
    pub dir: PathBuf,
    /// Processes per role, in [`crate::roles::ROLES`] order.
    pub counts: [usize; 5],
    /// How long the workload runs.
    pub duration: Duration,
    /// Mean time between SIGKILLs (zero: none).
    pub kill_every: Duration,
    /// The campaign's seed.
    pub seed: u64,
    /// Show a progress bar.
    pub progress: bool,
    /// The faults the workers meet.
    pub faults: crate::faults::Faults,
    /// How the litekeep workers write.
    pub writing: crate::writing::Writing,
}

/// How long the workers get to stop once their stdin is closed, before they are SIGKILLed.
const STOP_GRACE: Duration = Duration::from_secs(20);
/// How long, in all, the end of a campaign waits for killed workers to die.
const REAP_BOUND: Duration = Duration::from_secs(30);
/// A campaign that ends later than its duration plus this says so in its report.
const OVERRUN_SLACK: Duration = Duration::from_secs(3);

struct Slot {
    role: &'static str,
    index: usize,
    generation: usize,
    child: Option<Child>,
}

/// Runs the campaign and returns its report.
pub fn run(plan: &Plan) -> Result<CampaignReport, String> {
    std::fs::create_dir_all(&plan.dir).map_err(|e| format!("{}: {e}", plan.dir.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut rng = Rng::with_seed(plan.seed);
    let mut slots: Vec<Slot> = Vec::new();
    for (r, role) in crate::roles::ROLES.iter().enumerate() {
        for index in 0..plan.counts[r] {
            slots.push(Slot {
                role,
                index,
                generation: 0,
                child: None,
            });
        }
    }
    // The first wave starts together and races to set the file up.
    for slot in &mut slots {
        slot.child = Some(spawn(&exe, plan, slot, rng.u64(..))?);
    }
    let bar = progress(plan);
    let start = Instant::now();
    let stolen_before = litekeep_faults::harness::steal_seconds();
    // Killed workers are reaped here, never waited for: one stuck in the kernel (state D) must
    // not stop the kills and restarts of the others.
    let mut reaper = Reaper::default();
    let (mut kills, mut owner_kills, mut restarts, mut opens) = (0u64, 0u64, 0u64, 0u64);
    let mut next_kill = next_kill_at(plan, &mut rng, start);
    while start.elapsed() < plan.duration {
        std::thread::sleep(Duration::from_millis(25));
        let dying = reaper.reap();
        for slot in &mut slots {
            let exited = match slot.child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(_))) => true,
                Some(Ok(None)) => false,
                _ => true,
            };
            if exited {
                // Openers are meant to come and go; any other worker that ended on its own is
                // restarted too (its ledger shows why it stopped).
                if slot.role == "opener" {
                    opens += 1;
                } else {
                    restarts += 1;
                }
                slot.generation += 1;
                slot.child = Some(spawn(&exe, plan, slot, rng.u64(..))?);
            }
        }
        if let Some(at) = next_kill
            && Instant::now() >= at
        {
            // Every third kill goes to the migrator, if any, to land mid-migration often.
            let candidates: Vec<usize> = (0..slots.len())
                .filter(|&i| slots[i].role != "opener")
                .collect();
            let migrators: Vec<usize> = candidates
                .iter()
                .copied()
                .filter(|&i| slots[i].role == "migrator")
                .collect();
            let owner = (plan.mode == Mode::Owner)
                .then(|| owner_pid(&plan.db))
                .flatten();
            let owner_slot = owner.and_then(|pid| {
                (0..slots.len()).find(|&i| slots[i].child.as_ref().is_some_and(|c| c.id() == pid))
            });
            let pick = if let Some(i) = owner_slot.filter(|_| kills % 3 == 0) {
                i
            } else if !migrators.is_empty() && rng.u64(..3) == 0 {
                migrators[rng.usize(..migrators.len())]
            } else if !candidates.is_empty() {
                candidates[rng.usize(..candidates.len())]
            } else {
                usize::MAX
            };
            if let Some(slot) = slots.get_mut(pick)
                && let Some(child) = slot.child.take()
            {
                if owner == Some(child.id()) {
                    owner_kills += 1;
                }
                reaper.kill(child, format!("{} {}", slot.role, slot.index));
                kills += 1;
                restarts += 1;
                slot.generation += 1;
                slot.child = Some(spawn(&exe, plan, slot, rng.u64(..))?);
            }
            next_kill = next_kill_at(plan, &mut rng, Instant::now());
        }
        if let Some(bar) = &bar {
            bar.set_position(start.elapsed().as_millis() as u64);
            bar.set_message(format!(
                "{kills} kills ({owner_kills} of the owner), {restarts} restarts, {opens} cold opens, {dying} dying"
            ));
        }
    }
    let ran = start.elapsed();
    let stolen = stolen_before
        .zip(litekeep_faults::harness::steal_seconds())
        .map(|(before, after)| after - before);
    stop_all(&mut slots, &mut reaper);
    let mut warnings: Vec<String> = reaper
        .drain(REAP_BOUND)
        .into_iter()
        .map(|w| format!("a killed worker never died: {w}"))
        .collect();
    let ended = start.elapsed();
    if ended > plan.duration + OVERRUN_SLACK {
        warnings.push(format!(
            "the campaign overran its {:.1} s by {:.1} s (workload {:.1} s, then {:.1} s stopping and reaping the workers)",
            plan.duration.as_secs_f64(),
            (ended - plan.duration).as_secs_f64(),
            ran.as_secs_f64(),
            (ended - ran).as_secs_f64()
        ));
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let ledgers = ledgers_in(&plan.dir)?;
    let verdict = verify(&plan.db, &ledgers);
    let roles = RoleStats::from_ledgers(&ledgers, ran);
    Ok(CampaignReport {
        mode: plan.mode,
        seed: plan.seed,
        db: plan.db.clone(),
        seconds: ran.as_secs_f64(),
        planned_seconds: plan.duration.as_secs_f64(),
        stop_seconds: (ended - ran).as_secs_f64(),
        kills,
        owner_kills,
        restarts,
        steal_seconds: stolen,
        roles,
        verdict,
        warnings,
    })
}

/// The pid that the owner lock's holder record names (its first line: `… pid=<n> … label=
/// litekeep owner gen=<g>`), if the file is there. The caller takes it for the owner only when
/// it is one of its live workers: a dead owner's record stays until the next owner writes its
/// own, and names no live worker. Not `FileLock::holder`, which reads `/proc/locks`: the kernel
/// takes its lock list's semaphore for writing for each read of that file, which holds up every
/// lock operation on the machine (the workers' included) and, under load, held this loop up for
/// seconds.
fn owner_pid(db: &Path) -> Option<u32> {
    let record = std::fs::read(litekeep::owner::owner_lock_path(db)).ok()?;
    let line = record.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    if !line.contains("label=litekeep owner gen=") {
        return None;
    }
    line.split(' ')
        .find_map(|word| word.strip_prefix("pid="))
        .and_then(|pid| pid.parse().ok())
}

fn spawn(exe: &Path, plan: &Plan, slot: &Slot, seed: u64) -> Result<Child, String> {
    let ledger = plan.dir.join(format!(
        "ledger-{}-{}-{}.txt",
        slot.role, slot.index, slot.generation
    ));
    let mut cmd = Command::new(exe);
    cmd.arg("worker")
        .arg("--role")
        .arg(slot.role)
        .arg("--db")
        .arg(&plan.db)
        .arg("--mode")
        .arg(plan.mode.to_string())
        .arg("--ledger")
        .arg(&ledger)
        .arg("--seed")
        .arg(seed.to_string())
        .arg("--faults")
        .arg(plan.faults.to_string())
        .args(plan.writing.args());
    if slot.generation == 0 && slot.role != "opener" {
        cmd.arg("--first");
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start a {} worker: {e}", slot.role))
}

fn next_kill_at(plan: &Plan, rng: &mut Rng, from: Instant) -> Option<Instant> {
    if plan.kill_every.is_zero() {
        return None;
    }
    // Uniform in [0.5, 1.5] × the mean.
    let millis = plan.kill_every.as_millis() as u64;
    Some(from + Duration::from_millis(millis / 2 + rng.u64(..millis.max(1))))
}

/// Closes every worker's stdin (their signal to stop), waits up to [`STOP_GRACE`] for them,
/// then hands the stragglers to `reaper`, killed.
fn stop_all(slots: &mut [Slot], reaper: &mut Reaper) {
    for slot in slots.iter_mut() {
        if let Some(child) = slot.child.as_mut() {
            drop(child.stdin.take());
        }
    }
    let deadline = Instant::now() + STOP_GRACE;
    for slot in slots.iter_mut() {
        if let Some(mut child) = slot.child.take() {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        reaper.kill(child, format!("{} {}", slot.role, slot.index));
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }
    }
}

fn ledgers_in(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("ledger-"))
        })
        .collect();
    found.sort();
    Ok(found)
}

fn progress(plan: &Plan) -> Option<ProgressBar> {
    if !plan.progress {
        return None;
    }
    let bar = ProgressBar::new(plan.duration.as_millis() as u64);
    let style = ProgressStyle::with_template(&format!(
        "{} {{bar:30}} {{elapsed}}/{:.0?} {{msg}}",
        plan.mode, plan.duration
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    Some(bar)
}
