//! The runner end to end, as CI runs it but shorter: a litekeep campaign and an owner campaign
//! with SIGKILLs (of the owner too) must pass verification, and their JSON reports must say
//! what happened.

use std::process::Command;

#[test]
fn a_short_litekeep_campaign_with_kills_passes() {
    let report = campaign("litekeep");
    assert!(report.contains("\"indexer\""), "{report}");
}

#[test]
fn a_short_owner_campaign_with_kills_of_the_owner_passes() {
    let report = campaign("owner");
    assert!(report.contains("\"mode\": \"owner\""), "{report}");
    assert!(
        !report.contains("\"owner_kills\": 0,"),
        "no SIGKILL landed on the owner: {report}"
    );
    assert!(
        !report.contains("\"ids_checked\": 0"),
        "no write id was checked: {report}"
    );
}

/// Runs a 4 s campaign of `mode` with a SIGKILL every ~400 ms; asserts it passed; gives its
/// JSON report.
fn campaign(mode: &str) -> String {
    let dir = std::env::temp_dir().join(format!("lk-stress-smoke-{mode}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_litekeep-stress"))
        .args([
            "--mode",
            mode,
            "--duration",
            "4s",
            "--kill-every",
            "400ms",
            "--quiet",
            "--indexers",
            "2",
            "--embedders",
            "1",
            "--searchers",
            "2",
            "--migrators",
            "1",
            "--openers",
            "2",
            "--seed",
            "42",
            "--json",
        ])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("PASSED"), "{stdout}");
    let report = std::fs::read_to_string(&json).unwrap();
    assert!(report.contains("\"violations\": []"), "{report}");
    assert!(
        !report.contains("\"kills\": 0,"),
        "no SIGKILL landed: {report}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    report
}
