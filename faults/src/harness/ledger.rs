//! [`Ledger`]: what a child acknowledged, in a file that is not on the fault VFS.

use std::fmt::Display;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// An append-only file of acknowledged writes: a child appends one line per write *after* the
/// write returned; the parent reads the lines once the child is gone and checks each one.
///
/// Each line goes out in one `write(2)`, with no buffer in between: whatever ends the child
/// (a simulated power cut, SIGKILL) the kernel has every line it appended (the ledger stands
/// for the client that got the acknowledgement, not for the disk). [`Ledger::read`] ignores a
/// last line without its newline.
#[derive(Debug)]
pub struct Ledger {
    file: File,
}

impl Ledger {
    /// Creates (or empties) the ledger at `path`.
    pub fn create(path: &Path) -> std::io::Result<Ledger> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)?;
        Ok(Ledger { file })
    }

    /// Opens the ledger at `path` to append to it (creating it if missing).
    pub fn append_to(path: &Path) -> std::io::Result<Ledger> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Ledger { file })
    }

    /// Appends `entry` as one line, in one write.
    pub fn append(&mut self, entry: impl Display) -> std::io::Result<()> {
        self.file.write_all(format!("{entry}\n").as_bytes())
    }

    /// The whole lines of the ledger at `path` (none when it does not exist).
    pub fn read(path: &Path) -> Vec<String> {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let whole = match text.rfind('\n') {
            Some(end) => &text[..end],
            None => "",
        };
        whole.lines().map(str::to_owned).collect()
    }

    /// The first word of each line as a number: the ids acknowledged, in order.
    ///
    /// # Panics
    /// When a line does not start with a number.
    pub fn read_ids(path: &Path) -> Vec<i64> {
        Ledger::read(path)
            .iter()
            .map(|l| {
                l.split_whitespace()
                    .next()
                    .and_then(|w| w.parse().ok())
                    .unwrap_or_else(|| panic!("ledger {}: bad line {l:?}", path.display()))
            })
            .collect()
    }
}
