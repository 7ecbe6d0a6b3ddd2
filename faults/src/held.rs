//! Writes held since each file's last sync, and what a power cut makes of them.
//!
//! Held writes are *write-through with an undo log*: every write and truncate reaches the real
//! file at once (so other handles, other processes and `mmap` readers see what an OS page cache
//! would show them), and the log keeps, per file, each operation since that file's last
//! successful sync together with the bytes it overwrote or cut off. A sync empties the file's
//! log: what it held is durable. At a cut, every logged file is rolled back to its last-synced
//! state (undoing its operations newest first) and then a chosen subset of those operations is
//! replayed in their order, one write possibly torn: that is the disk a power cut leaves.
//!
//! Files are keyed by the name SQLite opened them under; the `(st_dev, st_ino)` seen at open
//! tells a log of a file that was since replaced (deleted and created again behind SQLite's
//! back) from the current one.
//!
//! Deletions are directory operations, durable only once the directory is synced. SQLite's
//! unix VFS syncs the directory when asked to in `xDelete` (`syncDir`, which it asks for only
//! with `synchronous = EXTRA`), and at the first sync of a journal or WAL file it created;
//! nothing else syncs a directory. So a deletion without `syncDir` is held too, with the
//! deleted file's last-synced contents, until a later directory sync in the same directory;
//! at a cut it is lost (the file comes back) or kept, like a held write. A lost deletion of a
//! rollback journal brings back a hot journal: a committed transaction is rolled back.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::config::Keep;

/// Sectors a torn write is cut at.
pub(crate) const SECTOR: u64 = 512;

/// `(st_dev, st_ino)` of a file.
pub(crate) type FileId = (u64, u64);

/// The identity of the file at `path`, if it exists.
pub(crate) fn file_id(path: &Path) -> Option<FileId> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// One operation not yet made durable by a sync.
#[derive(Debug)]
pub(crate) enum HeldOp {
    /// `data` written at `offset`; `before` are the bytes it overwrote (those that existed:
    /// at most `size_before - offset`).
    Write {
        offset: u64,
        data: Vec<u8>,
        before: Vec<u8>,
        size_before: u64,
    },
    /// The file set to `size`; `removed` are the bytes from `size` to `size_before`, if it
    /// shrank.
    Truncate {
        size: u64,
        removed: Vec<u8>,
        size_before: u64,
    },
}

#[derive(Debug)]
struct FileLog {
    id: Option<FileId>,
    ops: Vec<HeldOp>,
}

/// Every file's held operations.
#[derive(Debug)]
pub(crate) struct Held {
    files: BTreeMap<PathBuf, FileLog>,
    /// Deletions not yet made durable by a directory sync: the path and the deleted file's
    /// last-synced contents, oldest first.
    deletions: Vec<(PathBuf, Vec<u8>)>,
}

/// What a cut did, for the message before the exit.
#[derive(Debug, Default)]
pub(crate) struct CutReport {
    /// Files with held operations.
    pub files: usize,
    /// Held operations, over all files.
    pub held: usize,
    /// Of which reached the disk (the torn one included).
    pub kept: usize,
    /// The torn write: file, offset, bytes written of how many.
    pub torn: Option<(PathBuf, u64, u64, u64)>,
    /// Held deletions, and how many of them the cut lost (the file came back).
    pub deletions: (usize, usize),
    /// Files that could not be restored, and why.
    pub errors: Vec<String>,
}

impl Held {
    pub(crate) const fn new() -> Held {
        Held {
            files: BTreeMap::new(),
            deletions: Vec::new(),
        }
    }

    /// `path` was opened and is the file `id`: a log under that name for another file is
    /// stale (the old file is gone) and is dropped.
    pub(crate) fn opened(&mut self, path: &Path, id: Option<FileId>) {
        if let Some(log) = self.files.get(path)
            && log.id.is_some()
            && id.is_some()
            && log.id != id
        {
            self.files.remove(path);
        }
    }

    pub(crate) fn record(&mut self, path: &Path, id: Option<FileId>, op: HeldOp) {
        self.files
            .entry(path.to_path_buf())
            .or_insert_with(|| FileLog {
                id,
                ops: Vec::new(),
            })
            .ops
            .push(op);
    }

    /// A sync of `path` succeeded: everything held for it is durable.
    pub(crate) fn synced(&mut self, path: &Path) {
        self.files.remove(path);
    }

    /// What a power cut now would leave of the file at `path`: its contents with the held
    /// operations undone (the file as at its last sync).
    pub(crate) fn durable_contents(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        let mut bytes = std::fs::read(path)?;
        if let Some(log) = self.files.get(path) {
            for op in log.ops.iter().rev() {
                undo(&mut bytes, op)?;
            }
        }
        Ok(bytes)
    }

    /// `path` was deleted: durably when its directory was synced after (`contents` `None`),
    /// else held with the file's last-synced `contents`.
    pub(crate) fn deleted(&mut self, path: &Path, contents: Option<Vec<u8>>) {
        self.files.remove(path);
        match contents {
            Some(bytes) => self.deletions.push((path.to_path_buf(), bytes)),
            None => self.dir_synced(path.parent().unwrap_or(Path::new("."))),
        }
    }

    /// The directory `dir` was synced: the deletions in it are durable.
    pub(crate) fn dir_synced(&mut self, dir: &Path) {
        self.deletions
            .retain(|(path, _)| path.parent().unwrap_or(Path::new(".")) != dir);
    }

    /// Forget everything held: it all counts as durable from now on.
    pub(crate) fn clear(&mut self) {
        self.files.clear();
        self.deletions.clear();
    }

    /// Held operations over all files.
    pub(crate) fn len(&self) -> usize {
        self.files.values().map(|f| f.ops.len()).sum()
    }

    /// Leaves on disk what a power cut now could: each file at its last sync plus the chosen
    /// held operations. Empties the log.
    pub(crate) fn cut(&mut self, keep: Keep, tear: bool, rng: &mut fastrand::Rng) -> CutReport {
        let files = std::mem::take(&mut self.files);
        let mut report = CutReport {
            files: files.len(),
            held: files.values().map(|f| f.ops.len()).sum(),
            ..CutReport::default()
        };
        // Which operations survive, decided in a fixed order (files by name, operations by
        // time) so that a seed always gives the same disk.
        let kept: Vec<Vec<bool>> = files
            .values()
            .map(|log| {
                log.ops
                    .iter()
                    .map(|_| match keep {
                        Keep::Random => rng.bool(),
                        Keep::All => true,
                        Keep::None => false,
                    })
                    .collect()
            })
            .collect();
        report.kept = kept.iter().flatten().filter(|k| **k).count();
        // The torn write: one surviving write that spans a sector boundary, cut at one of them.
        let mut torn: Option<(usize, usize, u64)> = None;
        if tear {
            let mut candidates = Vec::new();
            for (f, log) in files.values().enumerate() {
                for (o, op) in log.ops.iter().enumerate() {
                    if let HeldOp::Write { offset, data, .. } = op
                        && kept[f][o]
                        && boundaries(*offset, data.len() as u64) > 0
                    {
                        candidates.push((f, o));
                    }
                }
            }
            if !candidates.is_empty() {
                let (f, o) = candidates[rng.usize(..candidates.len())];
                if let Some(HeldOp::Write { offset, data, .. }) =
                    files.values().nth(f).map(|log| &log.ops[o])
                {
                    let n = boundaries(*offset, data.len() as u64);
                    let first = offset / SECTOR + 1;
                    let at = (first + rng.u64(..n)) * SECTOR;
                    torn = Some((f, o, at - offset));
                }
            }
        }
        for (f, (path, log)) in files.iter().enumerate() {
            let tear_here = torn.filter(|t| t.0 == f).map(|t| (t.1, t.2));
            if let Err(e) = restore(path, log, &kept[f], tear_here) {
                report.errors.push(format!("{}: {e}", path.display()));
            } else if let Some((o, written)) = tear_here
                && let HeldOp::Write { offset, data, .. } = &log.ops[o]
            {
                report.torn = Some((path.clone(), *offset, written, data.len() as u64));
            }
        }
        // Then the deletions, in a fixed order as well: a lost one brings its file back, as it
        // was at its last sync (unless another file has taken the name since).
        let deletions = std::mem::take(&mut self.deletions);
        report.deletions.0 = deletions.len();
        for (path, bytes) in deletions {
            let lost = match keep {
                Keep::Random => rng.bool(),
                Keep::All => false,
                Keep::None => true,
            };
            if lost && !path.exists() {
                match std::fs::write(&path, &bytes) {
                    Ok(()) => report.deletions.1 += 1,
                    Err(e) => report.errors.push(format!("{}: {e}", path.display())),
                }
            }
        }
        report
    }
}

/// How many sector boundaries lie strictly inside `[offset, offset + len)`.
fn boundaries(offset: u64, len: u64) -> u64 {
    if len == 0 {
        return 0;
    }
    let last = offset + len - 1;
    last / SECTOR - offset / SECTOR
}

/// Rolls `path` back to its last-synced state, then replays the kept operations; `tear` is
/// (operation index, bytes of it to write).
fn restore(
    path: &Path,
    log: &FileLog,
    kept: &[bool],
    tear: Option<(usize, u64)>,
) -> std::io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    let meta = file.metadata()?;
    if let Some(id) = log.id
        && id != (meta.dev(), meta.ino())
    {
        return Err(std::io::Error::other(
            "replaced since it was opened; left alone",
        ));
    }
    for op in log.ops.iter().rev() {
        undo(&mut &file, op)?;
    }
    for (o, op) in log.ops.iter().enumerate() {
        if !kept[o] {
            continue;
        }
        match op {
            HeldOp::Write { offset, data, .. } => {
                let len = match tear {
                    Some((t, written)) if t == o => written as usize,
                    _ => data.len(),
                };
                file.write_all_at(&data[..len], *offset)?;
            }
            HeldOp::Truncate { size, .. } => file.set_len(*size)?,
        }
    }
    Ok(())
}

/// Where [`undo`] puts bytes back: the file on disk, or its contents in memory.
trait Medium {
    /// Writes `data` at `at`, growing the medium if needed.
    fn put(&mut self, at: u64, data: &[u8]) -> std::io::Result<()>;
    /// Sets the length to `len`, cutting or zero-filling.
    fn set_len(&mut self, len: u64) -> std::io::Result<()>;
}

impl Medium for &File {
    fn put(&mut self, at: u64, data: &[u8]) -> std::io::Result<()> {
        self.write_all_at(data, at)
    }
    fn set_len(&mut self, len: u64) -> std::io::Result<()> {
        File::set_len(self, len)
    }
}

impl Medium for Vec<u8> {
    fn put(&mut self, at: u64, data: &[u8]) -> std::io::Result<()> {
        let at = usize::try_from(at).unwrap_or(usize::MAX);
        let end = at.saturating_add(data.len());
        if self.len() < end {
            self.resize(end, 0);
        }
        self[at..end].copy_from_slice(data);
        Ok(())
    }
    fn set_len(&mut self, len: u64) -> std::io::Result<()> {
        self.resize(usize::try_from(len).unwrap_or(usize::MAX), 0);
        Ok(())
    }
}

/// Puts back the state just before `op`, the medium being in the state just after it.
fn undo(medium: &mut impl Medium, op: &HeldOp) -> std::io::Result<()> {
    match op {
        HeldOp::Write {
            offset,
            data,
            before,
            size_before,
        } => {
            medium.put(*offset, before)?;
            if offset + data.len() as u64 > *size_before {
                medium.set_len(*size_before)?;
            }
        }
        HeldOp::Truncate {
            size,
            removed,
            size_before,
        } => {
            medium.set_len(*size_before)?;
            if !removed.is_empty() {
                medium.put(*size, removed)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_interior_sector_boundaries() {
        assert_eq!(boundaries(0, 512), 0);
        assert_eq!(boundaries(0, 513), 1);
        assert_eq!(boundaries(100, 400), 0);
        assert_eq!(boundaries(500, 24), 1);
        assert_eq!(boundaries(4096, 4096), 7);
        assert_eq!(boundaries(7, 0), 0);
    }

    fn write(file: &File, held: &mut Held, path: &Path, offset: u64, data: &[u8]) {
        let size_before = file.metadata().unwrap().len();
        let end = (offset + data.len() as u64).min(size_before.max(offset));
        let mut before = vec![0; (end - offset) as usize];
        file.read_exact_at(&mut before, offset).unwrap();
        file.write_all_at(data, offset).unwrap();
        held.record(
            path,
            file_id(path),
            HeldOp::Write {
                offset,
                data: data.to_vec(),
                before,
                size_before,
            },
        );
    }

    fn truncate(file: &File, held: &mut Held, path: &Path, size: u64) {
        let size_before = file.metadata().unwrap().len();
        let mut removed = vec![0; size_before.saturating_sub(size) as usize];
        file.read_exact_at(&mut removed, size).unwrap();
        file.set_len(size).unwrap();
        held.record(
            path,
            file_id(path),
            HeldOp::Truncate {
                size,
                removed,
                size_before,
            },
        );
    }

    #[test]
    fn a_cut_keeping_nothing_restores_the_synced_bytes() {
        let dir = std::env::temp_dir().join(format!("lk-faults-held-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let synced: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &synced).unwrap();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut held = Held::new();
        write(&file, &mut held, &path, 2900, &[1; 400]);
        truncate(&file, &mut held, &path, 1000);
        write(&file, &mut held, &path, 0, &[2; 10]);
        write(&file, &mut held, &path, 5000, &[3; 10]);
        truncate(&file, &mut held, &path, 6000);
        assert_eq!(held.len(), 5);
        let report = held.cut(Keep::None, true, &mut fastrand::Rng::with_seed(1));
        assert_eq!((report.held, report.kept), (5, 0));
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!(std::fs::read(&path).unwrap(), synced);
        assert_eq!(held.len(), 0);

        // Keeping everything gives the latest contents back.
        write(&file, &mut held, &path, 2900, &[1; 400]);
        truncate(&file, &mut held, &path, 1000);
        write(&file, &mut held, &path, 0, &[2; 10]);
        let latest = std::fs::read(&path).unwrap();
        held.cut(Keep::All, false, &mut fastrand::Rng::with_seed(1));
        assert_eq!(std::fs::read(&path).unwrap(), latest);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_torn_write_leaves_a_prefix_of_whole_sectors() {
        let dir = std::env::temp_dir().join(format!("lk-faults-tear-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        for seed in 0..16 {
            std::fs::write(&path, vec![0u8; 8192]).unwrap();
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .unwrap();
            let mut held = Held::new();
            write(&file, &mut held, &path, 4096, &[7; 4096]);
            let report = held.cut(Keep::All, true, &mut fastrand::Rng::with_seed(seed));
            let (_, offset, written, len) = report.torn.expect("a write to tear");
            assert_eq!((offset, len), (4096, 4096));
            assert!(written > 0 && written < 4096 && written % SECTOR == 0);
            let got = std::fs::read(&path).unwrap();
            assert_eq!(got.len(), 8192);
            let cut = (4096 + written) as usize;
            assert!(got[4096..cut].iter().all(|b| *b == 7), "seed {seed}");
            assert!(got[..4096].iter().chain(&got[cut..]).all(|b| *b == 0));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
