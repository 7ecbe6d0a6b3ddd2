//! The wire format: length-prefixed frames, each one CBOR data item (RFC 8949), and the
//! messages they carry. The crate docs' "Protocol" section is the reference for other languages.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::AsFd;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::failure::Failure;

/// The protocol version this crate speaks.
pub const PROTOCOL: u32 = 1;

/// The default limit on a frame's payload (16 MiB).
pub const DEFAULT_MAX_FRAME: u32 = 16 * 1024 * 1024;

/// A client's first frame.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version the client speaks.
    pub protocol: u32,
    /// The client's id: 16 random bytes, the same for every connection of one client.
    #[serde(with = "bytes")]
    pub client: Vec<u8>,
    /// The client's program name.
    #[serde(default)]
    pub program: String,
    /// The client's program version (dotted numbers).
    #[serde(default)]
    pub version: String,
    /// The schema fingerprint the client expects, if any.
    #[serde(default)]
    pub fingerprint: Option<String>,
}

/// The owner's answer to a [`Hello`] it accepts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Welcome {
    /// The protocol version the owner speaks.
    pub protocol: u32,
    /// The owner's program name.
    pub program: String,
    /// The owner's program version.
    pub version: String,
    /// The owner's schema fingerprint, if any.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// The owner's generation.
    pub generation: u64,
    /// The owner's process id.
    pub pid: u32,
    /// The largest frame payload the owner reads.
    pub max_frame: u32,
    /// Whether the owner records each call's outcome with its writes (a retry with the same
    /// client id and sequence number then gets the recorded outcome).
    pub records_outcomes: bool,
    /// What else the service tells its clients ([`Options::info`](crate::Options::info)), as
    /// more text keys of the welcome map (`"engine": "duckdb"`). Reading a welcome, every key
    /// this version does not know whose value is text lands here.
    #[serde(flatten, with = "info")]
    pub info: BTreeMap<String, String>,
}

/// The welcome's extra keys: written as text entries of the map; read leniently, keeping the
/// text ones and skipping the others, so that a later version may add keys of any type.
mod info {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &BTreeMap<String, String>, s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, String>, D::Error> {
        let all = BTreeMap::<String, ciborium::Value>::deserialize(d)?;
        Ok(all
            .into_iter()
            .filter_map(|(k, v)| v.into_text().ok().map(|t| (k, t)))
            .collect())
    }
}

/// A frame a client sends.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ToOwner {
    /// The first frame of a connection.
    Hello(Hello),
    /// A request.
    Call {
        /// The client's sequence number of this request; the reply carries it back.
        seq: u64,
        /// Every request of this client numbered below this has been answered and will not
        /// be sent again: the owner may forget their outcomes.
        #[serde(default)]
        acked_below: u64,
        /// The client may have sent this request before (to this or an earlier owner): the
        /// owner looks up its recorded outcome only then.
        #[serde(default)]
        retry: bool,
        /// The application's request, one CBOR item, as a byte string.
        #[serde(with = "bytes")]
        body: Vec<u8>,
    },
    /// Asks the owner to step down for a newer program version.
    Handover {
        /// The asking client's program version.
        version: String,
    },
}

/// A frame the owner sends.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum FromOwner {
    /// The hello is accepted.
    Welcome(Welcome),
    /// The answer to a call.
    Reply {
        /// The call's sequence number.
        seq: u64,
        /// The application's response, one CBOR item, as a byte string.
        #[serde(default, with = "opt_bytes", skip_serializing_if = "Option::is_none")]
        ok: Option<Vec<u8>>,
        /// The failure, when there is no response.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<Failure>,
    },
    /// A failure of the connection; the owner closes it after this frame.
    Error {
        /// What went wrong.
        error: Failure,
    },
    /// The answer to a handover: the owner has stepped down and released the owner lock.
    SteppedDown {
        /// The generation that ended.
        generation: u64,
    },
}

impl FromOwner {
    /// The reply to call `seq` with `outcome`.
    pub fn reply(seq: u64, outcome: Outcome) -> FromOwner {
        FromOwner::Reply {
            seq,
            ok: outcome.ok,
            error: outcome.error,
        }
    }
}

/// A call's outcome on the wire: `{"ok": bytes}` or `{"error": failure}`. Its CBOR encoding is
/// also what an owner that records outcomes stores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The application's response, one CBOR item, as a byte string.
    #[serde(default, with = "opt_bytes", skip_serializing_if = "Option::is_none")]
    pub ok: Option<Vec<u8>>,
    /// The failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
}

impl Outcome {
    /// The outcome as a result.
    pub fn into_result(self) -> Result<Vec<u8>, Failure> {
        match (self.ok, self.error) {
            (_, Some(e)) => Err(e),
            (Some(ok), None) => Ok(ok),
            (None, None) => Err(Failure::new(
                crate::FailureKind::BadFrame,
                "a reply with neither ok nor error",
            )),
        }
    }

    /// A result as an outcome.
    pub fn from_result(r: Result<Vec<u8>, Failure>) -> Outcome {
        match r {
            Ok(ok) => Outcome {
                ok: Some(ok),
                error: None,
            },
            Err(e) => Outcome {
                ok: None,
                error: Some(e),
            },
        }
    }
}

/// A call frame, without copying the body.
pub fn call_frame(seq: u64, acked_below: u64, retry: bool, body: &[u8]) -> Vec<u8> {
    #[derive(Serialize)]
    struct CallRef<'a> {
        t: &'static str,
        seq: u64,
        acked_below: u64,
        retry: bool,
        #[serde(with = "bytes")]
        body: &'a [u8],
    }
    frame(&CallRef {
        t: "call",
        seq,
        acked_below,
        retry,
        body,
    })
}

/// Encodes `value` as one CBOR item.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Decodes one CBOR item; trailing bytes are an error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let mut reader = bytes;
    let value = ciborium::from_reader(&mut reader).map_err(|e| e.to_string())?;
    if !reader.is_empty() {
        return Err(format!("{} bytes after the CBOR item", reader.len()));
    }
    Ok(value)
}

/// `message` as a frame: its length as four big-endian bytes, then its CBOR encoding.
pub fn frame<T: Serialize>(message: &T) -> Vec<u8> {
    let mut out = vec![0u8; 4];
    // Our own messages always encode (no maps with non-text keys, no unsupported types).
    let _ = ciborium::into_writer(message, &mut out);
    let len = u32::try_from(out.len() - 4).unwrap_or(u32::MAX);
    out[..4].copy_from_slice(&len.to_be_bytes());
    out
}

/// Sends all of `bytes` on a socket, without SIGPIPE when the peer is gone.
pub fn send_all(fd: impl AsFd, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match rustix::net::send(&fd, bytes, rustix::net::SendFlags::NOSIGNAL) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Why a frame could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection before a frame began.
    Closed,
    /// The announced length is over the limit.
    TooLarge(u64),
    /// The connection failed, timed out or closed in the middle of a frame.
    Io(io::Error),
}

/// Reads one frame's payload from `reader`, refusing lengths over `max`. `rest_timeout` bounds
/// the wait for the rest of a frame once its first bytes are in (set with `set_timeout` only
/// when the frame is not already buffered whole, and unset after).
pub fn read_frame<R: Read>(
    reader: &mut BufReader<R>,
    max: u32,
    mut set_timeout: impl FnMut(Option<Duration>),
    rest_timeout: Option<Duration>,
) -> Result<Vec<u8>, ReadError> {
    // Blocks, without a timeout of its own, until the frame's first bytes come.
    if reader.fill_buf().map_err(ReadError::Io)?.is_empty() {
        return Err(ReadError::Closed);
    }
    let mut timed = false;
    let mut header = [0u8; 4];
    if reader.buffer().len() >= 4 {
        header.copy_from_slice(&reader.buffer()[..4]);
        reader.consume(4);
    } else {
        set_timeout(rest_timeout);
        timed = true;
        reader.read_exact(&mut header).map_err(ReadError::Io)?;
    }
    let len = u32::from_be_bytes(header);
    if len > max {
        return Err(ReadError::TooLarge(u64::from(len)));
    }
    let len = len as usize;
    let mut payload = Vec::with_capacity(len.min(64 * 1024));
    if reader.buffer().len() >= len {
        payload.extend_from_slice(&reader.buffer()[..len]);
        reader.consume(len);
    } else {
        // The rest of a frame that began must come within the timeout.
        if !timed {
            set_timeout(rest_timeout);
            timed = true;
        }
        let got = reader
            .take(len as u64)
            .read_to_end(&mut payload)
            .map_err(ReadError::Io)?;
        if got < len {
            return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
    }
    if timed {
        set_timeout(None);
    }
    Ok(payload)
}

/// Byte strings for `Vec<u8>` fields (serde would write an array of numbers).
pub mod bytes {
    use serde::{Deserializer, Serializer};

    /// Writes a CBOR byte string.
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    /// Reads a CBOR byte string (or an array of small numbers).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(Visitor)
    }

    pub(super) struct Visitor;

    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::new();
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }
}

/// Byte strings for `Option<Vec<u8>>` fields.
mod opt_bytes {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_bytes(v),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        d.deserialize_option(OptVisitor)
    }

    struct OptVisitor;

    impl<'de> serde::de::Visitor<'de> for OptVisitor {
        type Value = Option<Vec<u8>>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a byte string or null")
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            super::bytes::deserialize(d).map(Some)
        }

        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
            Ok(Some(v.to_vec()))
        }

        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::FailureKind;

    #[test]
    fn messages_round_trip_with_bytes_as_byte_strings() {
        let call = ToOwner::Call {
            seq: 7,
            acked_below: 3,
            retry: false,
            body: vec![0, 255, 1],
        };
        let f = frame(&call);
        assert_eq!(
            u32::from_be_bytes(f[..4].try_into().unwrap()) as usize,
            f.len() - 4
        );
        // A CBOR byte string of 3 bytes is 0x43 followed by them.
        assert!(f.windows(4).any(|w| w == [0x43, 0, 255, 1]), "{f:?}");
        match decode::<ToOwner>(&f[4..]).unwrap() {
            ToOwner::Call {
                seq,
                acked_below,
                body,
                ..
            } => {
                assert_eq!((seq, acked_below, body), (7, 3, vec![0, 255, 1]));
            }
            other => panic!("{other:?}"),
        }
        for outcome in [
            Outcome::from_result(Ok(vec![1, 2])),
            Outcome::from_result(Err(Failure::new(FailureKind::QueueFull, "full"))),
        ] {
            let reply = FromOwner::reply(9, outcome.clone());
            match decode::<FromOwner>(&frame(&reply)[4..]).unwrap() {
                FromOwner::Reply { seq: 9, ok, error } => {
                    assert_eq!(Outcome { ok, error }, outcome)
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn unknown_fields_are_ignored_and_unknown_kinds_read_as_other() {
        #[derive(Serialize)]
        struct Future {
            t: &'static str,
            seq: u64,
            error: FutureFailure,
            extra: u32,
        }
        #[derive(Serialize)]
        struct FutureFailure {
            kind: &'static str,
            message: &'static str,
            applied: &'static str,
        }
        let bytes = encode(&Future {
            t: "reply",
            seq: 1,
            error: FutureFailure {
                kind: "new_kind",
                message: "m",
                applied: "no",
            },
            extra: 5,
        })
        .unwrap();
        match decode::<FromOwner>(&bytes).unwrap() {
            FromOwner::Reply { error, .. } => {
                assert_eq!(error.unwrap().kind, FailureKind::Other);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_welcome_carries_the_services_info_as_keys_of_its_own() {
        let welcome = Welcome {
            protocol: PROTOCOL,
            program: "p".into(),
            version: "1".into(),
            fingerprint: None,
            generation: 3,
            pid: 42,
            max_frame: 1024,
            records_outcomes: true,
            info: [("engine".to_owned(), "duckdb".to_owned())].into(),
        };
        let bytes = frame(&FromOwner::Welcome(welcome));
        // On the wire: a key of the welcome map itself, `"engine": "duckdb"`.
        let value: ciborium::Value = decode(&bytes[4..]).unwrap();
        let map = value.as_map().unwrap();
        let engine = map.iter().find(|(k, _)| k.as_text() == Some("engine"));
        assert_eq!(engine.and_then(|(_, v)| v.as_text()), Some("duckdb"));
        match decode::<FromOwner>(&bytes[4..]).unwrap() {
            FromOwner::Welcome(w) => {
                assert_eq!(w.info.len(), 1, "{:?}", w.info);
                assert_eq!(w.info["engine"], "duckdb");
                assert_eq!((w.pid, w.generation), (42, 3));
            }
            other => panic!("{other:?}"),
        }
        // A later version's key of another type is skipped, not an error.
        #[derive(Serialize)]
        struct Later {
            t: &'static str,
            protocol: u32,
            program: &'static str,
            version: &'static str,
            generation: u64,
            pid: u32,
            max_frame: u32,
            records_outcomes: bool,
            engine: &'static str,
            limits: [u32; 2],
        }
        let later = encode(&Later {
            t: "welcome",
            protocol: PROTOCOL,
            program: "p",
            version: "2",
            generation: 1,
            pid: 1,
            max_frame: 1,
            records_outcomes: false,
            engine: "sqlite",
            limits: [1, 2],
        })
        .unwrap();
        match decode::<FromOwner>(&later).unwrap() {
            FromOwner::Welcome(w) => {
                assert_eq!(w.info, [("engine".into(), "sqlite".into())].into())
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn frames_over_the_limit_are_refused_before_reading_them() {
        let mut bytes = (1000u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0; 10]);
        let mut r = io::BufReader::new(&bytes[..]);
        assert!(matches!(
            read_frame(&mut r, 100, |_| {}, None),
            Err(ReadError::TooLarge(1000))
        ));
        let mut cut = io::BufReader::new(&[0u8, 0, 0, 9, 1, 2][..]);
        assert!(matches!(
            read_frame(&mut cut, 100, |_| {}, None),
            Err(ReadError::Io(_))
        ));
        let mut none = io::BufReader::new(&[][..]);
        assert!(matches!(
            read_frame(&mut none, 100, |_| {}, None),
            Err(ReadError::Closed)
        ));
    }
}
