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
    /// The peer belongs to another cluster.
    #[error("cluster '{theirs}' does not match this cluster '{ours}'")]
    ClusterMismatch {
        /// Ours.
        ours: String,
        /// Theirs.
        theirs: String,
    },
    /// The peer could not prove it knows the cluster key.
    #[error("authentication failed: {0}")]
    AuthFailed(&'static str),
    /// The peer refused us, with its reason.
    #[error("refused by peer: {0}")]
    Refused(String),
    /// A message arrived where the protocol does not allow it.
    #[error("unexpected {got} message while {expected}")]
    Unexpected {
        /// What the state machine was waiting for.
        expected: &'static str,
        /// The message's kind.
        got: &'static str,
    },
    /// The cluster key is unusable.
    #[error("cluster key: {0}")]
    Key(String),
}
