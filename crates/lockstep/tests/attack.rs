//! The cluster under attack, with real processes: a master that sends a node an id meant to
//! exhaust its memory, and slow peers meant to exhaust the master's descriptors.

mod support;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lockstep::app::prepare;
use lockstep::cluster::plugins::{Events, HeadTracking, SCENE_PLUGIN, SceneReplication};
use lockstep::cluster::{
    ClusterManager, ClusterPlugin, FrameInfo, Hook, Master, MasterConfig, PluginError, PluginId,
    write_changes,
};
use lockstep::demo::DemoCluster;
use lockstep::display::ClusterConfig;
use lockstep::scene::{Node, Scene};
use lockstep_wire::ClusterKey;
use support::{KEY, Proc, cave, headless, headless_under, p, run, signal, wait_until};

const LIMIT: Duration = Duration::from_secs(60);

/// A scene block putting one empty node at id 2^32 − 2: what the replication plugin would
/// send for a node at id 0, with the id changed (75 bytes with its framing in the issue that
/// found this).
fn huge_id_block() -> Vec<u8> {
    let mut scene = Scene::new();
    scene.add(Node::empty(), None).unwrap();
    let mut bytes = Vec::new();
    write_changes(&Scene::new(), &scene, &mut bytes).unwrap();
    // One change, PutNode (variant 6), id 0 (one varint byte).
    assert_eq!(bytes[..3], [1, 6, 0], "the change list's layout changed");
    let mut out = vec![1, 6];
    // 4294967294 as a postcard varint.
    out.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0x0f]);
    out.extend_from_slice(&bytes[3..]);
    out
}

/// Writes the hostile scene block as the scene plugin, every frame (and passes for it at
/// the node's join: a master with the key can claim anything).
struct Hostile(Vec<u8>);

impl ClusterPlugin for Hostile {
    fn id(&self) -> PluginId {
        SCENE_PLUGIN
    }
    fn name(&self) -> &'static str {
        "scene"
    }
    fn schema(&self) -> std::borrow::Cow<'static, str> {
        std::any::type_name::<SceneReplication>().into()
    }
    fn write(
        &mut self,
        hook: Hook,
        _: &FrameInfo,
        _: &Scene,
        out: &mut Vec<u8>,
    ) -> Result<(), PluginError> {
        if hook == Hook::PreDraw {
            out.extend_from_slice(&self.0);
        }
        Ok(())
    }
    fn snapshot(
        &mut self,
        hook: Hook,
        frame: &FrameInfo,
        scene: &Scene,
        out: &mut Vec<u8>,
    ) -> Result<(), PluginError> {
        self.write(hook, frame, scene, out)
    }
    fn read(&mut self, _: Hook, _: &FrameInfo, _: &mut Scene, _: &[u8]) -> Result<(), PluginError> {
        Ok(())
    }
}

#[test]
fn a_node_id_of_two_to_the_32_minus_2_is_refused_naming_the_limit_within_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cave(dir.path());
    let file = ClusterConfig::load(&cfg).unwrap();
    let key = ClusterKey::new(KEY.as_bytes().to_vec()).unwrap();
    let addr: SocketAddr = file.master.to_string().parse().unwrap();
    let mut manager = ClusterManager::new();
    manager.register(Hostile(huge_id_block())).unwrap();
    manager.register(HeadTracking::new(file.head)).unwrap();
    manager.register(Events::default()).unwrap();
    manager
        .register(lockstep::input::InputReplication::new())
        .unwrap();
    let mut master = Master::start(
        MasterConfig {
            nodes: vec!["front".into()],
            identity: prepare(&mut DemoCluster::default(), &file, None)
                .unwrap()
                .identity,
            ..MasterConfig::for_cluster(&file, key, addr)
        },
        manager,
    )
    .unwrap();
    // 1 GiB of address space: far below the 32 GiB one slot per id would take.
    let node = headless_under(
        &["prlimit", "--as=1073741824"],
        &cfg,
        "front",
        &["--rejoin-timeout", "0"],
    );
    master.wait_for_nodes(LIMIT).unwrap();
    let scene = Scene::new();
    let info = FrameInfo {
        frame: 0,
        time: 0.0,
        dt: 0.0,
    };
    master.send_frame(&info, &scene).unwrap();
    let (status, out) = node.finish_within(LIMIT);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(
        out.contains("node id 4294967294 exceeds the limit of 4194304 nodes per scene"),
        "{out}"
    );
    drop(master);
}

/// Utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Open descriptors of a process.
fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// A connection to `to` from loopback address `from`.
fn connect_from(from: &str, to: SocketAddr) -> Option<TcpStream> {
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    socket.bind(&local.into()).ok()?;
    socket
        .connect_timeout(&to.into(), Duration::from_millis(500))
        .ok()?;
    Some(socket.into())
}

/// Ten loopback addresses besides 127.0.0.1, so that no per-address cap alone keeps peers
/// from them out.
static FROM: [&str; 10] = [
    "127.0.0.2",
    "127.0.0.3",
    "127.0.0.4",
    "127.0.0.5",
    "127.0.0.6",
    "127.0.0.7",
    "127.0.0.8",
    "127.0.0.9",
    "127.0.0.10",
    "127.0.0.11",
];

/// `count` sockets from `from` to `to`, each sending one byte a second, each opened again
/// when the master closes it, until `stop`.
fn slowloris(from: &'static [&'static str], to: SocketAddr, count: usize, stop: Arc<AtomicBool>) {
    let open = |i: usize| -> Option<TcpStream> {
        let s = connect_from(from[i % from.len()], to)?;
        s.set_write_timeout(Some(Duration::from_millis(50))).ok()?;
        Some(s)
    };
    let mut sockets: Vec<Option<TcpStream>> = (0..count).map(open).collect();
    // The start of a Hello: a length that announces a whole frame, then one byte at a time.
    let drip = [200u8, 0, 0, 0, 0];
    let mut step = 0;
    while !stop.load(Ordering::Relaxed) {
        for (i, s) in sockets.iter_mut().enumerate() {
            let alive = s
                .as_mut()
                .is_some_and(|s| s.write_all(&[drip[step % drip.len()]]).is_ok());
            if !alive {
                *s = open(i);
            }
        }
        step += 1;
        // One byte a second per socket.
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn in_step(cfg: &Path, node: &str) -> bool {
    let o = run(&["ctl", p(cfg), "--timeout", "20", "status", "--json"]);
    if !o.status.success() {
        return false;
    }
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    s["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["name"] == node && n["state"] == "in step")
}

/// A master at 30 fps (run by `wrapper`) with node "front" joined and running.
fn master_with_front(cfg: &Path, wrapper: &[&str]) -> (Proc, Proc) {
    let master = Proc::start_under(
        wrapper,
        &[
            "master",
            "--config",
            p(cfg),
            "--fps",
            "30",
            "--wait-for",
            "front",
        ],
    );
    let front = headless(cfg, "front", &[]);
    master.wait_for("lockstep-state: running", LIMIT);
    (master, front)
}

/// Waits for `ctl status` to show "front" in step, then starts "left" and waits for it to be
/// in step too; returns how long each took, and the late node.
fn ctl_answers_and_a_late_node_joins(cfg: &Path) -> (Duration, Duration, Proc) {
    let asked = Instant::now();
    wait_until("ctl status to answer", LIMIT, || {
        in_step(cfg, "front").then_some(())
    });
    let answered = asked.elapsed();
    let left = headless(cfg, "left", &[]);
    wait_until("the late node to be in step", LIMIT, || {
        in_step(cfg, "left").then_some(())
    });
    (answered, asked.elapsed() - answered, left)
}

#[test]
fn three_hundred_slow_peers_neither_spin_the_master_nor_keep_ctl_or_a_late_node_out() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cave(dir.path());
    let file = ClusterConfig::load(&cfg).unwrap();
    let addr: SocketAddr = file.master.to_string().parse().unwrap();
    // Few descriptors: the slow peers take them all if the master lets them.
    let (master, front) = master_with_front(&cfg, &["prlimit", "--nofile=48"]);
    let stop = Arc::new(AtomicBool::new(false));
    let attack = {
        let stop = stop.clone();
        std::thread::spawn(move || slowloris(&FROM, addr, 300, stop))
    };
    // The slow peers hold handshakes, but never every descriptor.
    let pid = master.id();
    wait_until("the slow peers to hold handshakes", LIMIT, || {
        (descriptors(pid) >= 12).then_some(())
    });
    // Over three seconds of the attack the master mostly sleeps (a loop retrying accept
    // at once would take a whole core).
    let (cpu0, t0) = (cpu_seconds(pid), Instant::now());
    let mut most = 0;
    while t0.elapsed() < Duration::from_secs(3) {
        most = most.max(descriptors(pid));
        std::thread::sleep(Duration::from_millis(100));
    }
    let share = (cpu_seconds(pid) - cpu0) / t0.elapsed().as_secs_f64();
    assert!(most < 48, "the master ran out of descriptors");
    assert!(
        share < 0.5,
        "the master used {:.0} % of a core",
        share * 100.0
    );
    // ctl is answered, and a node started now joins.
    let (answered, joined, left) = ctl_answers_and_a_late_node_joins(&cfg);
    eprintln!(
        "under attack: the master used {:.1} % of a core and at most {most} of its 48 descriptors, ctl answered after {answered:?}, the late node was in step after {joined:?}",
        share * 100.0,
    );
    stop.store(true, Ordering::Relaxed);
    attack.join().unwrap();
    // Refusals were summarised, not told one by one.
    let log = master.output_so_far();
    let told = log.lines().filter(|l| l.contains("refused")).count();
    assert!(log.contains("more connection(s) in"), "{log}");
    assert!(told < 100, "{told} lines about refusals:\n{log}");
    signal(master.id(), "-INT");
    let (status, out) = master.finish_within(LIMIT);
    assert_eq!(status.code(), Some(0), "{out}");
    drop((front, left));
}

#[test]
fn a_master_out_of_descriptors_backs_off_tells_it_once_a_second_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cave(dir.path());
    let file = ClusterConfig::load(&cfg).unwrap();
    let addr: SocketAddr = file.master.to_string().parse().unwrap();
    let (master, front) = master_with_front(&cfg, &[]);
    // Its handshake slots were sized for the descriptors it had at start; now it has two
    // spare, so silent peers make `accept` itself fail (EMFILE) with slots still free. The
    // limit bounds descriptor numbers, and a new descriptor takes the lowest free one: the
    // limit is where the second free number below it is.
    let pid = master.id();
    let open: std::collections::HashSet<usize> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let limit = (0..).filter(|n| !open.contains(n)).nth(1).unwrap() + 1;
    let lowered = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &pid.to_string(),
            &format!("--nofile={limit}:{limit}"),
        ])
        .status()
        .unwrap();
    assert!(lowered.success(), "prlimit --pid failed");
    // From ten addresses: more than the spare descriptors get a handshake slot.
    let silent: Vec<TcpStream> = (0..50)
        .filter_map(|i| connect_from(FROM[i % FROM.len()], addr))
        .collect();
    master.wait_for("cannot accept connections", LIMIT);
    let (cpu0, t0) = (cpu_seconds(pid), Instant::now());
    while t0.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let share = (cpu_seconds(pid) - cpu0) / t0.elapsed().as_secs_f64();
    let log = master.output_so_far();
    let told: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("cannot accept connections"))
        .collect();
    assert!(
        share < 0.5,
        "the master used {:.0} % of a core",
        share * 100.0
    );
    assert!(
        told[0].contains("Too many open files"),
        "{}",
        told.join("\n")
    );
    // At most one line a second (with a count), however often accept failed.
    assert!(told.len() <= 5, "{}", told.join("\n"));
    assert!(
        told.iter().skip(1).any(|l| !l.contains("(1 failure(s)")),
        "failures not counted:\n{}",
        told.join("\n")
    );
    // The peers go; ctl is answered again and a node joins, within the same low limit.
    drop(silent);
    let (_, _, left) = ctl_answers_and_a_late_node_joins(&cfg);
    eprintln!(
        "out of descriptors: {:.1} % of a core, {} line(s) about it in 3 s",
        share * 100.0,
        told.len()
    );
    signal(master.id(), "-INT");
    let (status, out) = master.finish_within(LIMIT);
    assert_eq!(status.code(), Some(0), "{out}");
    drop((front, left));
}
