//! The `lockstep` command. Only this file chooses exit codes: 0 on success, 2 on any error
//! (bad arguments, bad files, no GPU), with the error's whole chain on stderr.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    // winit warns about things only virtual X servers lack (XSETTINGS, monitor size); those
    // are not the user's problem, so its warnings show only with RUST_LOG set.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(
                    "warn,winit=error,lockstep_launch=info,lockstep_cluster::node=info",
                )
            }),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
