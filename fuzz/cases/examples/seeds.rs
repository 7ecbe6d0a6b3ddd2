//! Tallies what random inputs do, and writes the seed corpus of each target.
//!
//! ```sh
//! cd fuzz/cases
//! cargo run --release --example seeds -- tally diff_apply 2000      # outcomes of 2000 random inputs
//! SEED=7 cargo run --release --example seeds -- tally diff_apply 20000  # another stream; violations
//!                                                   # are counted, inputs in $TMPDIR/litekeep-tally-violations/
//! cargo run --release --example seeds -- write ../corpus            # (re)write the seed corpus
//! cargo run --release --example seeds -- run diff_apply ../artifacts/diff_apply/crash-…  # one input
//! ```
//!
//! The structured targets' seeds are random inputs under 1 KB (a fixed PRNG, so the output is
//! reproducible) chosen for what they exercise together: greedily, the input that adds the most
//! features not yet covered — step kinds, refusals, rows kept, WITHOUT ROWID, STRICT, generated
//! columns, foreign keys, triggers, views, rename annotations, additive mode for `diff_apply`;
//! each tool's naming, interruption point and repair for `recover_crash`. The `schema_text` seeds are real DDL.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use litekeep_fuzz_cases::{
    CrashCase, CrashOutcome, DiffCase, DiffOutcome, SchemaTextOutcome, decode, diff_apply_outcome,
    recover_crash_outcome, schema_text_outcome,
};

/// splitmix64: a tiny, fixed PRNG.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = 16 + (self.next() as usize) % (max - 16);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn scratch() -> PathBuf {
    std::env::temp_dir().join(format!("litekeep-seeds-{}", std::process::id()))
}

/// A short description of what an input did: the seeds keep one input per description.
fn describe(target: &str, bytes: &[u8]) -> Option<String> {
    match target {
        "diff_apply" => {
            let case: DiffCase = decode(bytes)?;
            Some(match diff_apply_outcome(&case) {
                DiffOutcome::Invalid => "invalid".to_owned(),
                DiffOutcome::Refused(why) => {
                    let why = if std::env::var_os("FULL").is_some() {
                        why
                    } else {
                        why.split([':', '(']).next().unwrap_or("").trim().to_owned()
                    };
                    format!("refused: {why}")
                }
                DiffOutcome::Applied {
                    steps,
                    rows_checked,
                    kept,
                    annotations,
                    ..
                } => {
                    let mut kinds: Vec<String> = steps.iter().map(|k| format!("{k:?}")).collect();
                    kinds.sort();
                    kinds.dedup();
                    format!(
                        "applied{}{}{}: {}",
                        if rows_checked > 0 { " with rows" } else { "" },
                        if kept > 0 { ", keeping" } else { "" },
                        if annotations > 0 { ", annotated" } else { "" },
                        kinds.join(" ")
                    )
                }
                _ => "other".to_owned(),
            })
        }
        "recover_crash" => {
            let case: CrashCase = decode(bytes)?;
            let CrashOutcome {
                naming,
                statements_run,
                actions,
                applied,
                ..
            } = recover_crash_outcome(&case, &scratch());
            Some(format!(
                "{naming} after {statements_run}: {} (applied: {applied})",
                if actions.is_empty() {
                    "clean".to_owned()
                } else {
                    actions.join(", ")
                }
            ))
        }
        "schema_text" => Some(match schema_text_outcome(bytes) {
            SchemaTextOutcome::NotASchema(_) => "not a schema".to_owned(),
            SchemaTextOutcome::DiffRefused(why) => format!("diff refused: {why}"),
            SchemaTextOutcome::ApplyRefused { message } => {
                format!("apply refused: {message}")
            }
            SchemaTextOutcome::Applied(n) => format!("applied {n} steps"),
            _ => "other".to_owned(),
        }),
        other => panic!("no target {other}"),
    }
}

fn tally(target: &str, n: usize) {
    // SEED picks another stream of inputs.
    let mut rng = Rng(std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed));
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    // A violation is counted (by the first line of its message; the first input that shows it
    // is written to `litekeep-tally-violations/` in the temp dir) rather than ending the tally.
    std::panic::set_hook(Box::new(|_| {}));
    for _ in 0..n {
        let bytes = rng.bytes(4096);
        let what = match std::panic::catch_unwind(|| describe(target, &bytes)) {
            Ok(what) => what.unwrap_or_else(|| "not decoded".to_owned()),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                let first = message.lines().next().unwrap_or("").to_owned();
                let what = format!("VIOLATION {}", first.chars().take(160).collect::<String>());
                if !counts.contains_key(&what) {
                    let dir = std::env::temp_dir().join("litekeep-tally-violations");
                    let _ = std::fs::create_dir_all(&dir);
                    let file = dir.join(format!("violation-{}", counts.len()));
                    let _ = std::fs::write(&file, &bytes);
                    eprintln!("{}: {message}", file.display());
                }
                what
            }
        };
        *counts.entry(what).or_default() += 1;
    }
    let mut sorted: Vec<(String, usize)> = counts.into_iter().collect();
    sorted.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
    for (what, count) in sorted {
        println!("{count:6}  {what}");
    }
}

/// Real DDL for `schema_text`: the README's, the seeds', and the corners of SQLite's grammar.
const DDL: [(&str, &str); 8] = [
    (
        "readme_files",
        "CREATE TABLE files (id INTEGER PRIMARY KEY, file_path TEXT NOT NULL, size TEXT);\nCREATE INDEX files_by_path ON files(file_path);\n",
    ),
    (
        "seed_001",
        "CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, size INTEGER);\nCREATE TABLE symbols (id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL REFERENCES files(id), name TEXT NOT NULL, kind TEXT COLLATE NOCASE);\nCREATE INDEX symbols_by_file ON symbols(file_id);\nCREATE TABLE code_entries (id INTEGER PRIMARY KEY, symbol_id INTEGER NOT NULL REFERENCES symbols(id), body TEXT, vector BLOB, version INTEGER NOT NULL DEFAULT 0);\nCREATE VIEW paths AS SELECT path FROM files;\n",
    ),
    (
        "generated_strict",
        "CREATE TABLE m (k TEXT PRIMARY KEY, v ANY, n INT GENERATED ALWAYS AS (length(k)) VIRTUAL, s TEXT GENERATED ALWAYS AS (upper(k)) STORED) STRICT;\n",
    ),
    (
        "without_rowid",
        "CREATE TABLE kv (k TEXT, part INTEGER, v BLOB, PRIMARY KEY (k, part)) WITHOUT ROWID;\nCREATE UNIQUE INDEX kv_v ON kv(v) WHERE v IS NOT NULL;\n",
    ),
    (
        "trigger_audit",
        "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, a TEXT DEFAULT (datetime('now')) CHECK (length(a) < 40));\nCREATE TABLE audit (what);\nCREATE TRIGGER t_ins AFTER INSERT ON t WHEN new.a IS NOT NULL BEGIN INSERT INTO audit VALUES (new.id); END;\n",
    ),
    (
        "quoted_names",
        "CREATE TABLE \"order\" (\"id\" INTEGER PRIMARY KEY, \"group\" TEXT, [x y] REAL, `Name` BLOB);\nCREATE VIEW \"v w\"(a, b) AS SELECT id, \"group\" FROM \"order\" WHERE id > 0;\n",
    ),
    (
        "create_table_as",
        "CREATE TABLE nums AS SELECT 1 AS n, 'one' AS name UNION ALL SELECT 2, 'two';\nCREATE INDEX nums_lower ON nums(lower(name));\n",
    ),
    (
        "foreign_keys",
        "CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT UNIQUE);\nCREATE TABLE child (id INTEGER PRIMARY KEY, parent_name TEXT, FOREIGN KEY (parent_name) REFERENCES parent(name) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED);\nCREATE TEMP TABLE scratch (x);\n",
    ),
];

/// What an input exercises, for choosing seeds that together exercise the most.
fn features(target: &str, bytes: &[u8]) -> Option<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    match target {
        "diff_apply" => {
            let case: DiffCase = decode(bytes)?;
            let sql = format!("{}{}", case.v1_sql(), case.v2_sql());
            if !case.rename_hints().is_empty() {
                out.insert("rename hint".to_owned());
            }
            if case.v2_sql().contains("@renamed") {
                out.insert("rename annotation".to_owned());
            }
            if case.keep_undeclared() {
                out.insert("keep_undeclared".to_owned());
            }
            for (needle, feature) in [
                ("WITHOUT ROWID", "without rowid"),
                ("STRICT", "strict"),
                ("GENERATED", "generated column"),
                ("FOREIGN KEY", "foreign key"),
                ("AUTOINCREMENT", "autoincrement"),
                ("CREATE TRIGGER", "trigger"),
                ("CREATE VIEW", "view"),
                ("CREATE INDEX", "index"),
                ("CREATE UNIQUE INDEX", "unique index"),
            ] {
                if sql.contains(needle) {
                    out.insert(feature.to_owned());
                }
            }
            match diff_apply_outcome(&case) {
                DiffOutcome::Invalid => return None,
                DiffOutcome::Refused(why) => {
                    out.insert(
                        if why.contains("would drop") {
                            "refused: data loss"
                        } else if why.contains("violate the desired schema") {
                            "refused: rows break a constraint"
                        } else {
                            "refused: other"
                        }
                        .to_owned(),
                    );
                }
                DiffOutcome::Applied {
                    steps,
                    rows_checked,
                    kept,
                    annotations,
                    ..
                } => {
                    out.extend(steps.iter().map(|k| format!("step {k:?}")));
                    if rows_checked > 0 {
                        out.insert("rows kept".to_owned());
                    }
                    if kept > 0 {
                        out.insert("applied keeping undeclared".to_owned());
                    }
                    if annotations > 0 {
                        out.insert("applied with annotations".to_owned());
                    }
                }
                _ => {}
            }
        }
        "recover_crash" => {
            let case: CrashCase = decode(bytes)?;
            let setup = case.setup_sql();
            for (needle, feature) in [
                ("CREATE VIEW", "view"),
                ("CREATE INDEX", "index"),
                ("\"child\"", "child table"),
                ("\"audit\"", "trigger"),
            ] {
                if setup.contains(needle) {
                    out.insert(feature.to_owned());
                }
            }
            let o = recover_crash_outcome(&case, &scratch());
            if o.rows_before > 0 {
                out.insert("rows".to_owned());
            }
            out.insert(o.naming.to_owned());
            out.insert(format!("after {}", o.statements_run));
            out.extend(o.actions.iter().map(|a| (*a).to_owned()));
            if o.written_after > 0 {
                out.insert("written after".to_owned());
            }
        }
        other => panic!("no structured target {other}"),
    }
    Some(out)
}

fn write(root: &Path) {
    // An input that breaks a property is a bug to report, not a seed: skipped, quietly.
    std::panic::set_hook(Box::new(|_| {}));
    for target in ["diff_apply", "recover_crash"] {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).expect("corpus directory");
        let mut rng = Rng(0x5eed_0000 + target.len() as u64);
        let mut candidates: Vec<(BTreeSet<String>, Vec<u8>)> = Vec::new();
        for _ in 0..3000 {
            let bytes = rng.bytes(1000);
            if let Ok(Some(f)) = std::panic::catch_unwind(|| features(target, &bytes)) {
                candidates.push((f, bytes));
            }
        }
        // Greedy set cover: the input with the most features not yet covered (the smaller one
        // on a tie), until 10 seeds or nothing new.
        let mut covered: BTreeSet<String> = BTreeSet::new();
        for n in 0..10 {
            let best = candidates
                .iter()
                .map(|(f, b)| {
                    (
                        f.difference(&covered).count(),
                        std::cmp::Reverse(b.len()),
                        f,
                        b,
                    )
                })
                .max_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
            let Some((new, _, f, bytes)) = best else {
                break;
            };
            if new == 0 {
                break;
            }
            let file = dir.join(format!("seed-{n:02}"));
            std::fs::write(&file, bytes).expect("seed file");
            let list: Vec<&str> = f.iter().map(String::as_str).collect();
            println!(
                "{} ({} bytes): {}",
                file.display(),
                bytes.len(),
                list.join(", ")
            );
            covered.extend(f.iter().cloned());
        }
    }
    let dir = root.join("schema_text");
    std::fs::create_dir_all(&dir).expect("corpus directory");
    for (name, ddl) in DDL {
        let file = dir.join(format!("seed-{name}.sql"));
        std::fs::write(&file, ddl).expect("seed file");
        println!(
            "{}: {}",
            file.display(),
            describe("schema_text", ddl.as_bytes()).unwrap_or_default()
        );
    }
    let _ = std::fs::remove_dir_all(scratch());
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["tally", target, n] => tally(target, n.parse().expect("a number of inputs")),
        ["tally", target] => tally(target, 1000),
        ["write", root] => write(Path::new(root)),
        ["run", target, files @ ..] => {
            for file in files {
                let bytes = std::fs::read(file).expect("input file");
                println!(
                    "{file}: {}",
                    describe(target, &bytes).unwrap_or_else(|| "not decoded".to_owned())
                );
            }
        }
        _ => {
            eprintln!(
                "usage: seeds tally <target> [N] | seeds write <corpus dir> | seeds run <target> <file>…"
            );
            std::process::exit(2);
        }
    }
    let _ = std::fs::remove_dir_all(scratch());
}
