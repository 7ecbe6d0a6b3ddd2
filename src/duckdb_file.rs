//! DuckDB files (feature `duckdb`): [`open`] checks that the DuckDB library loaded at run time is
//! the version the `duckdb` crate's bindings were generated for, and only then opens the file.
//!
//! Why check: the facade links against a prebuilt `libduckdb.so` (prepared by
//! `scripts/duckdb-env`, found through an rpath set at link time), not a copy compiled into the
//! binary. A different library on the loader's path — through `LD_LIBRARY_PATH`, or a cache
//! directory refilled with another version — would be called through bindings of the wrong
//! version, and a newer library may rewrite the file in a storage format the expected one cannot
//! read. So the version is compared before the file is touched, and a mismatch names both
//! versions and what to do.
//!
//! What DuckDB does not allow, and this module does not change: one process at a time may open
//! a file read-write, and while it does, no other process may open it at all, not even
//! read-only. A second process gets [`DuckDbError::Locked`].

use std::path::{Path, PathBuf};

/// The DuckDB version the `duckdb` crate in this build was generated for, as
/// `duckdb_library_version()` and `SELECT version()` spell it.
///
/// The crate's version encodes it: `1.10506.0` is DuckDB `1.5.6`.
pub const DUCKDB_BUILT_FOR: &str = "v1.5.6";

/// Where the build expected the library (`DUCKDB_LIB_DIR` at build time, the binary's rpath).
const LIB_DIR_AT_BUILD: Option<&str> = option_env!("LITEKEEP_DUCKDB_LIB_DIR");

/// Why a DuckDB file could not be opened. `Display` is one line that names the file or the
/// library and says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DuckDbError {
    /// The library loaded at run time is another DuckDB version than the bindings were generated
    /// for. Nothing was opened.
    #[error(
        "the DuckDB library loaded{} is {loaded}, but this build of litekeep was made for DuckDB {built_for}{}; run `eval \"$(scripts/duckdb-env)\"` and rebuild with --features duckdb, or unset LD_LIBRARY_PATH so that the library it was linked against is loaded",
        library.as_ref().map_or_else(String::new, |p| format!(" ({})", p.display())),
        LIB_DIR_AT_BUILD.map_or_else(String::new, |d| format!(" and linked against {d}/libduckdb.so"))
    )]
    VersionMismatch {
        /// [`DUCKDB_BUILT_FOR`].
        built_for: &'static str,
        /// What the loaded library reports.
        loaded: String,
        /// The library file this process mapped, when it could be found.
        library: Option<PathBuf>,
    },
    /// Another process has the file open (DuckDB's own lock on it is held).
    #[error(
        "{} is open in another process, and DuckDB lets no second process open a file that one process has open read-write: stop that process or send your queries to it ({message})",
        path.display()
    )]
    Locked {
        /// The database.
        path: PathBuf,
        /// DuckDB's message, which names the holder's program and PID.
        message: String,
    },
    /// DuckDB could not open the file for another reason (not a DuckDB file, a newer storage
    /// format, no permission, …).
    #[error("could not open the DuckDB file {}: {source}", path.display())]
    Open {
        /// The database.
        path: PathBuf,
        /// DuckDB's error.
        source: duckdb::Error,
    },
}

/// Opens (or creates) the DuckDB file at `path` read-write, after
/// [`check_library_version`].
///
/// # Errors
///
/// [`DuckDbError::VersionMismatch`] before anything is opened; [`DuckDbError::Locked`] when
/// another process has the file open; [`DuckDbError::Open`] for anything else DuckDB refuses.
///
/// # Example
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("lk-doc-duckdb-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let conn = litekeep::duckdb_file::open(dir.join("index.duckdb"))?;
/// conn.execute_batch("CREATE TABLE docs (id INTEGER, body TEXT)")?;
/// conn.execute("INSERT INTO docs VALUES (?, ?)", litekeep::duckdb::params![1, "hello"])?;
/// let n: i64 = conn.query_row("SELECT count(*) FROM docs", [], |r| r.get(0))?;
/// assert_eq!(n, 1);
/// # drop(conn);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn open(path: impl AsRef<Path>) -> Result<duckdb::Connection, DuckDbError> {
    let path = path.as_ref();
    check_library_version()?;
    duckdb::Connection::open(path).map_err(|source| opening_error(path, source))
}

/// Compares the loaded library's version with [`DUCKDB_BUILT_FOR`]; returns the version.
///
/// # Errors
///
/// [`DuckDbError::VersionMismatch`], naming both versions and the library file.
pub fn check_library_version() -> Result<String, DuckDbError> {
    let loaded = library_version();
    compare_versions(DUCKDB_BUILT_FOR, &loaded, loaded_library)?;
    Ok(loaded)
}

/// The version the loaded DuckDB library reports (`duckdb_library_version()`), e.g. `v1.5.6`.
pub fn library_version() -> String {
    // SAFETY: duckdb_library_version takes no argument and returns a pointer to a static,
    // NUL-terminated string owned by the library, valid for as long as the library is loaded
    // (the whole process: it is linked, not dlopen'ed).
    let version = unsafe { std::ffi::CStr::from_ptr(duckdb::ffi::duckdb_library_version()) };
    version.to_string_lossy().into_owned()
}

/// The check itself: `Ok` when the versions are equal. `library` is only asked for on a
/// mismatch, to name the file in the error.
fn compare_versions(
    built_for: &'static str,
    loaded: &str,
    library: impl FnOnce() -> Option<PathBuf>,
) -> Result<(), DuckDbError> {
    if loaded == built_for {
        return Ok(());
    }
    Err(DuckDbError::VersionMismatch {
        built_for,
        loaded: loaded.to_owned(),
        library: library(),
    })
}

/// The `libduckdb` file mapped into this process, from `/proc/self/maps` (Linux); `None`
/// before the library was first called, or where `/proc` cannot be read.
pub fn loaded_library() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .find(|file| file.contains("libduckdb"))
        .map(PathBuf::from)
}

/// DuckDB says a file is held by another process only in its message: "Could not set lock on
/// file … Conflicting lock is held in <program> (PID <n>)".
pub(crate) fn opening_error(path: &Path, source: duckdb::Error) -> DuckDbError {
    let message = source.to_string();
    if message.contains("Could not set lock on file") {
        return DuckDbError::Locked {
            path: path.to_owned(),
            message,
        };
    }
    DuckDbError::Open {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_versions_pass_without_looking_for_the_library() {
        let found = compare_versions("v1.5.6", "v1.5.6", || panic!("asked for the file"));
        assert!(found.is_ok());
    }

    #[test]
    fn a_mismatch_names_both_versions_the_file_and_what_to_do() {
        let err = compare_versions("v1.5.6", "v1.6.0", || {
            Some(PathBuf::from("/opt/other/libduckdb.so"))
        })
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("is v1.6.0"), "{text}");
        assert!(text.contains("made for DuckDB v1.5.6"), "{text}");
        assert!(text.contains("(/opt/other/libduckdb.so)"), "{text}");
        assert!(text.contains("scripts/duckdb-env"), "{text}");
    }

    #[test]
    fn the_loaded_library_is_found_in_the_process_maps() {
        // Calling into the library maps it; its file must be found.
        library_version();
        let file = loaded_library().expect("libduckdb in /proc/self/maps");
        assert!(file.ends_with("libduckdb.so"), "{}", file.display());
    }
}
