//! What a node does with a master's bytes never panics: the `frames` fuzz target's seeds,
//! then thousands of mutations of a valid session stream, through the node's frame assembly
//! and scene replication.

use lockstep_cluster::fuzzing::apply_stream;
use lockstep_cluster::plugins::SCENE_PLUGIN;
use lockstep_cluster::write_changes;
use lockstep_scene::{Color, Material, Mesh, Node, Scene};
use lockstep_wire::fuzzing::{corpus, replay_and_mutate};
use lockstep_wire::{Hook, Message, encode_into};

fn valid_stream() -> (Vec<u8>, usize) {
    let mut scene = Scene::new();
    let cube = scene.add_mesh(Mesh::cube(0.5));
    let mat = scene.add_material(Material::lit(Color::WHITE)).unwrap();
    let root = scene.add(Node::empty().named("root"), None).unwrap();
    scene.add(Node::mesh(cube, mat), Some(root)).unwrap();
    let mut changes = Vec::new();
    write_changes(&Scene::new(), &scene, &mut changes).unwrap();
    let mut out = Vec::new();
    let frames = 3;
    for frame in 0..frames {
        let block = if frame == 0 { &changes[..] } else { &[0u8][..] };
        for m in [
            Message::FrameBegin {
                frame,
                time: frame as f64,
                dt: 1.0,
            },
            Message::EndBlock {
                frame,
                hook: Hook::FrameStart,
            },
            Message::Block {
                plugin: SCENE_PLUGIN,
                bytes: block,
            },
            Message::EndBlock {
                frame,
                hook: Hook::PreDraw,
            },
            Message::SwapNow { frame, head: None },
            Message::EndBlock {
                frame,
                hook: Hook::PostFrame,
            },
        ] {
            encode_into(&m, &mut out).unwrap();
        }
    }
    (out, frames as usize)
}

#[test]
fn session_streams_mutated_never_panic() {
    let (stream, frames) = valid_stream();
    assert_eq!(apply_stream(&stream), frames, "the valid stream assembles");
    replay_and_mutate("frames", &stream, 0x0f4a_03e5, 10_000, apply_stream);
}

/// Writes the valid stream as the fuzz target's seed: `cargo test -p lockstep-cluster --test
/// fuzzing -- --ignored`.
#[test]
#[ignore]
fn write_seed() {
    std::fs::create_dir_all(corpus("frames")).unwrap();
    std::fs::write(corpus("frames").join("frames.bin"), valid_stream().0).unwrap();
}
