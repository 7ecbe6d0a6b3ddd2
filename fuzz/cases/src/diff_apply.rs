//! The `diff_apply` campaign: a schema, edits that turn it into a desired one, rows.
//!
//! The case creates the first schema (`v1`) in an in-memory database, inserts its rows with
//! `foreign_keys` off (rows SQLite refuses are skipped), snapshots everything, then plans with
//! [`litekeep_migrate::diff`] and runs the plan with [`litekeep_migrate::apply`] towards the
//! second schema (`v2`, the first with the edits applied), `allow_data_loss` and
//! `keep_undeclared` as the input says. Each table, column or index the edits renamed is given
//! either as a rename hint (`Options::rename`) or as a `@renamed from=OLD` annotation written
//! into v2's text — the input chooses, per rename, which, where the comment goes (every place
//! `litekeep_migrate` documents for a table, a column or an index) and how OLD is spelled
//! (bare, `"…"`, `'…'`, `` `…` ``, `[…]`; its case changed or not). A rename whose old name v1
//! lacks gets no hint, but may get an annotation, which `diff` must ignore.
//!
//! - Always: the annotated text reads as the same schema as the plain one, with exactly the
//!   annotations written; the plan keeps nothing without `keep_undeclared`.
//! - `Ok`: the database's schema is the desired one (as [`Schema::from_sql`] reads it), every row
//!   of every kept table (same name, or renamed by a hint or annotation) is still there — found
//!   by `id`, and by rowid where a rebuild keeps rowids — with every column both definitions
//!   have (same name, or renamed; generated in neither) holding the value SQLite's conversion to
//!   the new declared type gives, `integrity_check` is ok, no `temp_*` table is left, every view
//!   works, a second `diff` with the same options and the annotations still in the text (but
//!   without the hints, which are one-shot) is empty and `up_to_date` agrees, and the
//!   `foreign_keys` and `legacy_alter_table` pragmas are as they were;
//! - with `keep_undeclared`, on top: `plan.kept` lists exactly what v2 does not declare (v1's
//!   tables no v2 table takes the rows of; the columns of a table v2 neither has nor renames;
//!   v1's indexes, not renamed, views and triggers v2 lacks), the plan drops nothing but the
//!   values of a column v2 makes generated, and after `Ok` the schema is exactly v2 plus those
//!   (each kept column's v1 definition written into its v2 table after the column before it in
//!   v1; the kept objects' v1 statements), kept tables hold exactly their rows and kept columns
//!   their values; a database that is already v2 plus what it keeps, reckoned with no rename,
//!   is left as it is, every hint and annotation ignored (they were carried out before, and an
//!   old name is in use again: an older program of a rolling deploy recreated it);
//! - `Err`: the schema and every row of every table are exactly as before, and the pragmas too.
//!   `MigrateError::Verify` ("please report this") is a violation in itself.
//!
//! The generator draws from small name pools, so that both schemas share tables and columns.
//! Every table has an `id` column (its primary key, part of it, or a plain column): rows get
//! distinct ids, which identify them across any rebuild.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use arbitrary::{Arbitrary, Result as ArbResult, Unstructured};
use litekeep_migrate::{
    MigrateError, ObjectKind, Options, Plan, Rename, Schema, StepKind, apply, diff, normalize,
    quote_ident, up_to_date,
};
use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};

use crate::values::{Stored, lit, value};

const TABLE_NAMES: [&str; 4] = ["t0", "t1", "Items", "order"];
const COLUMN_NAMES: [&str; 6] = ["a", "b", "Name", "value", "group", "x y"];
const INDEX_NAMES: [&str; 3] = ["i0", "i1", "i2"];
const VIEW_NAMES: [&str; 2] = ["v0", "v1"];
const TRIGGER_NAMES: [&str; 3] = ["tr0", "tr1", "tr2"];
/// SQL keywords among the pools: always quoted.
const KEYWORDS: [&str; 2] = ["order", "group"];

const MAX_COLUMNS: usize = 6;
const MAX_OBJECTS: usize = 4;
const MAX_ROWS: usize = 48;
const MAX_EDITS: usize = 8;

/// A name from a pool (index modulo its length), maybe upper-cased: SQLite compares names
/// case-insensitively, and so must litekeep.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
struct Name {
    index: u8,
    upper: bool,
}

impl Name {
    fn slot(self, pool: &[&str]) -> usize {
        usize::from(self.index) % pool.len()
    }

    fn text(self, pool: &[&str]) -> String {
        let name = pool[self.slot(pool)];
        if self.upper {
            name.to_uppercase()
        } else {
            name.to_owned()
        }
    }
}

/// An identifier as written: bare when it can be, quoted when it must be or when the schema
/// quotes everything.
fn ident(name: &str, quote_all: bool) -> String {
    let bare = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !KEYWORDS.contains(&name.to_ascii_lowercase().as_str());
    if bare && !quote_all {
        name.to_owned()
    } else {
        quote_ident(name)
    }
}

/// A declared type; STRICT tables get the nearest type STRICT allows.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Integer,
    Int,
    Text,
    Varchar,
    Real,
    Blob,
    Numeric,
    Boolean,
    None,
}

impl Ty {
    fn decl(self, strict: bool) -> &'static str {
        match (self, strict) {
            (Ty::Integer, _) => "INTEGER",
            (Ty::Int, _) => "INT",
            (Ty::Text, _) => "TEXT",
            (Ty::Varchar, false) => "VARCHAR(10)",
            (Ty::Varchar, true) => "TEXT",
            (Ty::Real, _) => "REAL",
            (Ty::Blob, _) => "BLOB",
            (Ty::Numeric, false) => "NUMERIC",
            (Ty::Boolean, false) => "BOOLEAN",
            (Ty::Boolean, true) => "INTEGER",
            (Ty::None, false) => "",
            (Ty::Numeric | Ty::None, true) => "ANY",
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum Nullability {
    Nullable,
    /// `NOT NULL DEFAULT` (the column's default, or 0).
    NotNullDefault,
    /// `NOT NULL` without a default: `ADD COLUMN` cannot add it.
    NotNull,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum DefaultExpr {
    Zero,
    MinusOne,
    Real,
    Text,
    EmptyText,
    Blob,
    Null,
    True,
    CurrentTimestamp,
    Sum,
    Concat,
    Random,
}

impl DefaultExpr {
    fn sql(self) -> &'static str {
        match self {
            DefaultExpr::Zero => "0",
            DefaultExpr::MinusOne => "-1",
            DefaultExpr::Real => "1.5",
            DefaultExpr::Text => "'none'",
            DefaultExpr::EmptyText => "''",
            DefaultExpr::Blob => "X'00ff'",
            DefaultExpr::Null => "NULL",
            DefaultExpr::True => "TRUE",
            DefaultExpr::CurrentTimestamp => "CURRENT_TIMESTAMP",
            DefaultExpr::Sum => "(1 + 1)",
            DefaultExpr::Concat => "('a' || 'b')",
            DefaultExpr::Random => "(abs(random()) % 10)",
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    ShortText,
    NonNegative,
    NotBlob,
    InList,
}

impl Check {
    fn sql(self, col: &str) -> String {
        match self {
            Check::ShortText => format!("CHECK (length(CAST({col} AS TEXT)) < 5)"),
            Check::NonNegative => format!("CHECK ({col} IS NULL OR {col} >= 0)"),
            Check::NotBlob => format!("CHECK (typeof({col}) <> 'blob')"),
            Check::InList => format!("CHECK ({col} IN (0, 1, 2, 'a', 'B') OR {col} IS NULL)"),
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum Collation {
    Nocase,
    Rtrim,
    Binary,
}

impl Collation {
    fn sql(self) -> &'static str {
        match self {
            Collation::Nocase => "NOCASE",
            Collation::Rtrim => "RTRIM",
            Collation::Binary => "BINARY",
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum GenExpr {
    Concat,
    Double,
    Length,
    Upper,
}

/// `GENERATED ALWAYS AS (<expr over another column>) VIRTUAL|STORED`.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
struct Generated {
    expr: GenExpr,
    /// Which plain column (modulo their number; `id` when there is none).
    source: u8,
    stored: bool,
}

#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
struct ColumnSpec {
    name: Name,
    ty: Ty,
    null: Nullability,
    default: Option<DefaultExpr>,
    unique: bool,
    check: Option<Check>,
    collate: Option<Collation>,
    generated: Option<Generated>,
    /// Its name before the first `RenameColumn` edit: the source of a rename hint.
    #[arbitrary(default)]
    was: Option<Name>,
}

#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
enum ColumnChange {
    Type(Ty),
    Null(Nullability),
    Default(Option<DefaultExpr>),
    Unique(bool),
    Check(Option<Check>),
    Collate(Option<Collation>),
    Generated(Option<Generated>),
    Recase,
}

/// How `id` is declared.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    /// `id INTEGER PRIMARY KEY`: the rowid alias.
    IntegerPk,
    /// `id INTEGER PRIMARY KEY AUTOINCREMENT` (never WITHOUT ROWID).
    Autoincrement,
    /// `id INTEGER`, no primary key (never WITHOUT ROWID).
    NoPk,
    /// `id TEXT PRIMARY KEY`.
    TextPk,
    /// `id INTEGER PRIMARY KEY DESC`: SQLite's quirk, not a rowid alias.
    IntegerPkDesc,
    /// `id INTEGER NOT NULL`, `PRIMARY KEY (id, <first plain column>)`.
    Composite,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum FkAction {
    Cascade,
    SetNull,
    Restrict,
}

/// `FOREIGN KEY (<plain column>) REFERENCES <table>(id)`.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
struct ForeignKey {
    column: u8,
    parent: Name,
    on_delete: Option<FkAction>,
    deferred: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct TableSpec {
    name: Name,
    key: Key,
    columns: Vec<ColumnSpec>,
    fk: Option<ForeignKey>,
    /// A table `CHECK (id <> 0)`.
    check: bool,
    without_rowid: bool,
    strict: bool,
    /// Its name before the first `RenameTable` edit: the source of a rename hint.
    was: Option<Name>,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
struct IndexPart {
    /// 0: `id`, then the table's columns (modulo).
    column: u8,
    /// `lower(<column>)` instead of the column.
    expr: bool,
    desc: bool,
    collate: Option<Collation>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct IndexSpec {
    name: Name,
    table: Name,
    unique: bool,
    parts: Vec<IndexPart>,
    /// `WHERE <first column> IS NOT NULL`.
    partial: bool,
    /// Its name before the first `RenameIndex` edit: the source of an index rename.
    was: Option<Name>,
}

#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
struct ViewSpec {
    name: Name,
    table: Name,
    column: u8,
    join: Option<Name>,
    filter: bool,
    distinct: bool,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Insert,
    Update,
    UpdateOf(u8),
    Delete,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum TriggerAction {
    /// Inserts a row with id `<row's id> + 1000` into a table, unless one exists.
    InsertInto(Name),
    /// A no-op update of a table.
    Touch(Name),
    /// Deletes the row with the next id from a table.
    DeleteFrom(Name),
    /// `RAISE(ABORT)` for negative ids.
    Raise,
}

#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
struct TriggerSpec {
    name: Name,
    table: Name,
    before: bool,
    event: Event,
    action: TriggerAction,
    /// `WHEN <row>.id IS NOT NULL`.
    when: bool,
}

#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
enum ObjEdit<T> {
    Add(T),
    Drop(u8),
    Replace(u8, T),
}

impl<T: Clone> ObjEdit<T> {
    fn apply(&self, list: &mut Vec<T>) {
        match self {
            ObjEdit::Add(t) => list.push(t.clone()),
            ObjEdit::Drop(i) if !list.is_empty() => {
                list.remove(usize::from(*i) % list.len());
            }
            ObjEdit::Replace(i, t) if !list.is_empty() => {
                let n = list.len();
                list[usize::from(*i) % n] = t.clone();
            }
            ObjEdit::Drop(_) | ObjEdit::Replace(..) => {}
        }
    }
}

/// One change from the current schema towards the desired one.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
enum Edit {
    DropTable(u8),
    AddTable(TableSpec),
    /// A new definition under the same name.
    ReplaceTable(u8, TableSpec),
    DropColumn(u8, u8),
    /// Appended: `ADD COLUMN` may do.
    AddColumn(u8, ColumnSpec),
    InsertColumn(u8, u8, ColumnSpec),
    ChangeColumn(u8, u8, ColumnChange),
    MoveColumn(u8, u8, u8),
    SetKey(u8, Key),
    ToggleWithoutRowid(u8),
    ToggleStrict(u8),
    SetForeignKey(u8, Option<ForeignKey>),
    ToggleCheck(u8),
    RecaseTable(u8),
    Index(ObjEdit<IndexSpec>),
    View(ObjEdit<ViewSpec>),
    Trigger(ObjEdit<TriggerSpec>),
    ToggleQuoting,
    /// Renamed, with a rename hint (`old=new`), when the new name is free.
    RenameTable(u8, Name),
    /// Renamed, with a rename hint (`t.old=t.new`), when the new name is free in the table.
    RenameColumn(u8, u8, Name),
    /// Two tables swap names, with a rename hint each.
    SwapTables(u8, u8),
    /// Renamed (`index:old=new`), when the new name is free.
    RenameIndex(u8, Name),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct SchemaSpec {
    tables: Vec<TableSpec>,
    indexes: Vec<IndexSpec>,
    views: Vec<ViewSpec>,
    triggers: Vec<TriggerSpec>,
    quote_all: bool,
}

/// A value to insert: the column's default, or a value.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Default,
    Value(Value),
}

/// Texts that meet NOCASE and RTRIM collations and the CHECKs.
const CASE_TEXTS: [&str; 6] = ["a", "A", "a ", "B", "xyz", "hello world"];

impl<'a> Arbitrary<'a> for Cell {
    fn arbitrary(u: &mut Unstructured<'a>) -> ArbResult<Self> {
        Ok(match u.int_in_range(0u8..=9)? {
            0 => Cell::Default,
            1 => Cell::Value(Value::Null),
            2..=4 => Cell::Value(Value::Integer(u.int_in_range(-3..=12)?)),
            5..=6 => Cell::Value(Value::Text((*u.choose(&CASE_TEXTS)?).to_owned())),
            _ => Cell::Value(value(u)?),
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
struct RowSpec {
    /// Which of the first schema's tables (modulo their number).
    table: u8,
    /// Given to the table's plain columns in order, cycling; none: all defaults.
    cells: Vec<Cell>,
}

/// How one rename of the edits reaches `diff`: a hint (`Options::rename`), or a `@renamed`
/// comment in the desired schema's text — where ([`Note::form`], modulo the places that kind
/// of object has), and how the old name is written ([`Note::quote`]).
#[derive(Arbitrary, Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Note {
    annotate: bool,
    form: u8,
    /// Modulo 5: bare (when the name allows), `"…"`, `'…'`, `` `…` ``, `[…]`; divided by 5,
    /// modulo 3: as the hint would spell it, upper-cased, lower-cased.
    quote: u8,
}

/// A `diff_apply` case: the current schema, the edits that make the desired one, the rows,
/// `allow_data_loss`, whether `foreign_keys` is on when the plan is applied, where ids start,
/// `keep_undeclared`, and how each rename is given (hint or annotation).
#[derive(Debug, Clone, PartialEq)]
pub struct DiffCase {
    v1: SchemaSpec,
    edits: Vec<Edit>,
    allow_data_loss: bool,
    foreign_keys_on: bool,
    id_base: i8,
    keep_undeclared: bool,
    /// The k-th rename (tables, then columns, then indexes, as [`DiffCase::renames`] lists
    /// them) is given as `notes[k]` says; past the end, as a hint.
    notes: Vec<Note>,
    /// Last: takes whatever bytes are left.
    rows: Vec<RowSpec>,
}

/// `n` items, `n` drawn from `range` (its low end once the input is used up).
fn some<'a, T: Arbitrary<'a>>(
    u: &mut Unstructured<'a>,
    range: std::ops::RangeInclusive<usize>,
) -> ArbResult<Vec<T>> {
    let n = u.int_in_range(range)?;
    (0..n).map(|_| u.arbitrary()).collect()
}

impl<'a> Arbitrary<'a> for TableSpec {
    fn arbitrary(u: &mut Unstructured<'a>) -> ArbResult<Self> {
        Ok(TableSpec {
            name: u.arbitrary()?,
            key: u.arbitrary()?,
            columns: some(u, 1..=5)?,
            fk: if u.ratio(1u8, 4)? {
                Some(u.arbitrary()?)
            } else {
                None
            },
            check: u.ratio(1u8, 6)?,
            without_rowid: u.ratio(1u8, 4)?,
            strict: u.ratio(1u8, 5)?,
            was: None,
        })
    }
}

impl<'a> Arbitrary<'a> for IndexSpec {
    fn arbitrary(u: &mut Unstructured<'a>) -> ArbResult<Self> {
        Ok(IndexSpec {
            name: u.arbitrary()?,
            table: u.arbitrary()?,
            unique: u.ratio(1u8, 3)?,
            parts: some(u, 1..=2)?,
            partial: u.ratio(1u8, 4)?,
            was: None,
        })
    }
}

impl<'a> Arbitrary<'a> for SchemaSpec {
    fn arbitrary(u: &mut Unstructured<'a>) -> ArbResult<Self> {
        let mut tables: Vec<TableSpec> = some(u, 1..=3)?;
        // Distinct names, so that no table is lost to deduplication.
        let mut free: Vec<u8> = (0..TABLE_NAMES.len() as u8).collect();
        for t in &mut tables {
            let at = usize::from(t.name.index) % free.len();
            t.name.index = free.remove(at);
        }
        let mut indexes: Vec<IndexSpec> = some(u, 0..=2)?;
        let mut views: Vec<ViewSpec> = some(u, 0..=2)?;
        let mut triggers: Vec<TriggerSpec> = some(u, 0..=2)?;
        // Objects go on the tables there are.
        let on = |n: &mut Name| n.index = tables[usize::from(n.index) % tables.len()].name.index;
        indexes.iter_mut().for_each(|o| on(&mut o.table));
        views.iter_mut().for_each(|o| on(&mut o.table));
        triggers.iter_mut().for_each(|o| on(&mut o.table));
        Ok(SchemaSpec {
            tables,
            indexes,
            views,
            triggers,
            quote_all: u.ratio(1u8, 4)?,
        })
    }
}

impl<'a> Arbitrary<'a> for RowSpec {
    fn arbitrary(u: &mut Unstructured<'a>) -> ArbResult<Self> {
        Ok(RowSpec {
            table: u.arbitrary()?,
            cells: some(u, 0..=6)?,
        })
    }
}

impl<'a> Arbitrary<'a> for DiffCase {
    fn arbitrary(u: &mut Unstructured<'a>) -> ArbResult<Self> {
        Ok(DiffCase {
            v1: u.arbitrary()?,
            edits: some(u, 1..=4)?,
            allow_data_loss: u.arbitrary()?,
            foreign_keys_on: u.arbitrary()?,
            id_base: u.arbitrary()?,
            keep_undeclared: u.arbitrary()?,
            notes: some(u, 0..=8)?,
            // Last: the rows take whatever bytes are left.
            rows: some(u, 0..=40)?,
        })
    }
}

/// A table as rendered: what inserting rows and checking them needs.
#[derive(Debug, Clone)]
struct RTable {
    /// Its name, and as written.
    name: String,
    ident: String,
    /// Every column's name (`id` first).
    columns: Vec<String>,
    /// The columns rows are given values for (not generated), as written.
    plain: Vec<String>,
    /// The generated columns' names.
    generated: Vec<String>,
    /// `id` is the rowid.
    alias: bool,
    without_rowid: bool,
    /// The slot of its name before a `RenameTable` edit, and that name.
    was: Option<(usize, String)>,
    /// (name before a `RenameColumn` edit, name now) of its renamed columns.
    renamed: Vec<(String, String)>,
    /// Its statement without comments is `prefix`, `items` joined by `", "`, `suffix`:
    /// `CREATE TABLE name (`, the column definitions (one per entry of `columns`) then the
    /// table constraints, `)` and the table options.
    prefix: String,
    items: Vec<String>,
    suffix: String,
}

/// An index as rendered.
#[derive(Debug, Clone)]
struct RIndex {
    name: String,
    /// The slot of its name before a `RenameIndex` edit, and that name.
    was: Option<(usize, String)>,
}

/// A schema as rendered.
#[derive(Debug, Default, Clone)]
struct Rendered {
    statements: Vec<String>,
    /// By slot in [`TABLE_NAMES`].
    tables: BTreeMap<usize, RTable>,
    /// By slot in [`INDEX_NAMES`].
    indexes: BTreeMap<usize, RIndex>,
}

/// A `@renamed from=OLD` comment to write, and where ([`Note::form`]).
#[derive(Debug, Clone)]
struct Comment {
    form: u8,
    /// `@renamed from=OLD`, OLD written as the note says.
    body: String,
}

impl Comment {
    fn line(&self) -> String {
        format!("-- {}\n", self.body)
    }

    fn block(&self) -> String {
        format!("/* {} */", self.body)
    }
}

/// The annotations to write into a schema's text: on tables (by slot), on columns (by table
/// slot and lower-cased column name), on indexes (by slot).
#[derive(Debug, Default)]
struct Notes {
    tables: BTreeMap<usize, Comment>,
    columns: BTreeMap<(usize, String), Comment>,
    indexes: BTreeMap<usize, Comment>,
}

/// `CREATE TABLE` with annotations: `items` (the first `ncols` column definitions, each
/// starting with its name as `written`) laid out around the comments of `table` and
/// `columns` (by item). Every place is one `litekeep_migrate` documents for what it renames; a
/// `--` comment ends its line.
fn layout(
    ident: &str,
    items: &[String],
    written: &[String],
    suffix: &str,
    table: Option<&Comment>,
    columns: &BTreeMap<usize, &Comment>,
) -> String {
    let mut out = match table {
        None => format!("CREATE TABLE {ident} ("),
        Some(c) => match c.form % 4 {
            0 => format!("CREATE TABLE {ident} ( {}", c.line()),
            1 => format!("CREATE TABLE {ident} {} (", c.block()),
            2 => format!("CREATE TABLE {ident} ( {} ", c.block()),
            _ => format!("CREATE TABLE {} {ident} (", c.block()),
        },
    };
    // Whether a comma is owed before the next item (a `--` comment after one was not).
    let mut comma = false;
    for (i, item) in items.iter().enumerate() {
        let last = i + 1 == items.len();
        if comma {
            out.push_str(", ");
        }
        comma = true;
        let Some(c) = columns.get(&i) else {
            out.push_str(item);
            continue;
        };
        match c.form % 5 {
            // At the end of its line, after its comma (before the `)` when it is last).
            0 if last => {
                let _ = write!(out, "{item} {}", c.line());
            }
            0 => {
                let _ = write!(out, "{item}, {}", c.line());
                comma = false;
            }
            // At the end of its line, before its comma.
            1 => {
                let _ = write!(out, "{item} {}", c.line());
            }
            // Right after it.
            2 => {
                let _ = write!(out, "{item} {}", c.block());
            }
            // Inside it, after its name.
            3 => {
                let name = &written[i];
                let _ = write!(out, "{name} {}{}", c.block(), &item[name.len()..]);
            }
            // Just before it, on its line.
            _ => {
                let _ = write!(out, "{} {item}", c.block());
            }
        }
    }
    out.push_str(suffix);
    out
}

impl Rendered {
    fn sql(&self) -> String {
        self.statements.iter().map(|s| format!("{s};\n")).collect()
    }

    /// The same schema with no table, column or index renamed: every table and index of it
    /// is the one of its name before.
    fn without_renames(&self) -> Rendered {
        let mut bare = self.clone();
        for table in bare.tables.values_mut() {
            table.was = None;
            table.renamed.clear();
        }
        for index in bare.indexes.values_mut() {
            index.was = None;
        }
        bare
    }
}

impl TableSpec {
    /// The columns as rendered: deduplicated by name, at most [`MAX_COLUMNS`].
    fn columns(&self) -> Vec<&ColumnSpec> {
        let mut seen = Vec::new();
        let mut out = Vec::new();
        for c in &self.columns {
            let slot = c.name.slot(&COLUMN_NAMES);
            if !seen.contains(&slot) && out.len() < MAX_COLUMNS {
                seen.push(slot);
                out.push(c);
            }
        }
        out
    }

    /// The statement (with `notes`' comments on this table, at `slot`) and what checking
    /// needs.
    fn render(&self, quote_all: bool, slot: usize, notes: &Notes) -> (String, RTable) {
        let q = |n: &str| ident(n, quote_all);
        let cols = self.columns();
        let plain: Vec<String> = cols
            .iter()
            .filter(|c| c.generated.is_none())
            .map(|c| q(&c.name.text(&COLUMN_NAMES)))
            .collect();
        let without_rowid =
            self.without_rowid && !matches!(self.key, Key::NoPk | Key::Autoincrement);
        let strict = self.strict;
        let mut defs = vec![match self.key {
            Key::IntegerPk => "id INTEGER PRIMARY KEY".to_owned(),
            Key::Autoincrement => "id INTEGER PRIMARY KEY AUTOINCREMENT".to_owned(),
            Key::NoPk => "id INTEGER".to_owned(),
            Key::TextPk => "id TEXT PRIMARY KEY".to_owned(),
            Key::IntegerPkDesc => "id INTEGER PRIMARY KEY DESC".to_owned(),
            Key::Composite => "id INTEGER NOT NULL".to_owned(),
        }];
        for c in &cols {
            let name = q(&c.name.text(&COLUMN_NAMES));
            let mut d = name.clone();
            let ty = c.ty.decl(strict);
            if !ty.is_empty() {
                d.push(' ');
                d.push_str(ty);
            }
            if c.null != Nullability::Nullable {
                d.push_str(" NOT NULL");
            }
            if let Some(g) = c.generated {
                let src = if plain.is_empty() {
                    "id".to_owned()
                } else {
                    plain[usize::from(g.source) % plain.len()].clone()
                };
                let expr = match g.expr {
                    GenExpr::Concat => format!("{src} || ''"),
                    GenExpr::Double => format!("{src} * 2"),
                    GenExpr::Length => format!("length({src})"),
                    GenExpr::Upper => format!("upper({src})"),
                };
                let kind = if g.stored { "STORED" } else { "VIRTUAL" };
                let _ = write!(d, " GENERATED ALWAYS AS ({expr}) {kind}");
            } else {
                let default = match (c.null, c.default) {
                    (_, Some(e)) => Some(e.sql()),
                    (Nullability::NotNullDefault, None) => Some("0"),
                    _ => None,
                };
                if let Some(e) = default {
                    let _ = write!(d, " DEFAULT {e}");
                }
            }
            if c.unique {
                d.push_str(" UNIQUE");
            }
            if let Some(check) = c.check {
                d.push(' ');
                d.push_str(&check.sql(&name));
            }
            if let Some(coll) = c.collate {
                let _ = write!(d, " COLLATE {}", coll.sql());
            }
            defs.push(d);
        }
        let ncols = defs.len();
        if self.key == Key::Composite {
            match plain.first() {
                Some(first) => defs.push(format!("PRIMARY KEY (id, {first})")),
                None => defs.push("PRIMARY KEY (id)".to_owned()),
            }
        }
        if self.check {
            defs.push("CHECK (id <> 0)".to_owned());
        }
        if let Some(fk) = self.fk {
            let col = if plain.is_empty() {
                "id".to_owned()
            } else {
                plain[usize::from(fk.column) % plain.len()].clone()
            };
            let mut d = format!(
                "FOREIGN KEY ({col}) REFERENCES {}(id)",
                q(&fk.parent.text(&TABLE_NAMES))
            );
            match fk.on_delete {
                Some(FkAction::Cascade) => d.push_str(" ON DELETE CASCADE"),
                Some(FkAction::SetNull) => d.push_str(" ON DELETE SET NULL"),
                Some(FkAction::Restrict) => d.push_str(" ON DELETE RESTRICT"),
                None => {}
            }
            if fk.deferred {
                d.push_str(" DEFERRABLE INITIALLY DEFERRED");
            }
            defs.push(d);
        }
        let table = q(&self.name.text(&TABLE_NAMES));
        let mut options = Vec::new();
        if strict {
            options.push("STRICT");
        }
        if without_rowid {
            options.push("WITHOUT ROWID");
        }
        let prefix = format!("CREATE TABLE {table} (");
        let suffix = format!(
            "){}{}",
            if options.is_empty() { "" } else { " " },
            options.join(", ")
        );
        let names: Vec<String> = std::iter::once("id".to_owned())
            .chain(cols.iter().map(|c| c.name.text(&COLUMN_NAMES)))
            .collect();
        let commented: BTreeMap<usize, &Comment> = names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                let c = notes.columns.get(&(slot, n.to_ascii_lowercase()))?;
                Some((i, c))
            })
            .collect();
        let sql = if commented.is_empty() && !notes.tables.contains_key(&slot) {
            format!("{prefix}{}{suffix}", defs.join(", "))
        } else {
            let written: Vec<String> = names.iter().map(|n| q(n)).collect();
            debug_assert!(commented.keys().all(|&i| i < ncols));
            layout(
                &table,
                &defs,
                &written,
                &suffix,
                notes.tables.get(&slot),
                &commented,
            )
        };
        // `PRIMARY KEY (id)` on an INTEGER column makes `id` the rowid too.
        let alias = !without_rowid
            && (matches!(self.key, Key::IntegerPk | Key::Autoincrement)
                || (self.key == Key::Composite && plain.is_empty()));
        (
            sql,
            RTable {
                name: self.name.text(&TABLE_NAMES),
                ident: table,
                columns: names,
                plain,
                generated: cols
                    .iter()
                    .filter(|c| c.generated.is_some())
                    .map(|c| c.name.text(&COLUMN_NAMES))
                    .collect(),
                alias,
                without_rowid,
                was: self
                    .was
                    .map(|n| (n.slot(&TABLE_NAMES), n.text(&TABLE_NAMES))),
                renamed: cols
                    .iter()
                    .filter_map(|c| {
                        let was = c.was?.text(&COLUMN_NAMES);
                        let now = c.name.text(&COLUMN_NAMES);
                        (!was.eq_ignore_ascii_case(&now)).then_some((was, now))
                    })
                    .collect(),
                prefix,
                items: defs,
                suffix,
            },
        )
    }

    fn column_mut(&mut self, i: u8) -> Option<&mut ColumnSpec> {
        let n = self.columns.len();
        (n > 0).then(|| &mut self.columns[usize::from(i) % n])
    }
}

impl SchemaSpec {
    fn table_mut(&mut self, i: u8) -> Option<&mut TableSpec> {
        let n = self.tables.len();
        (n > 0).then(|| &mut self.tables[usize::from(i) % n])
    }

    fn edit(&mut self, edit: &Edit) {
        match edit {
            Edit::DropTable(i) => {
                if !self.tables.is_empty() {
                    let n = self.tables.len();
                    self.tables.remove(usize::from(*i) % n);
                }
            }
            Edit::AddTable(t) => self.tables.push(t.clone()),
            Edit::ReplaceTable(i, t) => {
                if let Some(table) = self.table_mut(*i) {
                    let name = table.name;
                    *table = t.clone();
                    table.name = name;
                }
            }
            Edit::DropColumn(i, c) => {
                if let Some(t) = self.table_mut(*i)
                    && !t.columns.is_empty()
                {
                    let n = t.columns.len();
                    t.columns.remove(usize::from(*c) % n);
                }
            }
            Edit::AddColumn(i, c) => {
                if let Some(t) = self.table_mut(*i) {
                    t.columns.push(c.clone());
                }
            }
            Edit::InsertColumn(i, at, c) => {
                if let Some(t) = self.table_mut(*i) {
                    let at = usize::from(*at) % (t.columns.len() + 1);
                    t.columns.insert(at, c.clone());
                }
            }
            Edit::ChangeColumn(i, c, change) => {
                if let Some(col) = self.table_mut(*i).and_then(|t| t.column_mut(*c)) {
                    match change {
                        ColumnChange::Type(ty) => col.ty = *ty,
                        ColumnChange::Null(n) => col.null = *n,
                        ColumnChange::Default(d) => col.default = *d,
                        ColumnChange::Unique(u) => col.unique = *u,
                        ColumnChange::Check(k) => col.check = *k,
                        ColumnChange::Collate(k) => col.collate = *k,
                        ColumnChange::Generated(g) => col.generated = *g,
                        ColumnChange::Recase => col.name.upper = !col.name.upper,
                    }
                }
            }
            Edit::MoveColumn(i, from, to) => {
                if let Some(t) = self.table_mut(*i)
                    && !t.columns.is_empty()
                {
                    let n = t.columns.len();
                    let c = t.columns.remove(usize::from(*from) % n);
                    t.columns.insert(usize::from(*to) % n, c);
                }
            }
            Edit::SetKey(i, key) => {
                if let Some(t) = self.table_mut(*i) {
                    t.key = *key;
                }
            }
            Edit::ToggleWithoutRowid(i) => {
                if let Some(t) = self.table_mut(*i) {
                    t.without_rowid = !t.without_rowid;
                }
            }
            Edit::ToggleStrict(i) => {
                if let Some(t) = self.table_mut(*i) {
                    t.strict = !t.strict;
                }
            }
            Edit::SetForeignKey(i, fk) => {
                if let Some(t) = self.table_mut(*i) {
                    t.fk = *fk;
                }
            }
            Edit::ToggleCheck(i) => {
                if let Some(t) = self.table_mut(*i) {
                    t.check = !t.check;
                }
            }
            Edit::RecaseTable(i) => {
                if let Some(t) = self.table_mut(*i) {
                    t.name.upper = !t.name.upper;
                }
            }
            Edit::Index(e) => e.apply(&mut self.indexes),
            Edit::View(e) => e.apply(&mut self.views),
            Edit::Trigger(e) => e.apply(&mut self.triggers),
            Edit::ToggleQuoting => self.quote_all = !self.quote_all,
            Edit::RenameTable(i, to) => {
                let slot = to.slot(&TABLE_NAMES);
                if self
                    .tables
                    .iter()
                    .any(|t| t.name.slot(&TABLE_NAMES) == slot)
                {
                    return;
                }
                if let Some(t) = self.table_mut(*i) {
                    t.was = t.was.or(Some(t.name));
                    t.name = *to;
                }
            }
            Edit::SwapTables(i, j) => {
                let n = self.tables.len();
                let (i, j) = (usize::from(*i) % n.max(1), usize::from(*j) % n.max(1));
                if i == j {
                    return;
                }
                let (a, b) = (self.tables[i].name, self.tables[j].name);
                for (k, to) in [(i, b), (j, a)] {
                    let t = &mut self.tables[k];
                    t.was = t.was.or(Some(t.name));
                    t.name = to;
                }
            }
            Edit::RenameColumn(i, c, to) => {
                let slot = to.slot(&COLUMN_NAMES);
                let Some(t) = self.table_mut(*i) else {
                    return;
                };
                if t.columns
                    .iter()
                    .any(|col| col.name.slot(&COLUMN_NAMES) == slot)
                {
                    return;
                }
                if let Some(col) = t.column_mut(*c) {
                    col.was = col.was.or(Some(col.name));
                    col.name = *to;
                }
            }
            Edit::RenameIndex(i, to) => {
                let slot = to.slot(&INDEX_NAMES);
                let n = self.indexes.len();
                if n == 0
                    || self
                        .indexes
                        .iter()
                        .any(|ix| ix.name.slot(&INDEX_NAMES) == slot)
                {
                    return;
                }
                let ix = &mut self.indexes[usize::from(*i) % n];
                ix.was = ix.was.or(Some(ix.name));
                ix.name = *to;
            }
        }
    }

    /// The statements, with the `@renamed` comments of `notes`.
    fn render(&self, notes: &Notes) -> Rendered {
        let q = |n: &str| ident(n, self.quote_all);
        let mut out = Rendered::default();
        let mut specs: BTreeMap<usize, &TableSpec> = BTreeMap::new();
        for t in &self.tables {
            let slot = t.name.slot(&TABLE_NAMES);
            if specs.contains_key(&slot) {
                continue;
            }
            let (sql, rendered) = t.render(self.quote_all, slot, notes);
            out.statements.push(sql);
            out.tables.insert(slot, rendered);
            specs.insert(slot, t);
        }
        // `id`, then every column of the table, as written.
        let columns_of = |slot: usize| -> Vec<String> {
            let mut cols = vec!["id".to_owned()];
            if let Some(t) = specs.get(&slot) {
                cols.extend(t.columns().iter().map(|c| q(&c.name.text(&COLUMN_NAMES))));
            }
            cols
        };
        let mut seen = Vec::new();
        for ix in self.indexes.iter().take(MAX_OBJECTS) {
            let (slot, name) = (ix.table.slot(&TABLE_NAMES), ix.name.slot(&INDEX_NAMES));
            if !out.tables.contains_key(&slot) || seen.contains(&name) {
                continue;
            }
            seen.push(name);
            let cols = columns_of(slot);
            let mut parts = Vec::new();
            for p in ix.parts.iter().take(2) {
                let col = &cols[usize::from(p.column) % cols.len()];
                let mut s = if p.expr {
                    format!("lower({col})")
                } else {
                    col.clone()
                };
                if let Some(c) = p.collate {
                    let _ = write!(s, " COLLATE {}", c.sql());
                }
                if p.desc {
                    s.push_str(" DESC");
                }
                parts.push(s);
            }
            if parts.is_empty() {
                parts.push("id".to_owned());
            }
            let comment = notes.indexes.get(&name);
            let index = q(&ix.name.text(&INDEX_NAMES));
            let (before, after) = match comment.map(|c| (c.form % 3, c.block())) {
                // Before its name, or right after it.
                Some((0, block)) => (format!("{block} "), String::new()),
                Some((1, block)) => (String::new(), format!(" {block}")),
                _ => (String::new(), String::new()),
            };
            let mut sql = format!(
                "CREATE {}INDEX {before}{index}{after} ON {} ({})",
                if ix.unique { "UNIQUE " } else { "" },
                out.tables[&slot].ident,
                parts.join(", ")
            );
            if ix.partial {
                let _ = write!(sql, " WHERE {} IS NOT NULL", cols[cols.len() - 1]);
            }
            // At the end of the statement's (only) line.
            if let Some(c) = comment.filter(|c| c.form % 3 == 2) {
                let _ = write!(sql, " {}", c.line());
            }
            out.statements.push(sql);
            out.indexes.insert(
                name,
                RIndex {
                    name: ix.name.text(&INDEX_NAMES),
                    was: ix.was.map(|n| (n.slot(&INDEX_NAMES), n.text(&INDEX_NAMES))),
                },
            );
        }
        let mut seen = Vec::new();
        for v in self.views.iter().take(MAX_OBJECTS) {
            let (slot, name) = (v.table.slot(&TABLE_NAMES), v.name.slot(&VIEW_NAMES));
            if !out.tables.contains_key(&slot) || seen.contains(&name) {
                continue;
            }
            seen.push(name);
            let cols = columns_of(slot);
            let col = &cols[usize::from(v.column) % cols.len()];
            let mut sql = format!(
                "CREATE VIEW {} AS SELECT {}a.id, a.{col} AS c FROM {} AS a",
                q(&v.name.text(&VIEW_NAMES)),
                if v.distinct { "DISTINCT " } else { "" },
                out.tables[&slot].ident
            );
            if let Some(join) = v.join
                && let Some(other) = out.tables.get(&join.slot(&TABLE_NAMES))
            {
                let _ = write!(sql, " JOIN {} AS b ON b.id = a.id", other.ident);
            }
            if v.filter {
                sql.push_str(" WHERE a.id > 0");
            }
            out.statements.push(sql);
        }
        let mut seen = Vec::new();
        for tr in self.triggers.iter().take(MAX_OBJECTS) {
            let (slot, name) = (tr.table.slot(&TABLE_NAMES), tr.name.slot(&TRIGGER_NAMES));
            if !out.tables.contains_key(&slot) || seen.contains(&name) {
                continue;
            }
            seen.push(name);
            let cols = columns_of(slot);
            let row = if tr.event == Event::Delete {
                "old"
            } else {
                "new"
            };
            let event = match tr.event {
                Event::Insert => "INSERT".to_owned(),
                Event::Update => "UPDATE".to_owned(),
                Event::UpdateOf(c) => format!("UPDATE OF {}", cols[usize::from(c) % cols.len()]),
                Event::Delete => "DELETE".to_owned(),
            };
            // A table the body names need not exist: SQLite only looks when the trigger fires.
            let target = |n: Name| q(&n.text(&TABLE_NAMES));
            let body = match tr.action {
                TriggerAction::InsertInto(t) => format!(
                    "INSERT OR IGNORE INTO {0} (id) SELECT {row}.id + 1000 WHERE NOT EXISTS (SELECT 1 FROM {0} WHERE id = {row}.id + 1000)",
                    target(t)
                ),
                TriggerAction::Touch(t) => {
                    format!("UPDATE {} SET id = id WHERE id = {row}.id", target(t))
                }
                TriggerAction::DeleteFrom(t) => {
                    format!("DELETE FROM {} WHERE id = {row}.id + 1", target(t))
                }
                TriggerAction::Raise => {
                    format!("SELECT RAISE(ABORT, 'negative id') WHERE {row}.id < 0")
                }
            };
            out.statements.push(format!(
                "CREATE TRIGGER {} {} {event} ON {}{} BEGIN {body}; END",
                q(&tr.name.text(&TRIGGER_NAMES)),
                if tr.before { "BEFORE" } else { "AFTER" },
                out.tables[&slot].ident,
                if tr.when {
                    format!(" WHEN {row}.id IS NOT NULL")
                } else {
                    String::new()
                }
            ));
        }
        out
    }
}

impl DiffCase {
    fn v2(&self) -> SchemaSpec {
        let mut v2 = self.v1.clone();
        for e in self.edits.iter().take(MAX_EDITS) {
            v2.edit(e);
        }
        v2
    }

    /// The current schema's DDL.
    pub fn v1_sql(&self) -> String {
        self.v1.render(&Notes::default()).sql()
    }

    /// The desired schema's DDL, with its `@renamed` annotations.
    pub fn v2_sql(&self) -> String {
        let v2 = self.v2();
        let renames = self.renames(
            &self.v1.render(&Notes::default()),
            &v2.render(&Notes::default()),
        );
        v2.render(&notes(&renames)).sql()
    }

    /// The rename hints, as `Options::rename` takes them: `old=new` for a renamed table of the
    /// current schema, `t.old=t.new` for a renamed column it has, `index:old=new` for a
    /// renamed index it has — those the case does not write as annotations.
    pub fn rename_hints(&self) -> Vec<String> {
        let v2 = self.v2();
        hints(&self.renames(
            &self.v1.render(&Notes::default()),
            &v2.render(&Notes::default()),
        ))
    }

    /// Whether the case migrates with `Options::keep_undeclared`.
    pub fn keep_undeclared(&self) -> bool {
        self.keep_undeclared
    }

    /// Every rename of the edits (tables by slot, then columns, then indexes by slot), each
    /// given as its note says: a hint when the current schema has the old name, else (an
    /// annotation that does not apply, which `diff` must ignore) an annotation or nothing.
    fn renames(&self, v1: &Rendered, v2: &Rendered) -> Vec<Ren> {
        let mut out: Vec<(Rename, bool)> = Vec::new();
        for (slot, t) in &v2.tables {
            if let Some((was, text)) = &t.was
                && was != slot
            {
                let (from, applies) = match v1.tables.get(was) {
                    Some(old) => (old.name.clone(), true),
                    None => (text.clone(), false),
                };
                out.push((
                    Rename::Table {
                        from,
                        to: t.name.clone(),
                    },
                    applies,
                ));
            }
        }
        let sources = sources(v1, v2);
        for (slot, t) in &v2.tables {
            let old = sources.get(slot).map(|s| &v1.tables[s]);
            for (was, now) in &t.renamed {
                let applies =
                    old.is_some_and(|o| o.columns.iter().any(|c| c.eq_ignore_ascii_case(was)));
                out.push((
                    Rename::Column {
                        table: t.name.clone(),
                        from: was.clone(),
                        to: now.clone(),
                    },
                    applies,
                ));
            }
        }
        for (slot, ix) in &v2.indexes {
            if let Some((was, text)) = &ix.was
                && was != slot
            {
                let (from, applies) = match v1.indexes.get(was) {
                    Some(old) => (old.name.clone(), true),
                    None => (text.clone(), false),
                };
                out.push((
                    Rename::Index {
                        from,
                        to: ix.name.clone(),
                    },
                    applies,
                ));
            }
        }
        out.into_iter()
            .enumerate()
            .map(|(k, (rename, applies))| {
                let note = self.notes.get(k).copied().unwrap_or_default();
                let place = match &rename {
                    Rename::Table { to, .. } => {
                        Place::Table(slot_of(v2.tables.iter().map(|(s, t)| (*s, &t.name)), to))
                    }
                    Rename::Column { table, to, .. } => Place::Column(
                        slot_of(v2.tables.iter().map(|(s, t)| (*s, &t.name)), table),
                        to.to_ascii_lowercase(),
                    ),
                    Rename::Index { to, .. } => {
                        Place::Index(slot_of(v2.indexes.iter().map(|(s, i)| (*s, &i.name)), to))
                    }
                };
                // An annotation whose new name the current schema has too is done (it may stay in
                // a schema file for good after its old name was reused), so `diff` ignores it:
                // such a rename is given as a hint, which is carried out or refused.
                let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
                let new_name_exists = match &rename {
                    Rename::Table { to, .. } => v1.tables.values().any(|t| eq(&t.name, to)),
                    Rename::Column { table, to, .. } => v2
                        .tables
                        .iter()
                        .find(|(_, t)| eq(&t.name, table))
                        .and_then(|(slot, _)| sources.get(slot))
                        .is_some_and(|src| v1.tables[src].columns.iter().any(|c| eq(c, to))),
                    Rename::Index { to, .. } => v1.indexes.values().any(|i| eq(&i.name, to)),
                };
                let annotate = note.annotate && !(applies && new_name_exists);
                Ren {
                    rename,
                    applies,
                    note: annotate.then_some(note),
                    place,
                }
            })
            .collect()
    }

    /// The `INSERT` statements of the rows (some of which SQLite may refuse).
    fn inserts(&self, v1: &Rendered) -> Vec<String> {
        let mut next_id: BTreeMap<usize, i64> = BTreeMap::new();
        let mut out = Vec::new();
        for row in self.rows.iter().take(MAX_ROWS) {
            let Some(slot) = v1
                .tables
                .keys()
                .nth(usize::from(row.table) % v1.tables.len().max(1))
                .copied()
            else {
                continue;
            };
            let t = &v1.tables[&slot];
            let n = next_id.entry(slot).or_insert(0);
            let id = i64::from(self.id_base) + *n;
            *n += 1;
            let mut names = vec!["id".to_owned()];
            let mut vals = vec![id.to_string()];
            if !row.cells.is_empty() {
                for (i, col) in t.plain.iter().enumerate() {
                    if let Cell::Value(v) = &row.cells[i % row.cells.len()] {
                        names.push(col.clone());
                        vals.push(lit(v));
                    }
                }
            }
            out.push(format!(
                "INSERT INTO {} ({}) VALUES ({})",
                t.ident,
                names.join(", "),
                vals.join(", ")
            ));
        }
        out
    }
}

/// A rename of the edits, and how the case gives it.
#[derive(Debug, Clone)]
struct Ren {
    /// As a hint says it (the current schema's spelling of the old name where it has it).
    rename: Rename,
    /// The current schema has the old name: `diff` carries it out (or refuses it).
    applies: bool,
    /// `Some`: written as an annotation, as the note says; `None`: a hint when it applies.
    note: Option<Note>,
    place: Place,
}

/// What a rename renames, in the rendered desired schema.
#[derive(Debug, Clone)]
enum Place {
    Table(usize),
    /// The table's slot, the column's lower-cased name.
    Column(usize, String),
    Index(usize),
}

impl Ren {
    /// The old name as the annotation writes it (case as the note says), unquoted.
    fn annotated_from(&self) -> String {
        let from = match &self.rename {
            Rename::Table { from, .. }
            | Rename::Column { from, .. }
            | Rename::Index { from, .. } => from,
        };
        match self.note.map_or(0, |n| n.quote / 5 % 3) {
            1 => from.to_uppercase(),
            2 => from.to_lowercase(),
            _ => from.clone(),
        }
    }

    /// The rename `Schema::from_sql` must read from the annotation.
    fn annotation(&self) -> Rename {
        let from = self.annotated_from();
        match &self.rename {
            Rename::Table { to, .. } => Rename::Table {
                from,
                to: to.clone(),
            },
            Rename::Column { table, to, .. } => Rename::Column {
                table: table.clone(),
                from,
                to: to.clone(),
            },
            Rename::Index { to, .. } => Rename::Index {
                from,
                to: to.clone(),
            },
        }
    }

    /// The comment that says it.
    fn comment(&self, note: Note) -> Comment {
        let from = self.annotated_from();
        let bare = from.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let old = match note.quote % 5 {
            0 if bare => from,
            2 => format!("'{from}'"),
            3 => format!("`{from}`"),
            4 => format!("[{from}]"),
            _ => format!("\"{from}\""),
        };
        Comment {
            form: note.form,
            body: format!("@renamed from={old}"),
        }
    }
}

/// The slot of the name `name` among `names`.
fn slot_of<'a>(mut names: impl Iterator<Item = (usize, &'a String)>, name: &str) -> usize {
    names
        .find(|(_, n)| n.as_str() == name)
        .map_or(usize::MAX, |(s, _)| s)
}

/// The annotations to write for `renames`.
fn notes(renames: &[Ren]) -> Notes {
    let mut out = Notes::default();
    for r in renames {
        let Some(note) = r.note else { continue };
        let comment = r.comment(note);
        match &r.place {
            Place::Table(slot) => {
                out.tables.insert(*slot, comment);
            }
            Place::Column(slot, col) => {
                out.columns.insert((*slot, col.clone()), comment);
            }
            Place::Index(slot) => {
                out.indexes.insert(*slot, comment);
            }
        }
    }
    out
}

/// The v2 tables (by slot) that take the rows of each v1 table (by slot): the ones whose
/// rename names it, or else the one of its name.
fn claims(v1: &Rendered, v2: &Rendered) -> BTreeMap<usize, Vec<usize>> {
    let mut by_hint: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (slot, t) in &v2.tables {
        if let Some((was, _)) = &t.was
            && was != slot
            && v1.tables.contains_key(was)
        {
            by_hint.entry(*was).or_default().push(*slot);
        }
    }
    let mut claims = by_hint.clone();
    for (slot, t) in &v2.tables {
        let hinted = t
            .was
            .as_ref()
            .is_some_and(|(was, _)| was != slot && v1.tables.contains_key(was));
        // A rename moving the name away wins: the table of that name is a new one.
        if !hinted && v1.tables.contains_key(slot) && !by_hint.contains_key(slot) {
            claims.entry(*slot).or_default().push(*slot);
        }
    }
    claims
}

/// The v1 table (by slot) each v2 table (by slot) holds the rows of: the one its rename
/// names, or else the one of the same name — unless a rename moves that name away (the table
/// of that name is then a new one); when two renames name one table, neither.
fn sources(v1: &Rendered, v2: &Rendered) -> BTreeMap<usize, usize> {
    claims(v1, v2)
        .into_iter()
        .filter_map(|(source, by)| match by.as_slice() {
            [one] => Some((*one, source)),
            _ => None,
        })
        .collect()
}

/// The columns renamed in `new` whose old name `old` has: (old name, new name). A hint is made
/// for each, and the rows are checked under all of them: the values of `old`'s column go to
/// the new name, and a column of `new` that reuses the old name is a new column (a chain
/// `a→c`, `b→a` is well defined; a swap is refused by `diff`).
fn column_renames(old: &RTable, new: &RTable) -> Vec<(String, String)> {
    new.renamed
        .iter()
        .filter(|(was, _)| old.columns.iter().any(|c| c.eq_ignore_ascii_case(was)))
        .cloned()
        .collect()
}

/// The renames given as hints, as `Options::rename` takes them.
fn hints(renames: &[Ren]) -> Vec<String> {
    renames
        .iter()
        .filter(|r| r.applies && r.note.is_none())
        .map(|r| r.rename.to_string())
        .collect()
}

/// What one [`diff_apply`] case did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiffOutcome {
    /// One of the two schemas is not valid SQLite DDL: nothing to test.
    Invalid,
    /// `diff` or `apply` refused (the message), and nothing changed.
    Refused(String),
    /// The plan was applied.
    Applied {
        /// The kinds of its steps, in order.
        steps: Vec<StepKind>,
        /// The rows checked in tables both schemas have (and in kept tables).
        rows_checked: usize,
        /// What the plan kept (`keep_undeclared`).
        kept: usize,
        /// The `@renamed` annotations in the desired schema.
        annotations: usize,
    },
}

/// Runs `case` and panics, with the SQL that reproduces it, when `diff` + `apply` breaks the
/// property (see the module documentation in the crate's README).
pub fn diff_apply(case: &DiffCase) {
    diff_apply_outcome(case);
}

/// The SQL of a case, for failure messages.
struct Log(String);

impl Log {
    fn fail(&self, what: &str) -> ! {
        panic!(
            "diff_apply: {what}\n-- reproduce: in an in-memory database\n{}-- end",
            self.0
        )
    }
}

trait OrFail<T> {
    fn or_fail(self, log: &Log, what: &str) -> T;
}

impl<T, E: std::fmt::Display> OrFail<T> for Result<T, E> {
    fn or_fail(self, log: &Log, what: &str) -> T {
        match self {
            Ok(v) => v,
            Err(e) => log.fail(&format!("{what}: {e}")),
        }
    }
}

/// [`diff_apply`], returning what happened.
pub fn diff_apply_outcome(case: &DiffCase) -> DiffOutcome {
    let v2_spec = case.v2();
    let (v1, v2) = (
        case.v1.render(&Notes::default()),
        v2_spec.render(&Notes::default()),
    );
    let renames = case.renames(&v1, &v2);
    let v1_sql = v1.sql();
    // The desired schema as the case gives it: with its annotations.
    let v2_sql = v2_spec.render(&notes(&renames)).sql();
    let Ok(plain) = Schema::from_sql(&v2.sql()) else {
        return DiffOutcome::Invalid;
    };
    let mut log = Log(format!("PRAGMA foreign_keys = OFF;\n{v1_sql}"));
    let mut conn = Connection::open_in_memory().or_fail(&log, "opening");
    conn.execute_batch("PRAGMA foreign_keys = OFF")
        .or_fail(&log, "foreign_keys");
    if conn.execute_batch(&v1_sql).is_err() {
        return DiffOutcome::Invalid;
    }
    for sql in case.inserts(&v1) {
        if conn.execute_batch(&sql).is_ok() {
            let _ = writeln!(log.0, "{sql};");
        }
    }
    let fk = u8::from(case.foreign_keys_on);
    conn.execute_batch(&format!("PRAGMA foreign_keys = {fk}"))
        .or_fail(&log, "foreign_keys");
    let hints = hints(&renames);
    let _ = write!(
        log.0,
        "PRAGMA foreign_keys = {fk};\n-- then diff + apply (allow_data_loss: {}, keep_undeclared: {}, renames: {hints:?}) to:\n{v2_sql}",
        case.allow_data_loss, case.keep_undeclared
    );
    // The annotations are read exactly as written, and change nothing else.
    let desired = Schema::from_sql(&v2_sql).or_fail(&log, "reading the annotated desired schema");
    if desired.statements() != plain.statements() {
        log.fail(&format!(
            "the annotations change the desired schema: {:#?}",
            desired.describe_difference(&plain)
        ));
    }
    let mut read: Vec<String> = desired
        .annotations
        .iter()
        .map(|a| format!("{:?}", a.rename))
        .collect();
    let mut written: Vec<String> = renames
        .iter()
        .filter(|r| r.note.is_some())
        .map(|r| format!("{:?}", r.annotation()))
        .collect();
    read.sort();
    written.sort();
    if read != written {
        log.fail(&format!(
            "the annotations read are {read:#?}, the ones written {written:#?}"
        ));
    }
    let before = Snapshot::take(&conn).or_fail(&log, "snapshot before");
    let pragmas = pragmas(&conn).or_fail(&log, "pragmas before");
    let mut options = Options::default()
        .allow_data_loss(case.allow_data_loss)
        .keep_undeclared(case.keep_undeclared);
    for hint in &hints {
        options = options.rename(hint).or_fail(&log, "a rename hint");
    }
    let current = Schema::read(&conn).or_fail(&log, "reading the schema");

    let refused = |log: &Log, conn: &Connection, e: MigrateError| -> DiffOutcome {
        // `Verify` means the plan did not reach the desired schema and apply rolled it back:
        // safe, but a shortcoming of `diff`.
        if let MigrateError::Verify { .. } = e {
            log.fail(&format!("apply failed its own verification: {e}"));
        }
        if matches!(e, MigrateError::DataLoss { .. }) && case.allow_data_loss {
            log.fail(&format!("data loss refused though allowed: {e}"));
        }
        let after = Snapshot::take(conn).or_fail(log, "snapshot after");
        if after != before {
            log.fail(&format!(
                "refused ({e}) but the database changed:\n{}",
                before.difference(&after)
            ));
        }
        DiffOutcome::Refused(e.to_string())
    };
    let plan = match diff(&current, &desired, &options) {
        Ok(plan) => plan,
        Err(e) => return refused(&log, &conn, e),
    };
    let _ = write!(log.0, "-- plan:\n{}", plan.sql());
    // Additive mode: a database that already has the desired schema plus what it does not
    // declare, reckoned without any rename, needs nothing, whatever the hints and annotations
    // say (`diff` ignores them: they were carried out before, and an old name may be in use
    // again, as when an older program of a rolling deploy recreates a table renamed away). The
    // case then reckons without them too.
    let bare = case
        .keep_undeclared
        .then(|| already_there(&v1, &v2, &current, &desired))
        .flatten();
    let (v2, renames) = match bare {
        Some(bare) => (bare, Vec::new()),
        None => (v2, renames),
    };
    let keeps = if case.keep_undeclared {
        Keeps::new(&v1, &v2, &renames, &current, &desired)
    } else {
        Keeps::default()
    };
    keeps.check_plan(&plan, &v1, &v2, case.keep_undeclared, &log);
    let steps: Vec<StepKind> = plan.steps.iter().map(|s| s.kind).collect();
    let kept = plan.kept.len();
    let result = apply(&mut conn, plan, &options);
    let now_pragmas = pragmas_or_fail(&conn, &log);
    if now_pragmas != pragmas {
        log.fail(&format!(
            "pragmas (foreign_keys, legacy_alter_table) were {pragmas:?}, now {now_pragmas:?}"
        ));
    }
    if let Err(e) = result {
        return refused(&log, &conn, e);
    }

    let now = Schema::read(&conn).or_fail(&log, "reading the schema after");
    if case.keep_undeclared {
        // The desired schema plus what it does not declare, as the case reckons it.
        let want = keeps.statements(&v1, &v2, &current, &desired);
        let have = now.statements();
        if have != want {
            let missing: Vec<&String> = want.iter().filter(|s| !have.contains(s)).collect();
            let extra: Vec<&String> = have.iter().filter(|s| !want.contains(s)).collect();
            log.fail(&format!(
                "applied, but the schema is not the desired one plus what it does not declare: missing {missing:#?}, unexpected {extra:#?}"
            ));
        }
    } else {
        let difference = now.describe_difference(&desired);
        if !difference.is_empty() {
            log.fail(&format!(
                "applied, but the schema is not the desired one: {difference:#?}"
            ));
        }
    }
    let integrity: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .or_fail(&log, "integrity_check");
    if integrity != ["ok"] {
        log.fail(&format!("integrity_check: {integrity:?}"));
    }
    let temps: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name LIKE 'temp\\_%' ESCAPE '\\'",
        )
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .or_fail(&log, "listing tables");
    if !temps.is_empty() {
        log.fail(&format!("temporary tables left: {temps:?}"));
    }
    // Every view of either schema works on the tables it was written for; kept, it must
    // still work.
    for view in now.views.values() {
        if let Err(e) = conn.prepare(&format!("SELECT * FROM main.{}", quote_ident(&view.name))) {
            log.fail(&format!("view {} does not work any more: {e}", view.name));
        }
    }
    let mut rows_checked = 0;
    for (slot, source) in sources(&v1, &v2) {
        let (old, new) = (&v1.tables[&source], &v2.tables[&slot]);
        let Some(rows) = before.rows.get(&old.name.to_ascii_lowercase()) else {
            continue;
        };
        rows_checked += rows.rows.len();
        let renamed = column_renames(old, new);
        // Kept undeclared columns are found by name, like any other.
        let problems =
            compare_rows(&conn, rows, old, new, &renamed).or_fail(&log, "comparing rows");
        if !problems.is_empty() {
            log.fail(&format!(
                "rows of {} lost or changed: {problems:#?}",
                new.ident
            ));
        }
    }
    for table in &keeps.tables {
        let Some(rows) = before.rows.get(table) else {
            continue;
        };
        rows_checked += rows.rows.len();
        let now_rows = read_table(&conn, table).or_fail(&log, "reading a kept table");
        if &now_rows != rows {
            log.fail(&format!(
                "kept table {table} changed: before {rows:?}, now {now_rows:?}"
            ));
        }
    }
    // Without the rename hints: they are one-shot instructions (a swap `a=b`, `b=a` applied to
    // the migrated schema would swap again), and the migrated schema needs none. With the
    // annotations, which stay in a schema file for good: carried out, they are done.
    let again_options = Options::default()
        .allow_data_loss(case.allow_data_loss)
        .keep_undeclared(case.keep_undeclared);
    let again = diff(&now, &desired, &again_options).or_fail(
        &log,
        "diffing again (same options without the hints, the annotations still there)",
    );
    if !again.is_empty() {
        log.fail(&format!("a second diff is not empty:\n{}", again.sql()));
    }
    let fresh = up_to_date(&now, &desired, &again_options).or_fail(&log, "up_to_date after");
    if !fresh {
        log.fail("a second diff is empty but up_to_date says the database is not");
    }
    DiffOutcome::Applied {
        steps,
        rows_checked,
        kept,
        annotations: written.len(),
    }
}

/// v2 without its renames, if `current` (v1 as the database has it) is already that plus what
/// additive mode keeps: the case `diff` ignores every hint and annotation in.
fn already_there(
    v1: &Rendered,
    v2: &Rendered,
    current: &Schema,
    desired: &Schema,
) -> Option<Rendered> {
    let bare = v2.without_renames();
    let kept = Keeps::new(v1, &bare, &[], current, desired);
    (kept.statements(v1, &bare, current, desired) == current.statements()).then_some(bare)
}

/// What additive mode keeps, as the case reckons it: v1's tables no v2 table takes the rows
/// of, the columns of a source table that its v2 table neither has nor renames, and v1's
/// indexes (not renamed), views and triggers that v2 does not declare. Empty without
/// `keep_undeclared`.
#[derive(Debug, Default)]
struct Keeps {
    /// Lower-cased names.
    tables: Vec<String>,
    /// By v2 table slot: its source's slot, and the kept columns' places in it.
    columns: BTreeMap<usize, (usize, Vec<usize>)>,
    /// Kind and lower-cased name.
    objects: Vec<(ObjectKind, String)>,
}

impl Keeps {
    fn new(
        v1: &Rendered,
        v2: &Rendered,
        renames: &[Ren],
        current: &Schema,
        desired: &Schema,
    ) -> Keeps {
        let claims = claims(v1, v2);
        let tables = v1
            .tables
            .iter()
            .filter(|(slot, _)| !v2.tables.contains_key(slot) && !claims.contains_key(slot))
            .map(|(_, t)| t.name.to_ascii_lowercase())
            .collect();
        let mut columns = BTreeMap::new();
        for (slot, source) in sources(v1, v2) {
            let (old, new) = (&v1.tables[&source], &v2.tables[&slot]);
            let renamed = column_renames(old, new);
            let kept: Vec<usize> = (0..old.columns.len())
                .filter(|&i| !declared(&old.columns[i], new, &renamed))
                .collect();
            if !kept.is_empty() {
                columns.insert(slot, (source, kept));
            }
        }
        let index_renamed = |key: &str| {
            renames.iter().any(|r| {
                r.applies
                    && matches!(&r.rename,
                        Rename::Index { from, .. } if from.eq_ignore_ascii_case(key))
            })
        };
        let mut objects = Vec::new();
        for (kind, have, want) in [
            (ObjectKind::Index, &current.indexes, &desired.indexes),
            (ObjectKind::View, &current.views, &desired.views),
            (ObjectKind::Trigger, &current.triggers, &desired.triggers),
        ] {
            for key in have.keys() {
                let renamed = kind == ObjectKind::Index && index_renamed(key);
                if !want.contains_key(key) && !renamed {
                    objects.push((kind, key.clone()));
                }
            }
        }
        Keeps {
            tables,
            columns,
            objects,
        }
    }

    /// `plan.kept` lists exactly what is kept (nothing without `keep_undeclared`), and an
    /// additive plan drops nothing but the values of a column the desired schema makes
    /// generated.
    fn check_plan(&self, plan: &Plan, v1: &Rendered, v2: &Rendered, keep: bool, log: &Log) {
        let mut listed: Vec<String> = plan
            .kept
            .iter()
            .map(|k| match (&k.kind, &k.table) {
                (ObjectKind::Column, Some(t)) => format!("column {t}.{}", k.name),
                (kind, _) => format!("{kind} {}", k.name),
            })
            .map(|s| s.to_ascii_lowercase())
            .collect();
        listed.sort();
        let mut expected: Vec<String> = self.tables.iter().map(|t| format!("table {t}")).collect();
        for (slot, (source, kept)) in &self.columns {
            let (old, new) = (&v1.tables[source], &v2.tables[slot]);
            for &i in kept {
                expected
                    .push(format!("column {}.{}", new.name, old.columns[i]).to_ascii_lowercase());
            }
        }
        expected.extend(self.objects.iter().map(|(kind, k)| format!("{kind} {k}")));
        expected.sort();
        if listed != expected {
            log.fail(&format!(
                "the plan keeps {listed:#?}, the case expected {expected:#?}"
            ));
        }
        if !keep {
            return;
        }
        for loss in &plan.data_loss {
            let generated = loss.column.as_ref().is_some_and(|c| {
                v2.tables
                    .values()
                    .find(|t| t.name.eq_ignore_ascii_case(&loss.table))
                    .is_some_and(|t| {
                        let now = t
                            .renamed
                            .iter()
                            .find(|(was, _)| was.eq_ignore_ascii_case(c))
                            .map_or(c.as_str(), |(_, now)| now.as_str());
                        t.generated.iter().any(|g| g.eq_ignore_ascii_case(now))
                    })
            });
            if !generated {
                log.fail(&format!(
                    "keep_undeclared, but the plan drops {loss} (data loss: {:?})",
                    plan.data_loss
                ));
            }
        }
    }

    /// The normalized statements of the schema an additive migration arrives at: v2's, with
    /// each table's kept columns written in after the column that precedes them in v1, and
    /// v1's statements of the kept tables, indexes, views and triggers.
    fn statements(
        &self,
        v1: &Rendered,
        v2: &Rendered,
        current: &Schema,
        desired: &Schema,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for (slot, t) in &v2.tables {
            match self.columns.get(slot) {
                Some((source, kept)) => out.push(normalize(&combined(&v1.tables[source], t, kept))),
                None => {
                    if let Some(want) = desired.tables.get(&t.name.to_ascii_lowercase()) {
                        out.push(normalize(&want.sql));
                    }
                }
            }
        }
        out.extend(
            desired
                .indexes
                .values()
                .chain(desired.views.values())
                .chain(desired.triggers.values())
                .map(|o| normalize(&o.sql)),
        );
        for t in &self.tables {
            out.extend(current.tables.get(t).map(|t| normalize(&t.sql)));
        }
        for (kind, key) in &self.objects {
            let have = match kind {
                ObjectKind::Index => &current.indexes,
                ObjectKind::View => &current.views,
                _ => &current.triggers,
            };
            out.extend(have.get(key).map(|o| normalize(&o.sql)));
        }
        out.sort();
        out
    }
}

/// Whether column `col` of a source table is declared by its v2 table `new` (renamed by
/// `renamed`, see [`column_renames`]): renamed, or of the same name and no rename's target.
fn declared(col: &str, new: &RTable, renamed: &[(String, String)]) -> bool {
    renamed.iter().any(|(was, _)| was.eq_ignore_ascii_case(col))
        || (new.columns.iter().any(|c| c.eq_ignore_ascii_case(col))
            && !renamed.iter().any(|(_, now)| now.eq_ignore_ascii_case(col)))
}

/// `new`'s `CREATE TABLE` with the `kept` columns of `old` (places in `old.columns`) written
/// in, each (its definition as `old` has it) after the nearest column before it in `old` that
/// `new` declares, in `old`'s order.
fn combined(old: &RTable, new: &RTable, kept: &[usize]) -> String {
    let renamed = column_renames(old, new);
    let mut front: Vec<&str> = Vec::new();
    let mut after: Vec<Vec<&str>> = vec![Vec::new(); new.columns.len()];
    for &p in kept {
        let anchor = old.columns[..p]
            .iter()
            .rev()
            .find(|c| declared(c, new, &renamed));
        let at = anchor.and_then(|a| {
            let name = renamed
                .iter()
                .find(|(was, _)| was.eq_ignore_ascii_case(a))
                .map_or(a.as_str(), |(_, now)| now.as_str());
            new.columns
                .iter()
                .position(|c| c.eq_ignore_ascii_case(name))
        });
        match at {
            Some(j) => after[j].push(&old.items[p]),
            None => front.push(&old.items[p]),
        }
    }
    let mut items = front;
    for (j, item) in new.items.iter().enumerate() {
        items.push(item);
        if let Some(more) = after.get(j) {
            items.extend(more);
        }
    }
    format!("{}{}{}", new.prefix, items.join(", "), new.suffix)
}
fn pragmas(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    Ok((
        conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?,
        conn.query_row("PRAGMA legacy_alter_table", [], |r| r.get(0))?,
    ))
}

fn pragmas_or_fail(conn: &Connection, log: &Log) -> (i64, i64) {
    pragmas(conn).or_fail(log, "reading pragmas")
}

/// A table's columns and rows, as stored.
#[derive(Debug, Clone, PartialEq)]
struct TableRows {
    /// Name, declared type, `hidden` (2, 3: generated) of each column.
    columns: Vec<(String, String, i64)>,
    strict: bool,
    /// The rowid (`None` in a WITHOUT ROWID table) and every column's value.
    rows: Vec<(Option<i64>, Vec<Stored>)>,
}

/// Everything in a database: `sqlite_schema` and every table's rows, by lower-cased name.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    schema: Vec<Vec<Stored>>,
    rows: BTreeMap<String, TableRows>,
}

impl Snapshot {
    fn take(conn: &Connection) -> rusqlite::Result<Snapshot> {
        let schema: Vec<Vec<Stored>> = {
            let mut stmt = conn.prepare(
                "SELECT type, name, tbl_name, rootpage, sql FROM sqlite_schema ORDER BY rowid",
            )?;
            stmt.query_map([], |r| (0..5).map(|i| r.get::<_, Stored>(i)).collect())?
                .collect::<rusqlite::Result<_>>()?
        };
        let mut rows = BTreeMap::new();
        for entry in &schema {
            let (Stored::Text(kind), Stored::Text(name)) = (&entry[0], &entry[1]) else {
                continue;
            };
            if kind.as_slice() != b"table" {
                continue;
            }
            let name = String::from_utf8_lossy(name);
            rows.insert(name.to_ascii_lowercase(), read_table(conn, &name)?);
        }
        Ok(Snapshot { schema, rows })
    }

    fn difference(&self, other: &Snapshot) -> String {
        let mut out = String::new();
        if self.schema != other.schema {
            let _ = writeln!(
                out,
                "sqlite_schema before: {:?}\nsqlite_schema after: {:?}",
                self.schema, other.schema
            );
        }
        for (name, rows) in &self.rows {
            match other.rows.get(name) {
                Some(now) if now == rows => {}
                Some(now) => {
                    let _ = writeln!(out, "{name} before: {rows:?}\n{name} after: {now:?}");
                }
                None => {
                    let _ = writeln!(out, "{name} is gone");
                }
            }
        }
        out
    }
}

fn read_table(conn: &Connection, name: &str) -> rusqlite::Result<TableRows> {
    let columns: Vec<(String, String, i64)> = {
        let mut stmt =
            conn.prepare("SELECT name, type, hidden FROM pragma_table_xinfo(?1, 'main')")?;
        stmt.query_map([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    let (without_rowid, strict): (bool, bool) = conn.query_row(
        "SELECT wr, strict FROM pragma_table_list WHERE schema = 'main' AND name = ?1 COLLATE NOCASE",
        [name],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let list: Vec<String> = columns.iter().map(|(c, _, _)| quote_ident(c)).collect();
    let sql = format!(
        "SELECT {}, {} FROM main.{}",
        if without_rowid { "NULL" } else { "rowid" },
        list.join(", "),
        quote_ident(name)
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map([], |r| {
            let vals = (1..=list.len())
                .map(|i| r.get::<_, Stored>(i))
                .collect::<rusqlite::Result<_>>()?;
            Ok((r.get(0)?, vals))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(TableRows {
        columns,
        strict,
        rows,
    })
}

/// The rows of `old` (as they were, in `before`) that the table now lacks or holds with other
/// values, each with what is wrong.
///
/// Rows are found by `id`. Where the rebuild keeps rowids (both tables have them, and the new
/// one's `id` is not the rowid unless the old one's was too) the rowid must match as well.
/// Columns are paired by name, or by `renamed` (old, new).
/// Values are compared after SQLite's own conversion to the new declared type: the old values
/// go into a TEMP table declared like the new one (a STRICT `ANY` column converts nothing, so
/// it gets no type), and are compared with `IS` under BINARY collation and `typeof`.
fn compare_rows(
    conn: &Connection,
    before: &TableRows,
    old: &RTable,
    new: &RTable,
    renamed: &[(String, String)],
) -> rusqlite::Result<Vec<String>> {
    let name = new.name.clone();
    let now = read_table(conn, &name)?;
    let mut problems = Vec::new();
    if now.rows.len() != before.rows.len() {
        problems.push(format!(
            "{} rows before, {} now",
            before.rows.len(),
            now.rows.len()
        ));
    }
    // Columns both have (under a new name where a hint renames them), neither generates:
    // (index before, name now, declared type now).
    let mut kept: Vec<(usize, String, String)> = Vec::new();
    for (i, (col, _, hidden)) in before.columns.iter().enumerate() {
        if *hidden != 0 {
            continue;
        }
        let col = match renamed
            .iter()
            .find(|(was, _)| was.eq_ignore_ascii_case(col))
        {
            Some((_, now)) => now,
            // A column a hint renames another one to takes that one's values, not its own.
            None if renamed.iter().any(|(_, now)| now.eq_ignore_ascii_case(col)) => continue,
            None => col,
        };
        let Some((_, ty, _)) = now
            .columns
            .iter()
            .find(|(c, _, h)| *h == 0 && c.eq_ignore_ascii_case(col))
        else {
            continue;
        };
        let ty = if now.strict && ty.eq_ignore_ascii_case("any") {
            String::new()
        } else {
            ty.clone()
        };
        kept.push((i, col.clone(), ty));
    }
    if !kept.iter().any(|(_, c, _)| c.eq_ignore_ascii_case("id")) {
        problems.push("no id column in both".to_owned());
        return Ok(problems);
    }
    let rowids_kept = !old.without_rowid && !new.without_rowid && (old.alias || !new.alias);
    let decls: Vec<String> = kept
        .iter()
        .map(|(_, c, ty)| format!("{} {ty}", quote_ident(c)))
        .collect();
    conn.execute_batch(&format!(
        "DROP TABLE IF EXISTS temp.lk_want;
         CREATE TEMP TABLE lk_want (lk_n INTEGER PRIMARY KEY, lk_rowid INTEGER, {})",
        decls.join(", ")
    ))?;
    {
        let marks = vec!["?"; kept.len() + 2].join(", ");
        let mut insert = conn.prepare(&format!("INSERT INTO temp.lk_want VALUES ({marks})"))?;
        for (n, (rowid, vals)) in before.rows.iter().enumerate() {
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            let params = [
                Stored::Integer(n),
                rowid.map_or(Stored::Null, Stored::Integer),
            ]
            .into_iter()
            .chain(kept.iter().map(|(i, _, _)| vals[*i].clone()));
            insert.execute(params_from_iter(params))?;
        }
    }
    let mut same: Vec<String> = kept
        .iter()
        .map(|(_, c, _)| {
            let c = quote_ident(c);
            format!("(x.{c} IS e.{c} COLLATE BINARY AND typeof(x.{c}) = typeof(e.{c}))")
        })
        .collect();
    let mut shown: Vec<String> = kept
        .iter()
        .map(|(_, c, _)| {
            let q = quote_ident(c);
            format!(
                "'{}: ' || quote(e.{q}) || ' vs ' || quote(x.{q})",
                c.replace('\'', "''")
            )
        })
        .collect();
    if rowids_kept {
        same.push("x.rowid = e.lk_rowid".to_owned());
        shown.push("'rowid: ' || e.lk_rowid || ' vs ' || quote(x.rowid)".to_owned());
    }
    let sql = format!(
        "SELECT e.id IS NULL, x.id IS NOT NULL, quote(e.id), {} FROM temp.lk_want e
           LEFT JOIN main.{} x ON x.id = e.id
          WHERE x.id IS NULL OR NOT ({})
          ORDER BY e.lk_n",
        shown.join(" || '; ' || "),
        quote_ident(&name),
        same.join(" AND ")
    );
    {
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let (null_id, found, id, diff): (bool, bool, String, String) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
            problems.push(if null_id {
                "a row whose id is NULL".to_owned()
            } else if found {
                format!("id {id} differs: {diff}")
            } else {
                format!("id {id} is missing")
            });
        }
    }
    conn.execute_batch("DROP TABLE temp.lk_want")?;
    Ok(problems)
}
