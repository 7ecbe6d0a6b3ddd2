//! The `litekeep` command-line tool: migrate, diff, schema, recover, check, and run a command
//! under the lock they all take; plus its shell completions and man page. Human output by
//! default, one JSON document with `--json`. Exit status 0 on success, 1 on failure (with a
//! one-line cause on stderr), 2 on bad usage, 75 (EX_TEMPFAIL) when the lock stays held past
//! the timeout.
//!
//! The man page is printed by the binary (`litekeep man`) rather than written at build time:
//! `cargo install` installs binaries only, so a build script's page would never reach the
//! user, and a page the binary prints always matches its options.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

mod engines;
mod plan_output;
mod serve;
mod sides;

use clap::{CommandFactory, Parser, Subcommand};
use litekeep::lock::{FileLock, Mode, Wait};
use litekeep::migrate::{MigrateError, Report as MigrateReport};
use litekeep::recover::{RecoverError, check, check_many};
use serde_json::json;

/// Exit status when the lock is held past the timeout (sysexits.h EX_TEMPFAIL: try again later).
const EXIT_LOCKED: u8 = 75;

#[derive(Parser)]
#[command(
    name = "litekeep",
    version,
    about = "Keeps a SQLite database healthy when many processes open, write and migrate it.",
    after_help = "Every command that changes a database takes the exclusive lock on <db>.lock first; \
                  `litekeep lock` takes the same lock around any command.\n\n\
                  Examples:\n  \
                  litekeep migrate --db app.db --schema schema.sql --dry-run\n  \
                  litekeep recover --db app.db\n  \
                  litekeep check --dir ~/.cache/indexer --quick\n  \
                  litekeep lock --db app.db --timeout 5s -- sqlite3 app.db .dump\n  \
                  litekeep completions bash > ~/.local/share/bash-completion/completions/litekeep\n  \
                  litekeep man > ~/.local/share/man/man1/litekeep.1"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Migrate a database to the schema in a file of CREATE statements, in one transaction,
    /// durable when it returns (synchronous = EXTRA: it survives a power cut right after).
    #[command(
        after_help = "Example:\n  litekeep migrate --db app.db --schema schema.sql --dry-run\n  litekeep migrate --db app.db --schema schema.sql --rename files.path=files.file_path\n  litekeep migrate --db app.db --schema old.sql --keep-undeclared\n\nRenames can also be written in the schema file, as sqldef does:\n  CREATE TABLE users ( -- @renamed from=user_accounts\n    user_name TEXT, -- @renamed from=username\n  );"
    )]
    Migrate {
        /// The database file (created if missing).
        #[arg(long)]
        db: PathBuf,
        /// The desired schema: a file of CREATE TABLE/INDEX/VIEW/TRIGGER statements.
        #[arg(long)]
        schema: PathBuf,
        /// Print the plan; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Allow dropping tables and columns.
        #[arg(long)]
        allow_data_loss: bool,
        /// A rename hint, `old=new` for a table, `table.old=table.new` for a column (the table
        /// by its new name when it is renamed too), `index:old=new` for an index.
        #[arg(long, value_name = "OLD=NEW")]
        rename: Vec<String>,
        /// Additive: keep tables, columns, indexes, views and triggers the database has and the
        /// schema file lacks, instead of dropping them.
        #[arg(long)]
        keep_undeclared: bool,
        /// How long to wait for the lock: 10s, 500ms, 2m (default 30s).
        #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
        lock_timeout: Duration,
        /// Load this SQLite extension on every connection (repeatable): the module of a virtual
        /// table SQLite does not build in, e.g. sqlite-vec's vec0. `PATH:ENTRY` names its entry
        /// point.
        #[arg(long, value_name = "PATH[:ENTRY]")]
        load_extension: Vec<String>,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Show the plan from one schema to another; changes nothing. Each side is a .sql file of
    /// CREATE statements or a database file.
    #[command(
        after_help = "Example:\n  litekeep diff --from app.db --to schema.sql\n  litekeep diff --from v1.sql --to v2.sql --json\n  litekeep diff --from app.db --to <(litekeep schema --db other.db)"
    )]
    Diff {
        /// The schema to start from: a .sql file or a database file.
        #[arg(long)]
        from: PathBuf,
        /// The schema to arrive at: a .sql file (its @renamed annotations count) or a database.
        #[arg(long)]
        to: PathBuf,
        /// A rename hint, as for `migrate`.
        #[arg(long, value_name = "OLD=NEW")]
        rename: Vec<String>,
        /// Additive: keep what --from has and --to lacks.
        #[arg(long)]
        keep_undeclared: bool,
        /// Load this SQLite extension on every connection (repeatable): the module of a virtual
        /// table SQLite does not build in, e.g. sqlite-vec's vec0. `PATH:ENTRY` names its entry
        /// point.
        #[arg(long, value_name = "PATH[:ENTRY]")]
        load_extension: Vec<String>,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Print a database's schema as DDL that `migrate` accepts (without SQLite's and
    /// litekeep's own tables).
    #[command(after_help = "Example:\n  litekeep schema --db app.db > schema.sql")]
    Schema {
        /// The database file.
        #[arg(long)]
        db: PathBuf,
        /// Load this SQLite extension on every connection (repeatable): the module of a virtual
        /// table SQLite does not build in, e.g. sqlite-vec's vec0. `PATH:ENTRY` names its entry
        /// point.
        #[arg(long, value_name = "PATH[:ENTRY]")]
        load_extension: Vec<String>,
    },
    /// Repair tables left behind by interrupted migrations (any tool's), in one transaction,
    /// durable when it returns (synchronous = EXTRA: it survives a power cut right after).
    #[command(
        after_help = "Example:\n  litekeep recover --db app.db --dry-run\n  litekeep recover --db app.db --confirm temp_cache"
    )]
    Recover {
        /// The database file.
        #[arg(long)]
        db: PathBuf,
        /// Report what would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Treat this table as a leftover even if its name alone is not evidence.
        #[arg(long, value_name = "TABLE")]
        confirm: Vec<String>,
        /// How long to wait for the lock (default 30s).
        #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
        lock_timeout: Duration,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Check databases: integrity, foreign keys, journal mode, leftovers, network filesystem.
    #[command(
        after_help = "Example:\n  litekeep check --db app.db --quick\n  litekeep check --db a.db --db b.db --json\n  litekeep check --dir ~/.cache/indexer"
    )]
    Check {
        /// A database file (repeat for several).
        #[arg(long)]
        db: Vec<PathBuf>,
        /// Also every database file under this directory (found by its header).
        #[arg(long)]
        dir: Vec<PathBuf>,
        /// quick_check instead of integrity_check.
        #[arg(long)]
        quick: bool,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// List the database engines this build can open and their library versions; fails when
    /// the DuckDB library found at run time is not the version this build was made for.
    #[command(after_help = "Example:\n  litekeep engines\n  litekeep engines --json")]
    Engines {
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Serve a database (SQLite, or DuckDB in a build with it) as its one owner process: the
    /// other processes send it SQL over a local socket (the protocol is in PROTOCOL.md).
    Serve(serve::ServeArgs),
    /// Run a command while holding <db>.lock, the lock migrate and recover take.
    #[command(
        after_help = "Example:\n  litekeep lock --db app.db --timeout 5s -- sqlite3 app.db .dump\n  litekeep lock --db app.db --shared -- cp app.db backup.db"
    )]
    Lock {
        /// The database file whose lock to take.
        #[arg(long)]
        db: PathBuf,
        /// Take the lock shared (many holders) instead of exclusive.
        #[arg(long)]
        shared: bool,
        /// How long to wait (default: forever).
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<Duration>,
        /// The command and its arguments.
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Print a completion script for a shell.
    #[command(
        after_help = "Examples:\n  litekeep completions bash > ~/.local/share/bash-completion/completions/litekeep\n  litekeep completions zsh > ~/.zfunc/_litekeep\n  litekeep completions fish > ~/.config/fish/completions/litekeep.fish"
    )]
    Completions {
        /// The shell: bash, zsh, fish (also elvish, powershell).
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) of litekeep, or of one of its commands.
    #[command(
        after_help = "Examples:\n  litekeep man > ~/.local/share/man/man1/litekeep.1\n  litekeep man migrate > ~/.local/share/man/man1/litekeep-migrate.1\n  litekeep man | man -l -"
    )]
    Man {
        /// The command whose page to print (default: litekeep's own).
        command: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(failure) => {
            // One line, whatever the error's own formatting (SQLite's syntax errors span two).
            let line: Vec<&str> = failure.message.lines().map(str::trim).collect();
            eprintln!("litekeep: {}", line.join(" "));
            ExitCode::from(failure.code)
        }
    }
}

struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: 1,
        }
    }
}

impl Failure {
    /// Prefixes the message with `path` unless it already names it.
    fn name_file(&mut self, path: &std::path::Path) {
        let shown = path.display().to_string();
        if !self.message.contains(&shown) {
            self.message = format!("{shown}: {}", self.message);
        }
    }
}

impl From<MigrateError> for Failure {
    fn from(e: MigrateError) -> Failure {
        let locked = matches!(&e, MigrateError::Lock(l) if l.is_transient());
        Failure {
            message: e.to_string(),
            code: if locked { EXIT_LOCKED } else { 1 },
        }
    }
}

impl From<RecoverError> for Failure {
    fn from(e: RecoverError) -> Failure {
        let locked = matches!(&e, RecoverError::Lock(l) if l.is_transient());
        Failure {
            message: e.to_string(),
            code: if locked { EXIT_LOCKED } else { 1 },
        }
    }
}

fn run(cmd: Cmd) -> Result<ExitCode, Failure> {
    match cmd {
        Cmd::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "litekeep",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Man { command } => {
            man_page(command.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Migrate {
            db,
            schema,
            dry_run,
            allow_data_loss,
            rename,
            keep_undeclared,
            lock_timeout,
            load_extension,
            json,
        } => {
            let sql = std::fs::read_to_string(&schema).map_err(|e| {
                Failure::new(format!(
                    "cannot read the schema file {}: {e}",
                    schema.display()
                ))
            })?;
            let mut options = litekeep::migrate::Options::default()
                .dry_run(dry_run)
                .allow_data_loss(allow_data_loss)
                .keep_undeclared(keep_undeclared)
                .lock_timeout(lock_timeout);
            for e in extensions(&load_extension) {
                options = options.extension(e);
            }
            for hint in &rename {
                options = options.rename(hint)?;
            }
            if !dry_run && !db.exists() {
                // Creating is fine (a new database), but a typo should not pass silently.
                eprintln!("litekeep: {} does not exist; creating it", db.display());
            }
            if dry_run && !db.exists() {
                return Err(Failure::new(format!(
                    "{} does not exist; check the path",
                    db.display()
                )));
            }
            let report = litekeep::migrate::migrate(&db, &sql, &options).map_err(|e| {
                // Name the file the error is about when the error itself does not.
                let about = match &e {
                    MigrateError::Ddl { .. } | MigrateError::NotDdl { .. } => &schema,
                    _ => &db,
                };
                let mut failure = Failure::from(e);
                failure.name_file(about);
                failure
            })?;
            print_migrate(&db, &report, dry_run, json);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Diff {
            from,
            to,
            rename,
            keep_undeclared,
            load_extension,
            json,
        } => {
            let mut options =
                litekeep::migrate::Options::default().keep_undeclared(keep_undeclared);
            for hint in &rename {
                options = options.rename(hint)?;
            }
            let exts = extensions(&load_extension);
            let current = sides::load(&from, &exts)?;
            let desired = sides::load(&to, &exts)?;
            let plan = litekeep::migrate::diff(&current, &desired, &options).map_err(|e| {
                let mut failure = Failure::from(e);
                failure.name_file(&to);
                failure
            })?;
            if json {
                let mut doc = plan_output::plan_json(&plan);
                doc["from_file"] = json!(from);
                doc["to_file"] = json!(to);
                doc["up_to_date"] = json!(plan.is_empty());
                println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
            } else {
                println!("{plan}");
                if !plan.is_empty() {
                    print!("{}", plan.sql());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Schema { db, load_extension } => {
            if !db.exists() {
                return Err(Failure::new(format!(
                    "{} does not exist; check the path",
                    db.display()
                )));
            }
            let conn = rusqlite::Connection::open_with_flags(
                &db,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .map_err(|e| Failure::new(format!("cannot open {}: {e}", db.display())))?;
            sides::load_extensions(&conn, &extensions(&load_extension), &db)?;
            sides::read_db(&conn, &db)?;
            let sql = litekeep::migrate::export_sql(&conn)
                .map_err(|e| Failure::new(format!("{}: {e}", db.display())))?;
            print!("{sql}");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Recover {
            db,
            dry_run,
            confirm,
            lock_timeout,
            json,
        } => {
            let mut options = litekeep::recover::Options::default()
                .dry_run(dry_run)
                .lock_timeout(lock_timeout);
            for table in confirm {
                options = options.confirm(table);
            }
            let report = litekeep::recover::recover(&db, &options).map_err(|e| {
                let mut failure = Failure::from(e);
                failure.name_file(&db);
                failure
            })?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else if report.is_clean() {
                println!("{}: nothing to repair", db.display());
            } else {
                let verb = if report.applied { "repaired" } else { "found" };
                println!(
                    "{}: {verb} {} leftover(s)",
                    db.display(),
                    report.findings.len()
                );
                for f in &report.findings {
                    println!("  {f}");
                }
                for note in &report.notes {
                    println!("  note: {note}");
                }
            }
            let left = report.left().count();
            if left > 0 {
                return Err(Failure::new(format!(
                    "{left} leftover(s) in {} left as they were: the evidence does not prove a lossless repair — see the report{}",
                    db.display(),
                    if json {
                        "'s \"reason\" fields"
                    } else {
                        " above"
                    }
                )));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Check {
            mut db,
            dir,
            quick,
            json,
        } => {
            for d in &dir {
                db.extend(litekeep::recover::find_databases(d)?);
            }
            if db.is_empty() {
                return Err(Failure::new(
                    "no database to check: give --db FILE or --dir DIR",
                ));
            }
            let results = if db.len() == 1 {
                vec![(db[0].clone(), check(&db[0], quick))]
            } else {
                check_many(&db, quick)
            };
            let mut bad = 0;
            let mut first_problem = None;
            let mut docs = Vec::new();
            for (path, result) in &results {
                match result {
                    Ok(health) => {
                        if !health.is_healthy() {
                            bad += 1;
                            first_problem.get_or_insert_with(|| problem_of(health));
                        }
                        if json {
                            docs.push(serde_json::to_value(health).unwrap_or_default());
                        } else {
                            println!("{health}");
                        }
                    }
                    Err(e) => {
                        bad += 1;
                        first_problem.get_or_insert_with(|| e.to_string());
                        if json {
                            docs.push(json!({ "path": path, "error": e.to_string() }));
                        } else {
                            println!("{}: ERROR: {e}", path.display());
                        }
                    }
                }
            }
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&docs).unwrap_or_default()
                );
            }
            if bad > 0 {
                let first = first_problem.unwrap_or_default();
                return Err(Failure::new(if results.len() == 1 {
                    first
                } else {
                    format!(
                        "{bad} of {} database(s) have problems; first: {first}",
                        results.len()
                    )
                }));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Serve(args) => {
            serve::run(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Engines { json } => {
            engines::print(json)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Lock {
            db,
            shared,
            timeout,
            command,
        } => {
            let lock = FileLock::for_database(&db)
                .map_err(|e| Failure::new(e.to_string()))?
                .with_label(format!("litekeep lock -- {}", command.join(" ")));
            let mode = if shared {
                Mode::Shared
            } else {
                Mode::Exclusive
            };
            let wait = timeout.map_or(Wait::Forever, Wait::Timeout);
            let _guard = lock.acquire(mode, wait).map_err(|e| Failure {
                code: if e.is_transient() { EXIT_LOCKED } else { 1 },
                message: e.to_string(),
            })?;
            let (program, args) = command
                .split_first()
                .ok_or_else(|| Failure::new("no command given after --"))?;
            let status = Command::new(program)
                .args(args)
                .status()
                .map_err(|e| Failure::new(format!("cannot run {program}: {e}")))?;
            Ok(exit_code_of(status))
        }
    }
}

/// Prints the man page of `litekeep`, or of its command `sub` (as `litekeep-<sub>(1)`).
fn man_page(sub: Option<&str>) -> Result<(), Failure> {
    let top = Cli::command();
    let page = match sub {
        None => top,
        Some(name) => {
            let found = top.find_subcommand(name).cloned().ok_or_else(|| {
                let names: Vec<&str> = top.get_subcommands().map(|c| c.get_name()).collect();
                Failure::new(format!(
                    "no command `{name}`; the man pages are: litekeep, {}",
                    names.join(", ")
                ))
            })?;
            let full = format!("litekeep-{name}");
            found
                .name(full.clone())
                .bin_name(full)
                .version(env!("CARGO_PKG_VERSION"))
        }
    };
    clap_mangen::Man::new(page)
        .render(&mut std::io::stdout())
        .map_err(|e| Failure::new(format!("cannot write the man page: {e}")))
}

/// One line saying what is wrong with an unhealthy database.
/// `--load-extension PATH[:ENTRY]` values as extensions (a `:` followed by no `/` names the
/// entry point).
fn extensions(args: &[String]) -> Vec<litekeep::Extension> {
    args.iter()
        .map(|a| match a.rsplit_once(':') {
            Some((path, entry)) if !entry.is_empty() && !entry.contains('/') => {
                litekeep::Extension::file(path, Some(entry))
            }
            _ => litekeep::Extension::file(a, None),
        })
        .collect()
}

fn problem_of(h: &litekeep::recover::Health) -> String {
    let mut what = Vec::new();
    if !h.integrity_ok() {
        what.push(format!(
            "integrity check failed ({})",
            h.integrity.first().map_or("", String::as_str)
        ));
    }
    if h.foreign_key_violations > 0 {
        what.push(format!(
            "{} foreign key violation(s)",
            h.foreign_key_violations
        ));
    }
    if !h.leftovers.is_empty() {
        what.push(format!(
            "{} leftover table(s): run `litekeep recover`",
            h.leftovers.len()
        ));
    }
    if h.network_filesystem {
        what.push(format!(
            "on a {} network filesystem, where WAL and locks are unsafe",
            h.filesystem
        ));
    }
    format!("{}: {}", h.path.display(), what.join("; "))
}

/// The command's exit status, passed on; a signal becomes 128 + its number, as shells do.
fn exit_code_of(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        (None, Some(sig)) => ExitCode::from(u8::try_from(128 + sig).unwrap_or(1)),
        _ => ExitCode::FAILURE,
    }
}

fn print_migrate(db: &std::path::Path, report: &MigrateReport, dry_run: bool, json: bool) {
    if json {
        let mut doc = plan_output::plan_json(&report.plan);
        doc["db"] = json!(db);
        doc["dry_run"] = json!(dry_run);
        doc["applied"] = json!(report.applied);
        doc["up_to_date"] = json!(report.up_to_date());
        doc["before"] = json!(report.before.to_string());
        doc["after"] = json!(report.after.to_string());
        doc["elapsed_s"] = json!(report.elapsed.as_secs_f64());
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else if report.up_to_date() {
        println!("{}: {}", db.display(), report.plan);
    } else {
        print!("{}", report.plan);
        if dry_run {
            println!("(dry run: nothing changed)");
        } else {
            println!("applied in {:.3} s", report.elapsed.as_secs_f64());
        }
    }
}
