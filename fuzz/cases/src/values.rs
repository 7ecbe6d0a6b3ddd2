//! Values of every storage class (the weights `recover/tests/proptest_crash.rs` had when it drew
//! its own), and their SQL literals.

use arbitrary::{Result, Unstructured};
use rusqlite::types::Value;

/// REALs whose text forms and conversions are worth a look.
const REALS: [f64; 9] = [
    0.1,
    0.1 + 0.2,
    2.5,
    3.0,
    -0.0,
    1e20,
    1.0 / 3.0,
    123_456_789.123_456_78,
    f64::INFINITY,
];

/// Texts that look like numbers, NULL, quotes, and non-ASCII.
const TEXTS: [&str; 13] = [
    "",
    "abc",
    "12",
    "3.5",
    " 7 ",
    "1e2",
    "0x1F",
    "-0",
    "NULL",
    "it's",
    "Ünïcødé",
    "9223372036854775808",
    "0.30000000000000004",
];

/// The alphabet of free-form texts (`[a-z0-9 .]`).
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789 .";

/// A REAL: one of [`REALS`], a small one, or any finite `f64`.
pub(crate) fn real(u: &mut Unstructured<'_>) -> Result<f64> {
    Ok(match u.int_in_range(0u8..=2)? {
        0 => *u.choose(&REALS)?,
        1 => f64::from(u.int_in_range(-1_000_000i32..=1_000_000)?) / 8.0,
        _ => {
            let f = f64::from_bits(u.arbitrary()?);
            if f.is_finite() { f } else { 1.5 }
        }
    })
}

/// A TEXT: one of [`TEXTS`] or up to 6 characters of [`ALPHABET`].
pub(crate) fn text(u: &mut Unstructured<'_>) -> Result<String> {
    if u.arbitrary()? {
        return Ok((*u.choose(&TEXTS)?).to_owned());
    }
    let len = u.int_in_range(0usize..=6)?;
    (0..len)
        .map(|_| u.choose(ALPHABET).map(|&b| char::from(b)))
        .collect()
}

/// A value of any storage class, weighted NULL 2, INTEGER 3, REAL 3, TEXT 3, BLOB 1.
pub(crate) fn value(u: &mut Unstructured<'_>) -> Result<Value> {
    Ok(match u.int_in_range(0u8..=11)? {
        0..=1 => Value::Null,
        2..=4 => Value::Integer(if u.arbitrary()? {
            u.arbitrary()?
        } else {
            u.int_in_range(-1000..=999)?
        }),
        5..=7 => Value::Real(real(u)?),
        8..=10 => Value::Text(text(u)?),
        _ => {
            let len = u.int_in_range(0usize..=3)?;
            Value::Blob(u.bytes(len)?.to_vec())
        }
    })
}

/// A value as a SQL literal (infinities as `9e999`, which SQLite reads back as infinite).
pub(crate) fn lit(v: &Value) -> String {
    match v {
        Value::Null => "NULL".to_owned(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) if f.is_infinite() => {
            if *f > 0.0 {
                "9e999".to_owned()
            } else {
                "-9e999".to_owned()
            }
        }
        Value::Real(f) => format!("{f:?}"),
        Value::Text(s) => format!("'{}'", s.replace('\'', "''")),
        Value::Blob(b) => {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            format!("X'{hex}'")
        }
    }
}

/// A value as SQLite stores it, TEXT as raw bytes: SQLite lets a TEXT value hold invalid UTF-8
/// (`CAST(X'fc' AS TEXT)`), which `rusqlite::types::Value` cannot read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Stored {
    Null,
    Integer(i64),
    Real(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl rusqlite::types::FromSql for Stored {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        use rusqlite::types::ValueRef;
        Ok(match v {
            ValueRef::Null => Stored::Null,
            ValueRef::Integer(i) => Stored::Integer(i),
            ValueRef::Real(f) => Stored::Real(f),
            ValueRef::Text(t) => Stored::Text(t.to_vec()),
            ValueRef::Blob(b) => Stored::Blob(b.to_vec()),
        })
    }
}

impl rusqlite::types::ToSql for Stored {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Stored::Null => ValueRef::Null,
            Stored::Integer(i) => ValueRef::Integer(*i),
            Stored::Real(f) => ValueRef::Real(*f),
            Stored::Text(t) => ValueRef::Text(t),
            Stored::Blob(b) => ValueRef::Blob(b),
        }))
    }
}
