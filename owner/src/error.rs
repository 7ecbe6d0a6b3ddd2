//! [`OwnerError`]: what joining a service and calling it can fail with.

use std::path::PathBuf;
use std::time::Duration;

use crate::failure::{Applied, Failure, FailureKind};

/// Everything [`Node::join`](crate::Node::join) and [`Node::call`](crate::Node::call) can fail
/// with. `Display` is one line that names the file and says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OwnerError {
    /// The owner answered with a failure (the handler's error, a full queue, a refusal, …).
    #[error("{}: the owner answered {failure}", path.display())]
    Failed {
        /// The database (or other file) the service is for.
        path: PathBuf,
        /// What the owner said.
        failure: Failure,
    },
    /// The call did not get its answer in time, and may still be applied.
    #[error(
        "{}: no answer within {:.1} s (outcome unknown: the owner may still apply the request; read back what it would have written before you send it again)",
        path.display(), waited.as_secs_f64()
    )]
    Timeout {
        /// The database.
        path: PathBuf,
        /// How long the call waited.
        waited: Duration,
    },
    /// The owner died after the request was sent, and it does not record outcomes: the
    /// request may or may not have been applied.
    #[error(
        "{}: the owner (pid {pid}) went away after the request was sent; outcome unknown: it does not record outcomes, so the request was not sent again",
        path.display()
    )]
    OutcomeUnknown {
        /// The database.
        path: PathBuf,
        /// The owner that went away.
        pid: u32,
    },
    /// No owner could be found or become one in time.
    #[error("{}: no owner could be reached or elected within {:.1} s: {why}", path.display(), waited.as_secs_f64())]
    Unreachable {
        /// The database.
        path: PathBuf,
        /// How long it tried.
        waited: Duration,
        /// The last obstacle.
        why: String,
    },
    /// The owner speaks another protocol version.
    #[error(
        "{}: the owner speaks protocol version {theirs}, this program speaks {ours}; run the same litekeep version on both sides",
        path.display()
    )]
    ProtocolVersion {
        /// The database.
        path: PathBuf,
        /// This crate's version.
        ours: u32,
        /// The owner's.
        theirs: u32,
    },
    /// The request could not be encoded, or the response not decoded.
    #[error("{}: {what}: {message}", path.display())]
    Codec {
        /// The database.
        path: PathBuf,
        /// "encoding the request" or "decoding the response".
        what: &'static str,
        /// The codec's message.
        message: String,
    },
    /// The owner lock.
    #[error(transparent)]
    Lock(#[from] litekeep_lock::LockError),
    /// An I/O error setting up the service (binding its socket, reading its directory).
    #[error("{}: {source} while {op}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl OwnerError {
    /// The owner's failure, when it answered with one.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            OwnerError::Failed { failure, .. } => Some(failure),
            _ => None,
        }
    }

    /// The kind of the owner's failure, when it answered with one.
    pub fn kind(&self) -> Option<FailureKind> {
        self.failure().map(|f| f.kind)
    }

    /// Whether the request may have been applied: a timeout, an owner lost without recorded
    /// outcomes, or a failure the owner marked so.
    ///
    /// ```
    /// use std::time::Duration;
    /// use litekeep_owner::OwnerError;
    /// let e = OwnerError::Timeout { path: "app.db".into(), waited: Duration::from_secs(30) };
    /// assert!(e.outcome_unknown());
    /// assert!(e.to_string().contains("outcome unknown"));
    /// ```
    pub fn outcome_unknown(&self) -> bool {
        match self {
            OwnerError::Timeout { .. } | OwnerError::OutcomeUnknown { .. } => true,
            OwnerError::Failed { failure, .. } => failure.applied == Applied::Unknown,
            _ => false,
        }
    }
}
