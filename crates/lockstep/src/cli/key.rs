/*!
`lockstep key new FILE`: a fresh random cluster key, readable by its owner only.
*/
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use lockstep_wire::ClusterKey;

/// `lockstep key` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Write a new random cluster key (64 hex digits) to FILE, readable by its owner only.
    New {
        /// The key file to create (refused if it exists).
        file: PathBuf,
    },
}

/// Runs `lockstep key`.
pub fn run_key(cmd: KeyCommand) -> Result<()> {
    let KeyCommand::New { file } = cmd;
    let hex = ClusterKey::generate_hex()?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(&file)
        .with_context(|| format!("cannot create {} (it must not exist yet)", file.display()))?;
    writeln!(f, "{hex}")?;
    println!(
        "wrote a new cluster key to {}; copy it to every host of the cluster",
        file.display()
    );
    Ok(())
}
