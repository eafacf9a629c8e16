//! What a node does with multicast datagrams never panics and never asks past its limits:
//! the `datagrams` fuzz target's seed, then thousands of mutations of it.

use lockstep_wire::fuzzing::{datagrams, replay_and_mutate, sample_datagrams};

#[test]
fn datagrams_mutated_never_panic() {
    let sample = sample_datagrams();
    assert_eq!(
        datagrams(&sample),
        3,
        "the valid stream gives its three frames"
    );
    replay_and_mutate("datagrams", &sample, 0x0d47_a6a3, 10_000, datagrams);
}
