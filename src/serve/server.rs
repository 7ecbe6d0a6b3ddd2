//! Running `litekeep serve` in a process: [`start`] joins the owner service of the file and,
//! when this process becomes the owner, opens the engine; [`Server::run`] serves until no client
//! has come for the idle time, or until told to stop.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use litekeep_owner::{Node, OwnerError};

use super::service::{Engine, SqlService, TxLimits};
use super::sqlite::SqliteEngine;
use super::{PROGRAM, ResultLimit};
use crate::{Database, Durability};

/// The database engines `litekeep serve` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EngineKind {
    /// SQLite (always built in).
    Sqlite,
    /// DuckDB (with the `duckdb` feature).
    DuckDb,
}

impl EngineKind {
    /// Its name, as `--engine` and the welcome's `engine` spell it: `sqlite`, `duckdb`.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Sqlite => "sqlite",
            EngineKind::DuckDb => "duckdb",
        }
    }
}

impl std::str::FromStr for EngineKind {
    type Err = String;

    fn from_str(s: &str) -> Result<EngineKind, String> {
        match s {
            "sqlite" => Ok(EngineKind::Sqlite),
            "duckdb" => Ok(EngineKind::DuckDb),
            other => Err(format!(
                "no engine named {other:?}; the engines are sqlite and duckdb"
            )),
        }
    }
}

impl std::fmt::Display for EngineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

type AfterCommit = Arc<dyn Fn(usize) + Send + Sync>;

/// How to serve a database. Defaults: leave after 5 minutes without a client, frames up to
/// 16 MiB, a transaction held across calls rolled back after 5 s without a call or 30 s open,
/// SQLite writes waiting up to 60 s for the write lock, [`Durability::Normal`].
#[derive(Clone)]
#[must_use]
pub struct ServeOptions {
    pub(crate) db: PathBuf,
    pub(crate) engine: EngineKind,
    pub(crate) idle: Option<Duration>,
    pub(crate) max_frame: u32,
    pub(crate) tx: TxLimits,
    pub(crate) busy: Duration,
    pub(crate) durability: Durability,
    pub(crate) after_commit: Option<AfterCommit>,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("db", &self.db)
            .field("engine", &self.engine)
            .field("idle", &self.idle)
            .finish_non_exhaustive()
    }
}

impl ServeOptions {
    /// Serving the database at `db` with `engine`.
    pub fn new(db: impl AsRef<Path>, engine: EngineKind) -> ServeOptions {
        ServeOptions {
            db: db.as_ref().to_path_buf(),
            engine,
            idle: Some(Duration::from_secs(300)),
            max_frame: litekeep_owner::wire::DEFAULT_MAX_FRAME,
            tx: TxLimits {
                idle: Duration::from_secs(5),
                open: Duration::from_secs(30),
            },
            busy: Duration::from_secs(60),
            durability: Durability::default(),
            after_commit: None,
        }
    }

    /// Leave after this long with no client connected (`None`: never).
    pub fn idle(mut self, idle: Option<Duration>) -> ServeOptions {
        self.idle = idle;
        self
    }

    /// The largest frame read or written, in bytes; a response over it is an error as data.
    pub fn max_frame(mut self, bytes: u32) -> ServeOptions {
        self.max_frame = bytes;
        self
    }

    /// Roll back a transaction held across calls after `idle` without a call, or `open` after
    /// it began.
    pub fn tx_limits(mut self, idle: Duration, open: Duration) -> ServeOptions {
        self.tx = TxLimits { idle, open };
        self
    }

    /// SQLite: the writes' durability.
    pub fn durability(mut self, durability: Durability) -> ServeOptions {
        self.durability = durability;
        self
    }

    /// Called in the server after each group commit, before its answers go out, with the
    /// number of calls committed (for metrics, and for crash tests).
    pub fn after_commit(mut self, hook: impl Fn(usize) + Send + Sync + 'static) -> ServeOptions {
        self.after_commit = Some(Arc::new(hook));
        self
    }

    /// The database.
    pub fn db(&self) -> &Path {
        &self.db
    }

    /// The engine.
    pub fn engine(&self) -> EngineKind {
        self.engine
    }
}

/// Why a database could not be served. `Display` is one line that names the file and says
/// what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Joining the owner service (its lock, its socket).
    #[error(transparent)]
    Owner(#[from] OwnerError),
    /// Opening the SQLite database.
    #[error(transparent)]
    Sqlite(#[from] crate::Error),
    /// Opening the DuckDB database.
    #[cfg(feature = "duckdb")]
    #[error(transparent)]
    DuckDb(#[from] crate::duckdb_file::DuckDbError),
    /// The engine is not in this build.
    #[error(
        "{}: this build of litekeep has no {engine} engine; build it with --features {engine} (see the book's \"Python and DuckDB\" chapter)",
        path.display()
    )]
    NotBuilt {
        /// The database.
        path: PathBuf,
        /// The engine asked for.
        engine: EngineKind,
    },
}

/// What [`start`] found.
#[derive(Debug)]
pub enum Started {
    /// This process owns the database and serves it.
    Serving(Server),
    /// Another process serves it.
    Other {
        /// Its process id.
        pid: u32,
        /// Its generation, when its owner lock names one.
        generation: Option<u64>,
    },
}

/// Why [`Server::run`] returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ended {
    /// No client came for the idle time.
    Idle,
    /// It was told to stop.
    Stopped,
    /// It handed over to another process.
    HandedOver,
    /// Its database failed and must be opened again (DuckDB invalidates a database after a
    /// fatal error, such as a failed `fsync`): it stepped down so that the next server, started
    /// by the clients' next calls, opens the file afresh. The engine's error.
    DatabaseFailed(String),
}

/// What a running server is, whatever its engine.
trait Running: Send + Sync {
    fn idle_for(&self) -> Duration;
    fn connections(&self) -> usize;
    fn reap(&self);
    fn is_owner(&self) -> bool;
    fn generation(&self) -> Option<u64>;
    fn step_down(&self);
    fn failed(&self) -> Option<String>;
}

impl<E: Engine> Running for Node<SqlService<E>> {
    fn idle_for(&self) -> Duration {
        self.service().idle_for()
    }

    fn connections(&self) -> usize {
        self.service().connections()
    }

    fn reap(&self) {
        self.service().reap();
    }

    fn is_owner(&self) -> bool {
        Node::is_owner(self)
    }

    fn generation(&self) -> Option<u64> {
        Node::generation(self)
    }

    fn step_down(&self) {
        Node::step_down(self);
    }

    fn failed(&self) -> Option<String> {
        self.service().failed()
    }
}

/// A process serving a database as its owner. Dropping it steps down.
pub struct Server {
    node: Arc<dyn Running>,
    db: PathBuf,
    engine: EngineKind,
    idle: Option<Duration>,
    stop: Arc<AtomicBool>,
    reaper: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("db", &self.db)
            .field("engine", &self.engine)
            .field("generation", &self.node.generation())
            .finish_non_exhaustive()
    }
}

/// Joins the owner service of `options.db`: when no process owns it, this one becomes the owner,
/// opens the database and serves it ([`Started::Serving`]); otherwise it names the owner
/// ([`Started::Other`]) and serves nothing. SQLite: the file is created (and switched to WAL)
/// when missing; DuckDB: it is opened only once this process owns, as DuckDB lets no second
/// process open it.
///
/// # Errors
/// [`ServeError::Owner`] when the owner lock or the socket cannot be set up;
/// [`ServeError::Sqlite`] / `ServeError::DuckDb` when the database cannot be opened (this
/// process then steps down at once); [`ServeError::NotBuilt`] for DuckDB without the feature.
pub fn start(options: &ServeOptions) -> Result<Started, ServeError> {
    match options.engine {
        EngineKind::Sqlite => {
            // Opened before joining: another process may open a SQLite file beside the owner,
            // and the owner's peer check reads the file's permissions.
            let db = Database::builder(&options.db)
                .busy_timeout(options.busy)
                .durability(options.durability)
                .readers(8)
                .label("litekeep serve")
                .open()?;
            let engine = SqliteEngine::new(
                db,
                ResultLimit::new(options.max_frame),
                options.busy,
                options.durability,
                options.after_commit.clone(),
            );
            start_with(options, move || Ok(engine))
        }
        #[cfg(feature = "duckdb")]
        EngineKind::DuckDb => start_with(options, || {
            super::duckdb::DuckEngine::open(options).map_err(ServeError::from)
        }),
        #[cfg(not(feature = "duckdb"))]
        EngineKind::DuckDb => Err(ServeError::NotBuilt {
            path: options.db.clone(),
            engine: EngineKind::DuckDb,
        }),
    }
}

fn start_with<E: Engine>(
    options: &ServeOptions,
    open: impl FnOnce() -> Result<E, ServeError>,
) -> Result<Started, ServeError> {
    let owner_options = litekeep_owner::Options::new(PROGRAM, env!("CARGO_PKG_VERSION"))
        .info("engine", options.engine.name())
        .max_frame(options.max_frame)
        .take_over(false);
    // Not the owner, and the owner lock free again when looked at (its holder just left):
    // stand again, a few times.
    let mut tries = 0;
    let node = loop {
        let node = Node::join(
            &options.db,
            SqlService::<E>::new(options.tx),
            owner_options.clone(),
        )?;
        if node.is_owner() {
            break node;
        }
        drop(node);
        tries += 1;
        match other_owner(&options.db) {
            Some(other) => return Ok(other),
            None if tries < 20 => std::thread::sleep(Duration::from_millis(5)),
            None => {
                return Ok(Started::Other {
                    pid: 0,
                    generation: None,
                });
            }
        }
    };
    match open() {
        Ok(engine) => node.service().set_engine(Ok(engine)),
        Err(e) => {
            node.service().set_engine(Err(e.to_string()));
            node.step_down();
            return Err(e);
        }
    }
    let node: Arc<dyn Running> = Arc::new(node);
    let stop = Arc::new(AtomicBool::new(false));
    let reaper = {
        let (node, stop) = (node.clone(), stop.clone());
        std::thread::Builder::new()
            .name("litekeep-serve-reaper".into())
            .spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    node.reap();
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
            .ok()
    };
    Ok(Started::Serving(Server {
        node,
        db: options.db.clone(),
        engine: options.engine,
        idle: options.idle,
        stop,
        reaper,
    }))
}

/// The process that owns `db`, as its owner lock says; `None` when none holds it.
fn other_owner(db: &Path) -> Option<Started> {
    let holder = litekeep_lock::FileLock::open_beside(litekeep_owner::owner_lock_path(db), db)
        .ok()
        .and_then(|l| l.holder())?;
    Some(Started::Other {
        pid: holder.pid,
        generation: holder
            .label
            .and_then(|l| l.rsplit_once("gen=").and_then(|(_, g)| g.parse().ok())),
    })
}

impl Server {
    /// Its generation (the number in its socket's name).
    pub fn generation(&self) -> u64 {
        self.node.generation().unwrap_or(0)
    }

    /// The database it serves.
    pub fn db(&self) -> &Path {
        &self.db
    }

    /// Its engine.
    pub fn engine(&self) -> EngineKind {
        self.engine
    }

    /// A flag that stops [`Server::run`] when set (from a signal handler's thread, say).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Serves until no client has been connected for the options' idle time (when given),
    /// until the stop flag is set, until it handed over, or until its database failed for good
    /// ([`Ended::DatabaseFailed`]); then steps down: stops taking calls, answers those it took,
    /// rolls back the transactions held, removes its socket and releases the owner lock.
    pub fn run(self) -> Ended {
        let idle = self.idle;
        let tick = idle.map_or(Duration::from_millis(100), |i| {
            (i / 4).clamp(Duration::from_millis(10), Duration::from_millis(100))
        });
        let ended = loop {
            if self.stop.load(Ordering::SeqCst) {
                break Ended::Stopped;
            }
            if !self.node.is_owner() {
                break Ended::HandedOver;
            }
            if let Some(why) = self.node.failed() {
                break Ended::DatabaseFailed(why);
            }
            if let Some(idle) = idle
                && self.node.connections() == 0
                && self.node.idle_for() >= idle
            {
                break Ended::Idle;
            }
            std::thread::sleep(tick);
        };
        self.stop();
        ended
    }

    /// Steps down now (see [`Server::run`]).
    pub fn stop(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.node.step_down();
        if let Some(reaper) = self.reaper.take() {
            let _ = reaper.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shut();
    }
}
