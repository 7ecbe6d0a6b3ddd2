//! [`Options`]: how a [`Node`](crate::Node) calls, serves and takes over.

use std::cmp::Ordering;
use std::time::Duration;

use crate::queue::Limits;
use crate::wire::DEFAULT_MAX_FRAME;

/// How a [`Node`](crate::Node) calls, serves and takes over. Defaults: call timeout 30 s,
/// frames up to 16 MiB, batches of at most 256 requests and 5 ms, a queue of 4,096, 4,096
/// connections, 5 s for a client's hello and for the rest of a frame once it began, may
/// become the owner, takes over from an owner of an older version.
///
/// ```
/// use std::time::Duration;
/// use litekeep_owner::Options;
/// let options = Options::new("indexer", "2.1.0")
///     .timeout(Duration::from_secs(5))
///     .max_batch(64);
/// assert_eq!(options.version(), "2.1.0");
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Options {
    pub(crate) program: String,
    pub(crate) version: String,
    pub(crate) fingerprint: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) max_frame: u32,
    pub(crate) limits: Limits,
    pub(crate) max_connections: usize,
    pub(crate) handshake_timeout: Duration,
    pub(crate) frame_timeout: Duration,
    pub(crate) candidate: bool,
    pub(crate) take_over: bool,
    pub(crate) info: std::collections::BTreeMap<String, String>,
}

impl Options {
    /// Options for `program` at `version` (dotted numbers, compared number by number: a
    /// process of a higher version takes ownership from a lower one).
    pub fn new(program: impl Into<String>, version: impl Into<String>) -> Options {
        Options {
            program: program.into(),
            version: version.into(),
            fingerprint: None,
            timeout: Duration::from_secs(30),
            max_frame: DEFAULT_MAX_FRAME,
            limits: Limits {
                depth: 4096,
                max_batch: 256,
                max_batch_time: Duration::from_millis(5),
            },
            max_connections: 4096,
            handshake_timeout: Duration::from_secs(5),
            frame_timeout: Duration::from_secs(5),
            candidate: true,
            take_over: true,
            info: std::collections::BTreeMap::new(),
        }
    }

    /// The program's version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The same options for program version `version`.
    pub fn with_version(mut self, version: impl Into<String>) -> Options {
        self.version = version.into();
        self
    }

    /// A fingerprint of the schema this program expects, sent in the handshake (informative:
    /// it shows in errors and in [`Node::owner`](crate::Node::owner)).
    pub fn fingerprint(mut self, fingerprint: impl Into<String>) -> Options {
        self.fingerprint = Some(fingerprint.into());
        self
    }

    /// How long a call waits for its answer, finding or electing an owner included
    /// (default 30 s); then [`OwnerError::Timeout`](crate::OwnerError::Timeout).
    pub fn timeout(mut self, timeout: Duration) -> Options {
        self.timeout = timeout;
        self
    }

    /// The largest frame payload read, in bytes (default 16 MiB); a longer frame gets a
    /// `too_large` failure and its connection is closed.
    pub fn max_frame(mut self, bytes: u32) -> Options {
        self.max_frame = bytes;
        self
    }

    /// The most requests in one batch (default 256).
    pub fn max_batch(mut self, calls: usize) -> Options {
        self.limits.max_batch = calls.max(1);
        self
    }

    /// How long a batch keeps taking requests that arrive while it runs (default 5 ms).
    pub fn max_batch_time(mut self, time: Duration) -> Options {
        self.limits.max_batch_time = time;
        self
    }

    /// How many requests may wait at the owner (default 4,096); more get a `queue_full`
    /// failure naming the depth.
    pub fn queue_depth(mut self, depth: usize) -> Options {
        self.limits.depth = depth.max(1);
        self
    }

    /// How many connections the owner serves at once (default 4,096); more get a
    /// `too_many_connections` failure and are closed. Each costs a thread and a descriptor.
    pub fn max_connections(mut self, n: usize) -> Options {
        self.max_connections = n.max(1);
        self
    }

    /// How long a new connection may take to send its hello (default 5 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Options {
        self.handshake_timeout = timeout;
        self
    }

    /// How long the rest of a frame may take once its first bytes came, and how long a
    /// reply's write may wait for a client that does not read (default 5 s).
    pub fn frame_timeout(mut self, timeout: Duration) -> Options {
        self.frame_timeout = timeout;
        self
    }

    /// Whether this process may become the owner (default true); false makes it a client
    /// only, which waits for another process to own.
    pub fn candidate(mut self, candidate: bool) -> Options {
        self.candidate = candidate;
        self
    }

    /// Adds `key: value` to the owner's welcome ([`Welcome::info`](crate::wire::Welcome)),
    /// for what a client must know of the service before it calls (the database engine, say).
    /// A key of the welcome's own (`protocol`, `pid`, …) is ignored.
    ///
    /// ```
    /// let options = litekeep_owner::Options::new("serve", "1.0").info("engine", "duckdb");
    /// # let _ = options;
    /// ```
    pub fn info(mut self, key: impl Into<String>, value: impl Into<String>) -> Options {
        let key = key.into();
        const OWN: [&str; 9] = [
            "t",
            "protocol",
            "program",
            "version",
            "fingerprint",
            "generation",
            "pid",
            "max_frame",
            "records_outcomes",
        ];
        if !OWN.contains(&key.as_str()) {
            self.info.insert(key, value.into());
        }
        self
    }

    /// Whether this process asks an owner of an older version to hand over (default true).
    pub fn take_over(mut self, take_over: bool) -> Options {
        self.take_over = take_over;
        self
    }
}

/// Compares dotted versions number by number ("1.10" > "1.9"); a part that is not a number
/// compares as text.
///
/// ```
/// use std::cmp::Ordering;
/// use litekeep_owner::compare_versions;
/// assert_eq!(compare_versions("1.10.0", "1.9.3"), Ordering::Greater);
/// assert_eq!(compare_versions("2", "2.0"), Ordering::Equal);
/// ```
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let parts = |v: &str| -> Vec<String> {
        let mut p: Vec<String> = v.split('.').map(str::to_owned).collect();
        while p.len() > 1 && p.last().is_some_and(|x| x == "0") {
            p.pop();
        }
        p
    };
    let (a, b) = (parts(a), parts(b));
    for (x, y) in a.iter().zip(&b) {
        let o = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}
