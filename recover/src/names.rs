//! The names migration tools give the temporary table of a table rebuild, and how to tell from a
//! name which table it was made for.
//!
//! Each pattern was read in the tool's own source:
//!
//! | tool | temporary table | order of the rebuild |
//! |---|---|---|
//! | litekeep, seed 001's driver | `temp_X` | rename X to `temp_X`, create X, copy, drop `temp_X` |
//! | Django ≥ 2.2 (`_remake_table`) | `new__X` | create `new__X`, copy, drop X, rename `new__X` to X |
//! | Django 1.x | `X__new` | as above |
//! | Alembic batch mode | `_alembic_tmp_X`, cut to 50 characters | as above |
//! | sqlite-utils `transform` | `X_new_` + 12 hex digits | as above |
//! | Prisma Migrate | `new_X` | as above |
//! | drizzle-kit `push` | `__new_X` | as above |
//! | SQLite docs (`lang_altertable.html`) | `new_X` | as above |
//!
//! `temp_X` and `new_X` are also names people give ordinary tables, so they are *weak*: a table
//! with such a name counts as a leftover only with more evidence (see [`crate::scan`]). The
//! other patterns are *strong*: nobody names a table `_alembic_tmp_files` by hand.

use serde::Serialize;

/// The tool whose naming a leftover table follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Tool {
    /// litekeep-migrate and seed 001's driver: `temp_X`, made by renaming the original.
    Litekeep,
    /// Django ≥ 2.2: `new__X`.
    Django,
    /// Django 1.x: `X__new`.
    DjangoLegacy,
    /// Alembic batch mode: `_alembic_tmp_X` (cut to 50 characters).
    Alembic,
    /// sqlite-utils `transform`: `X_new_` and 12 hex digits.
    SqliteUtils,
    /// drizzle-kit: `__new_X`.
    Drizzle,
    /// Prisma Migrate and the SQLite documentation's procedure: `new_X`.
    PrismaOrSqliteDocs,
}

impl Tool {
    /// Whether the temporary table holds the *old* rows under a new name (litekeep's order:
    /// rename the original away first) rather than a new table being filled (everyone else).
    ///
    /// ```
    /// use litekeep_recover::parse_temp_name;
    /// let litekeep = parse_temp_name("temp_files").unwrap().tool;
    /// let django = parse_temp_name("new__files").unwrap().tool;
    /// assert!(litekeep.renames_original_first() && !django.renames_original_first());
    /// assert!(django.is_strong() && !litekeep.is_strong());
    /// assert_eq!(django.name(), "Django (new__X)");
    /// ```
    pub fn renames_original_first(self) -> bool {
        self == Tool::Litekeep
    }

    /// Whether the name alone is evidence: nobody names an ordinary table like this. Example:
    /// [`Tool::renames_original_first`].
    pub fn is_strong(self) -> bool {
        !matches!(self, Tool::Litekeep | Tool::PrismaOrSqliteDocs)
    }

    /// A short human name. Example: [`Tool::renames_original_first`].
    pub fn name(self) -> &'static str {
        match self {
            Tool::Litekeep => "litekeep (temp_X)",
            Tool::Django => "Django (new__X)",
            Tool::DjangoLegacy => "Django 1.x (X__new)",
            Tool::Alembic => "Alembic batch (_alembic_tmp_X)",
            Tool::SqliteUtils => "sqlite-utils transform (X_new_<hex>)",
            Tool::Drizzle => "drizzle-kit (__new_X)",
            Tool::PrismaOrSqliteDocs => "Prisma / SQLite docs (new_X)",
        }
    }
}

/// What a table name says about being the temporary table of a rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TempName {
    /// The tool whose pattern matched.
    pub tool: Tool,
    /// The original table's name, or (for an Alembic name cut at 50 characters) its beginning.
    pub original: String,
    /// True when `original` is only the beginning of the name (Alembic cut the name short).
    pub truncated: bool,
}

/// Alembic cuts `_alembic_tmp_X` to this many characters.
const ALEMBIC_MAX: usize = 50;
/// The litekeep prefix; litekeep-migrate names its rebuilds' tables with it.
pub const LITEKEEP_PREFIX: &str = "temp_";

/// Reads `name` as the temporary table of a rebuild, trying the most specific patterns first.
///
/// ```
/// use litekeep_recover::{parse_temp_name, Tool};
/// let t = parse_temp_name("new__files").unwrap();
/// assert_eq!((t.tool, t.original.as_str()), (Tool::Django, "files"));
/// let t = parse_temp_name("files_new_0123456789ab").unwrap();
/// assert_eq!((t.tool, t.original.as_str()), (Tool::SqliteUtils, "files"));
/// assert!(parse_temp_name("files").is_none());
/// ```
pub fn parse_temp_name(name: &str) -> Option<TempName> {
    let lower = name.to_ascii_lowercase();
    let plain = |tool, original: &str| {
        (!original.is_empty()).then(|| TempName {
            tool,
            original: original.to_owned(),
            truncated: false,
        })
    };
    if lower.starts_with("_alembic_tmp_") {
        let original = &name["_alembic_tmp_".len()..];
        return (!original.is_empty()).then(|| TempName {
            tool: Tool::Alembic,
            original: original.to_owned(),
            truncated: name.chars().count() >= ALEMBIC_MAX,
        });
    }
    if lower.starts_with("__new_") {
        return plain(Tool::Drizzle, &name["__new_".len()..]);
    }
    if lower.starts_with("new__") {
        return plain(Tool::Django, &name["new__".len()..]);
    }
    if let Some(original) = sqlite_utils_original(name) {
        return plain(Tool::SqliteUtils, original);
    }
    if lower.ends_with("__new") {
        return plain(Tool::DjangoLegacy, &name[..name.len() - "__new".len()]);
    }
    if lower.starts_with(LITEKEEP_PREFIX) {
        return plain(Tool::Litekeep, &name[LITEKEEP_PREFIX.len()..]);
    }
    if lower.starts_with("new_") {
        return plain(Tool::PrismaOrSqliteDocs, &name["new_".len()..]);
    }
    None
}

/// `X_new_` followed by exactly 12 lowercase hex digits → `X`.
fn sqlite_utils_original(name: &str) -> Option<&str> {
    let (head, hex) = name.rsplit_once("_new_")?;
    let hex_ok = hex.len() == 12 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    (hex_ok && !head.is_empty()).then_some(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(name: &str) -> Option<(Tool, String, bool)> {
        parse_temp_name(name).map(|t| (t.tool, t.original, t.truncated))
    }

    #[test]
    fn every_tool_pattern_is_recognised() {
        let cases = [
            ("temp_files", Tool::Litekeep, "files"),
            ("new__files", Tool::Django, "files"),
            ("files__new", Tool::DjangoLegacy, "files"),
            ("_alembic_tmp_files", Tool::Alembic, "files"),
            ("files_new_a1b2c3d4e5f6", Tool::SqliteUtils, "files"),
            ("__new_files", Tool::Drizzle, "files"),
            ("new_files", Tool::PrismaOrSqliteDocs, "files"),
            ("new_Files_Two", Tool::PrismaOrSqliteDocs, "Files_Two"),
        ];
        for (name, tool, original) in cases {
            assert_eq!(
                parsed(name),
                Some((tool, original.to_owned(), false)),
                "{name}"
            );
        }
    }

    #[test]
    fn ordinary_names_are_not_leftovers() {
        for name in [
            "files",
            "temp",
            "new_",
            "news",
            "files_new_xyz",
            "files_new_A1B2C3D4E5F6",
            "temp_",
        ] {
            assert_eq!(parsed(name), None, "{name}");
        }
    }

    #[test]
    fn a_cut_alembic_name_is_marked_truncated() {
        let long = format!("_alembic_tmp_{}", "x".repeat(60));
        let cut: String = long.chars().take(ALEMBIC_MAX).collect();
        let t = parse_temp_name(&cut).expect("alembic");
        assert!(t.truncated);
        assert_eq!(t.original.len(), ALEMBIC_MAX - "_alembic_tmp_".len());
    }

    #[test]
    fn strength_follows_how_ordinary_the_name_is() {
        assert!(!Tool::Litekeep.is_strong());
        assert!(!Tool::PrismaOrSqliteDocs.is_strong());
        assert!(Tool::Django.is_strong() && Tool::Alembic.is_strong() && Tool::Drizzle.is_strong());
    }
}
