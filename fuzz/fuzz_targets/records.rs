//! Arbitrary bytes through `lockstep_wire::fuzzing::decode_records`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    lockstep_wire::fuzzing::decode_records(data);
});
