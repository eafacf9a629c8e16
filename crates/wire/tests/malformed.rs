//! Malformed input never panics: the seed corpus of the fuzz target, then thousands of
//! mutations of a valid stream, go through the decoder and both handshake sides.

use lockstep_wire::fuzzing::{corpus, decode_records, decode_stream, replay_and_mutate};
use lockstep_wire::{Hook, Message, NodeStats, encode_into};

fn valid_stream() -> (Vec<u8>, usize) {
    let msgs = [
        Message::Hello {
            magic: lockstep_wire::MAGIC,
            version: 1,
            cluster: "fuzz",
            node: "node",
            nonce: [3; 32],
        },
        Message::Proof { proof: [4; 32] },
        Message::FrameBegin {
            frame: 1,
            time: 0.5,
            dt: 0.016,
        },
        Message::Block {
            plugin: 2,
            bytes: &[1, 2, 3, 4, 5],
        },
        Message::EndBlock {
            frame: 1,
            hook: Hook::PreDraw,
        },
        Message::SwapReady {
            frame: 1,
            stats: NodeStats::default(),
        },
        Message::SwapNow {
            frame: 1,
            head: None,
        },
        Message::Shutdown { reason: "done" },
    ];
    let mut out = Vec::new();
    for m in &msgs {
        encode_into(m, &mut out).unwrap();
    }
    (out, msgs.len())
}

#[test]
fn the_seed_corpus_replays_without_panic() {
    let dir = corpus("decode");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        decode_stream(&bytes);
        n += 1;
    }
    assert!(n >= 10, "the corpus has {n} seeds");
    // The seeds decode as intended: a valid Hello is one message, garbage is none.
    assert_eq!(
        decode_stream(&std::fs::read(dir.join("hello.bin")).unwrap()),
        1
    );
    assert_eq!(
        decode_stream(&std::fs::read(dir.join("heartbeats.bin")).unwrap()),
        50
    );
    assert_eq!(
        decode_stream(&std::fs::read(dir.join("oversized_length.bin")).unwrap()),
        0
    );
    assert_eq!(
        decode_stream(&std::fs::read(dir.join("unknown_variant.bin")).unwrap()),
        0
    );
}

#[test]
fn twenty_thousand_mutations_never_panic() {
    let (stream, count) = valid_stream();
    assert_eq!(
        decode_stream(&stream),
        count,
        "the valid stream decodes whole"
    );
    replay_and_mutate("decode", &stream, 0x1ce_b00c, 20_000, decode_stream);
}

#[test]
fn sealed_records_forged_or_genuine_never_panic() {
    let (stream, count) = valid_stream();
    // Unsealed, nothing decodes (no record's tag holds); sealed, every frame does.
    assert_eq!(decode_records(&stream), count);
    replay_and_mutate("records", &stream, 0x005e_a1ed, 5_000, decode_records);
}

/// Writes the valid stream as the records target's seed: `cargo test -p lockstep-wire --test
/// malformed -- --ignored`.
#[test]
#[ignore]
fn write_seed() {
    let dir = corpus("records");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("session.bin"), valid_stream().0).unwrap();
}
