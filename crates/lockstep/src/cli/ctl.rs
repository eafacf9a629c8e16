/*!
`lockstep ctl FILE status|reconfigure NEW_FILE|event NAME JSON`: talk to a running cluster's master over its
control connection (authenticated with the cluster key, like a node).
*/
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use lockstep::cluster::{ClusterError, ClusterStatus, ControlClient};
use lockstep::display::ClusterConfig;
use lockstep::roles::load_key;

use super::ranged;
use lockstep::app::resolve;

/// Arguments of `lockstep ctl`.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The cluster file the cluster was started with (master address, name, key).
    file: PathBuf,
    #[command(subcommand)]
    command: CtlCommand,
    /// Seconds to try to reach the master.
    #[arg(long, default_value = "5", value_parser = |s: &str| ranged(s, 1, 600))]
    timeout: u64,
}

/// What to ask the master.
#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Show every node: its state, last frame, frame rate and ready time; the cluster's frame
    /// rate and swap barrier wait.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Switch the running cluster to NEW_FILE (display geometry, stereo, eye separation,
    /// threading models, nodes added or removed). The master checks the whole file first and
    /// rejects it, with every reason, if anything is wrong; otherwise every node switches at
    /// the same frame.
    Reconfigure {
        /// The new cluster file.
        new_file: PathBuf,
    },
    /// Send the cluster event NAME with the value JSON (of the type the application declared
    /// for NAME): the master delivers it to every process in one frame, and says which.
    Event {
        /// The event's name.
        name: String,
        /// Its value, as JSON (e.g. '"hello"', '[1, 2.5]', '{"x": 1}').
        json: String,
    },
}

pub fn run(args: CtlArgs) -> Result<()> {
    let config = ClusterConfig::load(&args.file)?;
    let key = load_key(&config)?;
    let master = resolve(&config.master)?;
    let mut client =
        ControlClient::connect(&config.name, key, master, Duration::from_secs(args.timeout))
            .with_context(|| {
                format!(
                    "cannot reach the master of cluster '{}' at {}",
                    config.name, config.master
                )
            })?;
    match args.command {
        CtlCommand::Status { json } => {
            let status = client.status()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status_json(&status))?);
            } else {
                print_status(&config.name, &status);
            }
            Ok(())
        }
        CtlCommand::Reconfigure { new_file } => {
            // Read here first: a file that does not load is reported with its own path and
            // line, and never sent.
            let new = ClusterConfig::load(&new_file)?;
            let text = std::fs::read_to_string(&new_file)
                .with_context(|| format!("cannot read {}", new_file.display()))?;
            let change = config.change_to(&new);
            match client.reconfigure(&text) {
                Ok(frame) => {
                    let what = change.map_or_else(|_| "switches".to_string(), |c| c.to_string());
                    println!(
                        "cluster '{}' switches to {} at frame {frame}: {what}",
                        config.name,
                        new_file.display()
                    );
                    Ok(())
                }
                Err(ClusterError::Rejected(reasons)) => bail!(
                    "the master rejected {}; nothing changed:\n  - {}",
                    new_file.display(),
                    reasons.join("\n  - ")
                ),
                Err(e) => Err(e.into()),
            }
        }
        CtlCommand::Event { name, json } => match client.event(&name, &json) {
            Ok(frame) => {
                println!(
                    "cluster '{}': event '{name}' is delivered in frame {frame}",
                    config.name
                );
                Ok(())
            }
            Err(ClusterError::Rejected(reasons)) => {
                bail!("the master refused the event: {}", reasons.join("; "))
            }
            Err(e) => Err(e.into()),
        },
    }
}

fn print_status(cluster: &str, s: &ClusterStatus) {
    println!(
        "cluster '{cluster}': frame {}, {:.1} fps, swap barrier wait median {:.3} ms",
        s.frame, s.fps, s.sync_ms
    );
    println!(
        "{:<12} {:<40} {:>8} {:>7} {:>9} {:>6}",
        "node", "state", "frame", "fps", "ready ms", "joins"
    );
    for n in &s.nodes {
        println!(
            "{:<12} {:<40} {:>8} {:>7.1} {:>9.3} {:>6}",
            n.name, n.state, n.frame, n.fps, n.ready_ms, n.joins
        );
    }
}

fn status_json(s: &ClusterStatus) -> serde_json::Value {
    let nodes: Vec<serde_json::Value> = s
        .nodes
        .iter()
        .map(|n| {
            serde_json::json!({
                "name": n.name,
                "state": n.state,
                "frame": n.frame,
                "fps": n.fps,
                "ready_ms": n.ready_ms,
                "joins": n.joins,
            })
        })
        .collect();
    serde_json::json!({
        "frame": s.frame,
        "fps": s.fps,
        "sync_ms": s.sync_ms,
        "nodes": nodes,
    })
}
