/*!
The master's role: load the cluster file and key, set the application up, wait for the nodes,
then run its update every frame and send each frame to every node.
*/
use std::io::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use lockstep_cluster::{FailurePolicy, Master, MasterConfig};
use lockstep_display::{ClusterConfig, DeviceHost, Endpoint};
use lockstep_launch::state::{NodeState, announce};

use super::node::{NodeArgs, RendererKind, run_node_until};
use super::{ClusterApp, Prepared, prepare};
use crate::devices::Devices;
use crate::options::{GpuArgs, ranged, stop_on_ctrl_c};
use crate::roles::{MasterInput, MasterLoop, load_key, master_loop};
use crate::stats::Summary;
use lockstep_input::record::{Recorder, Recording, Replay};

/// The socket address of `e`, resolved.
pub fn resolve(e: &Endpoint) -> Result<SocketAddr> {
    (e.host.as_str(), e.port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {e}"))?
        .next()
        .with_context(|| format!("{e} resolves to no address"))
}

pub(crate) fn write_hashes(path: &Path, hashes: &[(u64, u64)]) -> Result<()> {
    let mut f =
        std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    for (frame, h) in hashes {
        writeln!(f, "{frame} {h:016x}")?;
    }
    Ok(())
}

/// How a failed node affects the cluster.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Policy {
    /// Drop it; the others go on.
    Drop,
    /// Stop the cluster.
    Stop,
}

/// Arguments of `lockstep master`.
#[derive(Debug, Args)]
pub struct MasterArgs {
    /// The cluster file.
    #[arg(long)]
    pub config: PathBuf,
    /// Stop after N frames (default: until Ctrl-C).
    #[arg(long, value_parser = |s: &str| ranged(s, 1, 1 << 40))]
    pub frames: Option<u64>,
    /// Advance the clock by this many seconds per frame instead of wall-clock time.
    #[arg(long = "fixed-dt")]
    pub fixed_dt: Option<f64>,
    /// Run at most this many frames per second (default: as fast as the nodes go).
    #[arg(long, value_parser = |s: &str| ranged(s, 1, 10_000))]
    pub fps: Option<u64>,
    /// Milliseconds the swap barrier waits for a node before dropping it.
    #[arg(long = "deadline-ms", default_value = "1000", value_parser = |s: &str| ranged(s, 10, 600_000))]
    pub deadline_ms: u64,
    /// What a failed node does to the cluster.
    #[arg(long, value_enum, default_value = "drop")]
    pub policy: Policy,
    /// Start once these nodes (comma-separated) have joined instead of all; the others join
    /// late, whenever they come.
    #[arg(long = "wait-for", value_delimiter = ',')]
    pub wait_for: Option<Vec<String>>,
    /// Seconds to wait for every node to join.
    #[arg(long = "start-timeout", default_value = "30", value_parser = |s: &str| ranged(s, 1, 3600))]
    pub start_timeout: u64,
    /// Write "frame hash" per line: the scene the master sent.
    #[arg(long = "hash-out")]
    pub hash_out: Option<PathBuf>,
    /// Frames sent ahead of the swap barrier: 2 lets nodes prepare frame F+1 while they
    /// draw F (full speed); 1 runs the master's update one frame later (less latency from
    /// the master's input to the walls). With --fps every frame is swapped as soon as it
    /// is drawn.
    #[arg(long = "pipeline-depth", default_value = "2", value_parser = |s: &str| ranged(s, 1, 2))]
    pub pipeline_depth: u64,
    /// Also render this node of the cluster file in the master's process (it joins over
    /// loopback like any node, and takes part in the swap barrier).
    #[arg(long)]
    pub render: Option<String>,
    /// With --render: render offscreen even if the cluster file asks for a window.
    #[arg(long, requires = "render")]
    pub offscreen: bool,
    /// With --render: write the view's last frame as DIR/NODE.png.
    #[arg(long, requires = "render")]
    pub out: Option<PathBuf>,
    /// Hash the scene every frame and compare it with the state each node reports (nodes
    /// started with --report-state); differences are logged and counted.
    #[arg(long)]
    pub verify: bool,
    /// Write the input stream (every device's events, frame by frame) to FILE.
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Play the input recorded in FILE (`--record`) instead of reading the devices: the
    /// session repeats exactly (with --fixed-dt, to the pixel).
    #[arg(long, conflicts_with = "record")]
    pub replay: Option<PathBuf>,
    /// With --replay: start the recording again after its last frame (a tour on a loop).
    #[arg(long = "replay-loop", requires = "replay")]
    pub replay_loop: bool,
    /// Print every frame's input events ("master input frame F: …").
    #[arg(long = "trace-input")]
    pub trace_input: bool,
    /// The graphics API.
    #[command(flatten)]
    pub gpu: GpuArgs,
}

/// Runs `make()`'s application as the master of `args.config`, until the frame limit, Ctrl-C
/// or the last node leaving; prints the run's figures.
pub fn run_master<A: ClusterApp>(
    make: impl Fn() -> A + Send + Sync + 'static,
    args: MasterArgs,
) -> Result<()> {
    let config = ClusterConfig::load(&args.config)?;
    let key = load_key(&config)?;
    let stop = stop_on_ctrl_c()?;
    let mut app = make();
    let Prepared {
        manager,
        scene,
        identity,
    } = prepare(&mut app, &config, None)?;
    let master_config = MasterConfig {
        verify: args.verify,
        swap_deadline: Duration::from_millis(args.deadline_ms),
        load_deadline: Duration::from_secs(args.start_timeout),
        handshake_timeout: Duration::from_secs(5),
        policy: match args.policy {
            Policy::Drop => FailurePolicy::Drop,
            Policy::Stop => FailurePolicy::Stop,
        },
        pipeline_depth: args.pipeline_depth as usize,
        identity,
        ..MasterConfig::for_cluster(&config, key, resolve(&config.master)?)
    };
    if let Some(names) = &args.wait_for
        && let Some(bad) = names.iter().find(|n| config.node(n).is_none())
    {
        bail!(
            "--wait-for: {} names no node '{bad}'",
            args.config.display()
        );
    }
    let mut master = Master::start(master_config, manager)?;
    let waiting = match &args.wait_for {
        Some(names) => format!(
            "waiting for {} of its {} node(s) ({}); the others may join later",
            names.len(),
            config.nodes.len(),
            names.join(", ")
        ),
        None => format!("waiting for its {} node(s)", config.nodes.len()),
    };
    eprintln!(
        "master of cluster '{}' listening on {}, {waiting}",
        config.name,
        master.local_addr(),
    );
    announce(NodeState::Ready);
    let mut scene = scene;
    let (frames, fixed_dt, hashing) = (args.frames, args.fixed_dt, args.hash_out.is_some());
    let fps = args.fps;
    let start_timeout = Duration::from_secs(args.start_timeout);
    let wait_for = args.wait_for.clone();
    let master_stop = stop.clone();
    // The master's own view (`--render`) steers the application from its window; the
    // devices the cluster file places on the master are read here.
    let (input_to, window) = match args.render {
        Some(_) => {
            let (tx, rx) = std::sync::mpsc::channel();
            (Some(tx), Some(rx))
        }
        None => (None, None),
    };
    let mut input = MasterInput::for_cluster(&config);
    input.window = window;
    input.trace = args.trace_input;
    // A replay stands in for the devices.
    match &args.replay {
        Some(path) => {
            let recording = Recording::read(path, Some(&config.name))?;
            input.replay = Some(Replay::new(recording, args.replay_loop));
        }
        None => input.devices = Devices::start(&config, &DeviceHost::Master)?,
    }
    if let Some(path) = &args.record {
        input.record = Some(Recorder::create(path, &config.name)?);
    }
    let run = move || {
        let result = master_loop(
            &mut master,
            &mut scene,
            MasterLoop {
                frames,
                fixed_dt,
                frame_period: fps.map(|f| Duration::from_secs_f64(1.0 / f as f64)),
                start_timeout,
                wait_for: wait_for.as_deref(),
                record_hashes: hashing,
                stop: &master_stop,
                input,
            },
            |frame| app.update(frame),
        );
        // The nodes are told why, and print it.
        match &result {
            Ok(_) => master.shutdown("the master finished"),
            Err(e) => master.shutdown(&format!("the master stopped: {e:#}")),
        }
        result
    };
    let result = match &args.render {
        None => run(),
        Some(name) => {
            // The frame loop on its own thread; this one renders (windows want the main
            // thread).
            let master = std::thread::Builder::new()
                .name("master".into())
                .spawn(run)
                .context("cannot start the master's thread")?;
            let view = NodeArgs {
                config: args.config.clone(),
                name: name.clone(),
                offscreen: args.offscreen,
                threading_model: None,
                out: args.out.clone(),
                hash_out: None,
                connect_timeout: args.start_timeout,
                renderer: RendererKind::Gpu,
                rejoin_timeout: 0,
                report_state: false,
                views_out: None,
                image_hashes: None,
                trace_input: false,
                alone: false,
                frames: None,
                stats_out: None,
                gpu: args.gpu.clone(),
            };
            let rendered = run_node_until(&make, view, stop.clone(), input_to)
                .with_context(|| format!("the master's own view, node '{name}'"));
            if rendered.is_err() {
                // Without its own view the master would wait on it at the start barrier.
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            let result = master
                .join()
                .map_err(|_| anyhow::anyhow!("the master's thread panicked"))?;
            rendered?;
            result
        }
    };
    let report = result?;
    for (frame, node, why) in &report.dropped {
        eprintln!("node '{node}' dropped at frame {frame}: {why}");
    }
    for (frame, node) in &report.joined {
        eprintln!("node '{node}' in step from frame {frame}");
    }
    for frame in &report.reconfigured {
        eprintln!("new cluster file in force from frame {frame}");
    }
    if args.verify {
        println!(
            "master: verified {} node states, {} mismatch(es)",
            report.verified,
            report.mismatches.len()
        );
    }
    let waits = Summary::of(&report.swap_waits);
    println!(
        "master: {} frames in {:.2} s ({:.1} fps); swap barrier wait median {:.3} ms, p99 {:.3} ms; {} node(s) dropped, {} joined late",
        report.frames,
        report.elapsed.as_secs_f64(),
        report.frames as f64 / report.elapsed.as_secs_f64().max(1e-9),
        waits.map_or(0.0, |s| s.median_ms),
        waits.map_or(0.0, |s| s.p99_ms),
        report.dropped.len(),
        report.joined.len()
    );
    if let Some(path) = &args.hash_out {
        let hashes: Vec<(u64, u64)> = report
            .hashes
            .iter()
            .enumerate()
            .map(|(i, h)| (i as u64, *h))
            .collect();
        write_hashes(path, &hashes)?;
    }
    if let Some(first) = report.mismatches.first() {
        bail!(
            "{} node state(s) differed from the master's; the first: node '{}' at frame {} ({:016x}, not {:016x})",
            report.mismatches.len(),
            first.node,
            first.frame,
            first.got,
            first.expected
        );
    }
    Ok(())
}
