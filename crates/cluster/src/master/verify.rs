/*!
Verification: each node's reported scene digest against the master's for that frame.
*/
use lockstep_wire::NodeStats;

use super::Master;
use super::barrier::SwapReport;

/// A node whose reported state differs from the master's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The node.
    pub node: String,
    /// The frame.
    pub frame: u64,
    /// The master's hash of that frame's state.
    pub expected: u64,
    /// The node's.
    pub got: u64,
}

/// With `verify`: compares a node's reported state with the master's.
pub(super) fn check_state(
    node: &str,
    frame: u64,
    expected: Option<u64>,
    stats: &NodeStats,
    report: &mut SwapReport,
) {
    let (Some(expected), Some(got)) = (expected, stats.state) else {
        return;
    };
    report.verified += 1;
    if expected != got {
        tracing::warn!(
            "node '{node}' shows another state than the master at frame {frame}: {got:016x}, not {expected:016x}"
        );
        report.mismatches.push(Mismatch {
            node: node.to_string(),
            frame,
            expected,
            got,
        });
    }
}

impl Master {
    /// With `verify`: the master's scene digest of frame `frame`, if it is one of the last few
    /// sent (so a caller that also records digests need not hash the scene a second time).
    pub fn digest_of(&self, frame: u64) -> Option<u64> {
        self.hashes.iter().find(|h| h.0 == frame).map(|h| h.1)
    }
}
