//! With the `duckdb` feature: links the facade's binaries, tests and examples with an rpath to
//! `$DUCKDB_LIB_DIR`, so the built `litekeep` finds `libduckdb.so` at run time without
//! `LD_LIBRARY_PATH`, and stops early with a clear message when that variable is missing.
//! Without the feature it does nothing.
//!
//! Why here and not in `RUSTFLAGS`: a build script's link arguments apply to this package's own
//! link steps only, and they do not change the flags every other crate is compiled with, so
//! switching the feature on rebuilds no dependency (`RUSTFLAGS` would rebuild them all, and would
//! override any `RUSTFLAGS` the caller set).

use std::env;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if env::var_os("CARGO_FEATURE_DUCKDB").is_none() {
        return;
    }
    // Only with the feature: a default build is not redone when the variable changes.
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    let Some(dir) = env::var_os("DUCKDB_LIB_DIR") else {
        fail(
            "DUCKDB_LIB_DIR is not set: run `eval \"$(scripts/duckdb-env)\"` first, or set it to a directory holding libduckdb.so",
        );
    };
    let dir = Path::new(&dir);
    if !dir.is_absolute() {
        fail(&format!(
            "DUCKDB_LIB_DIR={} is relative; the binary's rpath must be absolute: give the full path",
            dir.display()
        ));
    }
    if !dir.join("libduckdb.so").is_file() {
        fail(&format!(
            "DUCKDB_LIB_DIR={} holds no libduckdb.so: run `eval \"$(scripts/duckdb-env)\"` again",
            dir.display()
        ));
    }
    let Some(dir) = dir.to_str() else {
        fail(&format!(
            "DUCKDB_LIB_DIR={} is not UTF-8, which a linker argument must be: move the library to a UTF-8 path",
            dir.display()
        ));
    };
    if dir.contains(',') {
        fail(&format!(
            "DUCKDB_LIB_DIR={dir} contains a comma, which -Wl,-rpath cannot carry: move the library elsewhere"
        ));
    }
    println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    // For the start-up check's error message: where the binary expects the library.
    println!("cargo:rustc-env=LITEKEEP_DUCKDB_LIB_DIR={dir}");
}

fn fail(message: &str) -> ! {
    eprintln!("error: the duckdb feature: {message}");
    std::process::exit(1);
}
