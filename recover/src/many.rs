//! Checking many database files at once, as a code indexer keeps one per project: files are
//! found by their header and checked in parallel with rayon, one report each.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::check::{Health, check};
use crate::error::RecoverError;
use crate::open::looks_like_database;

/// Every file under `dir` (recursively) that starts with SQLite's header, sorted. WAL, journal
/// and lock files are skipped by their header; symbolic links are not followed.
///
/// ```
/// # let tmp = tempfile::tempdir().unwrap();
/// # let dir = tmp.path();
/// rusqlite::Connection::open(dir.join("a.db")).unwrap().execute_batch("CREATE TABLE IF NOT EXISTS t (a)").unwrap();
/// std::fs::write(dir.join("notes.txt"), "hello").unwrap();
/// let found = litekeep_recover::find_databases(&dir).unwrap();
/// assert_eq!(found, vec![dir.join("a.db")]);
/// ```
///
/// # Errors
/// [`RecoverError::Io`] when a directory cannot be read.
pub fn find_databases(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, RecoverError> {
    let mut found = Vec::new();
    let mut pending = vec![dir.as_ref().to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| RecoverError::Io {
            path: dir.clone(),
            op: "listing the directory",
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| RecoverError::Io {
                path: dir.clone(),
                op: "listing the directory",
                source,
            })?;
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() && looks_like_database(&entry.path()) {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    Ok(found)
}

/// [`check`]s every file of `paths` in parallel; the reports come back in the order of `paths`.
///
/// ```
/// # let tmp = tempfile::tempdir().unwrap();
/// # let dir = tmp.path();
/// # for name in ["a.db", "b.db"] {
/// #     rusqlite::Connection::open(dir.join(name)).unwrap().execute_batch("CREATE TABLE IF NOT EXISTS t (a)").unwrap();
/// # }
/// let paths = litekeep_recover::find_databases(&dir).unwrap();
/// for (path, health) in litekeep_recover::check_many(&paths, true) {
///     assert!(health.unwrap().integrity_ok(), "{}", path.display());
/// }
/// ```
pub fn check_many(paths: &[PathBuf], quick: bool) -> Vec<(PathBuf, Result<Health, RecoverError>)> {
    paths
        .par_iter()
        .map(|p| (p.clone(), check(p, quick)))
        .collect()
}
