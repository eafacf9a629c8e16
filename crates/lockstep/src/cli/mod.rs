/*!
The CLI's low layer: clap structs that hold validated values (sizes, vectors, angles), and the
dispatch to one module per command.
*/
mod bench;
mod bench_cluster;
mod bench_compose;
mod bench_input;
mod bench_scale;
mod bench_sync;
mod cluster;
mod config;
mod ctl;
mod demo;
mod key;
mod launch;
mod layout;
mod render;
mod run;
mod soak;
mod view;
mod vrpn;

use std::path::PathBuf;
use std::str::FromStr;

use anyhow::Result;
use clap::{Parser, Subcommand};
use lockstep::options::{GpuArgs, ranged, stop_on_ctrl_c as ctrl_c};
use lockstep::render::MAX_TARGET_SIZE;
use lockstep::scene::glam::Vec3;

/// Frame-locked cluster rendering.
#[derive(Debug, Parser)]
#[command(name = "lockstep", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Render a scene offscreen and write PNG files.
    Render(render::RenderArgs),
    /// Run the demo (or a model) through the App/Cull/Draw pipeline, in a window or offscreen.
    Run(run::RunArgs),
    /// Measure performance; every benchmark prints ratios measured side by side in one run.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Check, explain, draw or print cluster files.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Run a whole CAVE on this machine: a master and one render node per wall, as processes.
    Demo(demo::DemoArgs),
    /// Run the master of a cluster (the application; it sends every frame to the nodes).
    Master(view::BuiltinMaster),
    /// Run one render node of a cluster.
    Node(view::BuiltinNode),
    /// Show a glTF model on a cluster: the master without --name, node NODE with --name NODE.
    View(view::ViewArgs),
    /// On every host of a cluster: start and stop its processes when `lockstep launch` asks.
    Daemon(launch::DaemonArgs),
    /// Start a whole cluster through the daemons on its hosts, and follow it until it ends.
    Launch(launch::LaunchArgs),
    /// Stop every process of a cluster on every host.
    Stop(launch::StopArgs),
    /// Show what runs (and ran) of a cluster on each host.
    Status(launch::StopArgs),
    /// Ask a running cluster's master for its status, or reconfigure it.
    Ctl(ctl::CtlArgs),
    /// Run a cluster on this machine while killing, stopping and restarting its nodes, and
    /// check every frame that all nodes in step show the same state.
    Soak(soak::SoakArgs),
    /// Create cluster keys.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Serve a scripted VRPN tracker, or print what a VRPN device reports.
    #[command(subcommand)]
    Vrpn(vrpn::VrpnCommand),
    /// One peer of the bare barrier `bench sync` measures against (started by it).
    #[command(hide = true)]
    BenchPeer(bench_sync::BenchPeerArgs),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Frames per second and ms per frame of Cull + Draw, with and without read-back.
    Render(bench::BenchRenderArgs),
    /// The App/Cull/Draw pipeline under every threading model: fps, speed-up, latency.
    Pipeline(bench::BenchPipelineArgs),
    /// lockstep's per-frame sync (scene data + swap barrier) against a bare TCP barrier.
    Sync(bench_sync::BenchSyncArgs),
    /// Frame rate of a local CAVE cluster against the same nodes each rendering alone.
    Cluster(bench_cluster::BenchClusterArgs),
    /// One heavy view drawn by its display node alone and with helpers (sort-first).
    Compose(bench_compose::BenchComposeArgs),
    /// The VRPN client's cost per report, and the age of a tracker's report when the walls
    /// show it, for pipeline depth 1 and 2.
    Input(bench_input::BenchInputArgs),
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Render(args) => render::run(args),
        Command::Run(args) => run::run(args),
        Command::Bench(BenchCommand::Render(args)) => bench::run_render(args),
        Command::Bench(BenchCommand::Pipeline(args)) => bench::run_pipeline(args),
        Command::Bench(BenchCommand::Sync(args)) => bench_sync::run(args),
        Command::Bench(BenchCommand::Cluster(args)) => bench_cluster::run_bench_cluster(args),
        Command::Bench(BenchCommand::Compose(args)) => bench_compose::run_bench_compose(args),
        Command::Bench(BenchCommand::Input(args)) => bench_input::run(args),
        Command::BenchPeer(args) => bench_sync::run_peer(args),
        Command::Config(cmd) => config::run(cmd),
        Command::Demo(args) => demo::run_demo(args),
        Command::Master(args) => view::run_master_cmd(args),
        Command::Node(args) => view::run_node_cmd(args),
        Command::View(args) => view::run(args),
        Command::Key(cmd) => key::run_key(cmd),
        Command::Daemon(args) => launch::run_daemon(args),
        Command::Launch(args) => launch::run_launch(args),
        Command::Stop(args) => launch::run_stop(args),
        Command::Status(args) => launch::run_status(args),
        Command::Ctl(args) => ctl::run(args),
        Command::Soak(args) => soak::run(args),
        Command::Vrpn(cmd) => vrpn::run(cmd),
    }
}

/// A target size `WxH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Size {
    width: u32,
    height: u32,
}

impl FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (w, h) = s
            .split_once(['x', 'X'])
            .ok_or_else(|| format!("'{s}' is not WIDTHxHEIGHT (e.g. 640x360)"))?;
        let dim = |v: &str, what: &str| {
            v.trim()
                .parse::<u32>()
                .map_err(|_| format!("{what} '{v}' in '{s}' is not a whole number"))
        };
        let (width, height) = (dim(w, "width")?, dim(h, "height")?);
        if width == 0 || height == 0 {
            return Err(format!("'{s}': width and height must be at least 1"));
        }
        if width > MAX_TARGET_SIZE || height > MAX_TARGET_SIZE {
            return Err(format!(
                "'{s}': the largest supported side is {MAX_TARGET_SIZE} pixels"
            ));
        }
        Ok(Size { width, height })
    }
}

/// A point `X,Y,Z` of finite numbers.
fn parse_vec3(s: &str) -> Result<Vec3, String> {
    let parts: Vec<&str> = s.split(',').collect();
    if parts.len() != 3 {
        return Err(format!(
            "'{s}' is not X,Y,Z (three numbers separated by commas)"
        ));
    }
    let mut v = [0f32; 3];
    for (slot, part) in v.iter_mut().zip(&parts) {
        *slot = part
            .trim()
            .parse::<f32>()
            .ok()
            .filter(|f| f.is_finite())
            .ok_or_else(|| format!("'{part}' in '{s}' is not a finite number"))?;
    }
    Ok(Vec3::from_array(v))
}

/// A vertical field of view in degrees, strictly between 0 and 180.
fn parse_fov(s: &str) -> Result<f32, String> {
    let v: f32 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number of degrees"))?;
    if !(v > 0.0 && v < 180.0) {
        return Err(format!(
            "{v}° is not a field of view: it must lie strictly between 0 and 180"
        ));
    }
    Ok(v)
}

/// The path for frame `frame` of `count`: the path itself for a single frame, else
/// `stem-NNNN.ext`.
fn frame_path(base: &std::path::Path, frame: u64, count: u64) -> PathBuf {
    if count <= 1 {
        return base.to_path_buf();
    }
    let stem = base
        .file_stem()
        .map(|s| s.to_string_lossy())
        .unwrap_or_default();
    let name = match base.extension() {
        Some(ext) => format!("{stem}-{frame:04}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{frame:04}"),
    };
    base.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_refuse_with_reasons() {
        assert_eq!(
            "640x360".parse(),
            Ok(Size {
                width: 640,
                height: 360
            })
        );
        assert_eq!(
            "8X4".parse(),
            Ok(Size {
                width: 8,
                height: 4
            })
        );
        assert!(Size::from_str("0x5").unwrap_err().contains("at least 1"));
        assert!(
            Size::from_str("99999x5")
                .unwrap_err()
                .contains("largest supported side")
        );
        assert!(Size::from_str("640").unwrap_err().contains("WIDTHxHEIGHT"));
        assert!(Size::from_str("ax5").unwrap_err().contains("width 'a'"));
        assert!(
            Size::from_str("-1x5")
                .unwrap_err()
                .contains("not a whole number")
        );
    }

    #[test]
    fn vectors_angles_and_ranges() {
        assert_eq!(parse_vec3("1, 2.5,-3"), Ok(Vec3::new(1.0, 2.5, -3.0)));
        assert!(parse_vec3("1,2").unwrap_err().contains("X,Y,Z"));
        assert!(parse_vec3("1,nan,2").unwrap_err().contains("'nan'"));
        assert!(parse_vec3("1,inf,2").is_err());
        assert_eq!(parse_fov("60"), Ok(60.0));
        assert!(parse_fov("0").is_err() && parse_fov("180").is_err() && parse_fov("x").is_err());
        assert_eq!(ranged("5", 1, 10), Ok(5));
        assert!(ranged("0", 1, 10).unwrap_err().contains("expected 1 to 10"));
    }

    #[test]
    fn frame_paths_number_only_sequences() {
        let p = std::path::Path::new("out/shot.png");
        assert_eq!(frame_path(p, 0, 1), PathBuf::from("out/shot.png"));
        assert_eq!(frame_path(p, 7, 10), PathBuf::from("out/shot-0007.png"));
        assert_eq!(
            frame_path(std::path::Path::new("x"), 2, 3),
            PathBuf::from("x-0002")
        );
    }

    #[test]
    fn the_daemon_confines_every_path_flag_of_the_roles_it_starts() {
        use clap::CommandFactory;
        use lockstep::launch::daemon::confine::PATH_FLAGS;
        let cli = Cli::command();
        let mut seen = Vec::new();
        for role in ["node", "master"] {
            let sub = cli.find_subcommand(role).unwrap();
            for arg in sub.get_arguments() {
                if arg.get_value_parser().type_id() == std::any::TypeId::of::<PathBuf>() {
                    let flag = format!("--{}", arg.get_long().expect("path flags are long"));
                    assert!(
                        PATH_FLAGS.contains(&flag.as_str()),
                        "lockstep {role} {flag} takes a path the daemon does not confine"
                    );
                    seen.push(flag);
                }
            }
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), PATH_FLAGS.len(), "{seen:?}");
    }
}
