//! The `hubpulse` binary: parse flags, run one command, map errors to exit codes (see `app`).

use clap::Parser;
use hubpulse::app;
use hubpulse::cli::Cli;

fn main() {
    // One TLS crypto provider for the whole process (kube and reqwest both use rustls + ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    // `run` configures logging from its config; every other command logs warnings and errors.
    if !matches!(cli.command, hubpulse::cli::Command::Run { .. }) {
        app::init_logging_with("warn", hubpulse::agent::config::LogFormat::Text);
    }
    if let Err(e) = app::run(cli.command) {
        app::out::error_line(&e.to_string());
        std::process::exit(e.exit_code());
    }
}
