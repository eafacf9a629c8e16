//! Master and nodes over real loopback sockets, in one process.

use std::io::{Read, Write};
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
use lockstep_wire::{ClusterKey, Decoder, HANDSHAKE_MAX_FRAME, Message, NodeStats};

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
    master_deep(nodes, deadline_ms, 1)
}

/// A master with `depth` frames in flight at most.
fn master_deep(nodes: &[&str], deadline_ms: u64, depth: usize) -> Master {
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
        pipeline_depth: depth,
        ..MasterConfig::new("test", key(), "127.0.0.1:0".parse().unwrap(), Vec::new())
    };
    Master::start(config, manager()).unwrap()
}

fn node_config(name: &str, addr: SocketAddr, key: ClusterKey, cluster: &str) -> NodeConfig {
    NodeConfig::new(cluster, key, name, addr).connect_timeout(Duration::from_secs(3))
}

/// What a node thread returns: (frame, scene hash, shared value) per frame, and how it ended.
type NodeRun = (Vec<(u64, u64, u64)>, Result<(), ClusterError>);

/// How a test node leaves.
enum Leave {
    /// When the master shuts the cluster down.
    AtShutdown,
    /// After applying this frame, abruptly, like a killed process.
    VanishAt(u64),
    /// After applying this frame it never answers it, until told to go.
    StallAt(u64, mpsc::Receiver<()>),
}

/// A node that applies frames, records (frame, scene hash, shared value), and swaps, until it
/// leaves as `leave` says.
fn spawn_node(name: &'static str, addr: SocketAddr, leave: Leave) -> JoinHandle<NodeRun> {
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
            match &leave {
                Leave::VanishAt(at) if info.frame == *at => return (seen, Ok(())),
                Leave::StallAt(at, go) if info.frame == *at => {
                    let _ = go.recv();
                    break Ok(());
                }
                _ => {}
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
    let a = spawn_node("a", addr, Leave::AtShutdown);
    let b = spawn_node("b", addr, Leave::AtShutdown);
    let c = spawn_node("c", addr, Leave::VanishAt(60));
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
    let fast = spawn_node("fast", addr, Leave::AtShutdown);
    let (go, stalled) = mpsc::channel();
    let stuck = spawn_node("stuck", addr, Leave::StallAt(5, stalled));
    m.wait_for_nodes(Duration::from_secs(5)).unwrap();
    let world = World::new();
    for frame in 0..20u64 {
        let info = FrameInfo {
            frame,
            time: 0.0,
            dt: 0.0,
        };
        let mut report = m.send_frame(&info, &world.scene).unwrap();
        m.swap(frame, &world.scene, &mut report).unwrap();
        // Every frame: who presented, who was dropped; only frame 5 loses "stuck".
        match frame {
            0..5 => {
                assert_eq!(report.presented, ["fast", "stuck"], "frame {frame}");
                assert_eq!(report.dropped, [], "frame {frame}");
            }
            5 => {
                assert_eq!(report.presented, ["fast"]);
                assert_eq!(report.dropped.len(), 1, "{:?}", report.dropped);
                assert_eq!(report.dropped[0].0, "stuck");
                assert!(
                    report.dropped[0]
                        .1
                        .contains("missed the swap deadline of 300ms at frame 5"),
                    "{:?}",
                    report.dropped
                );
                // It waited the deadline for the stalled node before giving up on it.
                assert!(report.waited >= Duration::from_millis(300), "{report:?}");
            }
            _ => {
                assert_eq!(report.presented, ["fast"], "frame {frame}");
                assert_eq!(report.dropped, [], "frame {frame}");
            }
        }
        assert_eq!(report.swapped, Some(frame));
    }
    assert_eq!(m.node_names(), ["fast"]);
    m.shutdown("done");
    let (seen, result) = fast.join().unwrap();
    result.unwrap();
    assert_eq!(
        seen.iter().map(|s| s.0).collect::<Vec<_>>(),
        (0..20).collect::<Vec<_>>()
    );
    go.send(()).unwrap();
    let (seen, _) = stuck.join().unwrap();
    assert_eq!(seen.len(), 6, "the stalled node applied frames 0 to 5");
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

/// Sends `bytes` to the master as a new peer and returns the reason it was refused with (its
/// `Refused` message), read until the master closes the connection.
fn refusal_of(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(bytes).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    let mut d = Decoder::new(HANDSHAKE_MAX_FRAME);
    d.push(&got);
    match d.next_message() {
        Ok(Some(Message::Refused { reason })) => reason.to_string(),
        other => panic!("not a refusal: {other:?} ({} bytes)", got.len()),
    }
}

/// Sends the bytes of a Hello one at a time, `pace` apart, until the master closes the
/// connection; returns the reason it gave.
fn drip_refusal(addr: SocketAddr, pace: Duration) -> String {
    let hello = lockstep_wire::encode(&Message::Hello {
        magic: lockstep_wire::MAGIC,
        version: lockstep_wire::PROTOCOL_VERSION,
        cluster: "test-with-a-long-name-to-drip-for-a-while",
        node: "a-node-name-that-takes-long-to-send-at-one-byte-a-step",
        nonce: [0; 32],
    })
    .unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    for b in &hello {
        if s.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(pace);
        // Stop once the master has answered (and closed).
        s.set_nonblocking(true).unwrap();
        let mut probe = [0u8; 1];
        let answered =
            !matches!(s.peek(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
        s.set_nonblocking(false).unwrap();
        if answered {
            break;
        }
    }
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let mut d = Decoder::new(HANDSHAKE_MAX_FRAME);
    d.push(&got);
    match d.next_message() {
        Ok(Some(Message::Refused { reason })) => reason.to_string(),
        other => panic!("not a refusal: {other:?} ({} bytes)", got.len()),
    }
}

#[test]
fn wrong_keys_wrong_clusters_strangers_and_garbage_are_refused_without_disturbing_the_session() {
    let mut m = master(&["a"], 1000);
    let addr = m.local_addr();
    let a = spawn_node("a", addr, Leave::AtShutdown);
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
        // Garbage (an HTTP request's first bytes read as a length), an oversized length, and
        // a silent connection, which holds its handshake until the 2 s timeout.
        let garbage = refusal_of(addr, b"GET / HTTP/1.1\r\n\r\n");
        let oversized = refusal_of(addr, &[0xff, 0xff, 0xff, 0xff]);
        let silent_from = Instant::now();
        let silent = refusal_of(addr, &[]);
        let silent_span = (silent_from, Instant::now());
        // A peer dripping a Hello one byte every 100 ms is cut at the same deadline: it is
        // one deadline for the whole handshake, not one per read.
        let drip_from = Instant::now();
        let drip = drip_refusal(addr, Duration::from_millis(100));
        let drip_took = drip_from.elapsed();
        (garbage, oversized, silent, silent_span, drip, drip_took)
    });
    let world = World::new();
    // Frames run until the intruders are done, each frame's end noted.
    let mut ended = Vec::new();
    let mut frame = 0u64;
    while !intruders.is_finished() {
        let info = FrameInfo {
            frame,
            time: 0.0,
            dt: 0.0,
        };
        let mut report = m.send_frame(&info, &world.scene).unwrap();
        m.swap(frame, &world.scene, &mut report).unwrap();
        assert!(report.dropped.is_empty(), "{:?}", report.dropped);
        assert_eq!(report.presented, ["a"], "frame {frame}");
        ended.push(Instant::now());
        frame += 1;
        // Paced like an application, heartbeats meanwhile.
        m.idle(Duration::from_millis(2)).unwrap();
    }
    let (garbage, oversized, silent, (silent_from, silent_to), drip, drip_took) =
        intruders.join().unwrap();
    let errors: Vec<String> = rx.try_iter().map(|e| e.expect("refused")).collect();
    assert!(
        errors[0].contains("authentication failed: the server does not know the cluster key"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].contains("refused by peer")
            && errors[1].contains("cluster 'other' is not the cluster served here ('test')"),
        "{}",
        errors[1]
    );
    assert!(
        errors[2].contains("node name 'mallory' is not in the cluster file"),
        "{}",
        errors[2]
    );
    // b"GET " as a little-endian length.
    assert!(
        garbage.contains("frame of 542393671 bytes exceeds the limit of 1024 bytes"),
        "{garbage}"
    );
    assert!(
        oversized.contains("frame of 4294967295 bytes exceeds the limit of 1024 bytes"),
        "{oversized}"
    );
    assert!(
        silent.contains("handshake not finished within 2s"),
        "{silent}"
    );
    assert!(drip.contains("handshake not finished within 2s"), "{drip}");
    assert!(
        drip_took < Duration::from_secs(4),
        "a dripping peer held its handshake {drip_took:?}"
    );
    assert!(
        silent_to - silent_from >= Duration::from_secs(2),
        "the handshake timeout"
    );
    // The silent peer held only its own thread: frames ended while it waited.
    assert!(
        ended.iter().any(|t| *t > silent_from && *t < silent_to),
        "no frame ended during the silent peer's {:?}",
        silent_to - silent_from
    );
    assert_eq!(m.node_names(), ["a"], "no intruder joined");
    m.shutdown("done");
    let (seen, result) = a.join().unwrap();
    result.unwrap();
    assert_eq!(seen.len() as u64, frame, "node a saw every frame");
}

/// What a node thread returns: frames it applied, how it ended, and when.
type Ended = (usize, Result<(), ClusterError>, Instant);

/// Runs five frames with node `a`, whose master timeout is 1 s; also when the last message
/// to it began to leave.
fn five_frames() -> (Master, JoinHandle<Ended>, Instant) {
    let mut m = master(&["a"], 1000);
    let addr = m.local_addr();
    let node = std::thread::spawn(move || {
        let cfg = node_config("a", addr, key(), "test").master_timeout(Duration::from_secs(1));
        let (mut session, mut swap) = lockstep_cluster::node::connect(&cfg, manager()).unwrap();
        let mut scene = Scene::new();
        let mut frames = 0;
        let result = loop {
            match session.next_frame(&mut scene) {
                Ok(Some(info)) => {
                    frames += 1;
                    if let Err(e) = swap.swap(info.frame, NodeStats::default()) {
                        break Err(e);
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        (frames, result, Instant::now())
    });
    m.wait_for_nodes(Duration::from_secs(5)).unwrap();
    let world = World::new();
    let mut last = Instant::now();
    for frame in 0..5u64 {
        let info = FrameInfo {
            frame,
            time: 0.0,
            dt: 0.0,
        };
        let mut report = m.send_frame(&info, &world.scene).unwrap();
        last = Instant::now();
        m.swap(frame, &world.scene, &mut report).unwrap();
        assert_eq!(report.presented, ["a"]);
    }
    (m, node, last)
}

#[test]
fn a_node_sees_at_once_that_the_master_closed_its_connection() {
    let (m, node, _) = five_frames();
    drop(m); // No Shutdown message: the connection just ends.
    let (frames, result, _) = node.join().unwrap();
    assert_eq!(frames, 5);
    let err = result.unwrap_err();
    // The closed socket itself, not the master's silence after the timeout.
    assert!(
        matches!(err, ClusterError::Closed { .. } | ClusterError::Io { .. }),
        "{err:?}"
    );
    assert!(err.is_connection_lost());
}

#[test]
fn a_node_leaves_a_master_that_went_silent_after_its_timeout() {
    // The master holds its connections open and sends nothing after the last SwapNow, as a
    // hung (SIGSTOPped) master process does.
    let (m, node, silent_from) = five_frames();
    let (frames, result, left_at) = node.join().unwrap();
    assert_eq!(frames, 5);
    let err = result.unwrap_err();
    assert!(matches!(err, ClusterError::Timeout { .. }), "{err:?}");
    assert!(err.is_connection_lost());
    assert!(err.to_string().contains("sent nothing for 1s"), "{err}");
    let waited = left_at - silent_from;
    assert!(waited >= Duration::from_secs(1), "left after {waited:?}");
    assert!(waited < Duration::from_secs(30), "left after {waited:?}");
    assert_eq!(m.node_names(), ["a"], "the master never closed it");
    drop(m);
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

/// Latches a head at x = the frame it is for, once that frame is made; a pose that is no
/// pose for frame `nan_at`.
struct CountingLatch {
    nan_at: u64,
}

impl lockstep_cluster::HeadLatch for CountingLatch {
    fn newest(&mut self, frame: u64, made: bool) -> Option<lockstep_wire::LatchedHead> {
        let x = if frame == self.nan_at {
            f32::NAN
        } else {
            frame as f32
        };
        made.then_some(lockstep_wire::LatchedHead {
            position: [x, 1.7, 0.0],
            rotation: [0.0, 0.0, 0.0, 1.0],
        })
    }
}

/// A node that records, for every frame it draws, the x of the head latched for it (if
/// any) and whether it was shown.
fn latching_node(
    name: &'static str,
    addr: SocketAddr,
) -> JoinHandle<Vec<(u64, Option<f32>, bool)>> {
    std::thread::spawn(move || {
        let (mut session, mut swap) =
            lockstep_cluster::node::connect(&node_config(name, addr, key(), "test"), manager())
                .unwrap();
        let mut scene = Scene::new();
        let mut drawn = Vec::new();
        while let Some(info) = session.next_frame(&mut scene).unwrap() {
            let head = swap.latched_for(info.frame).unwrap();
            let shown = swap.swap(info.frame, NodeStats::default()).unwrap();
            drawn.push((info.frame, head.map(|h| h.position[0]), shown));
        }
        drawn
    })
}

/// Swaps every frame still in flight, noting (frame, latched x) of what each swap latched.
fn swap_the_rest(m: &mut Master, scene: &Scene, sent: &mut impl Extend<(u64, f32)>) {
    while let Some(frame) = m.in_flight() {
        let mut report = lockstep_cluster::SwapReport::default();
        m.swap(frame, scene, &mut report).unwrap();
        sent.extend(m.take_latched().map(|(f, h)| (f, h.position[0])));
    }
}

#[test]
fn a_latched_head_reaches_every_node_for_the_frame_after_the_swap_it_rode_with() {
    let mut m = master_deep(&["a", "b"], 2000, 2);
    m.set_latch(Some(Box::new(CountingLatch { nan_at: 3 })));
    let addr = m.local_addr();
    let nodes: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|name| latching_node(name, addr))
        .collect();
    m.wait_for_nodes(Duration::from_secs(5)).unwrap();
    let world = World::new();
    let mut sent = Vec::new();
    for frame in 0..6u64 {
        let info = FrameInfo {
            frame,
            time: 0.0,
            dt: 0.0,
        };
        let report = m.send_frame(&info, &world.scene).unwrap();
        assert!(report.dropped.is_empty());
        sent.extend(m.take_latched().map(|(f, h)| (f, h.position[0])));
    }
    swap_the_rest(&mut m, &world.scene, &mut sent);
    m.shutdown("done");
    // Two deep, frame F+1 is made when F's swap is released, up to the last swap, after
    // which no frame is made; frame 0 has no swap before it, and frame 3's pose was no pose.
    assert_eq!(sent, [(1, 1.0), (2, 2.0), (4, 4.0), (5, 5.0)]);
    let want: Vec<(u64, Option<f32>)> = (0..6)
        .map(|f| (f, sent.iter().find(|(s, _)| *s == f).map(|(_, x)| *x)))
        .collect();
    for node in nodes {
        // Both in step from the first frame: every frame drawn is shown.
        let drawn = node.join().unwrap();
        assert!(drawn.iter().all(|d| d.2), "{drawn:?}");
        let latched: Vec<(u64, Option<f32>)> = drawn.iter().map(|d| (d.0, d.1)).collect();
        assert_eq!(latched, want);
    }
}

#[test]
fn a_late_joiner_projects_its_first_frame_from_the_pose_latched_for_it() {
    for depth in [1, 2] {
        let mut m = master_deep(&["a", "b"], 2000, depth);
        m.set_latch(Some(Box::new(CountingLatch { nan_at: u64::MAX })));
        let addr = m.local_addr();
        let spawn = |name| latching_node(name, addr);
        let a = spawn("a");
        m.wait_for_unless(
            &["a".to_string()],
            Duration::from_secs(5),
            &Default::default(),
        )
        .unwrap();
        let world = World::new();
        let mut sent = std::collections::BTreeMap::new();
        let mut b = None;
        let end = Instant::now() + Duration::from_secs(30);
        let mut frame = 0u64;
        // Until b has been in step for ten frames.
        let mut in_step_for = 0;
        while in_step_for < 10 {
            assert!(Instant::now() < end, "depth {depth}: b never got in step");
            if frame == 5 {
                b = Some(spawn("b"));
            }
            let info = FrameInfo {
                frame,
                time: 0.0,
                dt: 0.0,
            };
            let report = m.send_frame(&info, &world.scene).unwrap();
            assert!(report.dropped.is_empty(), "{:?}", report.dropped);
            sent.extend(m.take_latched().map(|(f, h)| (f, h.position[0])));
            if m.in_step().contains(&"b".to_string()) {
                in_step_for += 1;
            }
            frame += 1;
        }
        swap_the_rest(&mut m, &world.scene, &mut sent);
        m.shutdown("done");
        let want = |f: u64| sent.get(&f).copied();
        for (name, node) in [("a", a), ("b", b.unwrap())] {
            let drawn = node.join().unwrap();
            let shown: Vec<_> = drawn.iter().filter(|d| d.2).collect();
            assert!(shown.len() >= 10, "depth {depth}, {name}: {drawn:?}");
            for (f, x, _) in shown {
                assert_eq!(
                    *x,
                    want(*f),
                    "depth {depth}, node {name}, frame {f}: {drawn:?}"
                );
                assert!(
                    *f == 0 || x.is_some(),
                    "depth {depth}, {name}, frame {f} unlatched"
                );
            }
        }
    }
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
        let text = format!("{} {}", hook.name(), frame.frame);
        out.extend_from_slice(text.as_bytes());
        self.log.lock().unwrap().push(format!("wrote {text}"));
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
    // The master wrote each hook once per frame, where the protocol puts it: frame-start
    // before the update, pre-draw after it, and post-frame when that frame's barrier ran —
    // inside the send of the frame `depth` later.
    let mut wrote: Vec<String> = Vec::new();
    for f in 0..20u64 {
        wrote.push(format!("wrote frame-start {f}"));
        wrote.push(format!("wrote pre-draw {f}"));
        if let Some(p) = f.checked_sub(depth as u64) {
            wrote.push(format!("wrote post-frame {p}"));
        }
    }
    for f in 20 - depth as u64..20 {
        wrote.push(format!("wrote post-frame {f}"));
    }
    assert_eq!(*master_log.lock().unwrap(), wrote);
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
        let joined = Instant::now();
        let mut scene = Scene::new();
        let info = node.next_frame(&mut scene).unwrap().unwrap();
        let waited = joined.elapsed();
        node.swap(info.frame, NodeStats::default()).unwrap();
        (info.frame, waited)
    });
    let _hung = lockstep_cluster::node::connect_direct(
        &node_config("hung", addr, key(), "test"),
        manager(),
    )
    .unwrap();
    m.wait_for_nodes(Duration::from_secs(5)).unwrap();
    // Idle until the hung node is dropped.
    let t = Instant::now();
    while m.node_names() != ["alive"] {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the hung node was never dropped"
        );
        m.idle(Duration::from_millis(50)).unwrap();
    }
    // Idle on, past the live node's 2 s master timeout: heartbeats keep it in.
    while t.elapsed() < Duration::from_millis(2500) {
        m.idle(Duration::from_millis(2500) - t.elapsed()).unwrap();
    }
    assert_eq!(m.node_names(), ["alive"]);
    let world = World::new();
    let info = FrameInfo {
        frame: 0,
        time: 0.0,
        dt: 0.0,
    };
    let report = m.send_frame(&info, &world.scene).unwrap();
    assert_eq!(report.dropped.len(), 1, "{report:?}");
    assert_eq!(report.dropped[0].0, "hung");
    // After four unanswered heartbeats (250 ms apart), not before: the reason says how long
    // the first one waited.
    let why = &report.dropped[0].1;
    let silent: f64 = why
        .strip_prefix("answered no heartbeat for ")
        .and_then(|d| d.strip_suffix('s'))
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("{report:?}"));
    assert!(silent >= 1.0, "dropped after {silent} s of silence");
    let mut report = lockstep_cluster::SwapReport::default();
    m.swap(0, &world.scene, &mut report).unwrap();
    assert_eq!(report.presented, ["alive"]);
    let (frame, waited) = alive.join().unwrap();
    assert_eq!(frame, 0);
    assert!(
        waited > Duration::from_secs(2),
        "the live node waited {waited:?} for its first frame, more than its master timeout"
    );
}

/// A master whose application loaded `files`, sending them or not.
fn serving(files: &[(&str, [u8; 32])], send: bool) -> Master {
    let config = MasterConfig {
        send_assets: send,
        identity: lockstep_cluster::AppIdentity {
            assets: files.iter().map(|(p, d)| (p.to_string(), *d)).collect(),
            ..Default::default()
        },
        ..MasterConfig::new("test", key(), "127.0.0.1:0".parse().unwrap(), Vec::new())
    };
    Master::start(config, manager()).unwrap()
}

#[test]
fn an_asset_connection_gets_only_the_files_the_masters_setup_loaded() {
    use lockstep_cluster::AssetClient;
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    // Two and a half chunks: the bytes arrive whole and in order.
    let bytes: Vec<u8> = (0..(5 << 19) + 7).map(|i: u32| (i % 251) as u8).collect();
    let file = dir.path().join("model.glb");
    std::fs::write(&file, &bytes).unwrap();
    let name = file.to_str().unwrap();
    let digest: [u8; 32] = sha2::Sha256::digest(&bytes).into();
    let m = serving(&[(name, digest)], true);
    let connect = |m: &Master| {
        AssetClient::connect("test", key(), m.local_addr(), Duration::from_secs(3)).unwrap()
    };
    let mut client = connect(&m);
    let info = client.info(name).unwrap();
    assert_eq!((info.digest, info.size), (digest, bytes.len() as u64));
    let mut got = Vec::new();
    let fetched = client.fetch(name, 1 << 30, &mut got).unwrap();
    assert_eq!(fetched, info);
    assert!(got == bytes, "the bytes differ");
    // Any other path is refused, naming what the master did load; the connection goes on.
    let err = client.info("/etc/passwd").unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "the master's application loaded no file '/etc/passwd' (it loaded: {name})"
        )),
        "{err}"
    );
    assert_eq!(client.info(name).unwrap(), info);
    // A file over the node's limit is refused before its bytes are taken.
    let err = connect(&m).fetch(name, 1000, &mut Vec::new()).unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "takes {} bytes, over the cluster file's limit of 1000",
            bytes.len()
        )),
        "{err}"
    );
    // Bytes that are no longer what setup loaded are not sent.
    let mut changed = bytes.clone();
    changed[12345] ^= 1;
    std::fs::write(&file, &changed).unwrap();
    let err = connect(&m)
        .fetch(name, 1 << 30, &mut Vec::new())
        .unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "the master's {name} changed after its setup loaded it"
        )),
        "{err}"
    );
    std::fs::write(&file, &bytes).unwrap();
    drop(m);
    // Without `[assets] send`, digests are told but nothing is sent.
    let m = serving(&[(name, digest)], false);
    let mut client = connect(&m);
    assert_eq!(client.info(name).unwrap(), info);
    let err = client
        .fetch(name, 1 << 30, &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the cluster file does not let the master send files: set `send = true` under `[assets]`"),
        "{err}"
    );
}
