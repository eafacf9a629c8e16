//! The `lockstep` command. Only this file chooses exit codes: 0 on success, 2 on any error
//! (bad arguments, bad files, no GPU), with the error's whole chain on stderr.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    lockstep::options::init_logging();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
