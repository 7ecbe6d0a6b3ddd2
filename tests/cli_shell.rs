//! The `litekeep` command as shell users expect it: completion scripts for bash, zsh and fish,
//! a man page (roff) for the tool and each of its commands, and examples in every `--help`.
//! Each test runs the built binary; the bash script is also loaded into a real bash and asked
//! to complete.

#![cfg(feature = "cli")]

use std::process::Command;

mod cli_support;
use cli_support::*;

/// Every command of the tool, as the completions and the man page must name them.
const COMMANDS: [&str; 8] = [
    "migrate",
    "diff",
    "schema",
    "recover",
    "check",
    "lock",
    "completions",
    "man",
];

#[test]
fn completions_for_bash_zsh_and_fish_name_every_command() {
    for (shell, marker) in [
        ("bash", "complete -F _litekeep"),
        ("zsh", "#compdef litekeep"),
        ("fish", "complete -c litekeep"),
    ] {
        let run = litekeep(["completions", shell]);
        let script = run.success();
        assert!(script.contains(marker), "{shell}: no `{marker}`\n{run}");
        for command in COMMANDS {
            assert!(
                script.contains(command),
                "{shell}: `{command}` missing\n{run}"
            );
        }
        assert!(
            script.contains("dry-run"),
            "{shell}: options missing\n{run}"
        );
    }
}

#[test]
fn the_bash_completion_completes_commands_and_options_in_bash() {
    let script = litekeep(["completions", "bash"]).success().to_owned();
    // Load the script into bash and call its function as bash's completion would.
    let complete = |words: &[&str]| -> Vec<String> {
        let line = format!(
            "eval \"$LITEKEEP_COMPLETION\"; COMP_WORDS=({words}); COMP_CWORD={cword}; \
             _litekeep litekeep '{cur}' '{prev}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            words = words.join(" "),
            cword = words.len() - 1,
            cur = words[words.len() - 1],
            prev = words[words.len() - 2],
        );
        let out = Command::new("bash")
            .args(["--norc", "-c", &line])
            .env("LITEKEEP_COMPLETION", &script)
            .output()
            .expect("run bash");
        assert!(
            out.status.success(),
            "bash failed on the completion script: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(complete(&["litekeep", "mi"]), ["migrate"]);
    let options = complete(&["litekeep", "migrate", "--dr"]);
    assert_eq!(options, ["--dry-run"]);
    let shells = complete(&["litekeep", "completions", "f"]);
    assert_eq!(shells, ["fish"]);
}

#[test]
fn completions_for_an_unknown_shell_are_bad_usage() {
    let run = litekeep(["completions", "tcsh"]);
    assert_eq!(run.code, Some(2), "{run}");
    assert!(run.stderr.contains("tcsh"), "{run}");
}

#[test]
fn the_man_page_is_roff_that_names_every_command() {
    let run = litekeep(["man"]);
    let page = run.success();
    assert!(page.contains(".TH litekeep 1"), "{run}");
    assert!(page.contains(".SH NAME"), "{run}");
    assert!(page.contains(".SH SUBCOMMANDS"), "{run}");
    for command in COMMANDS {
        assert!(
            page.contains(&format!("litekeep\\-{command}")),
            "`{command}` missing\n{run}"
        );
    }
}

#[test]
fn a_command_has_a_man_page_of_its_own() {
    let run = litekeep(["man", "migrate"]);
    let page = run.success();
    assert!(page.contains(".TH litekeep-migrate 1"), "{run}");
    assert!(page.contains("\\-\\-dry\\-run"), "{run}");
    assert!(page.contains("\\-\\-allow\\-data\\-loss"), "{run}");
    assert!(
        page.contains("litekeep migrate \\-\\-db app.db"),
        "no example\n{run}"
    );
}

#[test]
fn a_man_page_for_no_such_command_names_the_pages_there_are() {
    let run = litekeep(["man", "frobnicate"]);
    let line = run.failure(1);
    assert!(line.contains("frobnicate"), "{run}");
    assert!(line.contains("migrate"), "{run}");
}

#[test]
fn every_help_shows_examples() {
    let top = litekeep(["--help"]);
    assert!(top.success().contains("Examples:"), "{top}");
    for command in COMMANDS {
        let run = litekeep([command, "--help"]);
        assert!(
            run.success().contains("Example"),
            "`litekeep {command} --help` has no example\n{run}"
        );
    }
}
