//! The numbers of a campaign, read back from the ledgers, and the table that shows them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::access::Mode;
use crate::ledger::KINDS;
use crate::verify::Verdict;

/// One campaign's report.
#[derive(Debug, Clone, Serialize)]
pub struct CampaignReport {
    /// naive, litekeep or owner.
    pub mode: Mode,
    /// Its seed.
    pub seed: u64,
    /// Its database.
    pub db: PathBuf,
    /// How long the workload ran.
    pub seconds: f64,
    /// How long it was meant to run.
    pub planned_seconds: f64,
    /// How long stopping the workers and reaping the killed ones took after it.
    pub stop_seconds: f64,
    /// SIGKILLs sent.
    pub kills: u64,
    /// Of those, SIGKILLs of the process that owned the service then (owner mode).
    pub owner_kills: u64,
    /// Workers restarted (after a kill or an exit of their own).
    pub restarts: u64,
    /// CPU time the hypervisor took from this machine while the workload ran, in seconds (all
    /// CPUs; Linux only): a virtual machine's neighbours make runs incomparable.
    pub steal_seconds: Option<f64>,
    /// Per role.
    pub roles: BTreeMap<String, RoleStats>,
    /// The final verification.
    pub verdict: Verdict,
    /// What went wrong with the run itself (not a violation): an overrun, a killed worker that
    /// never died.
    pub warnings: Vec<String>,
}

impl CampaignReport {
    /// Errors that reached workers, all roles together.
    pub fn errors(&self) -> u64 {
        self.roles
            .values()
            .map(|r| r.errors.values().sum::<u64>())
            .sum()
    }

    /// Whether the campaign passed: no violation.
    pub fn passed(&self) -> bool {
        self.verdict.violations.is_empty()
    }
}

/// One role's numbers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RoleStats {
    /// Acknowledged operations (commits; reads for searchers; opens for openers).
    pub ops: u64,
    /// Per second of the run.
    pub per_second: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// The slowest operation, milliseconds: the request that timed out, in the seeds' words.
    pub max_ms: f64,
    /// Errors that reached the worker, by kind.
    pub errors: BTreeMap<String, u64>,
    /// Faults injected into its file operations (`--faults`).
    pub faults: u64,
}

impl RoleStats {
    /// Reads every ledger; a ledger's role is in its name (`ledger-<role>-…`).
    pub fn from_ledgers(ledgers: &[PathBuf], ran: Duration) -> BTreeMap<String, RoleStats> {
        let mut latencies: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let mut stats: BTreeMap<String, RoleStats> = BTreeMap::new();
        for ledger in ledgers {
            let role = ledger
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.split('-').nth(1))
                .unwrap_or("?")
                .to_owned();
            let entry = stats.entry(role.clone()).or_default();
            let lat = latencies.entry(role).or_default();
            let Ok(text) = std::fs::read_to_string(ledger) else {
                continue;
            };
            for line in text.lines() {
                let mut parts = line.split(' ');
                match parts.next() {
                    Some("F" | "E" | "R" | "M" | "O") => {
                        entry.ops += 1;
                        if let Some(us) = parts.next().and_then(|s| s.parse().ok()) {
                            lat.push(us);
                        }
                    }
                    Some("I") => entry.faults += 1,
                    Some("X") => {
                        let kind = parts.next().unwrap_or("other").to_owned();
                        *entry.errors.entry(kind).or_default() += 1;
                    }
                    _ => {}
                }
            }
        }
        for (role, entry) in &mut stats {
            let mut lat = latencies
                .get_mut(role)
                .map(std::mem::take)
                .unwrap_or_default();
            entry.per_second = entry.ops as f64 / ran.as_secs_f64().max(1e-9);
            lat.sort_unstable();
            entry.p50_ms = percentile(&lat, 0.50);
            entry.p99_ms = percentile(&lat, 0.99);
            entry.max_ms = percentile(&lat, 1.0);
        }
        stats
    }
}

/// The `q` quantile of sorted latencies (µs), in milliseconds; 0 for none.
fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// The table of one or more campaigns, side by side per role.
pub fn table(reports: &[CampaignReport]) -> String {
    let mut out = String::new();
    for r in reports {
        let _ = writeln!(
            out,
            "\n== {} mode (seed {}, {:.1} s, {} SIGKILLs{}, {} restarts{}) — {}",
            r.mode,
            r.seed,
            r.seconds,
            r.kills,
            if r.mode == Mode::Owner {
                format!(" ({} of the owner)", r.owner_kills)
            } else {
                String::new()
            },
            r.restarts,
            r.steal_seconds
                .map(|s| format!(", {s:.1} s of CPU stolen by the hypervisor"))
                .unwrap_or_default(),
            if r.passed() { "PASSED" } else { "FAILED" }
        );
        let _ = writeln!(
            out,
            "{:<9} {:>8} {:>9} {:>9} {:>9} {:>9} {:>7}  errors ({})",
            "role",
            "ops",
            "ops/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "faults",
            KINDS.join(" / ")
        );
        for (role, s) in &r.roles {
            let errors: Vec<String> = KINDS
                .iter()
                .map(|k| s.errors.get(*k).copied().unwrap_or(0).to_string())
                .collect();
            let _ = writeln!(
                out,
                "{role:<9} {:>8} {:>9.1} {:>9.2} {:>9.2} {:>9.1} {:>7}  {}",
                s.ops,
                s.per_second,
                s.p50_ms,
                s.p99_ms,
                s.max_ms,
                s.faults,
                errors.join(" / ")
            );
        }
        for warning in &r.warnings {
            let _ = writeln!(out, "  WARNING: {warning}");
        }
        let v = &r.verdict;
        let _ = writeln!(
            out,
            "verification: integrity {}, {} acknowledged files, {} embedder versions and {} write ids (exactly once) checked, {} violation(s)",
            if v.integrity_ok { "ok" } else { "NOT ok" },
            v.files_checked,
            v.versions_checked,
            v.ids_checked,
            v.violations.len()
        );
        for violation in v.violations.iter().take(10) {
            let _ = writeln!(out, "  VIOLATION: {violation}");
        }
        if v.violations.len() > 10 {
            let _ = writeln!(out, "  … and {} more", v.violations.len() - 10);
        }
    }
    out
}
