//! Async access (feature `tokio`): the blocking work runs on tokio's blocking pool, so a slow
//! lock or a busy database never stalls the executor (seed 003's hang).

use std::path::Path;

use rusqlite::{Connection, Transaction};

use crate::{Builder, Database, Error};

impl Database {
    /// [`Database::write`] on tokio's blocking pool.
    ///
    /// ```
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let dir = tmp.path();
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// let db = litekeep::Database::builder(dir.join("a.db"))
    ///     .schema("CREATE TABLE t (x INTEGER);")
    ///     .open_async()
    ///     .await?;
    /// db.write_async(|tx| tx.execute("INSERT INTO t VALUES (1)", [])).await?;
    /// let n: i64 = db.read_async(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))).await?;
    /// assert!(n >= 1);
    /// # Ok::<(), litekeep::Error>(()) }).unwrap();
    /// ```
    ///
    /// # Errors
    /// As [`Database::write`].
    pub async fn write_async<T: Send + 'static>(
        &self,
        f: impl FnMut(&Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, Error> {
        let db = self.clone();
        blocking(move || db.write(f)).await
    }

    /// [`Database::read`] on tokio's blocking pool.
    ///
    /// # Errors
    /// As [`Database::read`].
    ///
    /// Example: [`Database::write_async`].
    pub async fn read_async<T: Send + 'static>(
        &self,
        f: impl FnMut(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, Error> {
        let db = self.clone();
        blocking(move || db.read(f)).await
    }
}

impl Builder {
    /// [`Builder::open`] on tokio's blocking pool: waiting for another process's lock does not
    /// block the executor.
    ///
    /// # Errors
    /// As [`Builder::open`].
    ///
    /// Example: [`Database::write_async`].
    pub async fn open_async(self) -> Result<Database, Error> {
        blocking(move || self.open()).await
    }
}

/// Runs `f` with `spawn_blocking`; a panic in `f` resumes in the caller.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::Io {
            path: Path::new("").to_path_buf(),
            op: "running on tokio's blocking pool",
            source: std::io::Error::other(e),
        }),
    }
}
