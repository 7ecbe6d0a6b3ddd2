//! Virtual tables of a module SQLite does not build in (sqlite-vec's `vec0` is the real case):
//! without the extension, `migrate`, `schema` and `Database::open` refuse with one line that
//! names the module and what to do, the file unchanged; with `--load-extension` /
//! `Builder::load_extension` they work. The extension is `tests/ext/lk_echo.c`, the smallest
//! loadable extension with a virtual table module, built here with the system's C compiler
//! against its `sqlite3ext.h` (Debian's gcc and libsqlite3-dev).

#![cfg(feature = "cli")]

use std::path::{Path, PathBuf};
use std::process::Command;

mod cli_support;
use cli_support::*;

use litekeep::{Database, Error, migrate::MigrateError};

const SCHEMA: &str = "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
CREATE VIRTUAL TABLE echo USING lk_echo(a, b);
";

/// Builds `lk_echo.so` into `dir`.
fn build_extension(dir: &TempDir) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ext/lk_echo.c");
    let out = dir.join("lk_echo.so");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&out)
        .arg(&source)
        .status()
        .expect("run cc (the C compiler; .ci/run installs gcc and libsqlite3-dev)");
    assert!(status.success(), "cc failed to build {}", source.display());
    out
}

#[test]
fn cli_refuses_a_missing_module_and_loads_it_when_told() {
    let dir = TempDir::new("ext_cli");
    let ext = build_extension(&dir);
    let db = dir.join("app.db");
    make_db(
        &db,
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('x');",
    );
    let schema = dir.write("schema.sql", SCHEMA);
    let before = bytes(&db);
    let line = litekeep(["migrate", "--db", s(&db), "--schema", s(&schema)])
        .failure(1)
        .to_owned();
    assert!(
        line.contains("lk_echo") && line.contains("--load-extension"),
        "{line}"
    );
    assert_unchanged(&db, &before);
    let out = litekeep([
        "migrate",
        "--db",
        s(&db),
        "--schema",
        s(&schema),
        "--load-extension",
        s(&ext),
    ]);
    out.success();
    // Up to date on the next run; `schema` prints the virtual table with the extension …
    let again = litekeep([
        "migrate",
        "--db",
        s(&db),
        "--schema",
        s(&schema),
        "--load-extension",
        s(&ext),
    ]);
    assert!(again.success().contains("up to date"), "{again}");
    let printed = litekeep(["schema", "--db", s(&db), "--load-extension", s(&ext)]);
    assert!(
        printed.success().contains("USING lk_echo(a, b)"),
        "{printed}"
    );
    // … and without it says which module is missing.
    let line = litekeep(["schema", "--db", s(&db)]).failure(1).to_owned();
    assert!(line.contains("lk_echo"), "{line}");
    // An entry point can be named; a wrong one is an error naming the file.
    let named = format!("{}:sqlite3_lkecho_init", s(&ext));
    litekeep(["schema", "--db", s(&db), "--load-extension", &named]).success();
    let wrong = format!("{}:no_such_init", s(&ext));
    let line = litekeep(["schema", "--db", s(&db), "--load-extension", &wrong])
        .failure(1)
        .to_owned();
    assert!(line.contains("lk_echo.so"), "{line}");
}

#[test]
fn database_loads_the_extension_on_every_connection() {
    let dir = TempDir::new("ext_builder");
    let ext = build_extension(&dir);
    let path = dir.join("app.db");
    let err = Database::builder(&path).schema(SCHEMA).open().unwrap_err();
    assert!(
        matches!(err, Error::Migrate(MigrateError::MissingModule { ref module, .. }) if module == "lk_echo"),
        "{err}"
    );
    let db = Database::builder(&path)
        .load_extension(&ext, None)
        .schema(SCHEMA)
        .open()
        .unwrap();
    // The readers and the writer have the module.
    let n: i64 = db
        .read(|c| c.query_row("SELECT count(*) FROM echo", [], |r| r.get(0)))
        .unwrap();
    assert_eq!(n, 0);
    db.write(|tx| tx.query_row("SELECT count(*) FROM echo", [], |r| r.get::<_, i64>(0)))
        .unwrap_or_else(|e| panic!("writer: {e}"));
    // A migration through the handle uses them too (it reads the virtual table's columns).
    let v2 = format!("{SCHEMA}CREATE TABLE more (x);");
    let report = db.migrate(&v2, &Default::default()).unwrap();
    assert!(report.applied, "{}", report.plan);
}
