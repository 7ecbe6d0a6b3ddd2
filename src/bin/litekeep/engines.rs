//! `litekeep engines`: the database engines this build can open and their library versions. With
//! the `duckdb` feature it calls into the DuckDB library, so it is the start-up check that the
//! binary finds `libduckdb.so` (through its rpath) and that the library is the version it was
//! built for.

use serde_json::{Value, json};

use crate::Failure;

/// Prints one line per engine (or one JSON document); fails when the DuckDB library is another
/// version than this build was made for.
pub fn print(json: bool) -> Result<(), Failure> {
    let engines = vec![sqlite(), duckdb()?];
    if json {
        let doc = json!({ "engines": engines });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return Ok(());
    }
    for engine in &engines {
        let name = engine["engine"].as_str().unwrap_or_default();
        match engine["version"].as_str() {
            Some(version) => {
                let from = engine["library"].as_str().unwrap_or_default();
                println!("{name} {version} ({from})");
            }
            None => println!("{name}: not in this build (build with --features {name})"),
        }
    }
    Ok(())
}

fn sqlite() -> Value {
    json!({ "engine": "sqlite", "version": rusqlite::version(), "library": "bundled" })
}

#[cfg(feature = "duckdb")]
fn duckdb() -> Result<Value, Failure> {
    use litekeep::duckdb_file;
    let version = duckdb_file::check_library_version().map_err(|e| Failure::new(e.to_string()))?;
    let library = duckdb_file::loaded_library()
        .map_or_else(|| "libduckdb".to_owned(), |p| p.display().to_string());
    Ok(json!({ "engine": "duckdb", "version": version, "library": library }))
}

#[cfg(not(feature = "duckdb"))]
fn duckdb() -> Result<Value, Failure> {
    Ok(json!({ "engine": "duckdb", "version": null, "library": null }))
}
