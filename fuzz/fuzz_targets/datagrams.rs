//! Arbitrary bytes through `lockstep_wire::fuzzing::datagrams`: multicast datagrams as a node
//! reassembles them, most sealed so that the checks behind the tag are reached.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    lockstep_wire::fuzzing::datagrams(data);
});
