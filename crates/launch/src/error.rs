/// Everything that can go wrong between a launcher and a daemon, naming the peer.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// A socket call failed.
    #[error("{peer}: {what}: {source}")]
    Io {
        /// The other side.
        peer: String,
        /// What was being done.
        what: &'static str,
        /// The system's error.
        source: std::io::Error,
    },
    /// The peer broke the protocol or refused the handshake.
    #[error("{peer}: {source}")]
    Wire {
        /// The other side.
        peer: String,
        /// What was wrong.
        source: lockstep_wire::WireError,
    },
    /// The peer closed the connection.
    #[error("{0}: connection closed")]
    Closed(String),
    /// The peer was silent for longer than allowed.
    #[error("{0}: no answer in time")]
    Timeout(String),
    /// The daemon refused a request.
    #[error("{peer}: refused: {reason}")]
    Refused {
        /// The daemon.
        peer: String,
        /// Its reason.
        reason: String,
    },
    /// The daemon answered something the request does not allow.
    #[error("{peer}: unexpected answer {got}")]
    Unexpected {
        /// The daemon.
        peer: String,
        /// What came.
        got: String,
    },
    /// A local file could not be read or written.
    #[error("{path}: {what}: {source}")]
    File {
        /// The file.
        path: String,
        /// What was being done.
        what: &'static str,
        /// The system's error.
        source: std::io::Error,
    },
    /// A configuration file or argument is unusable.
    #[error("{0}")]
    Config(String),
}

impl LaunchError {
    /// What a refused handshake is counted as in the daemon's log.
    pub fn refusal_kind(&self) -> &'static str {
        match self {
            LaunchError::Wire { source, .. } => source.kind(),
            LaunchError::Timeout(_) => "handshake not finished in time",
            LaunchError::Closed(_) | LaunchError::Io { .. } => "closed during the handshake",
            _ => "other",
        }
    }

    pub(crate) fn io(peer: &str, what: &'static str, source: std::io::Error) -> Self {
        LaunchError::Io {
            peer: peer.to_string(),
            what,
            source,
        }
    }

    pub(crate) fn wire(peer: &str, source: lockstep_wire::WireError) -> Self {
        LaunchError::Wire {
            peer: peer.to_string(),
            source,
        }
    }

    pub(crate) fn file(path: &std::path::Path, what: &'static str, source: std::io::Error) -> Self {
        LaunchError::File {
            path: path.display().to_string(),
            what,
            source,
        }
    }
}
