//! Arbitrary bytes through `lockstep_launch::fuzzing::decode_launch`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    lockstep_launch::fuzzing::decode_launch(data);
});
