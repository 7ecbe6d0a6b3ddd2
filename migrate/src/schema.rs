//! The schema model: what a database (or a desired-schema text) defines, as SQLite itself
//! reports it. Built by [`introspect`](crate::introspect) the same way for both sides.

use std::collections::BTreeMap;
use std::fmt;

use litekeep_recover::normalize;

/// A column, from `PRAGMA table_xinfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// The declared type ("" when none).
    pub decl_type: String,
    /// `NOT NULL`.
    pub not_null: bool,
    /// The `DEFAULT` expression's text.
    pub default: Option<String>,
    /// 1-based position in the primary key, 0 when not part of it.
    pub pk: u32,
    /// 0 normal, 2 generated virtual, 3 generated stored (SQLite's `hidden`).
    pub hidden: i64,
}

impl Column {
    /// A generated column: computed, never copied.
    pub fn is_generated(&self) -> bool {
        self.hidden == 2 || self.hidden == 3
    }
}

/// A table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// Its name, as stored.
    pub name: String,
    /// Its `CREATE TABLE` statement, as stored.
    pub sql: String,
    /// Its columns in order.
    pub columns: Vec<Column>,
    /// `WITHOUT ROWID`.
    pub without_rowid: bool,
    /// The names of the tables its foreign keys reference.
    pub references: Vec<String>,
    /// Whether its primary key has an index of its own — then no column aliases the rowid,
    /// even a single `INTEGER PRIMARY KEY DESC` one (SQLite's documented quirk).
    pub pk_indexed: bool,
}

impl Table {
    /// The column named `name` (case-insensitive, as SQLite compares identifiers).
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// The column that aliases the rowid (`INTEGER PRIMARY KEY`, but not `… DESC`), if any.
    pub fn rowid_alias(&self) -> Option<&Column> {
        if self.without_rowid
            || self.pk_indexed
            || self.columns.iter().filter(|c| c.pk > 0).count() != 1
        {
            return None;
        }
        self.columns
            .iter()
            .find(|c| c.pk == 1 && c.decl_type.eq_ignore_ascii_case("integer"))
    }
}

/// An index, view or trigger: a name, the table it belongs to, and its statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    /// Its name, as stored.
    pub name: String,
    /// The table it is on (for a view: the view itself).
    pub table: String,
    /// Its `CREATE` statement, as stored.
    pub sql: String,
}

/// Everything a schema defines, keyed by lower-cased name. Internal objects (`sqlite_*`,
/// `_litekeep_*`) and automatic indexes are left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schema {
    /// Tables.
    pub tables: BTreeMap<String, Table>,
    /// Indexes created with `CREATE INDEX`.
    pub indexes: BTreeMap<String, Object>,
    /// Views.
    pub views: BTreeMap<String, Object>,
    /// Triggers.
    pub triggers: BTreeMap<String, Object>,
    /// The `@renamed` annotations of a desired-schema text ([`Schema::from_sql`]); none for a
    /// schema read from a database.
    pub annotations: Vec<crate::annotations::Annotation>,
}

/// A stable 64-bit fingerprint of a schema's normalized statements (FNV-1a), shown in hex.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub u64);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl Schema {
    /// Whether the schema defines nothing. Example: [`Schema::fingerprint`].
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
            && self.indexes.is_empty()
            && self.views.is_empty()
            && self.triggers.is_empty()
    }

    /// The normalized statements of every object, sorted: two schemas are the same exactly
    /// when these are. Example: [`Schema::fingerprint`].
    pub fn statements(&self) -> Vec<String> {
        let objects = self
            .indexes
            .values()
            .chain(self.views.values())
            .chain(self.triggers.values());
        let mut all: Vec<String> = self
            .tables
            .values()
            .map(|t| normalize(&t.sql))
            .chain(objects.map(|o| normalize(&o.sql)))
            .collect();
        all.sort();
        all
    }

    /// The fingerprint of [`Schema::statements`]: equal for equal schemas, whatever the
    /// statements' order, case and spacing.
    ///
    /// ```
    /// use litekeep_migrate::Schema;
    /// let a = Schema::from_sql("CREATE TABLE t (a INT); CREATE TABLE u (b INT);")?;
    /// let b = Schema::from_sql("create table u (b INT);\ncreate table t (a INT);")?;
    /// assert_eq!(a.statements(), b.statements());
    /// assert_eq!(a.fingerprint(), b.fingerprint());
    /// assert!(!a.is_empty() && Schema::from_sql("")?.is_empty());
    /// # Ok::<(), litekeep_migrate::MigrateError>(())
    /// ```
    pub fn fingerprint(&self) -> Fingerprint {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for stmt in self.statements() {
            for b in stmt.bytes().chain([0u8]) {
                hash ^= u64::from(b);
                hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        Fingerprint(hash)
    }

    /// What differs between `self` and `other`, one line per object, for error messages:
    /// `- statement` only in `self`, `+ statement` only in `other`.
    ///
    /// ```
    /// use litekeep_migrate::Schema;
    /// let a = Schema::from_sql("CREATE TABLE t (a INT);")?;
    /// let b = Schema::from_sql("CREATE TABLE t (a INT, b INT);")?;
    /// assert_eq!(a.describe_difference(&b).len(), 2);
    /// # Ok::<(), litekeep_migrate::MigrateError>(())
    /// ```
    pub fn describe_difference(&self, other: &Schema) -> Vec<String> {
        let mine = self.statements();
        let theirs = other.statements();
        let mut lines: Vec<String> = mine
            .iter()
            .filter(|s| !theirs.contains(s))
            .map(|s| format!("- {s}"))
            .collect();
        lines.extend(
            theirs
                .iter()
                .filter(|s| !mine.contains(s))
                .map(|s| format!("+ {s}")),
        );
        lines
    }
}
