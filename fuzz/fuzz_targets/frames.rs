//! Arbitrary bytes through `lockstep_cluster::fuzzing::apply_stream`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    lockstep_cluster::fuzzing::apply_stream(data);
});
