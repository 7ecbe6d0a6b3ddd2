//! Property test of [`litekeep_recover::recover`] over random tables and random interruption
//! points: it either repairs losslessly, or reports what it leaves and leaves the file byte for
//! byte as it was.
//!
//! Each case builds a random table `t` (`items`, `Files` or `log_entries`: an
//! `id INTEGER PRIMARY KEY` and 1–4 columns of random names, declared types and nullability,
//! 0–40 rows of values of any storage class), optionally with a child table whose foreign key
//! names `t` (and a trigger whose body names `t`), an index, a view and a trigger on `t`. It then
//! runs a random prefix of one tool's rebuild of `t` to a random new definition (a column added,
//! a column's type changed, or both; every old column kept), each statement in autocommit mode
//! as the tools do, optionally writes up to three rows into whatever table is called `t` after the
//! crash, and calls `recover` with `t` expected. Then:
//!
//! - whenever nothing was applied, the file is byte for byte what it was before the call;
//! - when nothing was left: `integrity_check` is ok, no leftover remains, `t` has its old or its
//!   new definition and holds every row it held before the crash and every row written after it,
//!   with equal values in every old column; `foreign_key_check` finds nothing new; the view works;
//!   a second `recover` finds nothing;
//! - when something was left but something else was repaired, every row is still in `t` or in a
//!   leftover.
//!
//! 64 cases by default; `PROPTEST_CASES` overrides it (the `proptest!` macro reads it). A tally of
//! the repairs the cases needed is printed at the end (`-- --nocapture` to see it). A failing case
//! is reported with the SQL that reproduces it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use litekeep_recover::{Action, Options, parse_temp_name, quote_ident as q, recover};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use proptest::test_runner::{TestCaseError, contextualize_config};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params_from_iter};

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

// ---------------------------------------------------------------------------------------------
// The generated case.

/// A declared column type (`None`: no type at all, BLOB affinity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
            Nullability::NotNullDefault(lit) => write!(s, " NOT NULL DEFAULT {lit}").unwrap(),
            Nullability::NotNull => s.push_str(" NOT NULL"),
        }
        s
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
}

#[derive(Debug, Clone)]
struct Case {
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

impl Case {
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
    fn setup(&self) -> String {
        let t = q(self.table);
        let mut s = String::from("BEGIN;\n");
        writeln!(s, "{};", Case::create(self.table, &self.cols)).unwrap();
        let names: Vec<String> = self.cols.iter().map(|c| q(c.name)).collect();
        for (id, vals) in &self.rows {
            let lits: Vec<String> = vals.iter().map(lit).collect();
            writeln!(
                s,
                "INSERT INTO {t} (\"id\", {}) VALUES ({id}, {});",
                names.join(", "),
                lits.join(", ")
            )
            .unwrap();
        }
        let col = |i: usize| q(self.cols[i % self.cols.len()].name);
        if let Some(i) = self.index {
            writeln!(
                s,
                "CREATE INDEX {} ON {t} ({});",
                q(&format!("{}_idx", self.table)),
                col(i)
            )
            .unwrap();
        }
        if let Some(i) = self.view {
            writeln!(
                s,
                "CREATE VIEW {} AS SELECT \"id\", {} FROM {t};",
                q(&self.view_name()),
                col(i)
            )
            .unwrap();
        }
        if self.trigger {
            s.push_str("CREATE TABLE \"audit\" (\"what\");\n");
            writeln!(
                s,
                "CREATE TRIGGER {} AFTER INSERT ON {t} BEGIN INSERT INTO \"audit\" VALUES (new.\"id\"); END;",
                q(&format!("{}_ins", self.table))
            )
            .unwrap();
        }
        if self.child {
            writeln!(
                s,
                "CREATE TABLE \"child\" (\"id\" INTEGER PRIMARY KEY, \"parent\" INTEGER REFERENCES {t}(\"id\"));"
            )
            .unwrap();
            writeln!(
                s,
                "CREATE TRIGGER \"child_check\" AFTER INSERT ON \"child\" BEGIN SELECT \"id\" FROM {t} WHERE \"id\" = new.\"parent\"; END;"
            )
            .unwrap();
            s.push_str("INSERT INTO \"child\" (\"parent\") VALUES (NULL);\n");
            for id in self.rows.keys().take(5) {
                writeln!(s, "INSERT INTO \"child\" (\"parent\") VALUES ({id});").unwrap();
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

    /// The rebuild's statements, in the shapes of `common::Rebuild::statements`.
    fn rebuild(&self) -> Vec<String> {
        let (t, tmp) = (q(self.table), q(&self.temp()));
        let cols: Vec<String> = std::iter::once("\"id\"".to_owned())
            .chain(self.cols.iter().map(|c| q(c.name)))
            .collect();
        let cols = cols.join(", ");
        if self.naming == Naming::Temp {
            vec![
                format!("ALTER TABLE {t} RENAME TO {tmp}"),
                Case::create(self.table, &self.new_cols()),
                format!("INSERT INTO {t} ({cols}) SELECT {cols} FROM {tmp}"),
                format!("DROP TABLE {tmp}"),
            ]
        } else {
            vec![
                Case::create(&self.temp(), &self.new_cols()),
                format!("INSERT INTO {tmp} ({cols}) SELECT {cols} FROM {t}"),
                format!("DROP TABLE {t}"),
                format!("ALTER TABLE {tmp} RENAME TO {t}"),
            ]
        }
    }
}

/// A value as a SQL literal (the repro script uses these; the checks use the stored values).
fn lit(v: &Value) -> String {
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

// ---------------------------------------------------------------------------------------------
// Strategies.

fn ty() -> impl Strategy<Value = Ty> {
    select(vec![
        Ty::Integer,
        Ty::Text,
        Ty::Real,
        Ty::Blob,
        Ty::Numeric,
        Ty::None,
    ])
}

fn default_lit() -> impl Strategy<Value = &'static str> {
    select(vec!["0", "''", "'none'", "1.5", "X'00'", "-7"])
}

fn null() -> impl Strategy<Value = Nullability> {
    prop_oneof![
        3 => Just(Nullability::Nullable),
        2 => default_lit().prop_map(Nullability::NotNullDefault),
    ]
}

fn added_null() -> impl Strategy<Value = Nullability> {
    prop_oneof![
        6 => Just(Nullability::Nullable),
        3 => default_lit().prop_map(Nullability::NotNullDefault),
        1 => Just(Nullability::NotNull),
    ]
}

fn real() -> impl Strategy<Value = f64> {
    prop_oneof![
        select(vec![
            0.1,
            0.1 + 0.2,
            2.5,
            3.0,
            -0.0,
            1e20,
            1.0 / 3.0,
            123_456_789.123_456_78,
            f64::INFINITY,
        ]),
        -1e6f64..1e6,
        proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO,
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec![
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
        ])
        .prop_map(str::to_owned),
        "[a-z0-9 .]{0,6}",
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => Just(Value::Null),
        3 => prop_oneof![any::<i64>(), -1000i64..1000].prop_map(Value::Integer),
        3 => real().prop_map(Value::Real),
        3 => text().prop_map(Value::Text),
        1 => vec(any::<u8>(), 0..4).prop_map(Value::Blob),
    ]
}

fn added() -> impl Strategy<Value = Col> {
    (select(ADDED_POOL.to_vec()), ty(), added_null()).prop_map(|(name, ty, null)| Col {
        name,
        ty,
        null,
    })
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        added().prop_map(Change::Add),
        (0usize..4, ty()).prop_map(|(i, ty)| Change::Retype(i, ty)),
        (added(), 0usize..4, ty()).prop_map(|(c, i, ty)| Change::Both(c, i, ty)),
    ]
}

fn naming() -> impl Strategy<Value = Naming> {
    prop_oneof![
        3 => Just(Naming::Temp),
        6 => select(vec![
            Naming::Django,
            Naming::DjangoLegacy,
            Naming::Alembic,
            Naming::SqliteUtils,
            Naming::Drizzle,
            Naming::Prisma,
        ]),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    // Rows are drawn 4 values wide and cut to the columns drawn (no `prop_flat_map`, which
    // shrinks poorly).
    let table = (
        select(TABLES.to_vec()),
        subsequence(COLUMN_POOL.to_vec(), 1..=4).prop_shuffle(),
        vec((ty(), null()), 4),
        btree_map(1i64..100, vec(value(), 4), 0..=40),
    )
        .prop_map(|(table, names, kinds, mut rows)| {
            let cols: Vec<Col> = names
                .into_iter()
                .zip(kinds)
                .map(|(name, (ty, null))| Col { name, ty, null })
                .collect();
            for (id, vals) in &mut rows {
                vals.truncate(cols.len());
                // NULLs only where allowed.
                for (v, c) in vals.iter_mut().zip(&cols) {
                    if *v == Value::Null && c.null != Nullability::Nullable {
                        *v = Value::Integer(*id);
                    }
                }
            }
            (table, cols, rows)
        });
    let objects = (
        any::<bool>(),
        proptest::option::of(0usize..4),
        proptest::option::of(0usize..4),
        any::<bool>(),
    );
    let rebuild = (change(), naming(), any::<bool>(), 0usize..=4);
    let after = vec((1i64..110, vec(value(), 5)), 0..=3);
    (table, objects, rebuild, after).prop_map(
        |(
            (table, cols, rows),
            (child, index, view, trigger),
            (change, naming, legacy, stop),
            after,
        )| Case {
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
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Running a case.

/// Counts of what the cases needed, printed after the last case.
static TALLY: Mutex<BTreeMap<&'static str, u32>> = Mutex::new(BTreeMap::new());
static DONE: AtomicU32 = AtomicU32::new(0);

fn count(what: &'static str) {
    *TALLY.lock().unwrap().entry(what).or_default() += 1;
}

fn config() -> ProptestConfig {
    ProptestConfig {
        // PROPTEST_CASES, when set, wins over the default of 64.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(64),
        failure_persistence: None,
        // The default (4 × cases) stops long before a case with 40 rows is minimal.
        max_shrink_iters: 4096,
        max_shrink_time: 60_000,
        ..ProptestConfig::default()
    }
}

fn scratch() -> PathBuf {
    std::env::temp_dir().join(format!("lk-recover-{}-proptest", std::process::id()))
}

/// The SQL that brought the file to its state, for a failure message.
struct Log(Vec<String>);

impl Log {
    fn fail(&self, what: String) -> TestCaseError {
        TestCaseError::fail(format!(
            "{what}\n-- reproduce with (sqlite3 shell, autocommit), then recover:\n{}\n-- end",
            self.0
                .iter()
                .map(|l| if l.starts_with("--") {
                    l.clone()
                } else {
                    format!("{};", l.trim_end_matches(';'))
                })
                .collect::<Vec<_>>()
                .join("\n")
        ))
    }
}

/// Lifts a rusqlite error into a test failure with the repro script.
trait OrFail<T> {
    fn or_fail(self, log: &Log, what: &str) -> Result<T, TestCaseError>;
}

impl<T, E: std::fmt::Display> OrFail<T> for Result<T, E> {
    fn or_fail(self, log: &Log, what: &str) -> Result<T, TestCaseError> {
        self.map_err(|e| log.fail(format!("{what}: {e}")))
    }
}

/// A row that must survive: id, values of the old columns as stored, and where it came from.
struct Wanted {
    id: i64,
    vals: Vec<Value>,
    origin: &'static str,
}

fn run(case: &Case) -> Result<(), TestCaseError> {
    let dir = scratch();
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("app.db");
    for suffix in ["", "-journal", "-wal", "-shm", ".lock"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let t = case.table;
    let old = case.old_names();
    let mut log = Log(vec![case.setup()]);

    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(&case.setup()).or_fail(&log, "setup")?;
    let mut want: Vec<Wanted> = read_rows(&conn, t, &old)
        .or_fail(&log, "snapshot")?
        .into_iter()
        .map(|(id, vals)| Wanted {
            id,
            vals,
            origin: "before the crash",
        })
        .collect();
    let fk_before: BTreeSet<FkViolation> = fk_violations(&conn).or_fail(&log, "fk before")?;

    // The crash: a prefix of the rebuild, each statement on its own; one SQLite refuses ends it.
    conn.execute_batch(&case.pragmas()).unwrap();
    log.0.push(case.pragmas());
    for sql in &case.rebuild()[..case.stop] {
        match conn.execute_batch(sql) {
            Ok(()) => log.0.push(sql.clone()),
            Err(e) => {
                log.0.push(format!("-- refused: {sql} ({e})"));
                count("rebuild statement refused");
                break;
            }
        }
    }

    // The application keeps writing into whatever is called `t` now.
    for (id, vals) in &case.after {
        let Some(cols) = columns(&conn, t).or_fail(&log, "columns")? else {
            break;
        };
        let names: Vec<String> = cols[1..].iter().map(|(n, _)| q(n)).collect();
        let lits: Vec<String> = (0..names.len())
            .map(|i| vals.get(i).map_or("NULL".to_owned(), lit))
            .collect();
        let sql = format!(
            "INSERT INTO {} (\"id\", {}) VALUES ({id}, {})",
            q(t),
            names.join(", "),
            lits.join(", ")
        );
        if conn.execute_batch(&sql).is_ok() {
            log.0.push(sql);
            count("row written after the crash");
            let stored = read_rows(&conn, t, &old).or_fail(&log, "reading a new row")?;
            let (_, vals) = stored.into_iter().find(|(i, _)| i == id).unwrap();
            want.push(Wanted {
                id: *id,
                vals,
                origin: "written after the crash",
            });
        }
    }
    drop(conn);

    let before = std::fs::read(&db).unwrap();
    let options = Options::default().expect_table(t);
    let report = match recover(&db, &options) {
        Ok(report) => report,
        Err(e) => {
            let file = if std::fs::read(&db).unwrap() == before {
                "the file is unchanged"
            } else {
                "AND THE FILE CHANGED"
            };
            return Err(log.fail(format!("recover failed ({file}): {e}")));
        }
    };
    let after = std::fs::read(&db).unwrap();
    log.0.push(format!(
        "-- recover with expect_table({t:?}): applied {}",
        report.applied
    ));
    log.0
        .extend(report.findings.iter().map(|f| format!("--   {f}")));
    for f in &report.findings {
        count(match f.action {
            Action::RenameBack => "action: rename back",
            Action::RestoreRows { .. } => "action: restore rows",
            Action::InsertMissing { .. } => "action: insert missing",
            Action::DropTemp => "action: drop temp",
            Action::Repoint => "action: repoint",
            Action::Leave { ref reason } if reason.contains("have keys") => {
                "left: keys the original holds with other values"
            }
            Action::Leave { ref reason } if reason.contains("columns") => {
                "left: values in columns the original lacks"
            }
            Action::Leave { ref reason } if reason.contains("constraint") => {
                "left: copying breaks a constraint"
            }
            Action::Leave { .. } => "left: other reason",
        });
    }
    if report.is_clean() {
        count("clean");
    }
    let left = report.left().count() > 0;

    if !report.applied {
        if before != after {
            return Err(log.fail("nothing applied, yet the file changed".to_owned()));
        }
        if !left && !report.is_clean() {
            return Err(log.fail("findings, none left, nothing applied".to_owned()));
        }
    }

    let conn = Connection::open(&db).unwrap();
    if left {
        // Whatever was left, no row may have gone: each is in `t` or a leftover.
        let mut places = vec![t.to_owned()];
        places.extend(leftovers(&conn).or_fail(&log, "tables")?);
        let mut lost: Option<BTreeMap<usize, String>> = None;
        for place in &places {
            let missing = missing_rows(&conn, place, &old, &want).or_fail(&log, "comparing")?;
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
            return Err(log.fail(format!("rows in none of {places:?}: {lost:#?}")));
        }
        count(if report.applied {
            "left one, repaired another"
        } else {
            "left, file unchanged"
        });
        return Ok(());
    }

    let integrity: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .or_fail(&log, "integrity_check")?;
    if integrity != ["ok"] {
        return Err(log.fail(format!("integrity_check: {integrity:?}")));
    }
    let remaining = leftovers(&conn).or_fail(&log, "tables")?;
    if !remaining.is_empty() {
        return Err(log.fail(format!("leftovers remain: {remaining:?}")));
    }
    let Some(def) = columns(&conn, t).or_fail(&log, "columns")? else {
        return Err(log.fail(format!("{t} is missing")));
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
        return Err(log.fail(format!("{t} is neither old nor new: {def:?}")));
    }
    let missing: Vec<String> = missing_rows(&conn, t, &old, &want)
        .or_fail(&log, "comparing")?
        .into_values()
        .collect();
    if !missing.is_empty() {
        return Err(log.fail(format!("rows missing or changed in {t}: {missing:#?}")));
    }
    let fk_after = fk_violations(&conn).or_fail(&log, "foreign_key_check")?;
    let new_violations: Vec<&FkViolation> = fk_after.difference(&fk_before).collect();
    if !new_violations.is_empty() {
        return Err(log.fail(format!("new foreign key violations: {new_violations:?}")));
    }
    if case.view.is_some() {
        conn.query_row(
            &format!("SELECT count(*) FROM {}", q(&case.view_name())),
            [],
            |r| r.get::<_, i64>(0),
        )
        .or_fail(&log, "querying the view")?;
    }
    drop(conn);
    let again = recover(&db, &options).or_fail(&log, "second recover")?;
    if !again.is_clean() {
        return Err(log.fail(format!(
            "second recover found {:#?}",
            again
                .findings
                .iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
        )));
    }
    if report.applied {
        count("repaired");
    }
    Ok(())
}

type FkViolation = (String, Option<i64>, String, i64);

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
/// stored before (SQLite converts on insert by the column's affinity — `INTEGER` 5 becomes
/// `'5'` in a `TEXT` column, REAL `0.1` becomes whatever text SQLite renders it as, `'12'`
/// becomes 12 in a `NUMERIC` one). Rather than guess SQLite's conversions (its REAL→TEXT
/// rendering in particular), the wanted values are inserted into a TEMP table whose columns are
/// declared exactly as `table`'s are now, so SQLite applies the very conversion a rebuild's
/// `INSERT … SELECT` (or the repair's copy) applies; the stored values are then compared with
/// `IS` (NULL equals NULL) and `typeof` (1 and 1.0 are `IS`-equal but not the same value). Both
/// sides have the same affinity, so the comparison itself converts nothing. A row that was never
/// converted (the table kept its old definition) is unchanged by this, since applying a column's
/// affinity to a value it already stored gives that value back.
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
        let params = [Value::Integer(n as i64), Value::Integer(w.id)]
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
            let origin = want[n].origin;
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
    conn.execute_batch("DROP TABLE temp.lk_want")?;
    Ok(missing)
}

fn finish() {
    let total = contextualize_config(config()).cases;
    if DONE.fetch_add(1, Ordering::SeqCst) + 1 == total {
        let tally = TALLY.lock().unwrap();
        eprintln!("proptest_crash: {total} cases");
        for (what, n) in tally.iter() {
            eprintln!("  {n:4}  {what}");
        }
        let _ = std::fs::remove_dir_all(scratch());
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn recover_repairs_losslessly_or_changes_nothing(case in case()) {
        run(&case)?;
        finish();
    }
}
