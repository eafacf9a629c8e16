/*!
`lockstep bench sync`: what lockstep adds per frame, against a bare TCP barrier, in one run.

Three sides take turns in blocks of frames, each alone on the machine during its block: a
lockstep cluster (the master in this process running the demo's update, N node processes with
`--renderer none`, pipelined as `lockstep master` runs), the same cluster with `--verify` (every
node reports its state digest with each `SwapReady` and the master compares it with its own),
and a bare barrier (one byte out to N peer processes, one byte back). The state digest's own
cost is timed apart, on the same sequence of scenes.
*/
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use lockstep::app::{ClusterApp, MasterFrame, prepare};
use lockstep::cluster::{FailurePolicy, FrameInfo, Master, MasterConfig, SceneHasher, SwapReport};
use lockstep::demo::Demo;
use lockstep::demo::DemoCluster;
use lockstep::stats::Summary;
use lockstep_wire::{ClusterKey, SessionKeys, random_nonce};

use super::cluster::{master_config, small_cluster_over, tempfile_dir};
use super::ranged;

/// Arguments of `lockstep bench sync`.
#[derive(Debug, Args)]
pub struct BenchSyncArgs {
    /// Render nodes (separate processes, no rendering); several, comma-separated
    /// (`1,4,16,64`), for a table of how the cluster scales.
    #[arg(long, default_value = "3", value_delimiter = ',', value_parser = |s: &str| ranged(s, 1, 128))]
    nodes: Vec<u64>,
    /// How frame data reaches the nodes: tcp, multicast, or both (`tcp,multicast`), each
    /// measured beside the other at every N.
    #[arg(long, default_value = "tcp", value_delimiter = ',', value_parser = ["tcp", "multicast"])]
    transport: Vec<String>,
    /// Measured frames (rounds of each kind).
    #[arg(long, default_value = "2000", value_parser = |s: &str| ranged(s, 10, 1_000_000))]
    frames: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also time the master's replication of a scene in which N nodes move every frame (and
    /// half and twice as many, and the same N in a scene four times larger).
    #[arg(long, value_parser = |s: &str| ranged(s, 1, 1_000_000))]
    moving: Option<u64>,
}

/// `lockstep bench-peer ADDR`: one side of the bare barrier `bench sync` compares with.
#[derive(Debug, Args)]
pub struct BenchPeerArgs {
    /// The bench's address.
    addr: SocketAddr,
}

/// Answers every byte with a byte, until the bench closes the connection.
pub fn run_peer(args: BenchPeerArgs) -> Result<()> {
    let mut s =
        TcpStream::connect(args.addr).with_context(|| format!("cannot reach {}", args.addr))?;
    s.set_nodelay(true)?;
    let mut b = [0u8; 1];
    while s.read(&mut b)? == 1 {
        s.write_all(&b)?;
    }
    Ok(())
}

/// Frames per block of one side.
pub(super) const BLOCK: usize = 100;
/// Frames of each side not measured at the start.
pub(super) const WARMUP: u64 = 50;

/// One lockstep cluster of the bench: its master, the demo it animates, and what it measured.
pub(super) struct Cluster {
    pub(super) master: Master,
    /// The demo, as the cluster application every node runs.
    app: DemoCluster,
    /// The master's working scene.
    scene: lockstep::scene::Scene,
    frame: u64,
    /// The loop's period per measured frame.
    pub(super) periods: Vec<Duration>,
    /// The master thread's CPU time per measured frame.
    pub(super) cpu: Vec<Duration>,
    /// The demo's update per measured frame.
    updates: Vec<Duration>,
    /// Bytes each node's record of a measured frame held.
    sizes: Vec<usize>,
    pub(super) swapped: u64,
    pub(super) presented: usize,
    verified: usize,
    mismatches: usize,
}

impl Cluster {
    /// A cluster of `n` nodes named `name`, frame data by multicast if `multicast`; its
    /// cluster file's path.
    pub(super) fn start(
        dir: &Path,
        name: &str,
        n: usize,
        key: &str,
        verify: bool,
        multicast: bool,
    ) -> Result<(Cluster, String)> {
        let (path, config) = small_cluster_over(dir, name, n, multicast)?;
        let mut app = DemoCluster::default();
        let prepared = prepare(&mut app, &config, None)?;
        let master = Master::start(
            MasterConfig {
                swap_deadline: Duration::from_secs(5),
                policy: FailurePolicy::Stop,
                verify,
                identity: prepared.identity,
                ..master_config(&config, key)?
            },
            prepared.manager,
        )?;
        let cluster = Cluster {
            master,
            app,
            scene: prepared.scene,
            frame: 0,
            periods: Vec::new(),
            cpu: Vec::new(),
            updates: Vec::new(),
            sizes: Vec::new(),
            swapped: 0,
            presented: 0,
            verified: 0,
            mismatches: 0,
        };
        Ok((cluster, path.to_string_lossy().into_owned()))
    }

    fn count(&mut self, r: &SwapReport) {
        self.swapped += u64::from(r.swapped.is_some());
        self.presented += r.presented.len();
        self.verified += r.verified;
        self.mismatches += r.mismatches.len();
    }

    /// One block of frames, then the barriers of those still in flight.
    pub(super) fn block(&mut self) -> Result<()> {
        let mut last: Option<Instant> = None;
        for _ in 0..BLOCK {
            let cpu = lockstep::stats::thread_cpu_ns();
            let info = FrameInfo {
                frame: self.frame,
                time: self.frame as f64 / 60.0,
                dt: 1.0 / 60.0,
            };
            let t = Instant::now();
            self.master.begin_frame(&info, &self.scene)?;
            self.app.update(&mut MasterFrame::new(
                &mut self.scene,
                info,
                &mut self.master.manager,
                &mut Vec::new(),
            ))?;
            let animated = t.elapsed();
            let report = self.master.send_frame(&info, &self.scene)?;
            self.count(&report);
            // A frame's cost is the loop's period: the app's update, the data, the barrier
            // of the frame before.
            let now = Instant::now();
            if let Some(l) = last
                && self.frame >= WARMUP
            {
                self.periods.push(now - l);
                self.cpu.push(Duration::from_nanos(
                    lockstep::stats::thread_cpu_ns().saturating_sub(cpu),
                ));
                self.updates.push(animated);
                self.sizes.push(self.master.last_frame_bytes());
            }
            last = Some(now);
            self.frame += 1;
        }
        while let Some(f) = self.master.in_flight() {
            let mut report = SwapReport::default();
            self.master.swap(f, &self.scene, &mut report)?;
            self.count(&report);
        }
        Ok(())
    }
}

/// The bench's processes, each logging to a file of its own (a pipe nobody reads while the
/// bench runs would fill and stall it). Killed if the bench ends early, so none is left.
pub(super) struct Processes(pub(super) Vec<(String, std::path::PathBuf, Child)>);

impl Processes {
    /// Starts this program with `args` as `who`, with the cluster key, logging to a file
    /// in `dir`.
    pub(super) fn spawn(
        &mut self,
        dir: &Path,
        key: &str,
        who: String,
        args: &[&str],
    ) -> Result<()> {
        let log = dir.join(format!("{}.log", who.replace(' ', "-")));
        let file = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let child = Command::new(std::env::current_exe()?)
            .args(args)
            .env("LOCKSTEP_KEY", key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .with_context(|| format!("cannot start {who}"))?;
        self.0.push((who, log, child));
        Ok(())
    }

    /// Waits for every process; each must have exited 0.
    pub(super) fn finish(mut self) -> Result<()> {
        for (who, log, mut child) in self.0.drain(..) {
            let status = child.wait()?;
            if !status.success() {
                bail!("{who} exited with {status} (its log: {})", log.display());
            }
        }
        Ok(())
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, _, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One block of the bare barrier: a byte out to every peer, a byte back from each; the
/// rounds after the warm-up timed into `times`.
pub(super) fn bare_block(
    peers: &mut [TcpStream],
    times: &mut Vec<Duration>,
    rounds: &mut u64,
) -> Result<()> {
    for _ in 0..BLOCK {
        let t = Instant::now();
        for p in peers.iter_mut() {
            p.write_all(&[1])?;
        }
        let mut b = [0u8; 1];
        for p in peers.iter_mut() {
            p.read_exact(&mut b)?;
        }
        if *rounds >= WARMUP {
            times.push(t.elapsed());
        }
        *rounds += 1;
    }
    Ok(())
}

/// Accepts `n` connections on `listener` within `limit`.
pub(super) fn accept_all(
    listener: &TcpListener,
    n: usize,
    limit: Duration,
) -> Result<Vec<TcpStream>> {
    listener.set_nonblocking(true)?;
    let start = Instant::now();
    let mut peers = Vec::new();
    while peers.len() < n {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false)?;
                s.set_nodelay(true)?;
                peers.push(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if start.elapsed() > limit {
                    bail!(
                        "only {} of {n} bench peers connected within {limit:?}",
                        peers.len()
                    );
                }
                // Setting up, not measuring: a short poll is fine here.
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(peers)
}

/// Runs the benchmark and prints its table (or JSON).
pub fn run(args: BenchSyncArgs) -> Result<()> {
    if args.nodes.len() > 1 || args.transport.iter().any(|t| t != "tcp") {
        if args.moving.is_some() {
            bail!("--moving measures one cluster: give one --nodes and --transport tcp with it");
        }
        return super::bench_scale::run(&args.nodes, &args.transport, args.frames, args.json);
    }
    let dir = tempfile_dir()?;
    let n = args.nodes.first().copied().unwrap_or(3) as usize;
    let key = ClusterKey::generate_hex()?;
    let mut children = Processes(Vec::new());
    let mut spawn = |who: String, a: &[&str]| children.spawn(&dir, &key, who, a);
    let (mut plain, plain_cfg) = Cluster::start(&dir, "bench", n, &key, false, false)?;
    let (mut verified, verified_cfg) = Cluster::start(&dir, "bench-verify", n, &key, true, false)?;
    let bare = TcpListener::bind("127.0.0.1:0")?;
    let bare_addr = bare.local_addr()?.to_string();
    for i in 0..n {
        let name = format!("n{i}");
        let stats = dir.join(format!("{name}-presents.json"));
        let stats = stats.to_string_lossy();
        let plain_args = [
            "node",
            "--config",
            &plain_cfg,
            "--name",
            &name,
            "--renderer",
            "none",
            "--stats-out",
            &stats,
        ];
        spawn(format!("node {name}"), &plain_args)?;
        let verified_args = [
            "node",
            "--config",
            &verified_cfg,
            "--name",
            &name,
            "--renderer",
            "none",
            "--report-state",
        ];
        spawn(format!("verified node {name}"), &verified_args)?;
        spawn(format!("peer {i}"), &["bench-peer", &bare_addr])?;
    }
    let mut peers = accept_all(&bare, n, Duration::from_secs(30))?;
    plain.master.wait_for_nodes(Duration::from_secs(30))?;
    verified.master.wait_for_nodes(Duration::from_secs(30))?;
    let mut barrier = Vec::new();
    let mut rounds = 0u64;
    let wanted = args.frames as usize;
    // Blocks of each side in turn, so that all three see the same machine.
    while plain.periods.len() < wanted || verified.periods.len() < wanted || barrier.len() < wanted
    {
        plain.block()?;
        verified.block()?;
        bare_block(&mut peers, &mut barrier, &mut rounds)?;
    }
    plain.master.shutdown("benchmark over");
    verified.master.shutdown("benchmark over");
    drop(peers);
    children.finish()?;
    // Every plain node's present times (when its swap released each frame), for the skew.
    let presents = (0..n)
        .map(|i| super::bench_cluster::presents(&dir.join(format!("n{i}-presents.json"))))
        .collect::<Result<Vec<_>>>();
    let _ = std::fs::remove_dir_all(&dir);
    let skew = lockstep::stats::present_skew(&presents?);
    if verified.mismatches > 0 {
        bail!(
            "{} node state(s) differed from the master's",
            verified.mismatches
        );
    }
    // Every node reported its state at every barrier: otherwise "verified" would be hollow.
    if verified.verified as u64 != n as u64 * verified.swapped {
        bail!(
            "{} node states verified over {} frames of {n} nodes: some nodes reported no state",
            verified.verified,
            verified.swapped
        );
    }
    plain.periods.truncate(wanted);
    plain.updates.truncate(wanted);
    verified.periods.truncate(wanted);
    barrier.truncate(wanted);

    // The digest --verify computes, on the same scenes the cluster sent: incrementally frame
    // after frame as the master does, and from scratch.
    let (mut digest, mut from_scratch) = (Vec::new(), Vec::new());
    let mut replay = Demo::new(1.0, 1.0)?;
    let mut hasher = SceneHasher::default();
    for frame in 0..plain.frame {
        replay.animate(frame as f64 / 60.0)?;
        let t = Instant::now();
        std::hint::black_box(hasher.hash(&replay.scene));
        let d = t.elapsed();
        let t = Instant::now();
        std::hint::black_box(lockstep::cluster::scene_hash(&replay.scene));
        if frame >= WARMUP {
            digest.push(d);
            from_scratch.push(t.elapsed());
        }
    }

    // Sealing each frame's record for one node (the master does it once per node) and
    // checking it (each node does), on buffers of the sizes the cluster sent.
    let (seal, open, bytes) = time_records(&plain.sizes)?;

    let of = |v: &[Duration], what: &str| Summary::of(v).with_context(|| format!("no {what}"));
    let (s, sv, b) = (
        of(&plain.periods, "frames")?,
        of(&verified.periods, "frames")?,
        of(&barrier, "rounds")?,
    );
    let (u, d, full) = (
        of(&plain.updates, "updates")?,
        of(&digest, "digests")?,
        of(&from_scratch, "digests")?,
    );
    let (seal, open) = (of(&seal, "records")?, of(&open, "records")?);
    // One node has no skew.
    let skew = Summary::of(&skew);
    let moving = match args.moving {
        Some(n) => moving_rows(n as usize)?,
        None => Vec::new(),
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "benchmark": "sync",
                "nodes": n,
                "frames": args.frames,
                "lockstep": s,
                "lockstep_verified": sv,
                "bare_barrier": b,
                "skew": skew,
                "median_ratio": s.median_ms / b.median_ms,
                "p99_ratio": s.p99_ms / b.p99_ms,
                "verified_median_ratio": sv.median_ms / b.median_ms,
                "verified_p99_ratio": sv.p99_ms / b.p99_ms,
                "update": u,
                "digest": d,
                "digest_from_scratch": full,
                "frame_bytes_median": bytes,
                "seal_per_node": seal,
                "check_per_node": open,
                "frames_swapped": plain.swapped,
                "nodes_presented": plain.presented,
                "verified_frames_swapped": verified.swapped,
                "verified_nodes_presented": verified.presented,
                "states_verified": verified.verified,
                "mismatches": verified.mismatches,
                "moving": moving.iter().map(|r| serde_json::json!({
                    "moved": r.moved,
                    "scene_nodes": r.nodes,
                    "replication": r.time,
                    "bytes": r.bytes,
                })).collect::<Vec<_>>(),
            }))?
        );
        return Ok(());
    }
    println!(
        "lockstep bench sync: {n} node processes per side, {} frames, the demo scene's changes each frame",
        args.frames
    );
    println!("{:<30} {:>10} {:>10}", "per frame", "median ms", "p99 ms");
    for (what, x) in [
        ("lockstep (update+data+sync)", &s),
        ("lockstep with --verify", &sv),
        ("bare TCP barrier", &b),
    ] {
        println!("{what:<30} {:>10.3} {:>10.3}", x.median_ms, x.p99_ms);
    }
    println!(
        "{:<30} {:>9.2}x {:>9.2}x",
        "ratio",
        s.median_ms / b.median_ms,
        s.p99_ms / b.p99_ms
    );
    println!(
        "{:<30} {:>9.2}x {:>9.2}x",
        "ratio with --verify",
        sv.median_ms / b.median_ms,
        sv.p99_ms / b.p99_ms
    );
    if let Some(k) = &skew {
        // The swap lock itself: how far apart the nodes let each frame go.
        println!(
            "{:<30} {:>8.1}µs {:>8.1}µs   ({} frames every node presented)",
            "present skew",
            k.median_ms * 1e3,
            k.p99_ms * 1e3,
            k.count
        );
    }
    println!(
        "(of lockstep's time, the demo's own update took median {:.3} ms, p99 {:.3} ms; the state digest --verify computes each frame, median {:.1} µs, p99 {:.1} µs, {:.1} µs from scratch)",
        u.median_ms,
        u.p99_ms,
        d.median_ms * 1e3,
        d.p99_ms * 1e3,
        full.median_ms * 1e3
    );
    println!(
        "(authenticating each frame, median {bytes} bytes: sealing it for one node median {:.2} µs, p99 {:.2} µs; checking it on the node median {:.2} µs, p99 {:.2} µs)",
        seal.median_ms * 1e3,
        seal.p99_ms * 1e3,
        open.median_ms * 1e3,
        open.p99_ms * 1e3
    );
    println!(
        "with --verify, every node's state equalled the master's: {} states of {} frames, 0 mismatches",
        verified.verified, verified.swapped
    );
    if !moving.is_empty() {
        println!(
            "the master's replication of moving nodes (the changes found and encoded, per frame):"
        );
        println!(
            "{:>10} {:>12} {:>12} {:>12} {:>12}",
            "moved", "scene nodes", "median µs", "p99 µs", "bytes"
        );
        for r in &moving {
            println!(
                "{:>10} {:>12} {:>12.1} {:>12.1} {:>12}",
                r.moved,
                r.nodes,
                r.time.median_ms * 1e3,
                r.time.p99_ms * 1e3,
                r.bytes
            );
        }
    }
    Ok(())
}

/// One measurement of `--moving`.
struct MovingRow {
    moved: usize,
    nodes: usize,
    time: Summary,
    bytes: usize,
}

/// `--moving N`: half, all and twice N nodes moving in a scene of 4 N, then N in 16 N: the
/// cost should follow the moved nodes, not the scene's size.
fn moving_rows(n: usize) -> Result<Vec<MovingRow>> {
    let shapes = [
        (n.div_ceil(2), 4 * n),
        (n, 4 * n),
        (2 * n, 4 * n),
        (n, 16 * n),
    ];
    shapes
        .into_iter()
        .map(|(moved, nodes)| {
            let (time, bytes) = time_moving(moved, nodes, 200)?;
            Ok(MovingRow {
                moved,
                nodes,
                time,
                bytes,
            })
        })
        .collect()
}

/// Times the scene replication plugin's write (what the master does each frame for the
/// scene) over `frames` frames in which the first `moved` of `nodes` cubes move.
fn time_moving(moved: usize, nodes: usize, frames: usize) -> Result<(Summary, usize)> {
    use lockstep::cluster::ClusterPlugin;
    use lockstep::cluster::plugins::SceneReplication;
    use lockstep::scene::{Color, Material, Mesh, Node, Scene, Transform, glam::Vec3};
    let mut scene = Scene::new();
    let mesh = scene.add_mesh(Mesh::cube(0.1));
    let material = scene.add_material(Material::lit(Color::rgb(0.8, 0.8, 0.8)))?;
    let mut ids = Vec::with_capacity(nodes);
    for i in 0..nodes {
        let at = Vec3::new(
            (i % 100) as f32 * 0.2,
            (i / 100 % 100) as f32 * 0.2,
            -((i / 10_000) as f32),
        );
        let node = Node::mesh(mesh, material).with_transform(Transform::from_translation(at));
        ids.push(scene.add(node, None)?);
    }
    let mut replication = SceneReplication::default();
    let info = FrameInfo::default();
    let mut out = Vec::new();
    // The first frame sends the whole scene; the measured ones only what moved.
    replication.write(lockstep::cluster::Hook::PreDraw, &info, &scene, &mut out)?;
    let mut times = Vec::with_capacity(frames);
    let mut bytes = 0;
    for f in 0..frames {
        for (k, id) in ids.iter().take(moved).enumerate() {
            scene.node_mut(*id)?.transform.translation.z = (f as f32 * 0.05 + k as f32).sin();
        }
        out.clear();
        let t = Instant::now();
        replication.write(lockstep::cluster::Hook::PreDraw, &info, &scene, &mut out)?;
        times.push(t.elapsed());
        bytes = out.len();
    }
    let time = Summary::of(&times).context("no frames timed")?;
    Ok((time, bytes))
}

/// Times sealing and checking one record per frame size given (the frame's bytes as one
/// record, as the master seals them per node); returns both timings and the median size.
fn time_records(sizes: &[usize]) -> Result<(Vec<Duration>, Vec<Duration>, usize)> {
    let key = ClusterKey::new(ClusterKey::generate_hex()?.into_bytes())?;
    let nonces = (random_nonce()?, random_nonce()?);
    // The node dials (the client's keys), the master answers (the server's).
    let (mut node, mut master) = SessionKeys::pair(&key, &nonces.0, &nonces.1, "bench", "n0");
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let buffer: Vec<u8> = (0..largest).map(|i| i as u8).collect();
    let (mut seal, mut open) = (Vec::new(), Vec::new());
    for &n in sizes {
        let bytes = &buffer[..n];
        let t = Instant::now();
        let header = master.sealer.seal(&[bytes])?;
        seal.push(t.elapsed());
        let t = Instant::now();
        node.opener.open(&header, bytes)?;
        open.push(t.elapsed());
    }
    let mut sorted = sizes.to_vec();
    sorted.sort_unstable();
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0);
    Ok((seal, open, median))
}
