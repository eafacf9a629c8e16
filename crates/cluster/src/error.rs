use std::sync::Arc;

use crate::PluginError;

/// What can end a cluster session (or one node's part in it): one variant per cause, so
/// callers decide by kind — a node rejoins only after [`ClusterError::is_connection_lost`] —
/// never by the message's text.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The peer could not be reached at all within the time given (no connection was made).
    #[error("cannot reach {peer} within {within:?}: {source}")]
    Unreachable {
        /// Address.
        peer: String,
        /// How long it was tried.
        within: std::time::Duration,
        /// The last attempt's error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// A socket operation on an open connection failed: the connection is lost.
    #[error("{peer}: {what}: {source}")]
    Io {
        /// Address or node name.
        peer: String,
        /// What was being done.
        what: &'static str,
        /// The OS error (shared, so the error can go to both of a node's threads).
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The peer closed the connection.
    #[error("{peer} closed the connection{detail}")]
    Closed {
        /// Address or node name.
        peer: String,
        /// Extra detail (e.g. a cut-off frame).
        detail: String,
    },
    /// The peer went silent: nothing arrived within the timeout.
    #[error("{peer}: {what}")]
    Timeout {
        /// Address or node name.
        peer: String,
        /// What did not arrive.
        what: String,
    },
    /// The peer's bytes are not the protocol (malformed, oversized), or the handshake failed.
    #[error("{peer}: {source}")]
    Wire {
        /// Address or node name.
        peer: String,
        /// The protocol error.
        #[source]
        source: lockstep_wire::WireError,
    },
    /// The peer's messages broke the protocol's order (a frame out of sequence, a swap of a
    /// frame never sent, an unexpected message).
    #[error("{peer}: protocol violation: {what}")]
    Protocol {
        /// Address or node name.
        peer: String,
        /// What was wrong.
        what: String,
    },
    /// A session or request was refused, with the reason.
    #[error("{peer}: refused: {reason}")]
    Refused {
        /// Who refused, or who was refused.
        peer: String,
        /// Why.
        reason: String,
    },
    /// A plugin could not write or apply its block.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The cluster file the master switched to cannot be used by this process (every
    /// problem, with its file and line).
    #[error("the master's new cluster file does not load here:\n{0}")]
    Config(lockstep_display::ConfigErrors),
    /// The master ended the session while this node still waited for a frame's swap.
    #[error("the master shut the cluster down: {0}")]
    Shutdown(String),
    /// Nodes that had to join did not, in time.
    #[error("{0}")]
    NotJoined(String),
    /// The failure policy ended the cluster (a node failed under `stop`).
    #[error("{0}")]
    Policy(String),
    /// Given up because the caller asked to stop.
    #[error("{0}")]
    Interrupted(String),
    /// The session's API was used out of order (a bug in the caller, not the network).
    #[error("{0}")]
    Misuse(String),
    /// A thread of the session failed.
    #[error("{0}")]
    Internal(String),
    /// The master rejected a request as a whole, for these reasons.
    #[error("rejected:\n  - {}", .0.join("\n  - "))]
    Rejected(Vec<String>),
}

impl ClusterError {
    /// The connection to the peer is gone — it closed, broke, or went silent — rather than
    /// the peer or this side doing something wrong. The only kind after which a node may
    /// rejoin: the master dropping a node closes its connection, so that is this kind too.
    pub fn is_connection_lost(&self) -> bool {
        matches!(
            self,
            ClusterError::Io { .. } | ClusterError::Closed { .. } | ClusterError::Timeout { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lost_connection_allows_a_rejoin() {
        let io = ClusterError::Io {
            peer: "master".into(),
            what: "cannot receive",
            source: Arc::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
        };
        let closed = ClusterError::Closed {
            peer: "master".into(),
            detail: String::new(),
        };
        let silent = ClusterError::Timeout {
            peer: "master".into(),
            what: "nothing for 2 s".into(),
        };
        for e in [&io, &closed, &silent] {
            assert!(e.is_connection_lost(), "{e}");
        }
        let config = ClusterError::Config(lockstep_display::ConfigErrors(Vec::new()));
        let protocol = ClusterError::Protocol {
            peer: "master".into(),
            what: "frame 3 after frame 5".into(),
        };
        let plugin = ClusterError::Plugin(PluginError {
            plugin: "scene",
            reason: "out of step".into(),
        });
        let wire = ClusterError::Wire {
            peer: "master".into(),
            source: lockstep_wire::WireError::Malformed("x".into()),
        };
        for e in [&config, &protocol, &plugin, &wire] {
            assert!(!e.is_connection_lost(), "{e}");
        }
        // A node's two threads each get the error the reader thread saw.
        assert_eq!(io.clone().to_string(), io.to_string());
    }
}
