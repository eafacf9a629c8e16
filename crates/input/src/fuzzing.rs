//! Entry points for the `vrpn` fuzz target (fuzz/), shared with the stable tests that replay
//! its seeds and mutations.
use std::time::Instant;

use crate::vrpn::session::{Received, Session};

/// Feeds `data` to a VRPN client session as a server's bytes, in pieces of a size the first
/// byte chooses, until it ends or the session refuses the stream; returns the reports it
/// gave. Never panics.
pub fn follow_stream(data: &[u8]) -> usize {
    let Some((&piece, rest)) = data.split_first() else {
        return 0;
    };
    let piece = usize::from(piece).max(1);
    let now = Instant::now();
    let mut s = Session::new("Tracker0", now);
    let mut out = Vec::new();
    let mut reports = 0;
    for chunk in rest.chunks(piece) {
        if s.receive(chunk, now, &mut out).is_err() {
            break;
        }
        reports += out
            .drain(..)
            .filter(|r| matches!(r, Received::Report(..)))
            .count();
    }
    reports
}

/// A valid server stream: its cookie, descriptions, and reports of every kind, led by the
/// piece size byte [`follow_stream`] reads (the fuzz target's seed).
pub fn sample_stream() -> Vec<u8> {
    use crate::vrpn::codec::{self, SENDER_DESCRIPTION, Stamp, TYPE_DESCRIPTION};
    use crate::vrpn::session::{ANALOG_CHANNEL, BUTTON_CHANGE, BUTTON_STATES, POS_QUAT};
    let mut out = vec![7];
    out.extend_from_slice(&codec::cookie());
    codec::encode_description(&mut out, SENDER_DESCRIPTION, 0, "Tracker0");
    for (i, t) in [POS_QUAT, BUTTON_CHANGE, BUTTON_STATES, ANALOG_CHANNEL]
        .iter()
        .enumerate()
    {
        codec::encode_description(&mut out, TYPE_DESCRIPTION, i as i32, t);
    }
    let t = Stamp { sec: 1, usec: 2 };
    let mut pose = vec![0, 0, 0, 1, 0, 0, 0, 1];
    for x in [0.1f64, 1.7, -0.3, 0.0, 0.0, 0.0, 1.0] {
        pose.extend_from_slice(&x.to_be_bytes());
    }
    codec::encode(&mut out, t, 0, 0, 1, &pose);
    codec::encode(&mut out, t, 0, 1, 2, &[0, 0, 0, 2, 0, 0, 0, 1]);
    codec::encode(&mut out, t, 0, 2, 3, &[0, 0, 0, 1, 0, 0, 0, 1]);
    let mut analog = 1f64.to_be_bytes().to_vec();
    analog.extend_from_slice(&0.25f64.to_be_bytes());
    codec::encode(&mut out, t, 0, 3, 4, &analog);
    out
}
