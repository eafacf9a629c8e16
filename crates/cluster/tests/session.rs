//! Master and nodes over real loopback sockets, in one process.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use glam::Vec3;
use lockstep_cluster::plugins::{FIRST_APP_PLUGIN, HeadTracking, SceneReplication, Shared};
use lockstep_cluster::{
    ClusterError, ClusterManager, FailurePolicy, FrameInfo, Hook, Master, MasterConfig, NodeConfig,
    scene_hash,
};
use lockstep_display::HeadPose;
use lockstep_scene::{Color, Material, Mesh, Node, Scene, Transform};
use lockstep_wire::{ClusterKey, NodeStats};

fn key() -> ClusterKey {
    ClusterKey::new(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap()
}

fn manager() -> ClusterManager {
    let mut m = ClusterManager::new();
    m.register(SceneReplication::default()).unwrap();
    m.register(HeadTracking::new(HeadPose {
        position: Vec3::new(0.0, 1.7, 0.0),
        rotation: glam::Quat::IDENTITY,
    }))
    .unwrap();
    m.register(Shared::new(FIRST_APP_PLUGIN, "score", 0u64))
        .unwrap();
    m
}

fn master(nodes: &[&str], deadline_ms: u64) -> Master {
    let config = MasterConfig {
        cluster: "test".into(),
        key: key(),
        listen: "127.0.0.1:0".parse().unwrap(),
        nodes: nodes.iter().map(|s| s.to_string()).collect(),
        swap_deadline: Duration::from_millis(deadline_ms),
        load_deadline: Duration::from_secs(5),
        handshake_timeout: Duration::from_secs(2),
        policy: FailurePolicy::Drop,
        max_frame: 1 << 24,
        pipeline_depth: 1,
        ..MasterConfig::new("test", key(), "127.0.0.1:0".parse().unwrap(), Vec::new())
    };
    Master::start(config, manager()).unwrap()
}

fn node_config(name: &str, addr: SocketAddr, key: ClusterKey, cluster: &str) -> NodeConfig {
    NodeConfig::new(cluster, key, name, addr).connect_timeout(Duration::from_secs(3))
}

/// What a node thread returns: (frame, scene hash, shared value) per frame, and how it ended.
type NodeRun = (Vec<(u64, u64, u64)>, Result<(), ClusterError>);

/// A node that applies frames, records (frame, scene hash, shared value), and swaps. It stops
/// after `stop_after` frames: abruptly (`vanish`, like a killed process) or by stalling
/// before its SwapReady.
fn spawn_node(
    name: &'static str,
    addr: SocketAddr,
    stop_after: Option<(u64, bool)>,
) -> JoinHandle<NodeRun> {
    std::thread::spawn(move || {
        let (mut session, mut swap) = match lockstep_cluster::node::connect(
            &node_config(name, addr, key(), "test"),
            manager(),
        ) {
            Ok(s) => s,
            Err(e) => return (Vec::new(), Err(e)),
        };
        let mut scene = Scene::new();
        let mut seen = Vec::new();
        let result = loop {
            let info = match session.next_frame(&mut scene) {
                Ok(Some(i)) => i,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            let shared = *session.manager.get::<Shared<u64>>().unwrap().get();
            seen.push((info.frame, scene_hash(&scene), shared));
            if let Some((at, vanish)) = stop_after
                && info.frame == at
            {
                if vanish {
                    return (seen, Ok(()));
                }
                std::thread::sleep(Duration::from_secs(3));
                break Ok(());
            }
            if let Err(e) = swap.swap(info.frame, NodeStats::default()) {
                break Err(e);
            }
        };
        (seen, result)
    })
}

/// The master's app: a scene edited every frame.
struct World {
    scene: Scene,
    boxes: Vec<lockstep_scene::NodeId>,
}

impl World {
    fn new() -> World {
        let mut scene = Scene::new();
        let cube = scene.add_mesh(Mesh::cube(0.2));
        let mat = scene.add_material(Material::lit(Color::WHITE)).unwrap();
        let boxes = (0..50)
            .map(|i| {
                scene
                    .add(Node::mesh(cube, mat).named(format!("b{i}")), None)
                    .unwrap()
            })
            .collect();
        World { scene, boxes }
    }

    fn update(&mut self, frame: u64) {
        for (i, b) in self.boxes.iter().enumerate() {
            let a = frame as f32 * 0.05 + i as f32;
            self.scene
                .set_transform(
                    *b,
                    Transform::from_translation(Vec3::new(a.cos(), a.sin(), 0.0)),
                )
                .unwrap();
        }
        if frame.is_multiple_of(10) {
            self.scene
                .set_material(
                    lockstep_scene::MaterialId(0),
                    Material::lit(Color::rgb((frame % 7) as f32 / 7.0, 0.5, 0.5)),
                )
                .unwrap();
        }
    }
}

#[test]
fn every_node_holds_the_masters_scene_at_every_frame_and_a_lost_node_does_not_stop_the_rest() {
    let mut m = master(&["a", "b", "c"], 1000);
    let addr = m.local_addr();
    let a = spawn_node("a", addr, None);
    let b = spawn_node("b", addr, None);
    let c = spawn_node("c", addr, Some((60, true)));
    m.wait_for_nodes(Duration::from_secs(5)).unwrap();
    let mut world = World::new();
    let mut expected = Vec::new();
    let mut dropped = Vec::new();
    for frame in 0..150u64 {
        world.update(frame);
        m.manager.get_mut::<Shared<u64>>().unwrap().set(frame * 3);
        let info = FrameInfo {
            frame,
            time: frame as f64 / 60.0,
            dt: 1.0 / 60.0,
        };
        let mut report = m.send_frame(&info, &world.scene).unwrap();
        m.swap(frame, &world.scene, &mut report).unwrap();
        expected.push((frame, scene_hash(&world.scene), frame * 3));
        dropped.extend(report.dropped.into_iter().map(|(n, why)| (frame, n, why)));
    }
    assert_eq!(m.node_names(), ["a", "b"]);
    m.shutdown("test over");
    for (name, h) in [("a", a), ("b", b)] {
        let (seen, result) = h.join().unwrap();
        result.unwrap_or_else(|e| panic!("node {name}: {e}"));
        assert_eq!(
            seen, expected,
            "node {name} saw other frames or scenes than the master"
        );
    }
    let (seen_c, _) = c.join().unwrap();
    assert_eq!(seen_c, expected[..61]);
    // c vanished after frame 60: the master noticed at frame 60 or 61, with the reason.
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    let (at, name, why) = &dropped[0];
    assert_eq!(name, "c");
    assert!((60..=61).contains(at), "dropped at frame {at}");
    assert!(
        why.contains("closed the connection")
            || why.contains("cannot send")
            || why.contains("reset"),
        "{why}"
    );
}

#[test]
fn a_stalled_node_misses_the_deadline_and_is_dropped() {
    let mut m = master(&["fast", "stuck"], 300);
    let addr = m.local_addr();
    let fast = spawn_node("fast", addr, None);
    let stuck = spawn_node("stuck", addr, Some((5, false)));
    m.wait_for_nodes(Duration::from_secs(5)).unwrap();
    let world = World::new();
    let mut waited = Vec::new();
    for frame in 0..20u64 {
        let info = FrameInfo {
            frame,
            time: 0.0,
            dt: 0.0,
        };
        let mut report = m.send_frame(&info, &world.scene).unwrap();
        m.swap(frame, &world.scene, &mut report).unwrap();
        waited.push(report.waited);
        if frame == 5 {
            assert_eq!(report.dropped.len(), 1);
            assert!(
                report.dropped[0]
                    .1
                    .contains("missed the swap deadline of 300ms at frame 5"),
                "{:?}",
                report.dropped
            );
        }
    }
    // Only the stalled frame waited for the deadline.
    assert!(waited[5] >= Duration::from_millis(290));
    m.shutdown("done");
    assert_eq!(fast.join().unwrap().0.len(), 20);
    drop(stuck);
}

#[test]
fn the_first_frame_a_node_gets_waits_the_load_deadline_not_the_swap_deadline() {
    // The nodes joined at the start barrier, before any frame: frame 0 brings them the whole
    // scene, and a node that takes longer than a frame to load it is not dropped.
    let mut m = master(&["slow"], 100);
    let addr = m.local_addr();
    let slow = std::thread::spawn(move || {
        let mut node = lockstep_cluster::node::connect_direct(
            &node_config("slow", addr, key(), "test"),
            manager(),
        )
        .unwrap();
        let mut scene = Scene::new();
        let mut frames = Vec::new();
        while let Some(info) = node.next_frame(&mut scene).unwrap() {
            if info.frame == 0 {
                std::thread::sleep(Duration::from_millis(400));
            }
            node.swap(info.frame, NodeStats::default()).unwrap();
            frames.push(info.frame);
        }
        frames
    });
    m.wait_for_nodes(Duration::from_secs(5)).unwrap();
    let world = World::new();
    let mut waited = Vec::new();
    for frame in 0..5u64 {
        let info = FrameInfo {
            frame,
            time: 0.0,
            dt: 0.0,
        };
        let mut report = m.send_frame(&info, &world.scene).unwrap();
        m.swap(frame, &world.scene, &mut report).unwrap();
        assert_eq!(report.dropped, [], "frame {frame}");
        waited.push(report.waited);
    }
    assert!(waited[0] >= Duration::from_millis(350), "{waited:?}");
    m.shutdown("done");
    assert_eq!(slow.join().unwrap(), [0, 1, 2, 3, 4]);
}

#[test]
fn wrong_keys_wrong_clusters_strangers_and_garbage_are_refused_without_disturbing_the_session() {
    let mut m = master(&["a"], 1000);
    let addr = m.local_addr();
    let a = spawn_node("a", addr, None);
    m.wait_for_nodes(Duration::from_secs(5)).unwrap();

    // Hostile connections arrive while frames run.
    let bad_key = ClusterKey::new(b"fedcba9876543210fedcba9876543210".to_vec()).unwrap();
    let (tx, rx) = mpsc::channel();
    let intruders = std::thread::spawn(move || {
        let err = |cfg: NodeConfig| {
            lockstep_cluster::node::connect(&cfg, manager())
                .err()
                .map(|e| e.to_string())
        };
        tx.send(err(node_config("a", addr, bad_key, "test")))
            .unwrap();
        tx.send(err(node_config("a", addr, key(), "other")))
            .unwrap();
        tx.send(err(node_config("mallory", addr, key(), "test")))
            .unwrap();
        // Garbage, an oversized length, and a silent connection.
        for bytes in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            &[0xff, 0xff, 0xff, 0xff][..],
            &[][..],
        ] {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(bytes).unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let world = World::new();
    let start = Instant::now();
    let mut slowest = Duration::ZERO;
    for frame in 0..60u64 {
        let t = Instant::now();
        let info = FrameInfo {
            frame,
            time: 0.0,
            dt: 0.0,
        };
        let mut report = m.send_frame(&info, &world.scene).unwrap();
        m.swap(frame, &world.scene, &mut report).unwrap();
        assert!(report.dropped.is_empty(), "{:?}", report.dropped);
        slowest = slowest.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(5));
    }
    intruders.join().unwrap();
    let errors: Vec<String> = rx.try_iter().map(|e| e.expect("refused")).collect();
    assert!(
        errors[0].contains("authentication failed: the server does not know the cluster key"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].contains("refused by peer")
            && errors[1].contains("cluster 'other' does not match this cluster 'test'"),
        "{}",
        errors[1]
    );
    assert!(
        errors[2].contains("node name 'mallory' is not in the cluster file"),
        "{}",
        errors[2]
    );
    assert_eq!(m.node_names(), ["a"], "no intruder joined");
    assert!(
        slowest < Duration::from_millis(500),
        "a frame took {slowest:?} while intruders knocked"
    );
    assert!(start.elapsed() < Duration::from_secs(10));
    m.shutdown("done");
    assert_eq!(a.join().unwrap().0.len(), 60);
}

#[test]
fn nodes_notice_a_vanished_master_within_two_seconds() {
    let mut m = master(&["a"], 1000);
    let addr = m.local_addr();
    let a = spawn_node("a", addr, None);
    m.wait_for_nodes(Duration::from_secs(5)).unwrap();
    let world = World::new();
    for frame in 0..5u64 {
        let info = FrameInfo {
            frame,
            time: 0.0,
            dt: 0.0,
        };
        let mut report = m.send_frame(&info, &world.scene).unwrap();
        m.swap(frame, &world.scene, &mut report).unwrap();
    }
    let t = Instant::now();
    drop(m); // No Shutdown message: the connection just ends.
    let (seen, result) = a.join().unwrap();
    assert_eq!(seen.len(), 5);
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains("node 'a'") && (err.contains("lost the master") || err.contains("connection")),
        "{err}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t.elapsed()
    );
}

#[test]
fn a_head_pose_set_on_the_master_reaches_the_node_with_the_next_frame() {
    let mut m = master(&["a"], 1000);
    let addr = m.local_addr();
    let node = std::thread::spawn(move || {
        let (mut session, mut swap) =
            lockstep_cluster::node::connect(&node_config("a", addr, key(), "test"), manager())
                .unwrap();
        let mut scene = Scene::new();
        let mut heads = Vec::new();
        while let Some(info) = session.next_frame(&mut scene).unwrap() {
            heads.push(
                session
                    .manager
                    .get::<HeadTracking>()
                    .unwrap()
                    .pose()
                    .position,
            );
            swap.swap(info.frame, NodeStats::default()).unwrap();
        }
        heads
    });
    m.wait_for_nodes(Duration::from_secs(5)).unwrap();
    let world = World::new();
    for frame in 0..6u64 {
        if frame == 3 {
            let moved = HeadPose {
                position: Vec3::new(0.3, 1.6, -0.2),
                rotation: glam::Quat::IDENTITY,
            };
            m.manager.get_mut::<HeadTracking>().unwrap().set(moved);
        }
        let info = FrameInfo {
            frame,
            time: 0.0,
            dt: 0.0,
        };
        let mut report = m.send_frame(&info, &world.scene).unwrap();
        m.swap(frame, &world.scene, &mut report).unwrap();
        assert!(report.dropped.is_empty());
    }
    m.shutdown("done");
    let heads = node.join().unwrap();
    let start = Vec3::new(0.0, 1.7, 0.0);
    let moved = Vec3::new(0.3, 1.6, -0.2);
    assert_eq!(heads, [start, start, start, moved, moved, moved]);
}

/// Writes "hook frame" at every hook on the master; on a node, logs what it reads, checking
/// that each block came with the frame it was written for.
struct Probe {
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl lockstep_cluster::ClusterPlugin for Probe {
    fn id(&self) -> lockstep_cluster::PluginId {
        FIRST_APP_PLUGIN + 7
    }

    fn name(&self) -> &'static str {
        "probe"
    }

    fn write(
        &mut self,
        hook: Hook,
        frame: &FrameInfo,
        _scene: &Scene,
        out: &mut Vec<u8>,
    ) -> Result<(), lockstep_cluster::PluginError> {
        out.extend_from_slice(format!("{} {}", hook.name(), frame.frame).as_bytes());
        Ok(())
    }

    fn snapshot(
        &mut self,
        hook: Hook,
        frame: &FrameInfo,
        scene: &Scene,
        out: &mut Vec<u8>,
    ) -> Result<(), lockstep_cluster::PluginError> {
        self.write(hook, frame, scene, out)
    }

    fn read(
        &mut self,
        hook: Hook,
        frame: &FrameInfo,
        _scene: &mut Scene,
        bytes: &[u8],
    ) -> Result<(), lockstep_cluster::PluginError> {
        let text = String::from_utf8_lossy(bytes).to_string();
        assert_eq!(text, format!("{} {}", hook.name(), frame.frame));
        self.log.lock().unwrap().push(text);
        Ok(())
    }
}

fn probed(log: &std::sync::Arc<std::sync::Mutex<Vec<String>>>) -> ClusterManager {
    let mut m = manager();
    m.register(Probe { log: log.clone() }).unwrap();
    m
}

#[test]
fn hooks_arrive_in_order_with_the_swap_between_pre_draw_and_post_frame() {
    for depth in [1, 2] {
        hooks_in_order(depth);
    }
}

fn hooks_in_order(depth: usize) {
    let master_log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let config = MasterConfig {
        cluster: "test".into(),
        key: key(),
        listen: "127.0.0.1:0".parse().unwrap(),
        nodes: vec!["threaded".into(), "direct".into()],
        swap_deadline: Duration::from_secs(2),
        load_deadline: Duration::from_secs(5),
        handshake_timeout: Duration::from_secs(2),
        policy: FailurePolicy::Stop,
        max_frame: 1 << 24,
        pipeline_depth: depth,
        ..MasterConfig::new("test", key(), "127.0.0.1:0".parse().unwrap(), Vec::new())
    };
    let mut m = Master::start(config, probed(&master_log)).unwrap();
    let addr = m.local_addr();
    let threaded = std::thread::spawn(move || {
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (mut session, mut swap) = lockstep_cluster::node::connect(
            &node_config("threaded", addr, key(), "test"),
            probed(&log),
        )
        .unwrap();
        let mut scene = Scene::new();
        while let Some(info) = session.next_frame(&mut scene).unwrap() {
            swap.swap(info.frame, NodeStats::default()).unwrap();
            log.lock().unwrap().push(format!("swapped {}", info.frame));
        }
        drop(session);
        log.lock().unwrap().clone()
    });
    let direct = std::thread::spawn(move || {
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut node = lockstep_cluster::node::connect_direct(
            &node_config("direct", addr, key(), "test"),
            probed(&log),
        )
        .unwrap();
        let mut scene = Scene::new();
        while let Some(info) = node.next_frame(&mut scene).unwrap() {
            node.swap(info.frame, NodeStats::default()).unwrap();
            log.lock().unwrap().push(format!("swapped {}", info.frame));
        }
        drop(node);
        log.lock().unwrap().clone()
    });
    m.wait_for_nodes(Duration::from_secs(5)).unwrap();
    let world = World::new();
    // Pipelined: each send_frame runs the barrier of the frame `depth` frames before.
    let mut swapped = Vec::new();
    for frame in 0..20u64 {
        let info = FrameInfo {
            frame,
            time: frame as f64 / 60.0,
            dt: 1.0 / 60.0,
        };
        m.begin_frame(&info, &world.scene).unwrap();
        let report = m.send_frame(&info, &world.scene).unwrap();
        assert_eq!(report.swapped, frame.checked_sub(depth as u64));
        swapped.extend(report.swapped);
        assert_eq!(m.in_flight(), Some(frame.saturating_sub(depth as u64 - 1)));
    }
    // Not the oldest frame in flight: refused.
    if depth == 2 {
        assert!(m.swap(19, &world.scene, &mut Default::default()).is_err());
    }
    while let Some(f) = m.in_flight() {
        let mut report = Default::default();
        m.swap(f, &world.scene, &mut report).unwrap();
        assert_eq!(report.swapped, Some(f));
        assert_eq!(report.presented, ["threaded", "direct"]);
        swapped.extend(report.swapped);
    }
    assert_eq!(swapped, (0..20).collect::<Vec<_>>());
    assert!(m.swap(19, &world.scene, &mut Default::default()).is_err());
    m.shutdown("test over");
    // A node reads frame F's blocks before presenting F, and F's post-frame blocks after
    // presenting F, before frame F + depth's blocks.
    let mut expected: Vec<String> = Vec::new();
    for f in 0..20u64 {
        if let Some(p) = (f + 1)
            .checked_sub(depth as u64)
            .filter(|_| f >= depth as u64)
        {
            expected.push(format!("post-frame {}", p - 1));
        }
        expected.push(format!("frame-start {f}"));
        expected.push(format!("pre-draw {f}"));
        expected.push(format!("swapped {f}"));
    }
    for f in 20u64.saturating_sub(depth as u64)..20 {
        expected.push(format!("post-frame {f}"));
    }
    assert_eq!(threaded.join().unwrap(), expected);
    assert_eq!(direct.join().unwrap(), expected);
    assert!(master_log.lock().unwrap().is_empty());
}

#[test]
fn heartbeats_keep_an_idle_cluster_alive_and_find_a_node_that_stopped_answering() {
    let mut m = master(&["alive", "hung"], 300);
    let addr = m.local_addr();
    // "alive" waits for frames (and so answers heartbeats) with the default 2 s master
    // timeout; "hung" connects and then never reads again.
    let alive = std::thread::spawn(move || {
        let mut node = lockstep_cluster::node::connect_direct(
            &node_config("alive", addr, key(), "test"),
            manager(),
        )
        .unwrap();
        let mut scene = Scene::new();
        let info = node.next_frame(&mut scene).unwrap().unwrap();
        node.swap(info.frame, NodeStats::default()).unwrap();
        info.frame
    });
    let _hung = lockstep_cluster::node::connect_direct(
        &node_config("hung", addr, key(), "test"),
        manager(),
    )
    .unwrap();
    m.wait_for_nodes(Duration::from_secs(5)).unwrap();
    // 3 s without a frame: longer than the node's master timeout.
    let t = Instant::now();
    m.idle(Duration::from_secs(3)).unwrap();
    assert!(t.elapsed() >= Duration::from_secs(3));
    assert_eq!(
        m.node_names(),
        ["alive"],
        "the hung node was dropped while idle"
    );
    let world = World::new();
    let info = FrameInfo {
        frame: 0,
        time: 0.0,
        dt: 0.0,
    };
    let report = m.send_frame(&info, &world.scene).unwrap();
    assert_eq!(report.dropped.len(), 1, "{report:?}");
    assert_eq!(report.dropped[0].0, "hung");
    assert!(
        report.dropped[0].1.contains("answered no heartbeat"),
        "{report:?}"
    );
    let mut report = lockstep_cluster::SwapReport::default();
    m.swap(0, &world.scene, &mut report).unwrap();
    assert_eq!(report.presented, ["alive"]);
    assert_eq!(alive.join().unwrap(), 0);
}
