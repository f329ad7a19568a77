//! The `hubpulse` binary: parse flags, run one command, map errors to exit codes (see `app`).

use clap::Parser;
use hubpulse::app;
use hubpulse::cli::Cli;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HUBPULSE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Err(e) = app::run(cli.command) {
        let msg = e.to_string();
        eprintln!("hubpulse: {}", msg.lines().next().unwrap_or(""));
        std::process::exit(e.exit_code());
    }
}
