//! Arbitrary bytes through the frame decoder and both handshake state machines.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    lockstep_wire::fuzzing::decode_stream(data);
});
