//! Property: for random schema pairs and random rows, `migrate` either brings the database to
//! exactly the desired schema with every row and every kept column's value intact (healthy, no
//! `temp_*` left, and a second run has nothing to do), or refuses cleanly — data loss not
//! allowed, or rows that break a new constraint — leaving the file byte-for-byte unchanged.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use litekeep_migrate::{MigrateError, Options, Schema, migrate};
use proptest::prelude::*;
use rusqlite::Connection;

const TYPES: &[&str] = &["INTEGER", "TEXT", "BLOB", ""];

#[derive(Clone, Debug)]
struct Col {
    name: String,
    ty: &'static str,
    not_null: bool,
    unique: bool,
    check: bool,
    nocase: bool,
}

#[derive(Clone, Debug)]
struct Tbl {
    name: String,
    cols: Vec<Col>,
    index: Option<usize>,
}

#[derive(Clone, Debug)]
enum Val {
    Null,
    Int(i64),
    Text(&'static str),
}

fn col(i: usize) -> impl Strategy<Value = Col> {
    (0..TYPES.len(), any::<[bool; 4]>()).prop_map(move |(t, [nn, u, c, n])| Col {
        name: format!("c{i}"),
        ty: TYPES[t],
        not_null: nn,
        unique: u,
        check: c,
        nocase: n,
    })
}

fn table(i: usize) -> impl Strategy<Value = Tbl> {
    (1usize..5)
        .prop_flat_map(|n| (0..n).map(col).collect::<Vec<_>>())
        .prop_flat_map(move |cols| {
            let n = cols.len();
            (Just(cols), proptest::option::of(0..n)).prop_map(move |(cols, index)| Tbl {
                name: format!("t{i}"),
                cols,
                index,
            })
        })
}

fn val() -> impl Strategy<Value = Val> {
    prop_oneof![
        Just(Val::Null),
        (-50i64..50).prop_map(Val::Int),
        prop::sample::select(vec!["a", "B", "xyz", "12", "hello world", "Zz"]).prop_map(Val::Text),
    ]
}

fn ddl(tables: &[Tbl]) -> String {
    let mut sql = String::new();
    for t in tables {
        let mut defs = vec!["id INTEGER PRIMARY KEY".to_owned()];
        for c in &t.cols {
            let mut d = format!("{} {}", c.name, c.ty);
            if c.not_null {
                d.push_str(" NOT NULL DEFAULT 0");
            }
            if c.unique {
                d.push_str(" UNIQUE");
            }
            if c.check {
                d.push_str(&format!(" CHECK (length(CAST({} AS TEXT)) < 5)", c.name));
            }
            if c.nocase {
                d.push_str(" COLLATE NOCASE");
            }
            defs.push(d.trim().replace("  ", " "));
        }
        sql.push_str(&format!("CREATE TABLE {} ({});\n", t.name, defs.join(", ")));
        if let Some(i) = t.index.filter(|&i| i < t.cols.len()) {
            sql.push_str(&format!(
                "CREATE INDEX {0}_i ON {0}({1});\n",
                t.name, t.cols[i].name
            ));
        }
    }
    sql
}

/// Derives the desired tables from the current ones with the mutation bytes `m`.
fn mutate(tables: &[Tbl], m: &[u8]) -> Vec<Tbl> {
    let mut bytes = m.iter().copied().cycle();
    let mut next = move || bytes.next().unwrap_or(0);
    let mut out = Vec::new();
    for t in tables {
        if next() % 8 == 0 {
            continue; // drop the table
        }
        let mut t = t.clone();
        let mut cols = Vec::new();
        for mut c in t.cols.clone() {
            match next() % 10 {
                0 => continue, // drop the column
                1 => c.ty = TYPES[usize::from(next()) % TYPES.len()],
                2 => c.not_null = !c.not_null,
                3 => c.unique = !c.unique,
                4 => c.check = !c.check,
                5 => c.nocase = !c.nocase,
                _ => {}
            }
            cols.push(c);
        }
        if next() % 3 == 0 {
            let n = t.cols.len() + 10;
            cols.push(Col {
                name: format!("c{n}"),
                ty: TYPES[usize::from(next()) % 4],
                not_null: next() % 2 == 0,
                unique: false,
                check: false,
                nocase: false,
            });
        }
        if next() % 5 == 0 {
            cols.reverse();
        }
        if cols.is_empty() {
            continue;
        }
        t.index = if next() % 2 == 0 {
            Some(usize::from(next()) % cols.len())
        } else {
            None
        };
        t.cols = cols;
        out.push(t);
    }
    if next() % 4 == 0 {
        out.push(Tbl {
            name: "t9".into(),
            cols: vec![Col {
                name: "c0".into(),
                ty: "TEXT",
                not_null: false,
                unique: false,
                check: false,
                nocase: false,
            }],
            index: None,
        });
    }
    out
}

fn sql_val(v: &Val) -> String {
    match v {
        Val::Null => "NULL".into(),
        Val::Int(i) => i.to_string(),
        Val::Text(s) => format!("'{s}'"),
    }
}

fn fresh_db() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = litekeep_faults::harness::process_scratch("prop-migrate");
    let db = dir.join(format!("{}.db", N.fetch_add(1, Ordering::SeqCst)));
    for s in ["", "-wal", "-shm", ".lock"] {
        let _ = std::fs::remove_file(format!("{}{s}", db.display()));
    }
    db
}

/// table → id → column → CAST(value AS TEXT)
type Snapshot = BTreeMap<String, BTreeMap<i64, BTreeMap<String, Option<String>>>>;

fn snapshot(conn: &Connection, tables: &[Tbl]) -> Snapshot {
    let mut out = Snapshot::new();
    for t in tables {
        let cols: Vec<String> = t
            .cols
            .iter()
            .map(|c| format!("CAST({} AS TEXT)", c.name))
            .collect();
        let mut stmt = conn
            .prepare(&format!("SELECT id, {} FROM {}", cols.join(", "), t.name))
            .unwrap();
        let mut rows = stmt.query([]).unwrap();
        let entry = out.entry(t.name.clone()).or_default();
        while let Some(r) = rows.next().unwrap() {
            let values = t
                .cols
                .iter()
                .enumerate()
                .map(|(i, c)| (c.name.clone(), r.get(i + 1).unwrap()))
                .collect();
            entry.insert(r.get(0).unwrap(), values);
        }
    }
    out
}

fn check(v1: &[Tbl], rows: &[Vec<Val>], m: &[u8], allow: bool) -> Result<(), TestCaseError> {
    let v2 = mutate(v1, m);
    let (v1_sql, v2_sql) = (ddl(v1), ddl(&v2));
    let db = fresh_db();
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(&v1_sql).unwrap();
    for t in v1 {
        for row in rows {
            let names: Vec<&str> = t.cols.iter().map(|c| c.name.as_str()).collect();
            let vals: Vec<String> = t
                .cols
                .iter()
                .enumerate()
                .map(|(i, _)| sql_val(&row[i % row.len()]))
                .collect();
            // Rows that break v1's own constraints are skipped.
            let _ = conn.execute(
                &format!(
                    "INSERT INTO {} ({}) VALUES ({})",
                    t.name,
                    names.join(", "),
                    vals.join(", ")
                ),
                [],
            );
        }
    }
    let before = snapshot(&conn, v1);
    drop(conn);
    let bytes = std::fs::read(&db).unwrap();
    match migrate(&db, &v2_sql, &Options::default().allow_data_loss(allow)) {
        Err(MigrateError::DataLoss { .. }) if !allow => {
            prop_assert_eq!(std::fs::read(&db).unwrap(), bytes);
            return Ok(());
        }
        Err(MigrateError::Constraint { .. }) => {
            prop_assert_eq!(std::fs::read(&db).unwrap(), bytes);
            return Ok(());
        }
        Err(e) => {
            return Err(TestCaseError::fail(format!(
                "{e}\nv1:\n{v1_sql}\nv2:\n{v2_sql}"
            )));
        }
        Ok(_) => {}
    }
    let conn = Connection::open(&db).unwrap();
    let now = Schema::read(&conn).unwrap();
    let desired = Schema::from_sql(&v2_sql).unwrap();
    prop_assert_eq!(now.describe_difference(&desired), Vec::<String>::new());
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    prop_assert_eq!(ok, "ok");
    let temps: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'temp%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    prop_assert_eq!(temps, 0);
    let after = snapshot(&conn, &v2);
    for (table, rows) in &before {
        let Some(now_rows) = after.get(table) else {
            continue;
        };
        prop_assert_eq!(rows.len(), now_rows.len(), "rows of {}", table);
        for (id, values) in rows {
            for (col, v) in values {
                if let Some(now_v) = now_rows[id].get(col) {
                    prop_assert_eq!(now_v, v, "{}.{} of row {}", table, col, id);
                }
            }
        }
    }
    prop_assert!(
        migrate(&db, &v2_sql, &Options::default())
            .unwrap()
            .up_to_date()
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_schema_pairs_migrate_or_refuse_cleanly(
        v1 in (1usize..4).prop_flat_map(|n| (0..n).map(table).collect::<Vec<_>>()),
        rows in proptest::collection::vec(proptest::collection::vec(val(), 1..5), 0..12),
        m in proptest::collection::vec(any::<u8>(), 1..16),
        allow in any::<bool>(),
    ) {
        check(&v1, &rows, &m, allow)?;
    }
}
