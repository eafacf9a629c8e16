/*!
`lockstep daemon`, `launch`, `stop` and `status`: starting a cluster on many hosts from one
command (see the `lockstep-launch` crate).
*/
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use lockstep::display::ClusterConfig;
use lockstep::roles::load_key;
use lockstep_launch::daemon::{Daemon, DaemonConfig, Overrides};
use lockstep_launch::launcher::{self, LaunchOptions, Plan};

use super::{ctrl_c, ranged};

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Settings file (see packaging/daemon.toml); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address and port to listen on (default 0.0.0.0:7399).
    #[arg(long)]
    listen: Option<String>,
    /// The cluster this daemon serves.
    #[arg(long)]
    cluster: Option<String>,
    /// The cluster's key file (or LOCKSTEP_KEY in the environment).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Where the file store and cluster workspaces live.
    #[arg(long = "state-dir")]
    state_dir: Option<PathBuf>,
}

pub fn run_daemon(args: DaemonArgs) -> Result<()> {
    let overrides = Overrides {
        listen: args.listen,
        cluster: args.cluster,
        key_file: args.key,
        state_dir: args.state_dir,
    };
    let config = DaemonConfig::load(args.config.as_deref(), &overrides)?;
    let stop = ctrl_c()?;
    let summary = format!(
        "lockstep daemon for cluster '{}': starts {}; store {}",
        config.cluster,
        config
            .roles
            .iter()
            .map(|r| format!("lockstep {r}"))
            .chain(config.programs.iter().map(|p| p.display().to_string()))
            .collect::<Vec<_>>()
            .join(", "),
        config.state_dir.display()
    );
    let daemon = Daemon::bind(config)?;
    let addr = daemon
        .local_addr()
        .map_or_else(|| "?".to_string(), |a| a.to_string());
    eprintln!("{summary}; listening on {addr}");
    daemon.serve(&stop)?;
    Ok(())
}

#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// The cluster file.
    file: PathBuf,
    /// The master stops after N frames (default: until Ctrl-C or `lockstep stop`).
    #[arg(long, value_parser = |s: &str| ranged(s, 1, 1 << 40))]
    frames: Option<u64>,
    /// The master runs at most this many frames per second.
    #[arg(long, value_parser = |s: &str| ranged(s, 1, 10_000))]
    fps: Option<u64>,
    /// Nodes render offscreen even where the cluster file asks for windows.
    #[arg(long)]
    offscreen: bool,
    /// Nodes draw nothing, only take part in the protocol.
    #[arg(long = "no-render")]
    no_render: bool,
    /// Every process writes hash-NAME.txt (frame and scene hash per line) in its workspace.
    #[arg(long)]
    hashes: bool,
    #[command(flatten)]
    hosts: HostArgs,
}

/// How the daemons are reached.
#[derive(Debug, Args)]
pub struct HostArgs {
    /// Port of the daemons (default: the cluster file's launch.daemon_port, else 7399).
    #[arg(long = "daemon-port", value_parser = |s: &str| ranged(s, 1, 65535))]
    daemon_port: Option<u64>,
}

fn plan(file: &std::path::Path, opts: LaunchOptions) -> Result<(Plan, lockstep_wire::ClusterKey)> {
    let config = ClusterConfig::load(file)?;
    let key = load_key(&config)?;
    let mut plan = Plan::new(&config, &opts)?;
    // A `.gltf` scene goes with the buffers and images it names beside it.
    if let Some(scene) = &config.launch.scene {
        let base = config.path.parent().unwrap_or(std::path::Path::new(""));
        for file in lockstep_render::import::model_files(&base.join(scene))?
            .iter()
            .skip(1)
        {
            let rel = file
                .strip_prefix(base)
                .ok()
                .and_then(|r| r.to_str())
                .with_context(|| format!("{}: not below {}", file.display(), base.display()))?;
            plan.ship(base, &rel.replace(std::path::MAIN_SEPARATOR, "/"))?;
        }
    }
    Ok((plan, key))
}

pub fn run_launch(args: LaunchArgs) -> Result<()> {
    let opts = LaunchOptions {
        frames: args.frames,
        fps: args.fps,
        offscreen: args.offscreen,
        no_render: args.no_render,
        hashes: args.hashes,
        ..host_options(&args.hosts)
    };
    let (plan, key) = plan(&args.file, opts)?;
    let stop = ctrl_c()?;
    let outcome = launcher::launch(&plan, &key, &stop)
        .with_context(|| format!("launch of {}", args.file.display()))?;
    if !outcome.success() {
        let mut why: Vec<String> = outcome
            .failed
            .iter()
            .map(|(n, how)| format!("'{n}' {how}"))
            .collect();
        why.extend(
            outcome
                .lost_hosts
                .iter()
                .map(|(h, e)| format!("host '{h}' lost its daemon ({e})")),
        );
        bail!("the cluster did not end well: {}", why.join("; "));
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// The cluster file.
    file: PathBuf,
    #[command(flatten)]
    hosts: HostArgs,
}

fn host_options(hosts: &HostArgs) -> LaunchOptions {
    LaunchOptions {
        daemon_port: hosts.daemon_port.map(|p| p as u16),
        ..LaunchOptions::default()
    }
}

fn unreachable_error(list: &[(String, String)]) -> Result<()> {
    if list.is_empty() {
        return Ok(());
    }
    let text: Vec<String> = list
        .iter()
        .map(|(h, e)| format!("host '{h}': {e}"))
        .collect();
    bail!("{}", text.join("; "))
}

pub fn run_stop(args: StopArgs) -> Result<()> {
    let (plan, key) = plan(&args.file, host_options(&args.hosts))?;
    unreachable_error(&launcher::stop_cluster(&plan, &key))
}

pub fn run_status(args: StopArgs) -> Result<()> {
    let (plan, key) = plan(&args.file, host_options(&args.hosts))?;
    let (rows, unreachable) = launcher::status(&plan, &key);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    println!(
        "{:<16} {:<12} {:<16} {:>8}  {:<10} SINCE",
        "HOST", "NAME", "PROGRAM", "PID", "STATE"
    );
    for (host, p) in &rows {
        let (state, since) = match (p.exit, p.ended_unix) {
            (None, _) => ("running".to_string(), now.saturating_sub(p.started_unix)),
            (Some(e), end) => (
                format!("ended, {e}"),
                now.saturating_sub(end.unwrap_or(now)),
            ),
        };
        println!(
            "{host:<16} {:<12} {:<16} {:>8}  {state:<10} {since} s ago",
            p.name,
            p.program.to_string(),
            p.pid
        );
    }
    if rows.is_empty() {
        println!(
            "(nothing of cluster '{}' was started on any host)",
            plan.cluster
        );
    }
    unreachable_error(&unreachable)
}
