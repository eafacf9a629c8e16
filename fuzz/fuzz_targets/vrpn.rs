//! Arbitrary bytes through `lockstep_input::fuzzing::follow_stream`: a VRPN server's stream
//! as the client reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    lockstep_input::fuzzing::follow_stream(data);
});
