/*!
A render node's role: set the application up, join the master (rejoining when it loses it),
apply each frame, run the application's node hook, render the node's views, and meet the
others at the swap barrier.
*/
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use lockstep_cluster::NodeConfig;
use lockstep_display::{ClusterConfig, ThreadingModel};
use lockstep_launch::state::{NodeState, announce};
use lockstep_wire::ClusterKey;

use super::master::{resolve, write_hashes};
use super::{ClusterApp, NodeFrame, Prepared, guard, prepare};
use crate::devices::Devices;
use crate::options::{GpuArgs, ranged, stop_on_ctrl_c};
use crate::pipeline::{self, Capture, CapturedFrame, PipelineConfig, Target};
use crate::roles::{FrameSource, NodeApp, NodeExit, SwapGate, default_plugins, load_key};
use crate::sort_first::SortFirst;
use crate::stats::Summary;
use lockstep_display::DeviceHost;
use lockstep_input::InputEvent;

/// Arguments of `lockstep node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The cluster file.
    #[arg(long)]
    pub config: PathBuf,
    /// This node's name in the cluster file.
    #[arg(long)]
    pub name: String,
    /// Render offscreen even if the cluster file asks for a window.
    #[arg(long)]
    pub offscreen: bool,
    /// Override the cluster file's threading model.
    #[arg(long = "threading-model", allow_hyphen_values = true)]
    pub threading_model: Option<String>,
    /// Write the last frame as DIR/NODE.png when the run ends.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write "frame hash" per line: the scene this node drew.
    #[arg(long = "hash-out")]
    pub hash_out: Option<PathBuf>,
    /// Seconds to keep trying to reach the master.
    #[arg(long = "connect-timeout", default_value = "30", value_parser = |s: &str| ranged(s, 1, 3600))]
    pub connect_timeout: u64,
    /// `gpu` renders the node's viewports; `none` only takes part in the protocol (for
    /// protocol tests and benchmarks of many nodes on one machine).
    #[arg(long, value_enum, default_value = "gpu")]
    pub renderer: RendererKind,
    /// Seconds to try to rejoin when the node loses the master after it joined (the master
    /// dropped it, or the connection broke); 0: exit instead.
    #[arg(long = "rejoin-timeout", default_value = "1", value_parser = |s: &str| ranged(s, 0, 3600))]
    pub rejoin_timeout: u64,
    /// Send a hash of the scene with every SwapReady, for a master run with --verify (a
    /// pass over the scene per frame).
    #[arg(long = "report-state")]
    pub report_state: bool,
    /// Write "frame digest" per presented frame: a digest of the projections this node
    /// rendered (see `crate::node_views::views_digest`).
    #[arg(long = "views-out")]
    pub views_out: Option<PathBuf>,
    /// Write "frame digest" per presented frame: an XXH3 digest of the picture's pixels, read
    /// back every frame (offscreen only).
    #[arg(long = "image-hashes")]
    pub image_hashes: Option<PathBuf>,
    /// Print every frame's input events ("NODE input frame F: …") and the frames at which
    /// this node's own devices sent input ("NODE input read at frame F").
    #[arg(long = "trace-input")]
    pub trace_input: bool,
    /// No cluster: run the application's update in this process and render this node's
    /// views of it, as the node would in the cluster (the baseline `bench cluster` compares
    /// with).
    #[arg(long, requires = "frames")]
    pub alone: bool,
    /// With --alone: frames to render.
    #[arg(long, requires = "alone", value_parser = |s: &str| ranged(s, 1, 1 << 30))]
    pub frames: Option<u64>,
    /// Write the run's figures as JSON: frames, fps, steady fps (after the first 10 frames:
    /// start-up and loading excluded), swap wait, and when the swap released each frame
    /// presented (`presents`: master frame and `CLOCK_MONOTONIC` nanoseconds, for the present
    /// skew).
    #[arg(long = "stats-out")]
    pub stats_out: Option<PathBuf>,
    /// The graphics API.
    #[command(flatten)]
    pub gpu: GpuArgs,
}

/// Whether a node renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RendererKind {
    /// Render with the GPU.
    Gpu,
    /// Apply frames and swap, draw nothing.
    None,
}

/// Runs `make()`'s application as render node `args.name`, until the master ends the
/// cluster or Ctrl-C; prints the node's figures.
pub fn run_node<A: ClusterApp>(make: impl Fn() -> A, args: NodeArgs) -> Result<()> {
    run_node_until(&make, args, stop_on_ctrl_c()?, None)
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
    /// Digest of each presented frame's pixels, when they are read back.
    images: Vec<u64>,
    /// (master frame, monotonic nanoseconds) of each frame presented, for `--stats-out`.
    presents: Vec<(u64, u64)>,
}

/// A render node until the master ends the session, `stop` is set, or it fails. A node that
/// loses the master after joining rejoins (within `--rejoin-timeout`), and one whose pipeline
/// a reconfiguration changes starts again with the new file.
pub(crate) fn run_node_until<A: ClusterApp>(
    make: &impl Fn() -> A,
    args: NodeArgs,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    input_to: Option<mpsc::Sender<Vec<InputEvent>>>,
) -> Result<()> {
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
    // Set up once: every session (a rejoin, a restart) starts from the scene it built.
    let mut app = make();
    // A node may read the master's copy of a file it lacks, if the cluster file says so.
    let mut fetch = match &key {
        Some(key) if config.assets.send => Some(super::Fetcher::new(
            &config.name,
            key.clone(),
            resolve(&config.master)?,
            Duration::from_secs(args.connect_timeout),
            config.assets.cache.clone(),
            config.assets.max_file_bytes,
        )),
        _ => None,
    };
    let prepared = prepare(&mut app, &config, fetch.as_mut())
        .with_context(|| format!("node '{}'", args.name))?;
    drop(fetch);
    let mut app: Box<dyn ClusterApp> = Box::new(app);
    // The devices the cluster file places on this node, read for every session.
    let mut devices = match key {
        Some(_) => Devices::start(&config, &DeviceHost::Node(args.name.clone()))?,
        None => Devices::default(),
    };
    let mut totals = NodeTotals::default();
    let started = std::time::Instant::now();
    let mut connect_timeout = Duration::from_secs(args.connect_timeout);
    let mut fruitless = 0;
    // Every session after the first joins a cluster this node was in.
    let mut rejoining = false;
    loop {
        let session = run_session(
            &mut app,
            &mut devices,
            &prepared,
            &args,
            &config,
            key.as_ref(),
            connect_timeout,
            rejoining,
            &stop,
            input_to.as_ref(),
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
    if let Some(path) = &args.image_hashes {
        // Only shown frames are read back, in the order they were presented.
        let images: Vec<(u64, u64)> = totals
            .presented
            .iter()
            .zip(&totals.images)
            .map(|(e, h)| (e.0, *h))
            .collect();
        write_hashes(path, &images)?;
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
    let steady = steady_fps(&totals.done_at);
    if args.renderer == RendererKind::None {
        println!(
            "node {}: {} frames, {fps:.1} fps, {swap} (no renderer)",
            args.name, totals.frames
        );
    } else {
        println!(
            "node {}: {} frames, {:.1} fps ({} steady), {swap}",
            args.name,
            totals.frames,
            fps,
            steady.map_or("n/a".to_string(), |f| format!("{f:.1} fps")),
        );
    }
    if let Some(path) = &args.stats_out {
        let json = serde_json::json!({
            "node": args.name,
            "alone": args.alone,
            "frames": totals.frames,
            "fps": fps,
            "steady_fps": steady,
            "swap_wait": s,
            "presents": totals.presents,
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
        .find_map(|c| c.downcast_ref::<lockstep_cluster::ClusterError>())
        .is_some_and(lockstep_cluster::ClusterError::is_connection_lost)
}

/// Whether the master shut the cluster down while this node waited for a swap (an ordinary
/// end, as when the `Shutdown` comes between frames); if so, says why.
fn told_to_stop(e: &anyhow::Error, node: &str) -> bool {
    let reason = e.chain().find_map(|c| match c.downcast_ref() {
        Some(lockstep_cluster::ClusterError::Shutdown(reason)) => Some(reason),
        _ => None,
    });
    if let Some(reason) = reason {
        eprintln!("node '{node}': the master shut down: {reason}");
    }
    reason.is_some()
}

/// One session: join (or run alone), render until it ends.
#[allow(clippy::too_many_arguments)]
fn run_session(
    app: &mut Box<dyn ClusterApp>,
    devices: &mut Devices,
    prepared: &Prepared,
    args: &NodeArgs,
    config: &ClusterConfig,
    key: Option<&ClusterKey>,
    connect_timeout: Duration,
    rejoining: bool,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    input_to: Option<&mpsc::Sender<Vec<InputEvent>>>,
    totals: &mut NodeTotals,
) -> Result<Session> {
    // A rejoin whose connection breaks during the handshake tries again, like any lost
    // connection; a master that cannot be reached at all within the timeout ends the node.
    let lost = |e: lockstep_cluster::ClusterError| -> Result<Session> {
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
    let hashing = args.hash_out.is_some()
        || args.report_state
        || args.views_out.is_some()
        || args.image_hashes.is_some();
    let (source, gate) = if let Some(key) = key {
        let node_config = NodeConfig::new(
            &config.name,
            key.clone(),
            &args.name,
            resolve(&config.master)?,
        )
        .connect_timeout(connect_timeout)
        .cluster_file(&args.config)
        .identity(prepared.identity.clone());
        if args.renderer == RendererKind::None {
            let node = match lockstep_cluster::node::connect_direct(
                &node_config,
                managers(app.as_ref(), config)?,
            ) {
                Ok(n) => n,
                Err(e) => return lost(e),
            };
            eprintln!(
                "node '{}' joined cluster '{}' (no renderer)",
                args.name, config.name
            );
            announce(NodeState::Ready);
            return run_headless(
                node, app, devices, prepared, args, config, hashing, stop, totals,
            );
        }
        let (session, link) =
            match lockstep_cluster::node::connect(&node_config, managers(app.as_ref(), config)?) {
                Ok(halves) => halves,
                Err(e) => return lost(e),
            };
        eprintln!("node '{}' joined cluster '{}'", args.name, config.name);
        announce(NodeState::Ready);
        (FrameSource::Cluster(Box::new(session)), Some(link))
    } else {
        let manager = managers(app.as_ref(), config)?;
        (FrameSource::Alone(Box::new(manager)), None)
    };
    let mut app = NodeApp::new(
        source,
        app.as_mut(),
        prepared.scene.clone(),
        config.clone(),
        &args.name,
    );
    app.record_hashes = hashing;
    app.input_to = input_to.cloned();
    app.devices = Some(devices);
    app.trace_input = args.trace_input;
    let keep = args.hash_out.is_some() || args.views_out.is_some() || args.image_hashes.is_some();
    app.keep_views = keep;
    let in_cluster = gate.is_some();
    let mut gate = SwapGate::new(gate, keep);
    // Sort-first: strips of a helped viewport from its helpers, or for display nodes.
    if let (true, Some(key)) = (in_cluster, key) {
        gate.sort_first = SortFirst::new(config, &args.name, key, resolve(&node.endpoint)?, |e| {
            resolve(e)
        })?;
    }
    if let Ok(mut p) = gate.presented.lock() {
        p.keep_times = args.stats_out.is_some();
    }
    let presented = gate.presented.clone();
    if args.image_hashes.is_some() && !offscreen {
        bail!("--image-hashes reads every frame back: it needs an offscreen node (--offscreen)");
    }
    let (capture, keeper) = match (&args.out, &args.image_hashes) {
        (None, None) => (None, None),
        _ if offscreen => {
            let (tx, rx) = mpsc::channel::<CapturedFrame>();
            let digests = args.image_hashes.is_some();
            let keeper = std::thread::spawn(move || {
                let mut last = None;
                let mut images = Vec::new();
                for f in rx {
                    if digests {
                        images.push(xxhash_rust::xxh3::xxh3_64(&f.image.rgba8));
                    }
                    last = Some(f);
                }
                (last, images)
            });
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
        gate: Some(Box::new(gate)),
    };
    let result = pipeline::run(&mut app, pipeline_config);
    let mut seen = presented
        .lock()
        .map(|mut p| std::mem::take(&mut *p))
        .unwrap_or_default();
    let presented = seen.shown > 0;
    if let Some((last, mut images)) = keeper.and_then(|k| k.join().ok()) {
        totals.last = last.or(totals.last.take());
        totals.images.append(&mut images);
    }
    totals.done_at.extend(done_at.join().unwrap_or_default());
    totals.waits.append(&mut seen.waits);
    totals.presented.append(&mut seen.frames);
    totals.presents.append(&mut seen.times);
    match result {
        Ok(report) => {
            totals.frames += report.frames;
            Ok(match app.exit {
                NodeExit::Done => Session::Done,
                NodeExit::Restart(new) => Session::Restart(new),
            })
        }
        Err(error) if told_to_stop(&error, &args.name) => Ok(Session::Done),
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
#[allow(clippy::too_many_arguments)]
fn run_headless(
    mut node: lockstep_cluster::DirectNode,
    app: &mut Box<dyn ClusterApp>,
    devices: &mut Devices,
    prepared: &Prepared,
    args: &NodeArgs,
    config: &ClusterConfig,
    hashing: bool,
    stop: &std::sync::atomic::AtomicBool,
    totals: &mut NodeTotals,
) -> Result<Session> {
    let mut config = config.clone();
    let mut scene = prepared.scene.clone();
    let mut session_frames = 0u64;
    let mut hasher = lockstep_cluster::SceneHasher::default();
    let mut outbox = super::Outbox::new();
    let mut read = Vec::new();
    let result = (|| -> Result<()> {
        while let Some(info) = node.next_frame(&mut scene)? {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Told to stop (Ctrl-C, TERM): leave before this frame's swap.
                break;
            }
            if let Some(new) = node.take_config() {
                config = new;
            }
            // The pose the master latched with the last swap, for this frame (taken before
            // this frame's swap brings the next one).
            let latched = if config.latches_head() {
                node.latched_for(info.frame)?
            } else {
                None
            };
            let what = || {
                format!(
                    "node '{}': the application's node hook in frame {}",
                    args.name, info.frame
                )
            };
            guard(what, || {
                app.node_frame(&mut NodeFrame {
                    node: &args.name,
                    scene: &scene,
                    info,
                    plugins: &node.manager,
                    outbox: &mut outbox,
                })
            })?;
            if let Some(events) = node.manager.get_mut::<lockstep_cluster::plugins::Events>() {
                events.seen();
            }
            for e in outbox.drain(..) {
                node.send_event(&e.name, &e.payload)?;
            }
            if args.trace_input {
                crate::roles::trace_input(&args.name, info.frame, &node.manager);
            }
            if let Some(batch) = devices.batch(&mut read) {
                if args.trace_input {
                    crate::roles::trace_read(&args.name, info.frame, &read);
                }
                node.send_input(&batch)?;
            }
            let state = hashing.then(|| hasher.hash(&scene));
            let t = std::time::Instant::now();
            let stats = lockstep_wire::NodeStats {
                state: state.filter(|_| args.report_state),
                ..Default::default()
            };
            node.swap(info.frame, stats)?;
            totals.waits.push(t.elapsed());
            if args.stats_out.is_some() {
                // The moment it would present.
                totals
                    .presents
                    .push((info.frame, crate::stats::monotonic_ns()));
            }
            session_frames += 1;
            totals.frames += 1;
            if session_frames == 1 {
                announce(NodeState::Running);
            }
            // Kept only for the files that list them (not for --report-state alone).
            if let Some(state) =
                state.filter(|_| args.hash_out.is_some() || args.views_out.is_some())
            {
                let head = match latched {
                    Some(h) => crate::roles::head_pose(h),
                    None => node
                        .manager
                        .get::<lockstep_cluster::plugins::HeadTracking>()
                        .map_or(config.head, |h| *h.pose()),
                };
                let views =
                    crate::node_views::views_digest(&config, &args.name, &head).unwrap_or(0);
                totals.presented.push((info.frame, state, views));
            }
        }
        Ok(())
    })();
    if let Some(d) = node.datagram_stats() {
        eprintln!(
            "node '{}': multicast: {} datagrams kept, {} seen twice, {} refused, {} requests to send again, {} units given up",
            args.name, d.accepted, d.duplicates, d.rejected, d.naks, d.abandoned
        );
    }
    match result {
        Ok(()) => Ok(Session::Done),
        Err(error) if told_to_stop(&error, &args.name) => Ok(Session::Done),
        Err(error) if lost_master(&error) => Ok(Session::Lost {
            error,
            presented: session_frames > 0,
        }),
        Err(e) => Err(e),
    }
}

/// The plugins a node session reads frames with: the built-in ones, then the application's
/// (a fresh set per session: a rejoining node gets every value again in its first frame).
fn managers(
    app: &dyn ClusterApp,
    config: &ClusterConfig,
) -> Result<lockstep_cluster::ClusterManager> {
    let mut m = default_plugins(config);
    app.plugins(&mut m)
        .with_context(|| format!("application '{}': its plugins", app.name()))?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_cluster::ClusterError;

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
        let config = ClusterError::Config(lockstep_display::ConfigErrors(Vec::new()));
        let e = anyhow::Error::new(config).context("App update of frame 12");
        assert!(!lost_master(&e));
        assert!(!lost_master(&anyhow::anyhow!(
            "no Vulkan or GL adapter found"
        )));
    }
}
