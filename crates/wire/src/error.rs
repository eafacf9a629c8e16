/// Everything that can be wrong with bytes or messages from a peer. Each ends that peer's
/// connection, never the process.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The length prefix announces more than the limit allows.
    #[error("frame of {len} bytes exceeds the limit of {limit} bytes")]
    Oversized {
        /// Announced length.
        len: usize,
        /// Limit in force.
        limit: usize,
    },
    /// The connection ended in the middle of a frame.
    #[error("connection closed in the middle of a frame ({buffered} bytes of it received)")]
    Truncated {
        /// Bytes of the unfinished frame received.
        buffered: usize,
    },
    /// The bytes of a frame are not a valid message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The peer does not speak lockstep.
    #[error("not a lockstep peer (bad magic {0:02x?})")]
    BadMagic([u8; 4]),
    /// The peer speaks another protocol version.
    #[error("protocol version {theirs} is not supported (this side speaks {ours})")]
    VersionMismatch {
        /// Ours.
        ours: u16,
        /// Theirs.
        theirs: u16,
    },
    /// The peer proved the key but belongs to another cluster (only a key holder is told).
    #[error("cluster '{theirs}' is not the cluster served here ('{ours}')")]
    ClusterMismatch {
        /// Theirs, made printable.
        theirs: String,
        /// Ours, made printable.
        ours: String,
    },
    /// The peer could not prove it knows the cluster key.
    #[error("authentication failed: {0}")]
    AuthFailed(&'static str),
    /// The peer refused us, with its reason.
    #[error("refused by peer: {0}")]
    Refused(String),
    /// The peer has no room for a handshake now; trying again later may succeed.
    #[error("busy: {0}")]
    Busy(String),
    /// A message arrived where the protocol does not allow it.
    #[error("unexpected {got} message while {expected}")]
    Unexpected {
        /// What the state machine was waiting for.
        expected: &'static str,
        /// The message's kind.
        got: &'static str,
    },
    /// A record after the handshake is not the one the peer sealed next: forged, altered,
    /// replayed, reordered, or one left out before it.
    #[error("record {record} failed authentication (forged, altered, replayed or out of order)")]
    Unauthentic {
        /// The number of the record expected (counted from 0 after the handshake).
        record: u64,
    },
    /// A value in a message is over its limit (checked before allocating for it).
    #[error("{what} {value} exceeds the limit of {limit}")]
    OverLimit {
        /// What was counted.
        what: &'static str,
        /// The value received.
        value: u64,
        /// The limit.
        limit: u64,
    },
    /// The cluster key is unusable.
    #[error("cluster key: {0}")]
    Key(String),
}

impl WireError {
    /// A short name of the error's kind, for counting refusals.
    pub fn kind(&self) -> &'static str {
        match self {
            WireError::Oversized { .. } | WireError::OverLimit { .. } => "over a limit",
            WireError::Truncated { .. } => "cut off",
            WireError::Malformed(_) | WireError::Unexpected { .. } => "malformed",
            WireError::BadMagic(_) => "not a lockstep peer",
            WireError::VersionMismatch { .. } => "another protocol version",
            WireError::ClusterMismatch { .. } => "another cluster",
            WireError::AuthFailed(_) => "wrong cluster key",
            WireError::Refused(_) => "refused by the peer",
            WireError::Busy(_) => "busy",
            WireError::Unauthentic { .. } => "forged record",
            WireError::Key(_) => "key",
        }
    }
}

/// Longest peer-supplied text kept in an error or a log line (long enough for a refusal that
/// lists what differs).
const PRINTABLE_MAX: usize = 1000;

/// A peer-supplied string made safe to log and show: control characters (newlines, NUL,
/// escape sequences) escaped and the length capped, so no peer can forge or garble a log
/// line.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(PRINTABLE_MAX));
    for (i, c) in s.chars().enumerate() {
        if i == PRINTABLE_MAX {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn printable_escapes_control_characters_and_caps_the_length() {
        assert_eq!(
            super::printable("cave\nINFO forged\0\u{1b}[31m"),
            "cave\\nINFO forged\\u{0}\\u{1b}[31m"
        );
        let long = "x".repeat(5000);
        assert_eq!(super::printable(&long).chars().count(), 1001);
        assert_eq!(super::printable("wall-1 ünï"), "wall-1 ünï");
    }
}
