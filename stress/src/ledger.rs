//! Each worker process appends one line per acknowledged commit, and one per error, to its own
//! ledger file, with one `write` each (so a SIGKILL loses at most the line being written, never
//! a committed one's predecessor). The coordinator reads all ledgers at the end.
//!
//! Lines: `F <µs> <write id> <path>…` (an indexer batch: the files it committed),
//! `E <µs> <write id> <entry>:<version>…` (an embedder update), `R <µs>` (a searcher read), `M <µs> <version>` (a migration),
//! `O <µs>` (a cold open), `X <kind> <message>` (an error that reached the worker),
//! `V <message>` (a violation a worker saw: a row that vanished), `I <kind>` (a fault injected
//! into the worker's file operations, with `--faults`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// An open ledger.
pub struct Ledger {
    file: File,
}

impl Ledger {
    /// Opens (appending) the ledger at `path`.
    pub fn open(path: &Path) -> std::io::Result<Ledger> {
        Ok(Ledger {
            file: OpenOptions::new().create(true).append(true).open(path)?,
        })
    }

    /// Appends one line.
    pub fn line(&mut self, line: &str) {
        let mut buf = String::with_capacity(line.len() + 1);
        buf.push_str(line);
        buf.push('\n');
        // A ledger that cannot be written makes the run meaningless: say so loudly.
        if let Err(e) = self.file.write_all(buf.as_bytes()) {
            eprintln!("litekeep-stress: cannot write the ledger: {e}");
            std::process::exit(3);
        }
    }

    /// Records an error that reached the worker, classified.
    pub fn error(&mut self, message: &str) {
        let kind = classify(message);
        self.line(&format!("X {kind} {}", message.replace('\n', " ")));
    }
}

/// The error kinds of the report.
pub const KINDS: [&str; 6] = [
    "busy",
    "locked",
    "no-such-table",
    "io",
    "malformed",
    "other",
];

/// Sorts an error message into one of [`KINDS`].
pub fn classify(message: &str) -> &'static str {
    let m = message.to_ascii_lowercase();
    if m.contains("malformed") || m.contains("corrupt") {
        "malformed"
    } else if m.contains("disk i/o")
        || m.contains("i/o error")
        || m.contains("failed while")
        || m.contains("is full")
    {
        "io"
    } else if m.contains("no such table") {
        "no-such-table"
    } else if m.contains("table is locked") || m.contains("schema is locked") {
        // SQLITE_LOCKED: a conflict inside one process (shared cache, a connection of its own).
        "locked"
    } else if m.contains("database is locked") || m.contains("busy") {
        // SQLITE_BUSY says "database is locked": another connection holds the file's lock.
        "busy"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_by_their_message() {
        assert_eq!(classify("database is locked"), "busy");
        assert_eq!(classify("database table is locked"), "locked");
        assert_eq!(classify("disk I/O error"), "io");
        assert_eq!(classify("no such table: main.files"), "no-such-table");
        assert_eq!(classify("database disk image is malformed"), "malformed");
        assert_eq!(classify("stayed busy for 3 s"), "busy");
        assert_eq!(classify("UNIQUE constraint failed"), "other");
    }
}
