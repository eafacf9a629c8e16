/*!
`lockstep bench input`: what tracked input costs and how old it is when the walls show it,
measured in one run.

- The VRPN client's cost per report, decoding a long stream of poses.
- Whether it keeps up with a fast tracker: a scripted VRPN server at `--rate` reports a second,
  read as the frame loop reads it (the newest pose each frame), with the age of that pose.
- The latency from a tracker report reaching the master's socket to the frame that uses it
  being presented on every node (its swap barrier released), in milliseconds and frames, for
  pipeline depth 1 and 2, paced at `--fps` and at full speed, and at depth 2 with the input
  sampled after the oldest frame's barrier (`late`), and with late latching (`latched`: the
  newest pose rides with each swap released, and the nodes project the next frame from it in
  Draw); render nodes are processes (`--renderer none`: the protocol's share, not the GPU's;
  `--render`: offscreen, where a latched frame is also culled again in Draw).
*/
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use lockstep::app::prepare;
use lockstep::cluster::plugins::HeadTracking;
use lockstep::cluster::{FailurePolicy, FrameInfo, Master, MasterConfig, SwapReport};
use lockstep::demo::DemoCluster;
use lockstep::display::HeadPose;
use lockstep::input::vrpn::codec::{self, SENDER_DESCRIPTION, Stamp, TYPE_DESCRIPTION};
use lockstep::input::vrpn::server::{Path, Server};
use lockstep::input::vrpn::session::{POS_QUAT, Received, Session};
use lockstep::input::vrpn::{Address, Device};
use lockstep::stats::Summary;
use lockstep_wire::ClusterKey;

use super::cluster::{master_config, small_cluster, tempfile_dir};
use super::ranged;

/// Arguments of `lockstep bench input`.
#[derive(Debug, Args)]
pub struct BenchInputArgs {
    /// Render nodes (separate processes, no rendering).
    #[arg(long, default_value = "2", value_parser = |s: &str| ranged(s, 1, 64))]
    nodes: u64,
    /// Measured frames of each latency case.
    #[arg(long, default_value = "300", value_parser = |s: &str| ranged(s, 20, 100_000))]
    frames: u64,
    /// The tracker's reports per second.
    #[arg(long, default_value = "1000", value_parser = |s: &str| ranged(s, 1, 10_000))]
    rate: u64,
    /// The paced cases' frame rate.
    #[arg(long, default_value = "60", value_parser = |s: &str| ranged(s, 1, 1000))]
    fps: u64,
    /// The nodes render (offscreen, 64×64, with the GPU or lavapipe) instead of taking part
    /// in the protocol only.
    #[arg(long)]
    render: bool,
}

/// Frames of each case not measured at the start.
const WARMUP: u64 = 20;

pub fn run(args: BenchInputArgs) -> Result<()> {
    let per_report = decode_cost(100_000)?;
    println!(
        "VRPN client: {:.3} µs per pose report (decoding 100000 in one stream)",
        per_report * 1e6
    );
    // The tracker every case reads: a head walking back and forth.
    let path = Path::parse("0 -0.5 1.7 0\n1 0.5 1.7 0\n", "bench").map_err(anyhow::Error::msg)?;
    let path = Path {
        looped: true,
        ..path
    };
    let server = Server::start("127.0.0.1:0".parse()?, "Tracker0", path, args.rate as f64)?;
    let address: Address = format!("Tracker0@{}", server.local_addr())
        .parse()
        .map_err(anyhow::Error::msg)?;
    keep_up(&address, args.rate, args.fps)?;

    let dir = tempfile_dir()?;
    let key = ClusterKey::generate_hex()?;
    println!(
        "\ntracker report → presented on all {} nodes ({}; ms, and frames of the loop's period)",
        args.nodes,
        if args.render {
            "rendering offscreen"
        } else {
            "no rendering: the protocol's share"
        }
    );
    println!(
        "{:<22} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "case", "median ms", "p99 ms", "frames", "p99 fr", "period ms"
    );
    for (depth, fps, input) in [
        (1, Some(args.fps), Sampling::Frame),
        (2, Some(args.fps), Sampling::Frame),
        (1, None, Sampling::Frame),
        (2, None, Sampling::Frame),
        (2, None, Sampling::Late),
        (1, None, Sampling::Latched),
        (2, None, Sampling::Latched),
    ] {
        let c = latency(
            &dir,
            &key,
            &address,
            (args.nodes as usize, args.render),
            (depth, fps, input),
            args.frames,
        )?;
        let case = match (fps, input) {
            (Some(f), _) => format!("depth {depth}, {f} fps"),
            (None, Sampling::Frame) => format!("depth {depth}, full speed"),
            (None, Sampling::Late) => format!("depth {depth}, full, late"),
            (None, Sampling::Latched) => format!("depth {depth}, full, latched"),
        };
        println!(
            "{case:<22} {:>10.3} {:>10.3} {:>10.2} {:>10.2} {:>10.3}",
            c.median_ms,
            c.p99_ms,
            c.median_ms / c.period_ms,
            c.p99_ms / c.period_ms,
            c.period_ms
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Seconds the client takes per pose report, over a stream of `n`.
fn decode_cost(n: usize) -> Result<f64> {
    let mut stream = codec::cookie().to_vec();
    codec::encode_description(&mut stream, SENDER_DESCRIPTION, 0, "Tracker0");
    codec::encode_description(&mut stream, TYPE_DESCRIPTION, 0, POS_QUAT);
    let mut body = [0u8; 64];
    for i in 0..n {
        body[16..24].copy_from_slice(&(i as f64 * 1e-3).to_be_bytes());
        body[56..64].copy_from_slice(&1f64.to_be_bytes());
        codec::encode(&mut stream, Stamp::default(), 0, 0, i as u32, &body);
    }
    let now = Instant::now();
    let mut s = Session::new("Tracker0", now);
    let mut out = Vec::with_capacity(2048);
    let mut reports = 0;
    let t = Instant::now();
    // As the socket hands them over: 64 KiB at a time.
    for chunk in stream.chunks(64 * 1024) {
        s.receive(chunk, now, &mut out)?;
        reports += out
            .drain(..)
            .filter(|r| matches!(r, Received::Report(..)))
            .count();
    }
    let took = t.elapsed();
    if reports != n {
        bail!("decoded {reports} of {n} reports");
    }
    Ok(took.as_secs_f64() / n as f64)
}

/// Reads the tracker as a frame loop at `fps` does for two seconds: reports received against
/// those sent, and the age of the newest pose at each take.
fn keep_up(address: &Address, rate: u64, fps: u64) -> Result<()> {
    let device = Device::start(address.clone(), "bench")?;
    let start = Instant::now();
    while device.take().poses.is_empty() {
        if start.elapsed() > Duration::from_secs(10) {
            bail!("the bench's tracker reported nothing within 10 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let period = Duration::from_secs_f64(1.0 / fps as f64);
    let (t0, mut received, mut ages) = (Instant::now(), 0u64, Vec::new());
    let mut next = t0 + period;
    while t0.elapsed() < Duration::from_secs(2) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep(next - now);
        }
        next += period;
        let r = device.take();
        received += r.received;
        if let Some(p) = r.poses.get(&0) {
            ages.push(Instant::now().saturating_duration_since(p.arrived));
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let s = Summary::of(&ages).context("no pose taken")?;
    println!(
        "VRPN tracker at {rate} Hz, taken {fps} times a second: {:.0} reports a second received ({:.1} % of those sent); the newest pose is {:.3} ms old when taken (median, p99 {:.3} ms): no backlog",
        received as f64 / secs,
        100.0 * received as f64 / (rate as f64 * secs),
        s.median_ms,
        s.p99_ms
    );
    Ok(())
}

/// Where a case's frames take the head pose from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Sampling {
    /// The frame's input, sampled as the frame begins.
    Frame,
    /// The frame's input, sampled after the oldest frame's barrier (two deep).
    Late,
    /// The newest pose as the swap before the frame is released (late latching).
    Latched,
}

/// Latches the tracker's newest pose, noting when the pose latched for each frame arrived.
struct TimedLatch {
    watch: lockstep::input::vrpn::PoseWatch,
    arrived: std::sync::Arc<std::sync::Mutex<Vec<(u64, Instant)>>>,
}

impl lockstep::cluster::HeadLatch for TimedLatch {
    fn newest(&mut self, frame: u64, made: bool) -> Option<lockstep_wire::LatchedHead> {
        if !made {
            return None;
        }
        let p = self.watch.newest()?;
        if let Ok(mut a) = self.arrived.lock() {
            a.push((frame, p.arrived));
        }
        let (position, rotation) = p.to_glam();
        Some(lockstep::devices::latched_head(position, rotation))
    }
}

/// One case's latency.
struct Latency {
    median_ms: f64,
    p99_ms: f64,
    period_ms: f64,
}

/// Runs a master with `n` node processes at pipeline depth `depth` (paced at `fps`, or at
/// full speed), its head following the tracker at `address`, and times each measured frame
/// from the arrival of the pose it uses to its presentation.
fn latency(
    dir: &std::path::Path,
    key: &str,
    address: &Address,
    (n, render): (usize, bool),
    (depth, fps, input): (usize, Option<u64>, Sampling),
    frames: u64,
) -> Result<Latency> {
    let name = format!("input-{depth}-{}-{input:?}", fps.unwrap_or(0));
    let late = input == Sampling::Late;
    let (path, config) = small_cluster(dir, &name, n)?;
    let mut app = DemoCluster::default();
    let prepared = prepare(&mut app, &config, None)?;
    let mut master = Master::start(
        MasterConfig {
            swap_deadline: Duration::from_secs(5),
            policy: FailurePolicy::Stop,
            pipeline_depth: depth,
            identity: prepared.identity,
            ..master_config(&config, key)?
        },
        prepared.manager,
    )?;
    let exe = std::env::current_exe()?;
    let mut nodes = Vec::new();
    for i in 0..n {
        let log = std::fs::File::create(dir.join(format!("{name}-n{i}.log")))?;
        nodes.push(
            std::process::Command::new(&exe)
                .args(["node", "--config"])
                .arg(&path)
                .args(["--name", &format!("n{i}")])
                .args(if render {
                    &["--offscreen"][..]
                } else {
                    &["--renderer", "none"][..]
                })
                .env("LOCKSTEP_KEY", key)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(log)
                .spawn()
                .context("cannot start a bench node")?,
        );
    }
    let result = (|| -> Result<Latency> {
        master.wait_for_nodes(Duration::from_secs(30))?;
        let device = Device::start(address.clone(), "bench")?;
        let latched = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        if input == Sampling::Latched {
            master.set_latch(Some(Box::new(TimedLatch {
                watch: device.watch(0),
                arrived: latched.clone(),
            })));
        }
        let scene = prepared.scene;
        // When the pose each frame uses arrived; when each frame was presented.
        let mut arrived: Vec<Option<Instant>> = Vec::new();
        let mut presented: Vec<Option<Instant>> = Vec::new();
        let total = WARMUP + frames;
        let start = Instant::now();
        let mut last = None;
        for frame in 0..total {
            // As `master_loop` runs with a tracked head: two deep, the oldest barrier before
            // the input.
            if late
                && fps.is_none()
                && depth >= 2
                && let Some(due) = master.due()
            {
                let mut report = SwapReport::default();
                master.swap(due, &scene, &mut report)?;
                note(&report, &mut presented);
            }
            let pose = device.take().poses.remove(&0);
            // With no new report this frame, it uses the one before.
            let at = pose.as_ref().map(|p| p.arrived).or(last);
            last = at;
            arrived.push(at);
            presented.push(None);
            if let (Some(p), Some(h)) = (pose, master.manager.get_mut::<HeadTracking>()) {
                let (position, rotation) = p.to_glam();
                h.set(HeadPose { position, rotation });
            }
            let info = FrameInfo {
                frame,
                time: start.elapsed().as_secs_f64(),
                dt: 0.0,
            };
            master.begin_frame(&info, &scene)?;
            let report = master.send_frame(&info, &scene)?;
            note(&report, &mut presented);
            if let Some(fps) = fps {
                let mut report = SwapReport::default();
                master.swap(frame, &scene, &mut report)?;
                note(&report, &mut presented);
                let next = start + Duration::from_secs_f64((frame + 1) as f64 / fps as f64);
                master.idle(next.saturating_duration_since(Instant::now()))?;
            }
        }
        while let Some(f) = master.in_flight() {
            let mut report = SwapReport::default();
            master.swap(f, &scene, &mut report)?;
            note(&report, &mut presented);
        }
        let elapsed = start.elapsed();
        // A latched frame shows the pose latched for it, not its own.
        if let Ok(latched) = latched.lock() {
            for (f, at) in latched.iter() {
                if let Some(a) = arrived.get_mut(*f as usize) {
                    *a = Some(*at);
                }
            }
        }
        let lat: Vec<Duration> = (WARMUP as usize..total as usize)
            .filter_map(|f| Some(presented[f]?.saturating_duration_since(arrived[f]?)))
            .collect();
        let s = Summary::of(&lat).context("no frame measured")?;
        Ok(Latency {
            median_ms: s.median_ms,
            p99_ms: s.p99_ms,
            period_ms: elapsed.as_secs_f64() * 1000.0 / total as f64,
        })
    })();
    master.shutdown("benchmark over");
    for mut c in nodes {
        let _ = c.wait();
    }
    result
}

/// Notes when a barrier presented its frame.
fn note(report: &SwapReport, presented: &mut [Option<Instant>]) {
    if let Some(f) = report.swapped
        && let Some(p) = presented.get_mut(f as usize)
    {
        *p = Some(Instant::now());
    }
}
