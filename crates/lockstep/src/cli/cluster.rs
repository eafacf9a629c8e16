/*!
`lockstep master`, `lockstep node`, `lockstep key` and `lockstep demo`: running a cluster.
*/
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use lockstep::cluster::{FailurePolicy, Master, MasterConfig, NodeConfig};
use lockstep::demo::Demo;
use lockstep::display::{ClusterConfig, Endpoint, ThreadingModel};
use lockstep::launch::state::{NodeState, announce};
use lockstep::pipeline::{self, Capture, CapturedFrame, PipelineConfig, Target};
use lockstep::roles::{
    FrameSource, NodeApp, NodeExit, SwapGate, default_plugins, load_key, run_master,
};
use lockstep::stats::Summary;
use lockstep_wire::ClusterKey;

use super::{GpuArgs, ctrl_c, ranged};

/// The master of `config` with the key given as text (a benchmark's or soak's fresh key),
/// listening where the file says, with the library's defaults otherwise.
pub(super) fn master_config(config: &ClusterConfig, key: &str) -> Result<MasterConfig> {
    Ok(MasterConfig::for_cluster(
        config,
        ClusterKey::new(key.as_bytes().to_vec())?,
        resolve(&config.master)?,
    ))
}

pub(super) fn resolve(e: &Endpoint) -> Result<SocketAddr> {
    (e.host.as_str(), e.port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {e}"))?
        .next()
        .with_context(|| format!("{e} resolves to no address"))
}

fn write_hashes(path: &Path, hashes: &[(u64, u64)]) -> Result<()> {
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
    config: PathBuf,
    /// Stop after N frames (default: until Ctrl-C).
    #[arg(long, value_parser = |s: &str| ranged(s, 1, 1 << 40))]
    frames: Option<u64>,
    /// Advance the clock by this many seconds per frame instead of wall-clock time.
    #[arg(long = "fixed-dt")]
    fixed_dt: Option<f64>,
    /// Run at most this many frames per second (default: as fast as the nodes go).
    #[arg(long, value_parser = |s: &str| ranged(s, 1, 10_000))]
    fps: Option<u64>,
    /// Milliseconds the swap barrier waits for a node before dropping it.
    #[arg(long = "deadline-ms", default_value = "1000", value_parser = |s: &str| ranged(s, 10, 600_000))]
    deadline_ms: u64,
    /// What a failed node does to the cluster.
    #[arg(long, value_enum, default_value = "drop")]
    policy: Policy,
    /// Start once these nodes (comma-separated) have joined instead of all; the others join
    /// late, whenever they come.
    #[arg(long = "wait-for", value_delimiter = ',')]
    wait_for: Option<Vec<String>>,
    /// Seconds to wait for every node to join.
    #[arg(long = "start-timeout", default_value = "30", value_parser = |s: &str| ranged(s, 1, 3600))]
    start_timeout: u64,
    /// Write "frame hash" per line: the scene the master sent.
    #[arg(long = "hash-out")]
    hash_out: Option<PathBuf>,
    /// Frames sent ahead of the swap barrier: 2 lets nodes prepare frame F+1 while they
    /// draw F (full speed); 1 runs the master's update one frame later (less latency from
    /// the master's input to the walls). With --fps every frame is swapped as soon as it
    /// is drawn.
    #[arg(long = "pipeline-depth", default_value = "2", value_parser = |s: &str| ranged(s, 1, 2))]
    pipeline_depth: u64,
    /// Also render this node of the cluster file in the master's process (it joins over
    /// loopback like any node, and takes part in the swap barrier).
    #[arg(long)]
    render: Option<String>,
    /// With --render: render offscreen even if the cluster file asks for a window.
    #[arg(long, requires = "render")]
    offscreen: bool,
    /// With --render: write the view's last frame as DIR/NODE.png.
    #[arg(long, requires = "render")]
    out: Option<PathBuf>,
    /// Hash the scene every frame and compare it with the state each node reports (nodes
    /// started with --report-state); differences are logged and counted.
    #[arg(long)]
    verify: bool,
    #[command(flatten)]
    gpu: GpuArgs,
}

pub fn run_master_cmd(args: MasterArgs) -> Result<()> {
    let config = ClusterConfig::load(&args.config)?;
    let key = load_key(&config)?;
    let stop = ctrl_c()?;
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
    let mut master = Master::start(master_config, default_plugins(&config))?;
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
    let mut demo = Demo::new(1.0, 1.0)?;
    let mut scene = demo.scene.clone();
    let (frames, fixed_dt, hashing) = (args.frames, args.fixed_dt, args.hash_out.is_some());
    let fps = args.fps;
    let start_timeout = Duration::from_secs(args.start_timeout);
    let wait_for = args.wait_for.clone();
    let master_stop = stop.clone();
    let run = move || {
        let result = run_master(
            &mut master,
            &mut scene,
            frames,
            fixed_dt,
            fps.map(|f| Duration::from_secs_f64(1.0 / f as f64)),
            start_timeout,
            wait_for.as_deref(),
            hashing,
            &master_stop,
            |scene, info| {
                std::mem::swap(&mut demo.scene, scene);
                let r = demo.animate(info.time);
                std::mem::swap(&mut demo.scene, scene);
                Ok(r?)
            },
        );
        master.shutdown(match &result {
            Ok(_) => "the master finished",
            Err(_) => "the master stopped on an error",
        });
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
                alone: false,
                frames: None,
                stats_out: None,
                gpu: args.gpu.clone(),
            };
            let rendered = run_node(view, stop.clone())
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

/// Arguments of `lockstep node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The cluster file.
    #[arg(long)]
    config: PathBuf,
    /// This node's name in the cluster file.
    #[arg(long)]
    name: String,
    /// Render offscreen even if the cluster file asks for a window.
    #[arg(long)]
    offscreen: bool,
    /// Override the cluster file's threading model.
    #[arg(long = "threading-model", allow_hyphen_values = true)]
    threading_model: Option<String>,
    /// Write the last frame as DIR/NODE.png when the run ends.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write "frame hash" per line: the scene this node drew.
    #[arg(long = "hash-out")]
    hash_out: Option<PathBuf>,
    /// Seconds to keep trying to reach the master.
    #[arg(long = "connect-timeout", default_value = "30", value_parser = |s: &str| ranged(s, 1, 3600))]
    connect_timeout: u64,
    /// `gpu` renders the node's viewports; `none` only takes part in the protocol (for
    /// protocol tests and benchmarks of many nodes on one machine).
    #[arg(long, value_enum, default_value = "gpu")]
    renderer: RendererKind,
    /// Seconds to try to rejoin when the node loses the master after it joined (the master
    /// dropped it, or the connection broke); 0: exit instead.
    #[arg(long = "rejoin-timeout", default_value = "1", value_parser = |s: &str| ranged(s, 0, 3600))]
    rejoin_timeout: u64,
    /// Send a hash of the scene with every SwapReady, for a master run with --verify (a
    /// pass over the scene per frame).
    #[arg(long = "report-state")]
    report_state: bool,
    /// Write "frame digest" per presented frame: a digest of the projections this node
    /// rendered (see `lockstep::roles::views_digest`).
    #[arg(long = "views-out")]
    views_out: Option<PathBuf>,
    /// No cluster: animate the demo in this process and render this node's views of it, as
    /// the node would in the cluster (the baseline `bench cluster` compares with).
    #[arg(long, requires = "frames")]
    alone: bool,
    /// With --alone: frames to render.
    #[arg(long, requires = "alone", value_parser = |s: &str| ranged(s, 1, 1 << 30))]
    frames: Option<u64>,
    /// Write the run's figures as JSON: frames, fps, steady fps (after the first 10 frames:
    /// start-up and loading excluded), swap wait.
    #[arg(long = "stats-out")]
    stats_out: Option<PathBuf>,
    #[command(flatten)]
    gpu: GpuArgs,
}

/// Whether a node renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RendererKind {
    /// Render with the GPU.
    Gpu,
    /// Apply frames and swap, draw nothing.
    None,
}

pub fn run_node_cmd(args: NodeArgs) -> Result<()> {
    run_node(args, ctrl_c()?)
}

/// How one session of a node ended.
enum Session {
    /// The master shut the cluster down, the frame limit was reached, or the run was stopped.
    Done,
    /// The master switched to a file that changes this node's pipeline: start again with it.
    Restart(Box<ClusterConfig>),
    /// The node lost its connection to the master after it had joined (or the master
    /// dropped it): it may rejoin. `presented` says whether it showed a frame meanwhile.
    Lost {
        error: anyhow::Error,
        presented: bool,
    },
}

/// A node gives up after this many sessions in a row that lost the master before presenting
/// a single frame: a master that keeps dropping it will not take it in by trying forever.
const FRUITLESS_REJOINS: u32 = 5;

/// After a session that lost the master: the count of fruitless sessions in a row to rejoin
/// with, or (`Err`) that count when it reached [`FRUITLESS_REJOINS`] and the node gives up.
fn rejoin_after(fruitless: u32, presented: bool) -> Result<u32, u32> {
    let n = if presented { 0 } else { fruitless + 1 };
    if n >= FRUITLESS_REJOINS {
        Err(n)
    } else {
        Ok(n)
    }
}

/// What a node keeps across its sessions (it rejoins after losing the master).
#[derive(Default)]
struct NodeTotals {
    /// (frame, state hash, views digest) per presented frame.
    presented: Vec<(u64, u64, u64)>,
    waits: Vec<Duration>,
    done_at: Vec<std::time::Instant>,
    frames: u64,
    last: Option<CapturedFrame>,
}

/// A render node until the master ends the session, `stop` is set, or it fails. A node that
/// loses the master after joining rejoins (within `--rejoin-timeout`), and one whose pipeline
/// a reconfiguration changes starts again with the new file.
fn run_node(args: NodeArgs, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Result<()> {
    let mut config = ClusterConfig::load(&args.config)?;
    // Alone, no cluster: no key.
    let key = if args.alone {
        None
    } else {
        Some(load_key(&config)?)
    };
    if config.node(&args.name).is_none() {
        let names: Vec<&str> = config.nodes.iter().map(|n| n.name.as_str()).collect();
        bail!(
            "{}: no node named '{}' (nodes: {})",
            args.config.display(),
            args.name,
            names.join(", ")
        );
    }
    if let Some(m) = &args.threading_model {
        m.parse::<ThreadingModel>().map_err(anyhow::Error::msg)?;
    }
    if args.alone && args.renderer == RendererKind::None {
        bail!("--alone renders: it cannot go with --renderer none");
    }
    let mut totals = NodeTotals::default();
    let started = std::time::Instant::now();
    let mut connect_timeout = Duration::from_secs(args.connect_timeout);
    let mut fruitless = 0;
    // Every session after the first joins a cluster this node was in.
    let mut rejoining = false;
    loop {
        let session = run_session(
            &args,
            &config,
            key.as_ref(),
            connect_timeout,
            rejoining,
            &stop,
            &mut totals,
        )?;
        match session {
            Session::Done => break,
            Session::Restart(new) => {
                eprintln!("node '{}': restarting with the new cluster file", args.name);
                config = *new;
                fruitless = 0;
            }
            Session::Lost { error, presented } => {
                let error = error.context(format!("node '{}' lost the master", args.name));
                if args.rejoin_timeout == 0 || stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return Err(error);
                }
                fruitless = match rejoin_after(fruitless, presented) {
                    Ok(n) => n,
                    Err(n) => {
                        return Err(error.context(format!(
                            "node '{}' gives up: {n} sessions in a row lost the master before presenting a frame",
                            args.name
                        )));
                    }
                };
                eprintln!("{error:#}; rejoining");
            }
        }
        connect_timeout = Duration::from_secs(args.rejoin_timeout.max(1));
        rejoining = true;
    }
    finish_node(&args, totals, started.elapsed())
}

/// Writes the node's outputs and prints its figures.
fn finish_node(args: &NodeArgs, totals: NodeTotals, elapsed: Duration) -> Result<()> {
    if let (Some(dir), Some(last)) = (&args.out, &totals.last) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        last.image
            .write_png(&dir.join(format!("{}.png", args.name)))?;
    }
    if let Some(path) = &args.hash_out {
        let hashes: Vec<(u64, u64)> = totals.presented.iter().map(|e| (e.0, e.1)).collect();
        write_hashes(path, &hashes)?;
    }
    if let Some(path) = &args.views_out {
        let views: Vec<(u64, u64)> = totals.presented.iter().map(|e| (e.0, e.2)).collect();
        write_hashes(path, &views)?;
    }
    let s = Summary::of(&totals.waits);
    let fps = totals.frames as f64 / elapsed.as_secs_f64().max(1e-9);
    let swap = if args.alone {
        "alone, no swap barrier".to_string()
    } else {
        format!(
            "swap wait median {:.3} ms, p99 {:.3} ms",
            s.map_or(0.0, |s| s.median_ms),
            s.map_or(0.0, |s| s.p99_ms)
        )
    };
    if args.renderer == RendererKind::None {
        println!(
            "node {}: {} frames, {fps:.1} fps, {swap} (no renderer)",
            args.name, totals.frames
        );
        return Ok(());
    }
    let steady = steady_fps(&totals.done_at);
    println!(
        "node {}: {} frames, {:.1} fps ({} steady), {swap}",
        args.name,
        totals.frames,
        fps,
        steady.map_or("n/a".to_string(), |f| format!("{f:.1} fps")),
    );
    if let Some(path) = &args.stats_out {
        let json = serde_json::json!({
            "node": args.name,
            "alone": args.alone,
            "frames": totals.frames,
            "fps": fps,
            "steady_fps": steady,
            "swap_wait": s,
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Whether an error is a lost connection to the master (the node may rejoin), not a
/// frame it cannot apply, a file it cannot load, a protocol violation, or its own failure
/// (GPU, files): those end it.
fn lost_master(e: &anyhow::Error) -> bool {
    // The outermost cluster error decides: a failure caused by a lost connection is still
    // that failure.
    e.chain()
        .find_map(|c| c.downcast_ref::<lockstep::cluster::ClusterError>())
        .is_some_and(lockstep::cluster::ClusterError::is_connection_lost)
}

/// One session: join (or run alone), render until it ends.
#[allow(clippy::too_many_arguments)]
fn run_session(
    args: &NodeArgs,
    config: &ClusterConfig,
    key: Option<&ClusterKey>,
    connect_timeout: Duration,
    rejoining: bool,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    totals: &mut NodeTotals,
) -> Result<Session> {
    // A rejoin whose connection breaks during the handshake tries again, like any lost
    // connection; a master that cannot be reached at all within the timeout ends the node.
    let lost = |e: lockstep::cluster::ClusterError| -> Result<Session> {
        if rejoining && e.is_connection_lost() {
            Ok(Session::Lost {
                error: e.into(),
                presented: false,
            })
        } else {
            Err(e.into())
        }
    };
    let node = config
        .node(&args.name)
        .with_context(|| format!("the cluster file no longer names node '{}'", args.name))?;
    let window = node
        .windows
        .first()
        .with_context(|| format!("node '{}' has no window", args.name))?;
    let threading: ThreadingModel = match &args.threading_model {
        Some(m) => m.parse().map_err(anyhow::Error::msg)?,
        None => node.threading_model.clone(),
    };
    let has_display = std::env::var_os("DISPLAY").is_some_and(|d| !d.is_empty());
    let offscreen = args.offscreen || window.offscreen || !has_display;
    let hashing = args.hash_out.is_some() || args.report_state || args.views_out.is_some();
    let (source, gate) = if let Some(key) = key {
        let node_config = NodeConfig::new(
            &config.name,
            key.clone(),
            &args.name,
            resolve(&config.master)?,
        )
        .connect_timeout(connect_timeout)
        .cluster_file(&args.config);
        if args.renderer == RendererKind::None {
            let node = match lockstep::cluster::node::connect_direct(
                &node_config,
                default_plugins(config),
            ) {
                Ok(n) => n,
                Err(e) => return lost(e),
            };
            eprintln!(
                "node '{}' joined cluster '{}' (no renderer)",
                args.name, config.name
            );
            announce(NodeState::Ready);
            return run_headless(node, args, config, hashing, stop, totals);
        }
        let (session, link) =
            match lockstep::cluster::node::connect(&node_config, default_plugins(config)) {
                Ok(halves) => halves,
                Err(e) => return lost(e),
            };
        eprintln!("node '{}' joined cluster '{}'", args.name, config.name);
        announce(NodeState::Ready);
        (FrameSource::Cluster(Box::new(session)), Some(link))
    } else {
        let demo = Demo::new(1.0, 1.0)?;
        (FrameSource::Alone(Box::new(demo)), None)
    };
    let mut app = NodeApp::new(source, config.clone(), &args.name);
    app.record_hashes = hashing;
    if let Ok(mut log) = app.log.lock() {
        log.keep = args.hash_out.is_some() || args.views_out.is_some();
    }
    let gate = gate.map(|link| SwapGate::new(link, app.log.clone()));
    let waits = gate.as_ref().map(|g| g.waits.clone()).unwrap_or_default();
    let (capture, keeper) = match &args.out {
        Some(_) if offscreen => {
            let (tx, rx) = mpsc::channel::<CapturedFrame>();
            let keeper = std::thread::spawn(move || rx.into_iter().last());
            (Some(Capture { every: 1, sink: tx }), Some(keeper))
        }
        _ => (None, None),
    };
    // When each frame was done, for the steady frame rate.
    let (stats_tx, stats_rx) = mpsc::channel::<pipeline::FrameStats>();
    let done_at = std::thread::spawn(move || {
        stats_rx
            .into_iter()
            .map(|_| std::time::Instant::now())
            .collect::<Vec<_>>()
    });
    let (w, h) = (window.width, window.height);
    let pipeline_config = PipelineConfig {
        threading,
        target: if offscreen {
            Target::Offscreen {
                width: w,
                height: h,
            }
        } else {
            Target::Window {
                width: w,
                height: h,
                title: format!("lockstep {} — {}", config.name, args.name),
                vsync: true,
            }
        },
        frames: args.frames,
        // Alone, the demo runs on the clock the master would give it.
        fixed_dt: args.alone.then_some(1.0 / 60.0),
        backend: args.gpu.backend,
        capture,
        stats: Some(stats_tx),
        stop: stop.clone(),
        gate: gate.map(|g| Box::new(g) as Box<dyn pipeline::FrameGate>),
    };
    let result = pipeline::run(&mut app, pipeline_config);
    let presented = app.log.lock().is_ok_and(|l| l.shown > 0);
    if let Some(last) = keeper.and_then(|k| k.join().ok()).flatten() {
        totals.last = Some(last);
    }
    totals.done_at.extend(done_at.join().unwrap_or_default());
    totals
        .waits
        .extend(waits.lock().map(|w| w.clone()).unwrap_or_default());
    if let Ok(mut log) = app.log.lock() {
        totals.presented.append(&mut log.presented);
    }
    match result {
        Ok(report) => {
            totals.frames += report.frames;
            Ok(match app.exit {
                NodeExit::Done => Session::Done,
                NodeExit::Restart(new) => Session::Restart(new),
            })
        }
        Err(error) if lost_master(&error) => Ok(Session::Lost { error, presented }),
        Err(e) => Err(e),
    }
}

/// Frames per second between the 10th frame done and the last: start-up, the start barrier
/// and loading the scene left out.
fn steady_fps(done_at: &[std::time::Instant]) -> Option<f64> {
    let skip = 10;
    let (first, last) = (done_at.get(skip)?, done_at.last()?);
    let span = last.duration_since(*first).as_secs_f64();
    (span > 0.0).then(|| (done_at.len() - 1 - skip) as f64 / span)
}

/// A node without rendering: apply each frame, then swap.
fn run_headless(
    mut node: lockstep::cluster::DirectNode,
    args: &NodeArgs,
    config: &ClusterConfig,
    hashing: bool,
    stop: &std::sync::atomic::AtomicBool,
    totals: &mut NodeTotals,
) -> Result<Session> {
    let mut config = config.clone();
    let mut scene = lockstep::scene::Scene::new();
    let mut session_frames = 0u64;
    let mut hasher = lockstep::cluster::SceneHasher::default();
    let result = (|| -> Result<()> {
        while let Some(info) = node.next_frame(&mut scene)? {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Told to stop (Ctrl-C, TERM): leave before this frame's swap.
                break;
            }
            if let Some(new) = node.take_config() {
                config = new;
            }
            let state = hashing.then(|| hasher.hash(&scene));
            let t = std::time::Instant::now();
            let stats = lockstep_wire::NodeStats {
                state: state.filter(|_| args.report_state),
                ..Default::default()
            };
            node.swap(info.frame, stats)?;
            totals.waits.push(t.elapsed());
            session_frames += 1;
            totals.frames += 1;
            if session_frames == 1 {
                announce(NodeState::Running);
            }
            // Kept only for the files that list them (not for --report-state alone).
            if let Some(state) =
                state.filter(|_| args.hash_out.is_some() || args.views_out.is_some())
            {
                let head = node
                    .manager
                    .get::<lockstep::cluster::plugins::HeadTracking>()
                    .map_or(config.head, |h| *h.pose());
                let views = lockstep::roles::views_digest(&config, &args.name, &head).unwrap_or(0);
                totals.presented.push((info.frame, state, views));
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(Session::Done),
        Err(error) if lost_master(&error) => Ok(Session::Lost {
            error,
            presented: session_frames > 0,
        }),
        Err(e) => Err(e),
    }
}

/// `lockstep key` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Write a new random cluster key (64 hex digits) to FILE, readable by its owner only.
    New {
        /// The key file to create (refused if it exists).
        file: PathBuf,
    },
}

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

/// Arguments of `lockstep demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Frames to run.
    #[arg(long, default_value = "120", value_parser = |s: &str| ranged(s, 1, 1 << 30))]
    frames: u64,
    /// Open a window per wall instead of rendering offscreen.
    #[arg(long)]
    window: bool,
    /// Folder for each wall's last frame and the unfolded CAVE picture.
    #[arg(long)]
    out: PathBuf,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The sample CAVE written to `dir`, on free local ports, with a fresh key; with `only`,
/// just those of its nodes.
fn local_cave(dir: &Path, only: Option<&[String]>) -> Result<(PathBuf, ClusterConfig, String)> {
    let mut text = include_str!("../../../../configs/cave.toml").to_string();
    for port in 7400..=7404 {
        text = text.replace(
            &format!("port = {port}\n"),
            &format!("port = {}\n", free_port()?),
        );
    }
    if let Some(only) = only {
        let mut doc: toml::Table = text.parse().context("the sample CAVE file")?;
        let Some(toml::Value::Array(nodes)) = doc.get_mut("nodes") else {
            bail!("the sample CAVE file has no nodes");
        };
        nodes.retain(|n| {
            n.get("name")
                .and_then(|v| v.as_str())
                .is_some_and(|name| only.iter().any(|o| o == name))
        });
        if nodes.len() != only.len() {
            bail!("the demo CAVE's nodes are left, front, right and floor; asked for {only:?}");
        }
        text = toml::to_string(&doc).context("the sample CAVE file")?;
    }
    let cfg_path = dir.join("cave.toml");
    std::fs::write(&cfg_path, &text)
        .with_context(|| format!("cannot write {}", cfg_path.display()))?;
    let config = ClusterConfig::load(&cfg_path)?;
    Ok((cfg_path, config, ClusterKey::generate_hex()?))
}

pub fn run_demo(args: DemoArgs) -> Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let (cfg_path, config, key) = local_cave(&args.out, None)?;
    let exe = std::env::current_exe().context("cannot find the lockstep executable")?;
    let cfg = cfg_path.to_string_lossy().to_string();
    let hash_file = |who: &str| {
        args.out
            .join(format!("{who}.hashes"))
            .to_string_lossy()
            .to_string()
    };
    let master = strings(&[
        "master",
        "--config",
        &cfg,
        "--frames",
        &args.frames.to_string(),
        "--fixed-dt",
        &format!("{}", 1.0 / 60.0),
        "--hash-out",
        &hash_file("master"),
    ]);
    let mut runs = vec![("master".to_string(), master)];
    for n in &config.nodes {
        let mut a = strings(&[
            "node",
            "--config",
            &cfg,
            "--name",
            &n.name,
            "--hash-out",
            &hash_file(&n.name),
        ]);
        if !args.window {
            a.extend(strings(&[
                "--offscreen",
                "--out",
                &args.out.to_string_lossy(),
            ]));
        }
        runs.push((n.name.clone(), a));
    }
    eprintln!(
        "starting a master and {} nodes of cluster '{}' on this machine",
        config.nodes.len(),
        config.name
    );
    let lines = run_all(&exe, &key, runs).context("the demo cluster failed")?;
    for l in &lines {
        println!("{l}");
    }
    // Every node drew the scene the master sent, frame by frame.
    let read = |who: &str| {
        std::fs::read_to_string(hash_file(who)).with_context(|| format!("no hashes from {who}"))
    };
    let master = read("master")?;
    for n in &config.nodes {
        if read(&n.name)? != master {
            bail!(
                "node '{}' drew other scenes than the master sent (see {})",
                n.name,
                hash_file(&n.name)
            );
        }
    }
    println!(
        "all {} nodes drew the same scene as the master in all {} frames",
        config.nodes.len(),
        args.frames
    );
    if !args.window {
        let path = args.out.join("cave.png");
        unfold(&args.out, &path)?;
        println!(
            "wrote {} (the walls unfolded) and each wall's last frame in {}",
            path.display(),
            args.out.display()
        );
    }
    Ok(())
}

/// Lays the CAVE's walls out as seen unfolded: left, front, right in a row, the floor below
/// the front wall.
fn unfold(dir: &Path, out: &Path) -> Result<()> {
    let load = |n: &str| -> Result<image::RgbaImage> {
        Ok(image::open(dir.join(format!("{n}.png")))
            .with_context(|| format!("no image from node '{n}'"))?
            .to_rgba8())
    };
    let (left, front, right, floor) = (
        load("left")?,
        load("front")?,
        load("right")?,
        load("floor")?,
    );
    let (w, h) = front.dimensions();
    let mut img = image::RgbaImage::from_pixel(3 * w, 2 * h, image::Rgba([0, 0, 0, 255]));
    image::imageops::overlay(&mut img, &left, 0, 0);
    image::imageops::overlay(&mut img, &front, w as i64, 0);
    image::imageops::overlay(&mut img, &right, 2 * w as i64, 0);
    image::imageops::overlay(&mut img, &floor, w as i64, h as i64);
    img.save(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}

/// Arguments of `lockstep bench cluster`.
#[derive(Debug, Args)]
pub struct BenchClusterArgs {
    /// Frames per run.
    #[arg(long, default_value = "150", value_parser = |s: &str| ranged(s, 20, 1_000_000))]
    frames: u64,
    /// Only these nodes of the demo CAVE (comma-separated), e.g. `front` for one render node
    /// and the master, as on a real cluster with one node per machine.
    #[arg(long, value_delimiter = ',')]
    nodes: Option<Vec<String>>,
    /// Rounds; each runs the nodes alone, then as a cluster.
    #[arg(long, default_value = "2", value_parser = |s: &str| ranged(s, 1, 100))]
    rounds: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `lockstep` processes side by side to the end, each named for errors; all must exit
/// 0. Returns their standard output lines, process by process.
fn run_all(exe: &Path, key: &str, runs: Vec<(String, Vec<String>)>) -> Result<Vec<String>> {
    let mut children = Vec::new();
    for (who, a) in runs {
        let child = Command::new(exe)
            .args(&a)
            .env("LOCKSTEP_KEY", key)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {who}: {} {}", exe.display(), a.join(" ")))?;
        children.push((who, child));
    }
    let mut failed = Vec::new();
    let mut lines = Vec::new();
    for (who, child) in children {
        let out = child.wait_with_output()?;
        lines.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string),
        );
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let mut tail: Vec<&str> = err.lines().rev().take(5).collect();
            tail.reverse();
            failed.push(format!(
                "{who} exited with {}: {}",
                out.status,
                tail.join(" | ")
            ));
        }
    }
    if !failed.is_empty() {
        bail!("\n  {}", failed.join("\n  "));
    }
    Ok(lines)
}

/// Owned command-line arguments.
fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

pub fn run_bench_cluster(args: BenchClusterArgs) -> Result<()> {
    let dir = tempfile_dir()?;
    let (cfg_path, config, key) = local_cave(&dir, args.nodes.as_deref())?;
    let exe = std::env::current_exe().context("cannot find the lockstep executable")?;
    let cfg = cfg_path.to_string_lossy().to_string();
    let names: Vec<String> = config.nodes.iter().map(|n| n.name.clone()).collect();
    let stats_file = |who: &str, alone: bool| {
        dir.join(format!(
            "{who}-{}.json",
            if alone { "alone" } else { "cluster" }
        ))
    };
    // A node's steady frame rate, frames presented, and swap barriers waited at.
    let read_stats = |who: &str, alone: bool| -> Result<(f64, u64, u64)> {
        let path = stats_file(who, alone);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("no figures from node '{who}'"))?;
        let v: serde_json::Value = serde_json::from_str(&text)?;
        let fps = v["steady_fps"]
            .as_f64()
            .with_context(|| format!("node '{who}' ran too few frames for a steady rate"))?;
        let frames = v["frames"].as_u64().unwrap_or(0);
        let swaps = v["swap_wait"]["count"].as_u64().unwrap_or(0);
        Ok((fps, frames, swaps))
    };
    let frames = args.frames.to_string();
    let p = |path: &Path| path.to_string_lossy().to_string();
    // Per node: steady fps alone and in the cluster, averaged over the rounds; and each
    // round's ratio of the totals (their median resists a round disturbed by the machine).
    let mut alone = vec![0.0; names.len()];
    let mut cluster = vec![0.0; names.len()];
    let mut round_ratios = Vec::new();
    // Per node and round: (frames alone, frames in the cluster, barriers in the cluster).
    let mut runs: Vec<Vec<serde_json::Value>> = vec![Vec::new(); names.len()];
    for round in 0..args.rounds {
        // Alone: every node at once (they share this machine's CPU as the cluster's do).
        let alone_runs: Vec<(String, Vec<String>)> = names
            .iter()
            .map(|n| {
                let mut a = strings(&[
                    "node",
                    "--config",
                    &cfg,
                    "--name",
                    n,
                    "--offscreen",
                    "--alone",
                    "--frames",
                    &frames,
                ]);
                a.extend(["--stats-out".into(), p(&stats_file(n, true))]);
                (format!("node '{n}' alone"), a)
            })
            .collect();
        let master = strings(&[
            "master",
            "--config",
            &cfg,
            "--frames",
            &frames,
            "--fixed-dt",
            &format!("{}", 1.0 / 60.0),
        ]);
        let mut cluster_runs = vec![("master".to_string(), master)];
        for n in &names {
            let a = strings(&[
                "node",
                "--config",
                &cfg,
                "--name",
                n,
                "--offscreen",
                "--stats-out",
                &p(&stats_file(n, false)),
            ]);
            cluster_runs.push((format!("node '{n}'"), a));
        }
        // Every other round the cluster goes first, so that drift in the machine's speed
        // does not favour one side.
        let mut order = [
            (alone_runs, "the nodes running alone"),
            (cluster_runs, "the cluster"),
        ];
        if round % 2 == 1 {
            order.reverse();
        }
        for (runs, what) in order {
            run_all(&exe, &key, runs).with_context(|| format!("{what} failed"))?;
        }
        let (mut a, mut c) = (0.0, 0.0);
        for (i, n) in names.iter().enumerate() {
            let ((fa, frames_alone, _), (fc, frames_cluster, swaps)) =
                (read_stats(n, true)?, read_stats(n, false)?);
            runs[i].push(serde_json::json!({
                "frames_alone": frames_alone,
                "frames_in_cluster": frames_cluster,
                "swap_barriers_in_cluster": swaps,
            }));
            alone[i] += fa / args.rounds as f64;
            cluster[i] += fc / args.rounds as f64;
            a += fa;
            c += fc;
        }
        round_ratios.push(c / a);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let (a, c): (f64, f64) = (alone.iter().sum(), cluster.iter().sum());
    let ratio = c / a;
    round_ratios.sort_by(f64::total_cmp);
    let median_ratio = round_ratios[round_ratios.len() / 2];
    if args.json {
        let nodes: Vec<serde_json::Value> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                serde_json::json!({"node": n, "alone_fps": alone[i], "cluster_fps": cluster[i], "ratio": cluster[i] / alone[i], "runs": runs[i]})
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "benchmark": "cluster",
                "frames": args.frames,
                "rounds": args.rounds,
                "nodes": nodes,
                "alone_fps": a,
                "cluster_fps": c,
                "ratio": ratio,
                "round_ratios": round_ratios,
                "median_round_ratio": median_ratio,
            }))?
        );
        return Ok(());
    }
    println!(
        "lockstep bench cluster: the demo CAVE ({} nodes, offscreen), {} frames x {} rounds; steady fps after the first 10 frames",
        names.len(),
        args.frames,
        args.rounds
    );
    println!(
        "{:<10} {:>12} {:>12} {:>8}",
        "node", "alone fps", "cluster fps", "ratio"
    );
    for (i, n) in names.iter().enumerate() {
        println!(
            "{:<10} {:>12.1} {:>12.1} {:>7.3}x",
            n,
            alone[i],
            cluster[i],
            cluster[i] / alone[i]
        );
    }
    println!("{:<10} {:>12.1} {:>12.1} {:>7.3}x", "all", a, c, ratio);
    println!(
        "round by round: {} (median {median_ratio:.3}x)",
        round_ratios
            .iter()
            .map(|r| format!("{r:.3}x"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(())
}

/// A cluster file on loopback with `n` nodes `n0`, `n1`, … (one small window each on one
/// screen) and free ports, written to `dir`: for benchmarks and soak runs of many node
/// processes on one machine.
pub(super) fn small_cluster(dir: &Path, name: &str, n: usize) -> Result<(PathBuf, ClusterConfig)> {
    let mut text = format!(
        "name = \"{name}\"\n[master]\nhost = \"127.0.0.1\"\nport = {}\n[[screens]]\nname = \"s\"\nlower_left = [-1.0, 0.0, -2.0]\nlower_right = [1.0, 0.0, -2.0]\nupper_left = [-1.0, 2.0, -2.0]\n",
        free_port()?
    );
    for i in 0..n {
        text += &format!(
            "[[nodes]]\nname = \"n{i}\"\nhost = \"127.0.0.1\"\nport = {}\n[[nodes.windows]]\nname = \"w\"\nsize = [64, 64]\n[[nodes.windows.viewports]]\nname = \"v\"\nscreen = \"s\"\n",
            free_port()?
        );
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    let config = ClusterConfig::load(&path)?;
    Ok((path, config))
}

/// A private temporary folder for the benchmark's cluster file.
pub(super) fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("lockstep-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep::cluster::ClusterError;

    #[test]
    fn a_node_rejoins_until_five_sessions_in_a_row_present_nothing() {
        let mut fruitless = 0;
        for _ in 0..4 {
            fruitless = rejoin_after(fruitless, false).unwrap();
        }
        assert_eq!(rejoin_after(fruitless, false), Err(5));
        // A session that presented a frame starts the count again.
        assert_eq!(rejoin_after(fruitless, true), Ok(0));
    }

    #[test]
    fn only_a_lost_connection_is_a_lost_master_wherever_the_pipeline_wrapped_it() {
        let closed = || ClusterError::Closed {
            peer: "master 127.0.0.1:7400".into(),
            detail: String::new(),
        };
        let e = anyhow::Error::new(closed()).context("App update of frame 12");
        assert!(lost_master(&e));
        let config = ClusterError::Config(lockstep::display::ConfigErrors(Vec::new()));
        let e = anyhow::Error::new(config).context("App update of frame 12");
        assert!(!lost_master(&e));
        assert!(!lost_master(&anyhow::anyhow!(
            "no Vulkan or GL adapter found"
        )));
    }
}
