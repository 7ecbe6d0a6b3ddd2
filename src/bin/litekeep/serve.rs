//! `litekeep serve`: serve a database as its owner process, in the foreground (under a service
//! manager, or as the child the background mode starts), or in the background: a child of its
//! own session, logging to `<db>.serve.log`, that this command waits for until it serves.
//!
//! The one line a server prints on stdout once it serves (or finds another serving) is how
//! the background mode learns that it is ready; stdout is then pointed at /dev/null, so that
//! nothing it prints later can fail on a reader that went away.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use litekeep::serve::{Ended, EngineKind, ServeOptions, Started};
use serde_json::json;

use crate::Failure;

/// The flags of `litekeep serve`.
#[derive(clap::Args, Clone, Debug)]
#[command(
    after_help = "Examples:\n  litekeep serve --db index.duckdb --engine duckdb\n  litekeep serve --db app.db --engine sqlite --foreground --idle 0s\n\nWithout --foreground it starts the server in the background (its own session, its log in <db>.serve.log) and returns once a server serves the database: the one it started, or one that already did (exit 0 in both cases). Clients start it that way on demand; the protocol is in PROTOCOL.md."
)]
pub struct ServeArgs {
    /// The database file (SQLite: created when missing).
    #[arg(long)]
    db: PathBuf,
    /// The engine: sqlite, or duckdb (in a build with --features duckdb).
    #[arg(long, value_parser = parse_engine)]
    engine: EngineKind,
    /// Leave after this long with no client connected; 0s never leaves.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5m")]
    idle: Duration,
    /// Serve in this process, logging to stderr (for a service manager); otherwise start a
    /// server in the background and return once it serves.
    #[arg(long)]
    foreground: bool,
    /// The largest frame read or written, in bytes (a result over it is an error).
    #[arg(long, default_value_t = litekeep::owner::wire::DEFAULT_MAX_FRAME)]
    max_frame: u32,
    /// Roll back a transaction held across calls after this long without a call.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    tx_idle: Duration,
    /// Roll back a transaction held across calls after this long open.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    tx_timeout: Duration,
    /// SQLite: fsync every commit (full), or only at checkpoints (normal).
    #[arg(long, value_parser = ["normal", "full"], default_value = "normal")]
    durability: String,
    /// How long to wait for a background server to serve.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    start_timeout: Duration,
    /// Print one JSON document instead of a line.
    #[arg(long)]
    json: bool,
}

/// Exit status when the server started in the background died before it served (a signal)
/// or did not serve in time: nothing is wrong with the database, try again (sysexits.h
/// EX_TEMPFAIL, as for a lock held past its timeout).
const EXIT_AGAIN: u8 = 75;

fn parse_engine(s: &str) -> Result<EngineKind, String> {
    s.parse()
}

/// What a server says on stdout once it knows who serves: `serving` (it does) or `served`
/// (another process does).
fn ready_line(args: &ServeArgs, serving: bool, pid: u32, generation: Option<u64>) -> String {
    if args.json {
        return json!({
            "db": args.db,
            "engine": args.engine.name(),
            "started": serving,
            "pid": pid,
            "generation": generation,
            "log": log_path(&args.db),
        })
        .to_string();
    }
    let generation = generation.map_or_else(String::new, |g| format!(", generation {g}"));
    if serving {
        format!(
            "serving {} with {}: pid {pid}{generation}",
            args.db.display(),
            args.engine
        )
    } else {
        format!(
            "{} is already served: pid {pid}{generation}",
            args.db.display()
        )
    }
}

/// `<db>.serve.log`.
fn log_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".serve.log");
    PathBuf::from(name)
}

/// Runs `litekeep serve`.
pub fn run(args: &ServeArgs) -> Result<(), Failure> {
    if args.foreground {
        foreground(args)
    } else {
        background(args)
    }
}

fn options(args: &ServeArgs) -> ServeOptions {
    let durability = if args.durability == "full" {
        litekeep::Durability::Full
    } else {
        litekeep::Durability::Normal
    };
    ServeOptions::new(&args.db, args.engine)
        .idle((!args.idle.is_zero()).then_some(args.idle))
        .max_frame(args.max_frame)
        .tx_limits(args.tx_idle, args.tx_timeout)
        .durability(durability)
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Points stdout at /dev/null: the one line for whoever started this process is out.
fn quiet_stdout() {
    if let Ok(null) = File::options().write(true).open("/dev/null") {
        let _ = rustix::stdio::dup2_stdout(&null);
    }
}

fn log(line: &str) {
    eprintln!("litekeep serve: {line}");
}

fn foreground(args: &ServeArgs) -> Result<(), Failure> {
    let signals = block_stop_signals();
    let options = options(args);
    let server = match litekeep::serve::start(&options).map_err(|e| Failure::new(e.to_string()))? {
        Started::Other { pid, generation } => {
            let line = ready_line(args, false, pid, generation);
            log(&line);
            say(&line);
            return Ok(());
        }
        Started::Serving(server) => server,
    };
    let line = ready_line(args, true, std::process::id(), Some(server.generation()));
    log(&line);
    say(&line);
    quiet_stdout();
    if signals {
        wait_for_stop_signal(server.stop_flag());
    }
    match server.run() {
        Ended::Idle => log(&format!(
            "no client for {}; stepped down",
            humantime::format_duration(args.idle)
        )),
        Ended::Stopped => log("stopped by a signal; stepped down"),
        Ended::HandedOver => log("handed over to another process"),
        Ended::DatabaseFailed(why) => log(&format!(
            "the database failed ({why}); stepped down so that the next server opens it afresh"
        )),
    }
    Ok(())
}

/// Blocks SIGTERM, SIGINT and SIGHUP in this thread (and so in every thread started after):
/// they are taken with sigwait(2) by [`wait_for_stop_signal`]'s thread. Whether it could.
fn block_stop_signals() -> bool {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use; pthread_sigmask
    // reads the set and writes no old set (null).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) == 0
    }
}

/// A thread that waits for SIGTERM, SIGINT or SIGHUP and sets `stop`.
fn wait_for_stop_signal(stop: Arc<AtomicBool>) {
    let _ = std::thread::Builder::new()
        .name("litekeep-serve-signals".into())
        .spawn(move || {
            // SAFETY: as in block_stop_signals; sigwait writes the signal number into `sig`.
            let sig = unsafe {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
                    libc::sigaddset(&mut set, sig);
                }
                let mut sig = 0;
                libc::sigwait(&set, &mut sig);
                sig
            };
            log(&format!("signal {sig}: stepping down"));
            stop.store(true, Ordering::SeqCst);
        });
}

fn background(args: &ServeArgs) -> Result<(), Failure> {
    if let Some(holder) = owner_now(&args.db) {
        say(&ready_line(args, false, holder.0, holder.1));
        return Ok(());
    }
    let log_file = open_log(&args.db)?;
    // The server leaves the caller's working directory (it may be unmounted meanwhile).
    let db = std::path::absolute(&args.db)
        .map_err(|e| Failure::new(format!("{}: {e}", args.db.display())))?;
    let exe = std::env::current_exe()
        .map_err(|e| Failure::new(format!("cannot find the litekeep binary to start: {e}")))?;
    let mut command = Command::new(exe);
    command
        .arg("serve")
        .arg("--foreground")
        .arg("--db")
        .arg(&db)
        .arg("--engine")
        .arg(args.engine.name())
        .arg("--idle")
        .arg(humantime::format_duration(args.idle).to_string())
        .arg("--max-frame")
        .arg(args.max_frame.to_string())
        .arg("--tx-idle")
        .arg(humantime::format_duration(args.tx_idle).to_string())
        .arg("--tx-timeout")
        .arg(humantime::format_duration(args.tx_timeout).to_string())
        .arg("--durability")
        .arg(&args.durability)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file);
    if args.json {
        command.arg("--json");
    }
    // SAFETY: setsid(2) is async-signal-safe and touches no memory of this process; the
    // closure allocates nothing.
    unsafe {
        command.pre_exec(|| rustix::process::setsid().map(drop).map_err(Into::into));
    }
    let mut child = command
        .spawn()
        .map_err(|e| Failure::new(format!("cannot start litekeep serve: {e}")))?;
    let Some(out) = child.stdout.take() else {
        return Err(Failure::new("the server's stdout was not captured"));
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(args.start_timeout);
    if let Ok(line) = &line
        && !line.trim().is_empty()
    {
        // Serving (or another serves): the child goes on alone, in its own session.
        say(line.trim_end());
        return Ok(());
    }
    let log = log_path(&args.db);
    // Its stdout closed without a line: it ended (and is reaped now); no line in time: it
    // is stuck, and killed.
    let (status, code) = match line {
        Ok(_) => match child.wait() {
            Ok(status) if status.code().is_some() => (status.to_string(), 1),
            Ok(status) => (status.to_string(), EXIT_AGAIN),
            Err(e) => (e.to_string(), 1),
        },
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            let why = format!(
                "it did not serve within {}, so it was killed",
                humantime::format_duration(args.start_timeout)
            );
            (why, EXIT_AGAIN)
        }
    };
    Err(Failure {
        message: format!(
            "the server for {} did not start ({status}): {}",
            args.db.display(),
            last_lines(&log, 3)
        ),
        code,
    })
}

/// The process holding the owner lock of `db`, and its generation, if any.
fn owner_now(db: &Path) -> Option<(u32, Option<u64>)> {
    let lock = litekeep::lock::FileLock::open(litekeep::owner::owner_lock_path(db)).ok()?;
    let holder = lock.holder()?;
    let generation = holder
        .label
        .as_deref()
        .and_then(|l| l.rsplit_once("gen=").and_then(|(_, g)| g.parse().ok()));
    Some((holder.pid, generation))
}

/// `<db>.serve.log`, opened as litekeep opens every file beside a database (never through a
/// symbolic link, with the database's permissions), for appending; emptied first when it has
/// grown past 1 MiB.
fn open_log(db: &Path) -> Result<File, Failure> {
    let path = log_path(db);
    let model = db.exists().then_some(db);
    let file = litekeep::lock::open_sidecar(&path, model)
        .map_err(|e| Failure::new(format!("cannot open the server's log: {e}")))?;
    if file.metadata().is_ok_and(|m| m.len() > 1 << 20) {
        let _ = file.set_len(0);
    }
    let flags = rustix::fs::fcntl_getfl(&file)
        .map_err(|e| Failure::new(format!("cannot set up the log {}: {e}", path.display())))?;
    rustix::fs::fcntl_setfl(&file, flags | rustix::fs::OFlags::APPEND)
        .map_err(|e| Failure::new(format!("cannot set up the log {}: {e}", path.display())))?;
    Ok(file)
}

/// The last `n` lines of the log, joined, for an error message.
fn last_lines(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(n)..].join(" | ");
    if tail.is_empty() {
        format!("its log {} is empty", log.display())
    } else {
        format!("{tail} (from {})", log.display())
    }
}
