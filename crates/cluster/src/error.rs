use crate::PluginError;

/// What can end a cluster session (or one node's part in it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// A socket failed.
    #[error("{peer}: {what}: {source}")]
    Io {
        /// Address or node name.
        peer: String,
        /// What was being done.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The peer broke the protocol or failed the handshake.
    #[error("{peer}: {source}")]
    Wire {
        /// Address or node name.
        peer: String,
        /// The protocol error.
        #[source]
        source: lockstep_wire::WireError,
    },
    /// The peer closed the connection.
    #[error("{peer} closed the connection{detail}")]
    Closed {
        /// Address or node name.
        peer: String,
        /// Extra detail (e.g. a cut-off frame).
        detail: String,
    },
    /// Nothing arrived in time.
    #[error("{peer}: {what}")]
    Timeout {
        /// Address or node name.
        peer: String,
        /// What did not arrive.
        what: String,
    },
    /// A plugin could not write or apply its block.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The cluster cannot go on (e.g. a node failed under the `stop` policy).
    #[error("{0}")]
    Stopped(String),
    /// The master rejected a request as a whole, for these reasons.
    #[error("rejected:\n  - {}", .0.join("\n  - "))]
    Rejected(Vec<String>),
}
