//! Frame data by multicast over loopback: every node presents every frame with the master's
//! scene, a late joiner included, with and without datagrams lost on the way.

use std::net::{Ipv4Addr, SocketAddr};
use std::thread::JoinHandle;
use std::time::Duration;

use glam::Vec3;
use lockstep_cluster::plugins::{FIRST_APP_PLUGIN, SceneReplication, Shared};
use lockstep_cluster::{
    ClusterError, ClusterManager, FrameInfo, Master, MasterConfig, NodeConfig, scene_hash,
};
use lockstep_display::MulticastConfig;
use lockstep_scene::{Color, Material, Mesh, Node, Scene, Transform};
use lockstep_wire::datagram::DatagramStats;
use lockstep_wire::{ClusterKey, NodeStats};

fn key() -> ClusterKey {
    ClusterKey::new(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap()
}

fn manager() -> ClusterManager {
    let mut m = ClusterManager::new();
    m.register(SceneReplication::default()).unwrap();
    m.register(Shared::new(FIRST_APP_PLUGIN, "score", 0u64))
        .unwrap();
    m
}

/// A free UDP port for the group (each test its own, so that they can run at once).
fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn master(nodes: &[&str], loss: f64, port: u16) -> Master {
    let config = MasterConfig {
        swap_deadline: Duration::from_secs(2),
        load_deadline: Duration::from_secs(10),
        multicast: Some(MulticastConfig {
            group: Ipv4Addr::new(239, 255, 76, 99),
            port,
            ttl: 1,
            interface: None,
        }),
        simulated_loss: loss,
        ..MasterConfig::new(
            "test",
            key(),
            "127.0.0.1:0".parse().unwrap(),
            nodes.iter().map(|s| s.to_string()).collect(),
        )
    };
    Master::start(config, manager()).unwrap()
}

/// (frame, scene hash, shared value) per frame presented, how the node ended and (the
/// direct node) what its group brought.
type NodeRun = (
    Vec<(u64, u64, u64)>,
    Result<(), ClusterError>,
    Option<DatagramStats>,
);

/// A node that records what it presents; `direct` runs the single-threaded node.
fn spawn_node(name: &'static str, addr: SocketAddr, direct: bool) -> JoinHandle<NodeRun> {
    std::thread::spawn(move || {
        let config = NodeConfig::new("test", key(), name, addr)
            .connect_timeout(Duration::from_secs(5))
            .master_timeout(Duration::from_secs(5));
        let mut scene = Scene::new();
        let mut seen = Vec::new();
        let mut stats = None;
        let shared = |m: &ClusterManager| *m.get::<Shared<u64>>().unwrap().get();
        let result = if direct {
            let mut node = match lockstep_cluster::node::connect_direct(&config, manager()) {
                Ok(n) => n,
                Err(e) => return (seen, Err(e), None),
            };
            let ended = loop {
                match node.next_frame(&mut scene) {
                    Ok(Some(info)) => {
                        if let Err(e) = node.swap(info.frame, NodeStats::default()) {
                            break Err(e);
                        }
                        seen.push((info.frame, scene_hash(&scene), shared(&node.manager)));
                    }
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
            };
            stats = node.datagram_stats();
            ended
        } else {
            let (mut session, mut swap) = match lockstep_cluster::node::connect(&config, manager())
            {
                Ok(s) => s,
                Err(e) => return (seen, Err(e), None),
            };
            loop {
                match session.next_frame(&mut scene) {
                    Ok(Some(info)) => match swap.swap(info.frame, NodeStats::default()) {
                        Ok(true) => {
                            seen.push((info.frame, scene_hash(&scene), shared(&session.manager)))
                        }
                        Ok(false) => {}
                        Err(e) => break Err(e),
                    },
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
            }
        };
        (seen, result, stats)
    })
}

fn world() -> (Scene, Vec<lockstep_scene::NodeId>) {
    let mut scene = Scene::new();
    let cube = scene.add_mesh(Mesh::cube(0.2));
    let mat = scene.add_material(Material::lit(Color::WHITE)).unwrap();
    // Enough boxes that a frame takes several datagrams.
    let boxes = (0..400)
        .map(|i| {
            scene
                .add(Node::mesh(cube, mat).named(format!("b{i}")), None)
                .unwrap()
        })
        .collect();
    (scene, boxes)
}

/// Runs `frames` frames pipelined two deep, with `late` joining at frame 100; returns what
/// each node presented and what the master expected.
type Run = (
    lockstep_cluster::MulticastStats,
    Vec<(u64, u64, u64)>,
    Vec<(&'static str, NodeRun)>,
    u64,
);

fn run(loss: f64, frames: u64, port: u16) -> Run {
    let mut m = master(&["a", "b", "c", "late"], loss, port);
    let addr = m.local_addr();
    let early: Vec<_> = [("a", false), ("b", false), ("c", true)]
        .into_iter()
        .map(|(n, direct)| (n, spawn_node(n, addr, direct)))
        .collect();
    let first: Vec<String> = ["a", "b", "c"].map(String::from).into();
    m.wait_for_unless(&first, Duration::from_secs(10), &Default::default())
        .unwrap();
    let (mut scene, boxes) = world();
    let mut expected = Vec::new();
    let mut late = None;
    let mut in_step = None;
    for frame in 0..frames {
        if frame == 100 {
            late = Some(spawn_node("late", addr, false));
        }
        for (i, b) in boxes.iter().enumerate() {
            let a = frame as f32 * 0.05 + i as f32;
            scene
                .set_transform(
                    *b,
                    Transform::from_translation(Vec3::new(a.cos(), a.sin(), 0.0)),
                )
                .unwrap();
        }
        m.manager.get_mut::<Shared<u64>>().unwrap().set(frame * 3);
        let info = FrameInfo {
            frame,
            time: frame as f64 / 60.0,
            dt: 1.0 / 60.0,
        };
        let report = m.send_frame(&info, &scene).unwrap();
        assert_eq!(report.dropped, [], "frame {frame}");
        if report.joined.iter().any(|n| n == "late") {
            in_step = report.swapped;
        }
        expected.push((frame, scene_hash(&scene), frame * 3));
    }
    while let Some(f) = m.in_flight() {
        let mut report = Default::default();
        m.swap(f, &scene, &mut report).unwrap();
        assert_eq!(report.dropped, []);
    }
    assert_eq!(m.in_step(), ["a", "b", "c", "late"]);
    let stats = m.multicast_stats().unwrap();
    m.shutdown("test over");
    let mut runs: Vec<_> = early
        .into_iter()
        .map(|(n, h)| (n, h.join().unwrap()))
        .collect();
    runs.push(("late", late.unwrap().join().unwrap()));
    let in_step = in_step.expect("the late node got in step");
    (stats, expected, runs, in_step)
}

/// Every node presented every frame with the master's scene; the late one, each frame it
/// presented while catching up and every frame from the one it got in step at.
fn check(expected: &[(u64, u64, u64)], runs: &[(&str, NodeRun)], in_step: u64) {
    for (name, (seen, result, _)) in runs {
        if let Err(e) = result {
            panic!("node {name}: {e}");
        }
        if *name == "late" {
            assert!(in_step >= 100, "{in_step}");
            for s in seen {
                assert_eq!(*s, expected[s.0 as usize], "node {name}");
            }
            let from: Vec<_> = seen.iter().filter(|s| s.0 >= in_step).copied().collect();
            assert_eq!(from[..], expected[in_step as usize..], "node {name}");
        } else {
            assert_eq!(seen[..], expected[..], "node {name}");
        }
    }
}

#[test]
fn every_node_presents_every_frame_sent_once_by_multicast() {
    let (stats, expected, runs, in_step) = run(0.0, 300, free_port());
    check(&expected, &runs, in_step);
    // Two units a frame (the release and the frame), each sent once for all the nodes.
    assert!(stats.units >= 2 * 300 - 2, "{stats:?}");
    assert!(
        stats.datagrams > stats.units,
        "frames of several datagrams: {stats:?}"
    );
}

#[test]
fn datagrams_lost_on_the_way_are_asked_for_and_every_frame_still_arrives_whole() {
    let port = free_port();
    // Someone on the group sends a corrupted copy of every datagram, datagrams of another
    // session and garbage.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let forger = {
        let stop = stop.clone();
        std::thread::spawn(move || forge(port, &stop))
    };
    let (stats, expected, runs, in_step) = run(0.05, 300, port);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let forged = forger.join().unwrap();
    assert!(forged > 100, "{forged}");
    check(&expected, &runs, in_step);
    // The direct node refused what was forged, and asked for what was lost.
    let d = runs
        .iter()
        .find_map(|(name, run)| (*name == "c").then_some(run.2))
        .flatten()
        .expect("the direct node's group stats");
    assert!(d.rejected > 100, "{d:?}");
    assert!(d.naks > 0, "{d:?}");
    assert!(
        stats.resent > 0,
        "lost datagrams were sent again: {stats:?}"
    );
}

/// Joins the group on `port` and answers each of the master's datagrams with an altered
/// copy, one of another session and some garbage, until `stop`; how many it sent.
fn forge(port: u16, stop: &std::sync::atomic::AtomicBool) -> usize {
    let group = Ipv4Addr::new(239, 255, 76, 99);
    let listen = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .unwrap();
    listen.set_reuse_address(true).unwrap();
    listen
        .bind(&SocketAddr::from((group, port)).into())
        .unwrap();
    listen
        .join_multicast_v4(&group, &Ipv4Addr::LOCALHOST)
        .unwrap();
    let listen: std::net::UdpSocket = listen.into();
    listen
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let send = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .unwrap();
    send.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    send.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .unwrap();
    let send: std::net::UdpSocket = send.into();
    let own = send.local_addr().unwrap();
    let to = SocketAddr::from((group, port));
    let mut buf = vec![0u8; 65536];
    let mut sent = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let Ok((n, from)) = listen.recv_from(&mut buf) else {
            continue;
        };
        if from == own || n < 50 {
            continue;
        }
        let mut altered = buf[..n].to_vec();
        altered[n - 1] ^= 0x40;
        let mut other = buf[..n].to_vec();
        other[4] ^= 1;
        for d in [&altered[..], &other[..], b"LKSD not a datagram at all"] {
            if send.send_to(d, to).is_ok() {
                sent += 1;
            }
        }
    }
    sent
}
