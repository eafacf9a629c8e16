//! The launcher protocol's decoders never panic: the `launch` fuzz target's seeds, then
//! thousands of mutations of a valid request stream, through what a daemon and a launcher
//! decode and check.

use lockstep_launch::fuzzing::decode_launch;
use lockstep_launch::protocol::{FileEntry, Program, Request};
use lockstep_wire::encode_frame_into;
use lockstep_wire::fuzzing::{corpus, replay_and_mutate};

fn valid_stream() -> (Vec<u8>, usize) {
    let requests = [
        Request::Ping,
        Request::Manifest {
            cluster: "cave".into(),
            files: vec![FileEntry {
                path: "models/room.glb".into(),
                digest: [3; 32],
                size: 12,
            }],
        },
        Request::Chunk {
            digest: [3; 32],
            offset: 0,
            bytes: b"glTF........".to_vec(),
        },
        Request::Commit,
        Request::Start {
            cluster: "cave".into(),
            name: "front".into(),
            program: Program::Lockstep("node".into()),
            args: ["--config", "cave.toml", "--hash-out", "/tmp/x"]
                .map(String::from)
                .to_vec(),
            folder: None,
        },
        Request::Stop {
            cluster: "cave".into(),
            names: vec!["front".into()],
        },
        Request::Status,
    ];
    let mut out = Vec::new();
    for r in &requests {
        encode_frame_into(r, &mut out).unwrap();
    }
    (out, requests.len())
}

#[test]
fn requests_and_replies_mutated_never_panic() {
    let (stream, count) = valid_stream();
    assert!(decode_launch(&stream) >= count, "the valid stream decodes");
    replay_and_mutate("launch", &stream, 0x00da_e404, 10_000, decode_launch);
}

/// Writes the valid stream as the fuzz target's seed: `cargo test -p lockstep-launch --test
/// fuzzing -- --ignored`.
#[test]
#[ignore]
fn write_seed() {
    std::fs::create_dir_all(corpus("launch")).unwrap();
    std::fs::write(corpus("launch").join("requests.bin"), valid_stream().0).unwrap();
}
