//! litekeep-stress: the seeds' workload — indexers, embedders, searchers, a migrator and cold
//! openers, as separate processes on one SQLite file, with SIGKILLs at random moments — run
//! the naive way, the litekeep way (writes through the write gate) and through litekeep's owner
//! service (writes routed to one elected process that commits them in groups), verified with
//! `integrity_check` and a ledger of every acknowledged write: each must be there, and exactly
//! once.
//!
//! `cargo run --release -p litekeep-stress` runs the demo: about 30 s naive, 30 s litekeep,
//! then 30 s owner, then one table comparing them. Exit status: non-zero when a litekeep or
//! owner campaign (or, with `--mode naive`, a naive one) has any violation.

#![deny(missing_docs)]

mod access;
mod coordinator;
mod faults;
mod ledger;
mod reaper;
mod report;
mod requests;
mod roles;
mod schema;
mod verify;
mod writing;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use rayon::prelude::*;

use access::Mode;
use coordinator::Plan;
use report::CampaignReport;

#[derive(Parser)]
#[command(
    name = "litekeep-stress",
    about = "The seeds' multi-process SQLite workload, naive vs litekeep (write gate) vs owner (group commit), with SIGKILLs and a ledger of acknowledged writes.",
    after_help = "Examples:\n  litekeep-stress                                   # the demo: naive, litekeep, owner, 30 s each\n  litekeep-stress --mode litekeep --duration 20s --kill-every 1s\n  litekeep-stress --mode owner --duration 15s --kill-every 500ms\n  litekeep-stress --mode litekeep --campaigns 4 --duration 10s --json report.json"
)]
struct Cli {
    #[command(subcommand)]
    worker: Option<Worker>,
    /// The database file (default: a new temporary one per campaign).
    #[arg(long)]
    db: Option<PathBuf>,
    /// naive, litekeep (writes through the write gate) or owner (writes through the owner
    /// service; every third SIGKILL goes to the owner). Default: all three, in that order, and
    /// compare.
    #[arg(long)]
    mode: Option<Mode>,
    /// Indexer processes (batch upserts of files, symbols and code entries).
    #[arg(long, default_value_t = 3)]
    indexers: usize,
    /// Embedder processes (update vectors of existing entries).
    #[arg(long, default_value_t = 2)]
    embedders: usize,
    /// Searcher processes (reads; what they saw must not vanish).
    #[arg(long, default_value_t = 4)]
    searchers: usize,
    /// Migrator processes (flip between two data-preserving schema versions).
    #[arg(long, default_value_t = 1)]
    migrators: usize,
    /// Cold openers (new processes racing to open the database, one read each).
    #[arg(long, default_value_t = 4)]
    openers: usize,
    /// How long each campaign runs: 30s, 2m, 500ms.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Mean time between SIGKILLs of a random worker (0 turns the crash injector off).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    kill_every: Duration,
    /// The seed (default: from the clock); campaign i uses seed + i.
    #[arg(long)]
    seed: Option<u64>,
    /// Campaigns per mode, run in parallel, each on its own file.
    #[arg(long, default_value_t = 1)]
    campaigns: usize,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Keep the ledgers and databases of passed campaigns too (failed ones are always kept).
    #[arg(long)]
    keep_files: bool,
    /// Faults the litekeep and owner workers meet (through a fault-injecting VFS): ioerr (a
    /// read, write or sync fails now and then) or full (the disk fills up now and then). The run
    /// must still end with no violation; the table counts the faults per role.
    #[arg(long, value_enum, default_value_t = faults::Faults::None)]
    faults: faults::Faults,
    /// The litekeep and owner workers' durability (`litekeep::Durability`).
    #[arg(long, value_enum, default_value_t = writing::Durability::Normal)]
    durability: writing::Durability,
    /// The litekeep and owner workers' write gate (`litekeep::Builder::write_gate`); auto:
    /// litekeep's default (on).
    #[arg(long, value_enum, default_value_t = writing::Gate::Auto)]
    write_gate: writing::Gate,
}

#[derive(Subcommand)]
enum Worker {
    /// (internal) Run as one worker process.
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        role: String,
        #[arg(long)]
        db: PathBuf,
        #[arg(long)]
        mode: Mode,
        #[arg(long)]
        ledger: PathBuf,
        #[arg(long)]
        seed: u64,
        #[arg(long)]
        first: bool,
        #[arg(long, value_enum, default_value_t = faults::Faults::None)]
        faults: faults::Faults,
        #[arg(long, value_enum, default_value_t = writing::Durability::Normal)]
        durability: writing::Durability,
        #[arg(long, value_enum, default_value_t = writing::Gate::Auto)]
        write_gate: writing::Gate,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Worker::Worker {
        role,
        db,
        mode,
        ledger,
        seed,
        first,
        faults,
        durability,
        write_gate,
    }) = &cli.worker
    {
        if let Err(e) = faults::arm(*faults, *seed, ledger) {
            eprintln!("litekeep-stress worker: {e}");
            return ExitCode::from(3);
        }
        let job = roles::Job {
            role,
            db,
            mode: *mode,
            ledger,
            seed: *seed,
            first: *first,
            writing: writing::Writing {
                durability: *durability,
                gate: *write_gate,
            },
        };
        return ExitCode::from(u8::try_from(roles::run(&job)).unwrap_or(1));
    }
    match coordinate(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("litekeep-stress: {e}");
            ExitCode::FAILURE
        }
    }
}

fn coordinate(cli: &Cli) -> Result<ExitCode, String> {
    let modes = match cli.mode {
        Some(m) => vec![m],
        None => vec![Mode::Naive, Mode::Litekeep, Mode::Owner],
    };
    if cli.db.is_some() && cli.campaigns > 1 {
        return Err(
            "--db names one file; with --campaigns N each campaign needs its own: drop --db".into(),
        );
    }
    let seed = cli.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let root = std::env::temp_dir().join(format!("litekeep-stress-{}", std::process::id()));
    eprintln!(
        "litekeep-stress: seed {seed}; {} indexers, {} embedders, {} searchers, {} migrators, {} openers; {:?} per campaign, SIGKILL every ~{:?}",
        cli.indexers,
        cli.embedders,
        cli.searchers,
        cli.migrators,
        cli.openers,
        cli.duration,
        cli.kill_every
    );
    let mut reports: Vec<CampaignReport> = Vec::new();
    for mode in &modes {
        let plans: Vec<Plan> = (0..cli.campaigns)
            .map(|i| {
                let dir = root.join(format!("{mode}-{i}"));
                Plan {
                    mode: *mode,
                    db: cli.db.clone().unwrap_or_else(|| dir.join("index.db")),
                    dir,
                    counts: [
                        cli.indexers,
                        cli.embedders,
                        cli.searchers,
                        cli.migrators,
                        cli.openers,
                    ],
                    duration: cli.duration,
                    kill_every: cli.kill_every,
                    seed: seed.wrapping_add(i as u64),
                    faults: if *mode != Mode::Naive {
                        cli.faults
                    } else {
                        faults::Faults::None
                    },
                    progress: !cli.quiet && cli.campaigns == 1,
                    writing: writing::Writing {
                        durability: cli.durability,
                        gate: cli.write_gate,
                    },
                }
            })
            .collect();
        let results: Vec<Result<CampaignReport, String>> =
            plans.par_iter().map(coordinator::run).collect();
        for r in results {
            reports.push(r?);
        }
    }
    print!("{}", report::table(&reports));
    if modes.len() > 1 {
        print!("{}", comparison(&reports, &modes));
    }
    if let Some(path) = &cli.json {
        let doc = serde_json::to_string_pretty(&reports).map_err(|e| e.to_string())?;
        std::fs::write(path, doc).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let failed = reports
        .iter()
        .filter(|r| !r.passed() && (r.mode != Mode::Naive || modes.len() == 1))
        .count();
    if failed == 0 {
        if cli.keep_files {
            eprintln!("litekeep-stress: files kept in {}", root.display());
        } else {
            let _ = std::fs::remove_dir_all(&root);
        }
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "litekeep-stress: {failed} campaign(s) had violations; their files are kept in {}",
            root.display()
        );
        Ok(ExitCode::FAILURE)
    }
}

/// The demo's last lines: the modes side by side.
fn comparison(reports: &[CampaignReport], modes: &[Mode]) -> String {
    // Over the campaigns of a mode: the sum, but for the slowest write, the worst.
    let over = |mode: Mode, f: &dyn Fn(&CampaignReport) -> f64, worst: bool| -> f64 {
        let each = reports.iter().filter(|r| r.mode == mode).map(f);
        if worst {
            each.fold(0.0, f64::max)
        } else {
            each.sum()
        }
    };
    let commits = |r: &CampaignReport| {
        ["indexer", "embedder"]
            .iter()
            .filter_map(|role| r.roles.get(*role))
            .map(|s| s.per_second)
            .sum::<f64>()
    };
    let slowest = |r: &CampaignReport| {
        ["indexer", "embedder"]
            .iter()
            .filter_map(|role| r.roles.get(*role))
            .map(|s| s.max_ms)
            .fold(0.0, f64::max)
    };
    let names: Vec<String> = modes.iter().map(Mode::to_string).collect();
    let mut out = format!("\n== {}\n", names.join(" vs "));
    out += &format!("{:<34}", "");
    for name in &names {
        out += &format!(" {name:>12}");
    }
    out += "\n";
    for (label, f) in [
        (
            "write commits/s (indexer+embedder)",
            &commits as &dyn Fn(&CampaignReport) -> f64,
        ),
        ("slowest write, ms", &slowest),
        ("errors that reached workers", &|r: &CampaignReport| {
            r.errors() as f64
        }),
        ("violations", &|r: &CampaignReport| {
            r.verdict.violations.len() as f64
        }),
        ("SIGKILLs", &|r: &CampaignReport| r.kills as f64),
        ("SIGKILLs of the owner", &|r: &CampaignReport| {
            r.owner_kills as f64
        }),
    ] {
        out += &format!("{label:<34}");
        for mode in modes {
            out += &format!(" {:>12.0}", over(*mode, f, label.starts_with("slowest")));
        }
        out += "\n";
    }
    out
}
