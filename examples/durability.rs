//! What `Durability::Full` costs against `Durability::Normal`: the same single-row write
//! transactions through `Database::write`, alternating the two modes over three rounds, on a
//! fresh file each, in the temp directory (pass another directory to measure another disk).
//! Prints commits per second and the ratio. Measures; asserts nothing.
//!
//! ```text
//! cargo run --release --example durability [writes] [dir] [--json FILE]
//! ```
//!
//! `--json FILE` also writes the best round of each mode as one JSON document (what
//! `scripts/measured` reads).

use std::time::Instant;

use litekeep::{Database, Durability};

const SCHEMA: &str = "CREATE TABLE events (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, body TEXT);";

fn main() -> Result<(), litekeep::Error> {
    let mut args: Vec<String> = std::env::args().collect();
    let json_out = args.iter().position(|a| a == "--json").map(|at| {
        let file = args.get(at + 1).cloned().unwrap_or_default();
        args.drain(at..(at + 2).min(args.len()));
        std::path::PathBuf::from(file)
    });
    let writes: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2000);
    let base = args
        .get(2)
        .map_or_else(std::env::temp_dir, std::path::PathBuf::from)
        .join(format!("lk-durability-{}", std::process::id()));
    std::fs::create_dir_all(&base).map_err(|source| litekeep::Error::Io {
        path: base.clone(),
        op: "creating the scratch directory",
        source,
    })?;
    println!("{writes} single-row commits per run, in {}", base.display());
    let mut best = [f64::MAX; 2];
    for round in 0..3 {
        for (i, mode) in [Durability::Full, Durability::Normal]
            .into_iter()
            .enumerate()
        {
            let path = base.join(format!("{mode:?}-{round}.db"));
            let db = Database::builder(&path)
                .schema(SCHEMA)
                .durability(mode)
                .open()?;
            let start = Instant::now();
            for n in 0..writes {
                db.write(|tx| {
                    tx.execute(
                        "INSERT INTO events (n, body) VALUES (?1, 'a row of some forty bytes of text')",
                        [n as i64],
                    )
                })?;
            }
            let secs = start.elapsed().as_secs_f64();
            best[i] = best[i].min(secs);
            println!(
                "  round {round} {mode:?}: {:.0} commits/s ({:.1} µs each)",
                writes as f64 / secs,
                secs * 1e6 / writes as f64
            );
        }
    }
    println!(
        "best: Full {:.0}/s, Normal {:.0}/s; Full takes {:.2}x as long",
        writes as f64 / best[0],
        writes as f64 / best[1],
        best[0] / best[1]
    );
    if let Some(path) = json_out {
        let doc = serde_json::json!({
            "writes": writes,
            "rounds": 3,
            "full_commits_per_s": writes as f64 / best[0],
            "normal_commits_per_s": writes as f64 / best[1],
            "full_us_each": best[0] * 1e6 / writes as f64,
            "normal_us_each": best[1] * 1e6 / writes as f64,
        });
        std::fs::write(&path, doc.to_string()).map_err(|source| litekeep::Error::Io {
            path: path.clone(),
            op: "writing the --json file",
            source,
        })?;
    }
    let _ = std::fs::remove_dir_all(&base);
    Ok(())
}
