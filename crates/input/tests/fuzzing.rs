//! What the VRPN client does with a server's bytes never panics: the `vrpn` fuzz target's
//! seeds, then thousands of mutations of a valid server stream.

use lockstep_input::fuzzing::{follow_stream, sample_stream};
use lockstep_wire::fuzzing::replay_and_mutate;

#[test]
fn vrpn_streams_mutated_never_panic() {
    let stream = sample_stream();
    assert_eq!(
        follow_stream(&stream),
        4,
        "the valid stream gives its four reports"
    );
    replay_and_mutate("vrpn", &stream, 0x7a9e_11c3, 10_000, follow_stream);
}
