//! A client's connection to the owner: the handshake and one call at a time.

use std::io::{self, BufReader};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::failure::Failure;
use crate::wire::{self, FromOwner, Hello, Outcome, ReadError, ToOwner, Welcome};

/// How a call on a [`Connection`](crate::Connection) went wrong.
#[derive(Debug)]
#[non_exhaustive]
pub enum CallError {
    /// The request was not sent whole: the owner never applies it.
    NotSent,
    /// The connection ended after the request was sent: it may have been applied.
    Lost,
    /// No answer before the deadline.
    Timeout,
    /// The owner ended the connection with a failure.
    Refused(Failure),
    /// The owner said something this client does not understand.
    Protocol(String),
}

/// One connection to an owner, past its handshake.
pub(crate) struct Conn {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    pub welcome: Welcome,
    max_frame: u32,
}

/// Reads one frame before `deadline`.
fn read_before(
    stream: &UnixStream,
    reader: &mut BufReader<UnixStream>,
    max: u32,
    deadline: Instant,
) -> Result<FromOwner, CallError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(CallError::Timeout);
    }
    stream
        .set_read_timeout(Some(left.max(Duration::from_micros(1))))
        .map_err(|_| CallError::Lost)?;
    match wire::read_frame(reader, max, |_| {}, None) {
        Ok(bytes) => wire::decode::<FromOwner>(&bytes).map_err(CallError::Protocol),
        Err(ReadError::Io(e))
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Err(CallError::Timeout)
        }
        Err(ReadError::Closed | ReadError::Io(_)) => Err(CallError::Lost),
        Err(ReadError::TooLarge(n)) => Err(CallError::Protocol(format!(
            "the owner sent a frame of {n} bytes, over this client's limit"
        ))),
    }
}

impl Conn {
    /// Raises or lowers the limit on the frames read from the owner.
    pub fn set_max_frame(&mut self, max: u32) {
        self.max_frame = max;
    }

    /// The socket.
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// Says hello on `stream` and reads the welcome, before `deadline`.
    pub fn handshake(
        stream: UnixStream,
        hello: &Hello,
        max_frame: u32,
        deadline: Instant,
    ) -> Result<Conn, CallError> {
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = stream.set_write_timeout(Some(left.max(Duration::from_millis(1))));
        let reader = BufReader::with_capacity(
            64 * 1024,
            stream.try_clone().map_err(|_| CallError::NotSent)?,
        );
        let mut conn = Conn {
            stream,
            reader,
            welcome: Welcome {
                protocol: 0,
                program: String::new(),
                version: String::new(),
                fingerprint: None,
                generation: 0,
                pid: 0,
                max_frame: 0,
                records_outcomes: false,
                info: Default::default(),
            },
            max_frame,
        };
        wire::send_all(&conn.stream, &wire::frame(&ToOwner::Hello(hello.clone())))
            .map_err(|_| CallError::NotSent)?;
        match read_before(&conn.stream, &mut conn.reader, max_frame, deadline)? {
            FromOwner::Welcome(w) => {
                conn.welcome = w;
                Ok(conn)
            }
            FromOwner::Error { error } => Err(CallError::Refused(error)),
            other => Err(CallError::Protocol(format!(
                "expected a welcome, got {other:?}"
            ))),
        }
    }

    /// Sends call `seq` and reads its outcome, before `deadline`.
    pub fn call(
        &mut self,
        seq: u64,
        acked_below: u64,
        retry: bool,
        body: &[u8],
        deadline: Instant,
    ) -> Result<Outcome, CallError> {
        if body.len() + 64 > self.welcome.max_frame as usize {
            return Err(CallError::Refused(Failure::new(
                crate::FailureKind::TooLarge,
                format!(
                    "the request is {} bytes, over the owner's limit of {}",
                    body.len(),
                    self.welcome.max_frame
                ),
            )));
        }
        wire::send_all(
            &self.stream,
            &wire::call_frame(seq, acked_below, retry, body),
        )
        .map_err(|_| CallError::NotSent)?;
        loop {
            match read_before(&self.stream, &mut self.reader, self.max_frame, deadline)? {
                FromOwner::Reply { seq: s, ok, error } if s == seq => {
                    return Ok(Outcome { ok, error });
                }
                // A reply to an earlier call this connection gave up on.
                FromOwner::Reply { .. } => {}
                FromOwner::Error { error } => return Err(CallError::Refused(error)),
                other => {
                    return Err(CallError::Protocol(format!(
                        "expected a reply, got {other:?}"
                    )));
                }
            }
        }
    }

    /// Asks the owner to step down; whether it did, before `deadline`.
    pub fn handover(&mut self, version: &str, deadline: Instant) -> bool {
        let frame = wire::frame(&ToOwner::Handover {
            version: version.to_owned(),
        });
        if wire::send_all(&self.stream, &frame).is_err() {
            return false;
        }
        matches!(
            read_before(&self.stream, &mut self.reader, self.max_frame, deadline),
            Ok(FromOwner::SteppedDown { .. })
        )
    }
}
