//! The `recover_crash` campaign: `recover/tests/proptest_crash.rs`'s generator and property,
//! ported to `arbitrary`; that test now draws its cases from here too.
//!
//! A case builds a table `t` (`items`, `Files` or `log_entries`: an `id INTEGER PRIMARY KEY`
//! and 1–4 columns of random names, declared types and nullability, 0–40 rows of values of any
//! storage class), optionally with a child table whose foreign key names `t` (and a trigger whose
//! body names `t`), an index, a view and a trigger on `t`. It runs a prefix of one tool's rebuild
//! of `t` to a new definition (a column added, a column's type changed, or both), each statement
//! in autocommit mode as the tools do, with `legacy_alter_table` on or off, writes up to three
//! rows into whatever is called `t` after the crash (a row the leftover holds is copied from it
//! with `INSERT … SELECT`, as a tool copies), and calls `recover` with `t` expected, on a real
//! file with the default rollback journal. Then:
//!
//! - `recover` returns `Ok`;
//! - whenever nothing was applied, the file is byte for byte what it was before the call;
//! - when something was left: every row (from before the crash, or written after it) is in `t`
//!   or in a leftover, with equal values in every old column;
//! - when nothing was left: `integrity_check` is ok, no leftover remains, `t` has its old or its
//!   new definition and holds every row, `foreign_key_check` finds nothing new, the view works,
//!   and a second `recover` finds nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use arbitrary::{Arbitrary, Result as ArbResult, Unstructured};
use litekeep_recover::{Action, Options, parse_temp_name, quote_ident as q, recover};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params_from_iter};

use crate::values::{lit, value};

/// The names the rebuilt table gets.
const TABLES: [&str; 3] = ["items", "Files", "log_entries"];
/// The names its other columns get: one needs quoting, one has a space, one is a table's name.
const COLUMN_POOL: [&str; 8] = [
    "name",
    "size",
    "note",
    "score",
    "payload",
    "created at",
    "order",
    "items",
];
/// The names of a column a rebuild adds (never in [`COLUMN_POOL`]).
const ADDED_POOL: [&str; 3] = ["added", "lang", "Weight"];
/// `NOT NULL DEFAULT` literals.
const DEFAULTS: [&str; 6] = ["0", "''", "'none'", "1.5", "X'00'", "-7"];

/// A declared column type (`None`: no type at all, BLOB affinity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
enum Ty {
    Integer,
    Text,
    Real,
    Blob,
    Numeric,
    None,
}

impl Ty {
    /// As written in `CREATE TABLE`, and as `pragma_table_info` reports it.
    fn decl(self) -> &'static str {
        match self {
            Ty::Integer => "INTEGER",
            Ty::Text => "TEXT",
            Ty::Real => "REAL",
            Ty::Blob => "BLOB",
            Ty::Numeric => "NUMERIC",
            Ty::None => "",
        }
    }
}

/// A column's nullability.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Nullability {
    Nullable,
    /// `NOT NULL DEFAULT <literal>`.
    NotNullDefault(&'static str),
    /// `NOT NULL` and no default (only for an added column: copying rows into it fails).
    NotNull,
}

impl Nullability {
    /// Nullable 3 : `NOT NULL DEFAULT` 2.
    fn old(u: &mut Unstructured<'_>) -> ArbResult<Self> {
        Ok(if u.int_in_range(0u8..=4)? < 3 {
            Nullability::Nullable
        } else {
            Nullability::NotNullDefault(u.choose(&DEFAULTS)?)
        })
    }

    /// Nullable 6 : `NOT NULL DEFAULT` 3 : `NOT NULL` 1.
    fn added(u: &mut Unstructured<'_>) -> ArbResult<Self> {
        Ok(match u.int_in_range(0u8..=9)? {
            0..=5 => Nullability::Nullable,
            6..=8 => Nullability::NotNullDefault(u.choose(&DEFAULTS)?),
            _ => Nullability::NotNull,
        })
    }
}

#[derive(Debug, Clone)]
struct Col {
    name: &'static str,
    ty: Ty,
    null: Nullability,
}

impl Col {
    fn def(&self) -> String {
        let mut s = q(self.name);
        if self.ty != Ty::None {
            s.push(' ');
            s.push_str(self.ty.decl());
        }
        match self.null {
            Nullability::Nullable => {}
            Nullability::NotNullDefault(lit) => {
                let _ = write!(s, " NOT NULL DEFAULT {lit}");
            }
            Nullability::NotNull => s.push_str(" NOT NULL"),
        }
        s
    }

    fn added(u: &mut Unstructured<'_>) -> ArbResult<Col> {
        Ok(Col {
            name: u.choose(&ADDED_POOL)?,
            ty: u.arbitrary()?,
            null: Nullability::added(u)?,
        })
    }
}

/// The new definition of `t`.
#[derive(Debug, Clone)]
enum Change {
    Add(Col),
    /// The column at this index (modulo the number of columns) gets this type.
    Retype(usize, Ty),
    Both(Col, usize, Ty),
}

/// Whose naming the rebuild follows; `Temp` renames the original first, all others create the
/// new table first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Naming {
    Temp,
    Django,
    DjangoLegacy,
    Alembic,
    SqliteUtils,
    Drizzle,
    Prisma,
}

impl Naming {
    fn temp(self, t: &str) -> String {
        match self {
            Naming::Temp => format!("temp_{t}"),
            Naming::Django => format!("new__{t}"),
            Naming::DjangoLegacy => format!("{t}__new"),
            Naming::Alembic => format!("_alembic_tmp_{t}"),
            Naming::SqliteUtils => format!("{t}_new_0123456789ab"),
            Naming::Drizzle => format!("__new_{t}"),
            Naming::Prisma => format!("new_{t}"),
        }
    }

    fn pattern(self) -> &'static str {
        match self {
            Naming::Temp => "temp_X",
            Naming::Django => "new__X",
            Naming::DjangoLegacy => "X__new",
            Naming::Alembic => "_alembic_tmp_X",
            Naming::SqliteUtils => "X_new_<hex>",
            Naming::Drizzle => "__new_X",
            Naming::Prisma => "new_X",
        }
    }
}

/// One interrupted rebuild: a table and what surrounds it, the rebuild (whose naming and order,
/// `legacy_alter_table`, how many statements ran) and the rows written after the crash.
///
/// The generator is hand-written to keep the SQL valid: distinct column names, NULLs only where
/// the column allows them, ids in `1..100` (rows written after the crash: `1..110`, so some
/// collide).
#[derive(Debug, Clone)]
pub struct CrashCase {
    table: &'static str,
    cols: Vec<Col>,
    /// id → one value per column of `cols`.
    rows: BTreeMap<i64, Vec<Value>>,
    /// A child table with a foreign key to `t`, and a trigger on it whose body names `t`.
    child: bool,
    /// An index on this column of `t` (modulo the number of columns).
    index: Option<usize>,
    /// A view selecting this column of `t`.
    view: Option<usize>,
    /// An `AFTER INSERT` trigger on `t`.
    trigger: bool,
    change: Change,
    naming: Naming,
    legacy: bool,
    /// How many of the rebuild's four statements run before the crash.
    stop: usize,
    /// Rows written into whatever table is called `t` after the crash: id, then values for its
    /// columns in order after `id` (missing ones are NULL).
    after: Vec<(i64, Vec<Value>)>,
}

fn opt_index(u: &mut Unstructured<'_>) -> ArbResult<Option<usize>> {
    Ok(if u.arbitrary()? {
        Some(u.int_in_range(0usize..=3)?)
    } else {
        None
    })
}

impl<'a> Arbitrary<'a> for CrashCase {
    fn arbitrary(u: &mut Unstructured<'a>) -> ArbResult<Self> {
        let table = *u.choose(&TABLES)?;
        // 1–4 distinct column names, in random order.
        let mut pool = COLUMN_POOL.to_vec();
        let n = u.int_in_range(1usize..=4)?;
        let mut cols = Vec::with_capacity(n);
        for _ in 0..n {
            let name = pool.remove(u.choose_index(pool.len())?);
            cols.push(Col {
                name,
                ty: u.arbitrary()?,
                null: Nullability::old(u)?,
            });
        }
        let child = u.arbitrary()?;
        let index = opt_index(u)?;
        let view = opt_index(u)?;
        let trigger = u.arbitrary()?;
        let change = match u.int_in_range(0u8..=2)? {
            0 => Change::Add(Col::added(u)?),
            1 => Change::Retype(u.int_in_range(0usize..=3)?, u.arbitrary()?),
            _ => Change::Both(Col::added(u)?, u.int_in_range(0usize..=3)?, u.arbitrary()?),
        };
        // litekeep's rename-first order 3 : the six create-first namings 6.
        let naming = match u.int_in_range(0u8..=8)? {
            0..=2 => Naming::Temp,
            _ => *u.choose(&[
                Naming::Django,
                Naming::DjangoLegacy,
                Naming::Alembic,
                Naming::SqliteUtils,
                Naming::Drizzle,
                Naming::Prisma,
            ])?,
        };
        let legacy = u.arbitrary()?;
        let stop = u.int_in_range(0usize..=4)?;
        let mut after = Vec::new();
        for _ in 0..u.int_in_range(0usize..=3)? {
            let id = u.int_in_range(1i64..=109)?;
            let vals = (0..5).map(|_| value(u)).collect::<ArbResult<Vec<_>>>()?;
            after.push((id, vals));
        }
        // The rows last: they take whatever bytes are left.
        let mut rows = BTreeMap::new();
        for _ in 0..u.int_in_range(0usize..=40)? {
            let id = u.int_in_range(1i64..=99)?;
            let mut vals = Vec::with_capacity(cols.len());
            for c in &cols {
                let v = value(u)?;
                // NULLs only where allowed.
                vals.push(if v == Value::Null && c.null != Nullability::Nullable {
                    Value::Integer(id)
                } else {
                    v
                });
            }
            rows.insert(id, vals);
        }
        Ok(CrashCase {
            table,
            cols,
            rows,
            child,
            index,
            view,
            trigger,
            change,
            naming,
            legacy,
            stop,
            after,
        })
    }
}

impl CrashCase {
    fn old_names(&self) -> Vec<&'static str> {
        self.cols.iter().map(|c| c.name).collect()
    }

    fn new_cols(&self) -> Vec<Col> {
        let mut cols = self.cols.clone();
        let (add, retype) = match &self.change {
            Change::Add(c) => (Some(c), None),
            Change::Retype(i, ty) => (None, Some((*i, *ty))),
            Change::Both(c, i, ty) => (Some(c), Some((*i, *ty))),
        };
        if let Some((i, ty)) = retype {
            let n = cols.len();
            cols[i % n].ty = ty;
        }
        cols.extend(add.cloned());
        cols
    }

    fn create(name: &str, cols: &[Col]) -> String {
        let defs: Vec<String> = cols.iter().map(Col::def).collect();
        format!(
            "CREATE TABLE {} (\"id\" INTEGER PRIMARY KEY, {})",
            q(name),
            defs.join(", ")
        )
    }

    fn temp(&self) -> String {
        self.naming.temp(self.table)
    }

    fn view_name(&self) -> String {
        format!("{}_view", self.table)
    }

    /// The schema and rows before the rebuild, as one script.
    pub fn setup_sql(&self) -> String {
        let t = q(self.table);
        let mut s = String::from("BEGIN;\n");
        let _ = writeln!(s, "{};", CrashCase::create(self.table, &self.cols));
        let names: Vec<String> = self.cols.iter().map(|c| q(c.name)).collect();
        for (id, vals) in &self.rows {
            let lits: Vec<String> = vals.iter().map(lit).collect();
            let _ = writeln!(
                s,
                "INSERT INTO {t} (\"id\", {}) VALUES ({id}, {});",
                names.join(", "),
                lits.join(", ")
            );
        }
        let col = |i: usize| q(self.cols[i % self.cols.len()].name);
        if let Some(i) = self.index {
            let _ = writeln!(
                s,
                "CREATE INDEX {} ON {t} ({});",
                q(&format!("{}_idx", self.table)),
                col(i)
            );
        }
        if let Some(i) = self.view {
            let _ = writeln!(
                s,
                "CREATE VIEW {} AS SELECT \"id\", {} FROM {t};",
                q(&self.view_name()),
                col(i)
            );
        }
        if self.trigger {
            s.push_str("CREATE TABLE \"audit\" (\"what\");\n");
            let _ = writeln!(
                s,
                "CREATE TRIGGER {} AFTER INSERT ON {t} BEGIN INSERT INTO \"audit\" VALUES (new.\"id\"); END;",
                q(&format!("{}_ins", self.table))
            );
        }
        if self.child {
            let _ = writeln!(
                s,
                "CREATE TABLE \"child\" (\"id\" INTEGER PRIMARY KEY, \"parent\" INTEGER REFERENCES {t}(\"id\"));"
            );
            let _ = writeln!(
                s,
                "CREATE TRIGGER \"child_check\" AFTER INSERT ON \"child\" BEGIN SELECT \"id\" FROM {t} WHERE \"id\" = new.\"parent\"; END;"
            );
            s.push_str("INSERT INTO \"child\" (\"parent\") VALUES (NULL);\n");
            for id in self.rows.keys().take(5) {
                let _ = writeln!(s, "INSERT INTO \"child\" (\"parent\") VALUES ({id});");
            }
        }
        s.push_str("COMMIT;");
        s
    }

    fn pragmas(&self) -> String {
        format!(
            "PRAGMA foreign_keys = OFF; PRAGMA legacy_alter_table = {};",
            u8::from(self.legacy)
        )
    }

    /// The rebuild's four statements, in the tool's order.
    pub fn rebuild_sql(&self) -> Vec<String> {
        let (t, tmp) = (q(self.table), q(&self.temp()));
        let cols: Vec<String> = std::iter::once("\"id\"".to_owned())
            .chain(self.cols.iter().map(|c| q(c.name)))
            .collect();
        let cols = cols.join(", ");
        if self.naming == Naming::Temp {
            vec![
                format!("ALTER TABLE {t} RENAME TO {tmp}"),
                CrashCase::create(self.table, &self.new_cols()),
                format!("INSERT INTO {t} ({cols}) SELECT {cols} FROM {tmp}"),
                format!("DROP TABLE {tmp}"),
            ]
        } else {
            vec![
                CrashCase::create(&self.temp(), &self.new_cols()),
                format!("INSERT INTO {tmp} ({cols}) SELECT {cols} FROM {t}"),
                format!("DROP TABLE {t}"),
                format!("ALTER TABLE {tmp} RENAME TO {t}"),
            ]
        }
    }

    /// The write of row `id` into whatever is called `t` after the crash. A row the rebuild's
    /// leftover already holds is copied from it the way a tool copies, `INSERT … SELECT`: the
    /// stored value read back, converted by the new column's affinity (a REAL 12.0 into a TEXT
    /// column is `'12.0'`), with `vals` only in the columns the leftover lacks; any other row
    /// gets `vals` as literals (missing ones are NULL).
    fn rewrite_sql(
        &self,
        conn: &Connection,
        cols: &[(String, String)],
        id: i64,
        vals: &[Value],
    ) -> rusqlite::Result<String> {
        let (t, tmp) = (q(self.table), self.temp());
        let names: Vec<String> = cols[1..].iter().map(|(n, _)| q(n)).collect();
        let lits: Vec<String> = (0..names.len())
            .map(|i| vals.get(i).map_or("NULL".to_owned(), lit))
            .collect();
        let held = columns(conn, &tmp)?.is_some()
            && conn
                .query_row(
                    &format!("SELECT 1 FROM {} WHERE \"id\" = {id}", q(&tmp)),
                    [],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
        if !held {
            return Ok(format!(
                "INSERT INTO {t} (\"id\", {}) VALUES ({id}, {})",
                names.join(", "),
                lits.join(", ")
            ));
        }
        let copied: Vec<String> = cols[1..]
            .iter()
            .zip(&lits)
            .map(|((name, _), lit)| {
                if self.cols.iter().any(|c| c.name.eq_ignore_ascii_case(name)) {
                    q(name)
                } else {
                    lit.clone()
                }
            })
            .collect();
        Ok(format!(
            "INSERT INTO {t} (\"id\", {}) SELECT \"id\", {} FROM {} WHERE \"id\" = {id}",
            names.join(", "),
            copied.join(", "),
            q(&tmp)
        ))
    }
}

/// What one [`recover_crash`] case did, for tallies and for choosing seed inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CrashOutcome {
    /// The naming of the interrupted rebuild (`temp_X`, `new__X`, …).
    pub naming: &'static str,
    /// Rows in the table before the crash.
    pub rows_before: usize,
    /// How many of the rebuild's statements ran before the crash (one SQLite refuses ends it).
    pub statements_run: usize,
    /// Rows written after the crash that SQLite accepted.
    pub written_after: usize,
    /// The action of each finding: `rename back`, `restore rows`, `insert missing`, `drop temp`,
    /// `repoint` or `leave`.
    pub actions: Vec<&'static str>,
    /// Whether `recover` changed the file.
    pub applied: bool,
}

/// The SQL that brought the file to its state, for a failure message.
struct Log(Vec<String>);

impl Log {
    fn fail(&self, what: &str) -> ! {
        panic!(
            "recover_crash: {what}\n-- reproduce with (sqlite3 shell, autocommit), then recover with expect_table:\n{}\n-- end",
            self.0
                .iter()
                .map(|l| if l.starts_with("--") {
                    l.clone()
                } else {
                    format!("{};", l.trim_end_matches(';'))
                })
                .collect::<Vec<_>>()
                .join("\n")
        )
    }
}

/// Unwraps a result or fails the case with the repro script.
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

/// A row that must survive: id, values of the old columns as stored, and where it came from.
struct Wanted {
    id: i64,
    vals: Vec<Value>,
    origin: &'static str,
}

/// Runs `case` in the scratch directory `dir` (created if missing; its `app.db` and side files
/// are replaced) and panics, with the SQL that reproduces the state, if `recover` loses a row,
/// fails, changes a file it leaves a finding in, or leaves anything unhealthy. A failing case
/// leaves its files for a look; a passing one removes them, and `dir` too if nothing else is
/// in it.
pub fn recover_crash(case: &CrashCase, dir: &Path) {
    recover_crash_outcome(case, dir);
}

/// The files a case makes in its directory (`recover` takes the lock and the write gate).
const FILES: [&str; 6] = ["", "-journal", "-wal", "-shm", ".lock", ".write.lock"];

fn remove_files(db: &Path) {
    for suffix in FILES {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
}

/// [`recover_crash`], returning what happened.
pub fn recover_crash_outcome(case: &CrashCase, dir: &Path) -> CrashOutcome {
    let outcome = run(case, dir);
    remove_files(&dir.join("app.db"));
    let _ = std::fs::remove_dir(dir);
    outcome
}

fn run(case: &CrashCase, dir: &Path) -> CrashOutcome {
    let mut log = Log(vec![case.setup_sql()]);
    std::fs::create_dir_all(dir).or_fail(&log, "creating the scratch directory");
    let db = dir.join("app.db");
    remove_files(&db);
    let t = case.table;
    let old = case.old_names();
    let mut outcome = CrashOutcome {
        naming: case.naming.pattern(),
        rows_before: 0,
        statements_run: 0,
        written_after: 0,
        actions: Vec::new(),
        applied: false,
    };

    let conn = Connection::open(&db).or_fail(&log, "opening");
    conn.execute_batch(&case.setup_sql()).or_fail(&log, "setup");
    let mut want: Vec<Wanted> = read_rows(&conn, t, &old)
        .or_fail(&log, "snapshot")
        .into_iter()
        .map(|(id, vals)| Wanted {
            id,
            vals,
            origin: "before the crash",
        })
        .collect();
    outcome.rows_before = want.len();
    let fk_before = fk_violations(&conn).or_fail(&log, "fk before");

    // The crash: a prefix of the rebuild, each statement on its own; one SQLite refuses ends it.
    conn.execute_batch(&case.pragmas()).or_fail(&log, "pragmas");
    log.0.push(case.pragmas());
    for sql in &case.rebuild_sql()[..case.stop] {
        match conn.execute_batch(sql) {
            Ok(()) => {
                log.0.push(sql.clone());
                outcome.statements_run += 1;
            }
            Err(e) => {
                log.0.push(format!("-- refused: {sql} ({e})"));
                break;
            }
        }
    }

    // The application keeps writing into whatever is called `t` now.
    for (id, vals) in &case.after {
        let Some(cols) = columns(&conn, t).or_fail(&log, "columns") else {
            break;
        };
        let sql = case
            .rewrite_sql(&conn, &cols, *id, vals)
            .or_fail(&log, "the write after the crash");
        if conn.execute_batch(&sql).is_ok() {
            log.0.push(sql);
            outcome.written_after += 1;
            let stored = read_rows(&conn, t, &old).or_fail(&log, "reading a new row");
            let Some((_, vals)) = stored.into_iter().find(|(i, _)| i == id) else {
                log.fail(&format!("row {id} was written but cannot be read back"));
            };
            want.push(Wanted {
                id: *id,
                vals,
                origin: "written after the crash",
            });
        }
    }
    drop(conn);

    let before = std::fs::read(&db).or_fail(&log, "reading the file");
    let options = Options::default().expect_table(t);
    let report = match recover(&db, &options) {
        Ok(report) => report,
        Err(e) => {
            let file = if std::fs::read(&db).ok().as_ref() == Some(&before) {
                "the file is unchanged"
            } else {
                "AND THE FILE CHANGED"
            };
            log.fail(&format!("recover failed ({file}): {e}"));
        }
    };
    let after = std::fs::read(&db).or_fail(&log, "reading the file");
    log.0.push(format!(
        "-- recover with expect_table({t:?}): applied {}",
        report.applied
    ));
    log.0
        .extend(report.findings.iter().map(|f| format!("--   {f}")));
    outcome.applied = report.applied;
    outcome.actions = report
        .findings
        .iter()
        .map(|f| match f.action {
            Action::RenameBack => "rename back",
            Action::RestoreRows { .. } => "restore rows",
            Action::InsertMissing { .. } => "insert missing",
            Action::DropTemp => "drop temp",
            Action::Repoint => "repoint",
            Action::Leave { .. } => "leave",
        })
        .collect();
    let left = report.left().count() > 0;

    if !report.applied {
        if before != after {
            log.fail("nothing applied, yet the file changed");
        }
        if !left && !report.is_clean() {
            log.fail("findings, none left, nothing applied");
        }
    }

    let conn = Connection::open(&db).or_fail(&log, "reopening");
    if left {
        // Whatever was left, no row may have gone: each is in `t` or a leftover.
        let mut places = vec![t.to_owned()];
        places.extend(leftovers(&conn).or_fail(&log, "tables"));
        let mut lost: Option<BTreeMap<usize, String>> = None;
        for place in &places {
            let missing = missing_rows(&conn, place, &old, &want).or_fail(&log, "comparing");
            lost = Some(match lost {
                None => missing,
                Some(prev) => prev
                    .into_iter()
                    .filter(|(n, _)| missing.contains_key(n))
                    .collect(),
            });
        }
        let lost: Vec<String> = lost.unwrap_or_default().into_values().collect();
        if !lost.is_empty() {
            log.fail(&format!("rows in none of {places:?}: {lost:#?}"));
        }
        let integrity = integrity(&conn).or_fail(&log, "integrity_check");
        if integrity != ["ok"] {
            log.fail(&format!("integrity_check: {integrity:?}"));
        }
        return outcome;
    }

    let integrity = integrity(&conn).or_fail(&log, "integrity_check");
    if integrity != ["ok"] {
        log.fail(&format!("integrity_check: {integrity:?}"));
    }
    let remaining = leftovers(&conn).or_fail(&log, "tables");
    if !remaining.is_empty() {
        log.fail(&format!("leftovers remain: {remaining:?}"));
    }
    let Some(def) = columns(&conn, t).or_fail(&log, "columns") else {
        log.fail(&format!("{t} is missing"));
    };
    let def_of = |cols: &[Col]| -> Vec<(String, String)> {
        std::iter::once(("id".to_owned(), "INTEGER".to_owned()))
            .chain(
                cols.iter()
                    .map(|c| (c.name.to_owned(), c.ty.decl().to_owned())),
            )
            .collect()
    };
    if def != def_of(&case.cols) && def != def_of(&case.new_cols()) {
        log.fail(&format!("{t} is neither old nor new: {def:?}"));
    }
    let missing: Vec<String> = missing_rows(&conn, t, &old, &want)
        .or_fail(&log, "comparing")
        .into_values()
        .collect();
    if !missing.is_empty() {
        log.fail(&format!("rows missing or changed in {t}: {missing:#?}"));
    }
    let fk_after = fk_violations(&conn).or_fail(&log, "foreign_key_check");
    let new_violations: Vec<&FkViolation> = fk_after.difference(&fk_before).collect();
    if !new_violations.is_empty() {
        log.fail(&format!("new foreign key violations: {new_violations:?}"));
    }
    if case.view.is_some() {
        conn.query_row(
            &format!("SELECT count(*) FROM {}", q(&case.view_name())),
            [],
            |r| r.get::<_, i64>(0),
        )
        .or_fail(&log, "querying the view");
    }
    drop(conn);
    let again = recover(&db, &options).or_fail(&log, "second recover");
    if !again.is_clean() {
        log.fail(&format!(
            "second recover found {:#?}",
            again
                .findings
                .iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
        ));
    }
    outcome
}

type FkViolation = (String, Option<i64>, String, i64);

fn integrity(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("PRAGMA integrity_check")?;
    stmt.query_map([], |r| r.get(0))?.collect()
}

fn fk_violations(conn: &Connection) -> rusqlite::Result<BTreeSet<FkViolation>> {
    let mut stmt =
        conn.prepare("SELECT \"table\", rowid, parent, fkid FROM pragma_foreign_key_check")?;
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect()
}

/// The tables whose names `parse_temp_name` recognises, and litekeep's own.
fn leftovers(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")?;
    let names: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(names
        .into_iter()
        .filter(|n| parse_temp_name(n).is_some() || n.starts_with("_litekeep_"))
        .collect())
}

/// The columns (name, declared type) of `table`, or `None` when no table has that name.
fn columns(conn: &Connection, table: &str) -> rusqlite::Result<Option<Vec<(String, String)>>> {
    let exists = conn
        .query_row(
            "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
            [table],
            |r| r.get::<_, i64>(0),
        )
        .optional()?;
    if exists.is_none() {
        return Ok(None);
    }
    let mut stmt = conn.prepare("SELECT name, type FROM pragma_table_info(?1) ORDER BY cid")?;
    let cols = stmt
        .query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(Some(cols))
}

fn read_rows(
    conn: &Connection,
    table: &str,
    cols: &[&str],
) -> rusqlite::Result<Vec<(i64, Vec<Value>)>> {
    let list: Vec<String> = cols.iter().map(|c| q(c)).collect();
    let mut stmt = conn.prepare(&format!(
        "SELECT \"id\", {} FROM {} ORDER BY \"id\"",
        list.join(", "),
        q(table)
    ))?;
    stmt.query_map([], |r| {
        let vals = (1..=cols.len())
            .map(|i| r.get::<_, Value>(i))
            .collect::<Result<_, _>>()?;
        Ok((r.get(0)?, vals))
    })?
    .collect()
}

/// The wanted rows that `table` does not hold with equal values in `cols`: index in `want` →
/// what is wrong.
///
/// "Equal" after a type change means: the value `table`'s column stores when given the value
/// stored before. Rather than guess SQLite's conversions, the wanted values are inserted into a
/// TEMP table whose columns are declared exactly as `table`'s are now, so SQLite applies the very
/// conversion a rebuild's `INSERT … SELECT` applies; the stored values are then compared with
/// `IS` and `typeof` (1 and 1.0 are `IS`-equal but not the same value).
fn missing_rows(
    conn: &Connection,
    table: &str,
    cols: &[&str],
    want: &[Wanted],
) -> rusqlite::Result<BTreeMap<usize, String>> {
    let all = |why: String| -> BTreeMap<usize, String> {
        want.iter()
            .enumerate()
            .map(|(n, w)| (n, format!("id {} ({}): {why}", w.id, w.origin)))
            .collect()
    };
    let Some(def) = columns(conn, table)? else {
        return Ok(all(format!("no table {table}")));
    };
    let mut decls = Vec::new();
    for c in cols {
        match def.iter().find(|(n, _)| n.eq_ignore_ascii_case(c)) {
            Some((_, ty)) => decls.push(format!("{} {ty}", q(c))),
            None => return Ok(all(format!("{table} has no column {c}"))),
        }
    }
    conn.execute_batch(&format!(
        "DROP TABLE IF EXISTS temp.lk_want;
         CREATE TEMP TABLE lk_want (\"n\" INTEGER PRIMARY KEY, \"id\" INTEGER, {})",
        decls.join(", ")
    ))?;
    let marks = vec!["?"; cols.len() + 2].join(", ");
    let mut insert = conn.prepare(&format!("INSERT INTO temp.lk_want VALUES ({marks})"))?;
    for (n, w) in want.iter().enumerate() {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let params = [Value::Integer(n), Value::Integer(w.id)]
            .into_iter()
            .chain(w.vals.iter().cloned());
        insert.execute(params_from_iter(params))?;
    }
    let same: Vec<String> = cols
        .iter()
        .map(|c| {
            let c = q(c);
            format!("(x.{c} IS e.{c} AND typeof(x.{c}) = typeof(e.{c}))")
        })
        .collect();
    let shown: Vec<String> = cols
        .iter()
        .map(|c| {
            let c = q(c);
            format!(
                "'{}: ' || quote(e.{c}) || ' vs ' || quote(x.{c})",
                c.replace('\'', "''")
            )
        })
        .collect();
    let sql = format!(
        "SELECT e.\"n\", e.\"id\", x.\"id\" IS NOT NULL, {} FROM temp.lk_want e
           LEFT JOIN main.{} x ON x.\"id\" = e.\"id\"
          WHERE x.\"id\" IS NULL OR NOT ({})
          ORDER BY e.\"n\"",
        shown.join(" || '; ' || "),
        q(table),
        same.join(" AND ")
    );
    let mut stmt = conn.prepare(&sql)?;
    let missing = stmt
        .query_map([], |r| {
            let n: i64 = r.get(0)?;
            let id: i64 = r.get(1)?;
            let found: bool = r.get(2)?;
            let diff: String = r.get(3)?;
            let n = usize::try_from(n).unwrap_or(0);
            let origin = want.get(n).map_or("?", |w| w.origin);
            Ok((
                n,
                if found {
                    format!("id {id} ({origin}) differs in {table}: {diff}")
                } else {
                    format!("id {id} ({origin}) missing from {table}")
                },
            ))
        })?
        .collect::<Result<_, _>>()?;
    drop(stmt);
    drop(insert);
    conn.execute_batch("DROP TABLE temp.lk_want")?;
    Ok(missing)
}
