//! `--help` is the manual: every command, argument and option has a help line, `query --help`
//! names every table, and `--version` names the commit the binary was built from.

use clap::CommandFactory;
use hubpulse::cli::Cli;

use crate::support::{bin, root, run_ok};

/// Every argument of every (sub)command, as `command path: argument`, that has no help text.
fn missing_help(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
    for a in cmd.get_arguments() {
        let id = a.get_id().as_str();
        if id == "help" || id == "version" {
            continue;
        }
        if a.get_help().is_none() && a.get_long_help().is_none() {
            out.push(format!("{path}: {id}"));
        }
    }
    for sub in cmd.get_subcommands() {
        if sub.get_about().is_none() {
            out.push(format!("{path} {}: (no about)", sub.get_name()));
        }
        missing_help(sub, &format!("{path} {}", sub.get_name()), out);
    }
}

#[test]
fn every_command_argument_and_option_has_a_help_line() {
    let cmd = Cli::command();
    let mut missing = Vec::new();
    missing_help(&cmd, "hubpulse", &mut missing);
    assert!(missing.is_empty(), "without help: {missing:#?}");
    // And clap itself finds the definitions consistent.
    cmd.debug_assert();
}

#[test]
fn query_help_lists_every_table_of_the_lake() {
    let help = run_ok(bin().args(["query", "--help"]));
    let mut tables = hubpulse::query::table_names();
    tables.push("sessions");
    for t in tables {
        assert!(
            help.contains(t),
            "query --help does not name table {t}: {help}"
        );
    }
}

#[test]
fn version_names_the_version_and_the_commit() {
    let out = run_ok(bin().arg("--version"));
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=10", "HEAD"])
        .current_dir(root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    assert_eq!(
        out.trim_end(),
        format!("hubpulse {} (commit {commit})", env!("CARGO_PKG_VERSION"))
    );
}
