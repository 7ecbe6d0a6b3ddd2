//! [`Value`]: one SQL value as it travels in a request's parameters and a response's rows,
//! written as the plain CBOR item of its kind (null, integer, float, text, byte string).

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

/// One SQL value: CBOR null, an integer (`i64`), a float (`f64`, NaN and infinities
/// included), text, a byte string (kept byte for byte: embeddings are blobs). Results of
/// DuckDB's nested types come as [`Value::List`] (a CBOR array) and [`Value::Map`] (a CBOR map
/// with text keys); they are not accepted as parameters.
///
/// ```
/// use litekeep::serve::Value;
/// let v: Value = 7i64.into();
/// let bytes = litekeep::owner::wire::encode(&v).unwrap();
/// assert_eq!(bytes, [0x07]); // the CBOR integer 7
/// let back: Value = litekeep::owner::wire::decode(&bytes).unwrap();
/// assert_eq!(back, Value::Integer(7));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// SQL NULL (CBOR null; CBOR undefined reads as it too).
    Null,
    /// An integer (a CBOR integer; a CBOR boolean reads as 0 or 1).
    Integer(i64),
    /// A float (a CBOR float of any width).
    Real(f64),
    /// Text (a CBOR text string).
    Text(String),
    /// Bytes (a CBOR byte string).
    Blob(Vec<u8>),
    /// A list (DuckDB `LIST` and `ARRAY` results): a CBOR array.
    List(Vec<Value>),
    /// A structure (DuckDB `STRUCT` and `MAP` results): a CBOR map, its keys text, in order.
    Map(Vec<(String, Value)>),
}

impl Value {
    /// The kind's name, for messages: `null`, `integer`, `float`, `text`, `bytes`, `list`,
    /// `map`.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Integer(_) => "integer",
            Value::Real(_) => "float",
            Value::Text(_) => "text",
            Value::Blob(_) => "bytes",
            Value::List(_) => "list",
            Value::Map(_) => "map",
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Integer(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Real(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Blob(v)
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Value {
        Value::Blob(v.to_vec())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_none(),
            Value::Integer(i) => s.serialize_i64(*i),
            Value::Real(f) => s.serialize_f64(*f),
            Value::Text(t) => s.serialize_str(t),
            Value::Blob(b) => s.serialize_bytes(b),
            Value::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a SQL value: null, an integer, a float, text or a byte string")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Integer(i64::from(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Integer(v))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Integer)
            .map_err(|_| E::custom(format!("the integer {v} does not fit 64 bits")))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Integer)
            .map_err(|_| E::custom(format!("the integer {v} does not fit a signed 64 bits")))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Integer)
            .map_err(|_| E::custom(format!("the integer {v} does not fit a signed 64 bits")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Real(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Text(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Text(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Blob(v.to_vec()))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Blob(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            entries.push((k, v));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use litekeep_owner::wire::{decode, encode};

    #[test]
    fn values_are_the_plain_cbor_items_of_their_kind() {
        assert_eq!(encode(&Value::Null).unwrap(), [0xf6]);
        assert_eq!(encode(&Value::Integer(-1)).unwrap(), [0x20]);
        assert_eq!(encode(&Value::Text("a".into())).unwrap(), [0x61, b'a']);
        assert_eq!(encode(&Value::Blob(vec![0, 255])).unwrap(), [0x42, 0, 255]);
        assert_eq!(decode::<Value>(&[0xf5]).unwrap(), Value::Integer(1));
        assert_eq!(decode::<Value>(&[0xf7]).unwrap(), Value::Null);
    }

    #[test]
    fn every_value_round_trips_exactly_floats_included() {
        let all: Vec<u8> = (0..=255).collect();
        let values = [
            Value::Integer(i64::MIN),
            Value::Integer(i64::MAX),
            Value::Real(f64::INFINITY),
            Value::Real(f64::NEG_INFINITY),
            Value::Real(0.1),
            Value::Real(-0.0),
            Value::Real(f64::MIN_POSITIVE),
            Value::Text("héllo\u{0}".into()),
            Value::Blob(all),
            Value::List(vec![Value::Real(1.5), Value::Null]),
            Value::Map(vec![("k".into(), Value::Integer(2))]),
        ];
        for v in values {
            let back: Value = decode(&encode(&v).unwrap()).unwrap();
            match (&v, &back) {
                (Value::Real(a), Value::Real(b)) => assert_eq!(a.to_bits(), b.to_bits()),
                _ => assert_eq!(v, back),
            }
        }
        let nan: Value = decode(&encode(&Value::Real(f64::NAN)).unwrap()).unwrap();
        assert!(matches!(nan, Value::Real(f) if f.is_nan()));
    }

    #[test]
    fn an_integer_over_64_bits_is_refused() {
        // CBOR unsigned 2^64 - 1.
        let big = [0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(decode::<Value>(&big).is_err());
    }
}
