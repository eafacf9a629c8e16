//! A relay on the path between a node and the master, as an attacker without the key would
//! run one: it passes the handshake through untouched, then tampers with the session. Every
//! tampering must end the connection with its reason, and the master must never count the
//! node as in step on the relay's word.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lockstep_cluster::plugins::SceneReplication;
use lockstep_cluster::{
    ClusterError, ClusterManager, FailurePolicy, FrameInfo, Master, MasterConfig, NodeConfig,
};
use lockstep_scene::{Color, Material, Mesh, Node, Scene, Transform};
use lockstep_wire::{ClusterKey, Decoder, Message, NodeStats, RECORD_HEADER, encode};

fn key() -> ClusterKey {
    ClusterKey::new(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap()
}

fn manager() -> ClusterManager {
    let mut m = ClusterManager::new();
    m.register(SceneReplication::default()).unwrap();
    m
}

/// What the relay does once the session is established.
#[derive(Clone, Copy, Debug)]
enum Attack {
    /// Slips a `Shutdown` of its own to the node before the master's record `at`.
    InjectShutdown { at: usize },
    /// From the node's record `at` on, drops what the node says and answers `SwapReady` in
    /// its place.
    ForgeSwapReady { at: usize },
    /// Sends the master's record `at - 2` again in place of record `at`.
    Replay { at: usize },
    /// Flips one bit in the payload of the master's record `at`.
    FlipBit { at: usize },
}

/// Reads one unit: a bare frame (the handshake) or a whole sealed record.
fn read_unit(from: &mut TcpStream, sealed: bool) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    from.read_exact(&mut len).ok()?;
    let rest = u32::from_le_bytes(len) as usize + if sealed { RECORD_HEADER - 4 } else { 0 };
    let mut unit = len.to_vec();
    unit.resize(4 + rest, 0);
    from.read_exact(&mut unit[4..]).ok()?;
    Some(unit)
}

/// A record holding `msg`, with a tag the relay had to make up (it has no key).
fn forged(msg: &Message<'_>) -> Vec<u8> {
    let frame = encode(msg).unwrap();
    let mut record = (frame.len() as u32).to_le_bytes().to_vec();
    record.extend_from_slice(&[0xa5; RECORD_HEADER - 4]);
    record.extend_from_slice(&frame);
    record
}

/// The first message in a record's payload.
fn first_message(record: &[u8]) -> Option<Message<'_>> {
    let mut d = Decoder::new(1 << 24);
    d.push(&record[RECORD_HEADER..]);
    d.next_message().ok().flatten().map(|m| match m {
        // Only the kinds the relay needs, owned from the record's bytes.
        Message::SwapReady { frame, stats } => Message::SwapReady { frame, stats },
        _ => Message::StatusRequest,
    })
}

/// Pumps one direction: `bare` handshake frames untouched, then records through `tamper`,
/// which returns what to send in place of record `n`.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    bare: usize,
    mut tamper: impl FnMut(usize, Vec<u8>) -> Vec<Vec<u8>> + Send + 'static,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for _ in 0..bare {
            let Some(unit) = read_unit(&mut from, false) else {
                return;
            };
            if to.write_all(&unit).is_err() {
                return;
            }
        }
        let mut n = 0;
        while let Some(record) = read_unit(&mut from, true) {
            for out in tamper(n, record) {
                if to.write_all(&out).is_err() {
                    return;
                }
            }
            n += 1;
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
    })
}

/// Listens for one node and relays it to the master, attacking as told.
fn relay(master: SocketAddr, attack: Attack) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (node, _) = listener.accept().unwrap();
        let upstream = TcpStream::connect(master).unwrap();
        let (node_r, master_r) = (node.try_clone().unwrap(), upstream.try_clone().unwrap());
        let mut earlier: Vec<Vec<u8>> = Vec::new();
        // Master → node: one bare frame (Challenge), then records.
        let down = pump(master_r, node, 1, move |n, mut record| {
            earlier.push(record.clone());
            match attack {
                Attack::InjectShutdown { at } if n == at => vec![
                    forged(&Message::Shutdown {
                        reason: "the relay says so",
                    }),
                    record,
                ],
                Attack::Replay { at } if n == at => vec![earlier[n - 2].clone()],
                Attack::FlipBit { at } if n == at => {
                    let last = record.len() - 1;
                    record[RECORD_HEADER + (last - RECORD_HEADER) / 2] ^= 0x08;
                    vec![record]
                }
                _ => vec![record],
            }
        });
        // Node → master: two bare frames (Hello, Proof), then records.
        let up = pump(node_r, upstream, 2, move |n, record| match attack {
            Attack::ForgeSwapReady { at } if n >= at => match first_message(&record) {
                Some(Message::SwapReady { frame, .. }) => vec![forged(&Message::SwapReady {
                    frame,
                    stats: NodeStats::default(),
                })],
                _ => Vec::new(),
            },
            _ => vec![record],
        });
        let _ = (down.join(), up.join());
    });
    addr
}

/// How the node's session ended, and the frames it applied.
type NodeEnd = (Result<(), ClusterError>, Vec<u64>);

fn spawn_node(via: SocketAddr) -> JoinHandle<NodeEnd> {
    std::thread::spawn(move || {
        let config =
            NodeConfig::new("test", key(), "a", via).connect_timeout(Duration::from_secs(5));
        let (mut session, mut swap) = match lockstep_cluster::node::connect(&config, manager()) {
            Ok(s) => s,
            Err(e) => return (Err(e), Vec::new()),
        };
        let mut scene = Scene::new();
        let mut frames = Vec::new();
        let end = loop {
            match session.next_frame(&mut scene) {
                Ok(Some(info)) => {
                    frames.push(info.frame);
                    if let Err(e) = swap.swap(info.frame, NodeStats::default()) {
                        break Err(e);
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        (end, frames)
    })
}

/// What the master saw: why node `a` was dropped (if it was), and whether any frame after
/// that counted it in step.
struct Seen {
    dropped: Option<String>,
    in_step_after_drop: bool,
    frames: u64,
}

/// Runs a master for node `a` reached through a relay attacking as `attack`, until the node
/// is dropped or its session ends (or 30 s pass).
fn attacked(attack: Attack) -> (Seen, NodeEnd) {
    let config = MasterConfig {
        swap_deadline: Duration::from_secs(2),
        load_deadline: Duration::from_secs(5),
        policy: FailurePolicy::Drop,
        pipeline_depth: 1,
        ..MasterConfig::new(
            "test",
            key(),
            "127.0.0.1:0".parse().unwrap(),
            vec!["a".into()],
        )
    };
    let mut m = Master::start(config, manager()).unwrap();
    let via = relay(m.local_addr(), attack);
    let node = spawn_node(via);
    m.wait_for_nodes(Duration::from_secs(10)).unwrap();
    let mut scene = Scene::new();
    let cube = scene.add_mesh(Mesh::cube(0.5));
    let mat = scene.add_material(Material::lit(Color::WHITE)).unwrap();
    let id = scene.add(Node::mesh(cube, mat), None).unwrap();
    let mut seen = Seen {
        dropped: None,
        in_step_after_drop: false,
        frames: 0,
    };
    let until = Instant::now() + Duration::from_secs(30);
    let mut frame = 0;
    while Instant::now() < until && (seen.dropped.is_none() || !node.is_finished()) {
        scene
            .set_transform(
                id,
                Transform::from_translation(glam::Vec3::X * frame as f32),
            )
            .unwrap();
        let info = FrameInfo {
            frame,
            time: frame as f64 / 60.0,
            dt: 1.0 / 60.0,
        };
        let mut report = m.send_frame(&info, &scene).unwrap();
        m.swap(frame, &scene, &mut report).unwrap();
        if seen.dropped.is_some() && report.presented.iter().any(|n| n == "a") {
            seen.in_step_after_drop = true;
        }
        if let Some((_, why)) = report.dropped.iter().find(|(n, _)| n == "a") {
            seen.dropped = Some(why.clone());
            seen.in_step_after_drop |= m.in_step().contains(&"a".to_string());
        }
        frame += 1;
    }
    seen.frames = frame;
    m.shutdown("test over");
    (seen, node.join().unwrap())
}

fn assert_unauthentic(end: &Result<(), ClusterError>, record: u64) {
    match end {
        Err(ClusterError::Wire {
            source: lockstep_wire::WireError::Unauthentic { record: r },
            ..
        }) if *r == record => {}
        other => panic!("the node's session should end at record {record}: {other:?}"),
    }
    let text = end.as_ref().unwrap_err().to_string();
    assert!(
        text.contains(&format!("record {record} failed authentication")),
        "{text}"
    );
}

#[test]
fn an_injected_shutdown_ends_the_nodes_connection_not_the_node_as_told() {
    let (seen, (end, frames)) = attacked(Attack::InjectShutdown { at: 6 });
    // The node did not shut down as told (that would be Ok): it refused the record.
    assert_unauthentic(&end, 6);
    assert!(!frames.is_empty() && frames.len() < 10, "{frames:?}");
    let why = seen.dropped.expect("the master drops the node that left");
    assert!(
        !seen.in_step_after_drop,
        "dropped at frame {}: {why}",
        seen.frames
    );
}

#[test]
fn a_forged_swap_ready_is_refused_and_the_absent_node_is_not_in_step() {
    let (seen, (_, frames)) = attacked(Attack::ForgeSwapReady { at: 3 });
    let why = seen.dropped.expect("the master drops the node");
    assert!(
        why.contains("record 3 failed authentication"),
        "dropped for: {why}"
    );
    assert!(!seen.in_step_after_drop, "counted in step after: {why}");
    // The relay swallowed what the node said from its fourth record on: the master never
    // had more than three frames' answers from it.
    assert!(frames.len() <= 6, "{frames:?}");
}

#[test]
fn a_replayed_frame_ends_the_connection() {
    let (seen, (end, _)) = attacked(Attack::Replay { at: 8 });
    assert_unauthentic(&end, 8);
    assert!(seen.dropped.is_some() && !seen.in_step_after_drop);
}

#[test]
fn one_flipped_bit_ends_the_connection() {
    let (seen, (end, _)) = attacked(Attack::FlipBit { at: 7 });
    assert_unauthentic(&end, 7);
    assert!(seen.dropped.is_some() && !seen.in_step_after_drop);
}
