//! [`Failure`]: an error the owner sends as data, in a reply or before it closes a connection.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What went wrong at the owner, as it travels on the wire (`{"kind", "message", "applied"}`).
///
/// Every failure says whether the request was applied: `No` (the caller may send it again as a
/// new request) or `Unknown` (it may have been: only a retry with the same client id and
/// sequence number, at an owner that records outcomes, can tell).
///
/// ```
/// use litekeep_owner::{Applied, Failure, FailureKind};
/// let f = Failure::new(FailureKind::QueueFull, "queue full (4096 waiting)");
/// assert_eq!(f.applied, Applied::No);
/// assert_eq!(f.to_string(), "queue_full: queue full (4096 waiting) (not applied)");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Failure {
    /// What kind of failure.
    pub kind: FailureKind,
    /// One line for a person: what happened and what to do.
    pub message: String,
    /// Whether the request was applied.
    pub applied: Applied,
}

impl Failure {
    /// A failure of `kind` whose request was not applied.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
            applied: Applied::No,
        }
    }

    /// The same failure, with whether its request was applied.
    pub fn applied(mut self, applied: Applied) -> Failure {
        self.applied = applied;
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let applied = match self.applied {
            Applied::No => "not applied",
            Applied::Unknown => "outcome unknown",
        };
        write!(f, "{}: {} ({applied})", self.kind.as_str(), self.message)
    }
}

impl std::error::Error for Failure {}

/// Whether a failed request was applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Applied {
    /// It was not: nothing of it is in the file.
    No,
    /// It may have been.
    Unknown,
}

/// The kinds of [`Failure`]; on the wire, the snake_case names (`"queue_full"`). A kind this
/// version does not know reads as [`FailureKind::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// The application's handler returned an error for this request (rolled back alone).
    Handler,
    /// The application's handler panicked on this request (rolled back alone).
    Panicked,
    /// The request's body did not decode as the service's request type.
    BadRequest,
    /// The owner's queue was full; the message names its depth.
    QueueFull,
    /// The owner is stepping down (a newer version takes over, or it is closing): send the
    /// request to the next owner.
    SteppingDown,
    /// The batch's commit failed; nothing of it was applied.
    CommitFailed,
    /// A frame was longer than the limit; the connection is closed.
    TooLarge,
    /// Bytes that are not a frame of this protocol; the connection is closed.
    BadFrame,
    /// The hello named another protocol version; the message names both.
    ProtocolVersion,
    /// The peer's credentials do not allow it to write the file; the connection is closed.
    Refused,
    /// No hello within the handshake timeout; the connection is closed.
    HandshakeTimeout,
    /// The owner serves as many connections as it may; the connection is closed.
    TooManyConnections,
    /// A message this owner does not support.
    Unsupported,
    /// Any other failure (also a kind from a newer version).
    #[serde(other)]
    Other,
}

impl FailureKind {
    /// The wire name: `"queue_full"`.
    ///
    /// ```
    /// assert_eq!(litekeep_owner::FailureKind::SteppingDown.as_str(), "stepping_down");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Handler => "handler",
            FailureKind::Panicked => "panicked",
            FailureKind::BadRequest => "bad_request",
            FailureKind::QueueFull => "queue_full",
            FailureKind::SteppingDown => "stepping_down",
            FailureKind::CommitFailed => "commit_failed",
            FailureKind::TooLarge => "too_large",
            FailureKind::BadFrame => "bad_frame",
            FailureKind::ProtocolVersion => "protocol_version",
            FailureKind::Refused => "refused",
            FailureKind::HandshakeTimeout => "handshake_timeout",
            FailureKind::TooManyConnections => "too_many_connections",
            FailureKind::Unsupported => "unsupported",
            FailureKind::Other => "other",
        }
    }
}
