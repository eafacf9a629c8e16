/*!
How a process started by a daemon tells the launcher where it is: one line on stderr,
`lockstep-state: ready` or `lockstep-state: running`, printed only when the daemon started it
(it sets [`LAUNCHED_ENV`]). The launcher shows these as the node's state instead of as log
lines, so a node's progress needs no second channel.
*/

/// Set (to `1`) in the environment of every process a daemon starts.
pub const LAUNCHED_ENV: &str = "LOCKSTEP_LAUNCHED";

const PREFIX: &str = "lockstep-state: ";

/// Where a launched process is, as the launcher's table shows it; later states compare
/// greater.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NodeState {
    /// Started; not yet in touch with the cluster.
    Starting,
    /// Joined (a node) or listening for its nodes (the master).
    Ready,
    /// Frames flow.
    Running,
    /// Ended with exit code 0.
    Done,
    /// Ended otherwise, or could not start.
    Failed,
    /// Its daemon went away: its fate is unknown.
    Lost,
}

impl NodeState {
    /// The word shown in the table.
    pub fn word(self) -> &'static str {
        match self {
            NodeState::Starting => "starting",
            NodeState::Ready => "ready",
            NodeState::Running => "running",
            NodeState::Done => "done",
            NodeState::Failed => "failed",
            NodeState::Lost => "lost",
        }
    }

    /// Whether the process has ended (or is out of reach).
    pub fn is_final(self) -> bool {
        matches!(self, NodeState::Done | NodeState::Failed | NodeState::Lost)
    }
}

/// Prints `state` for the launcher, if a daemon started this process. Only `Ready` and
/// `Running` are announced; the others the daemon observes itself.
pub fn announce(state: NodeState) {
    if std::env::var_os(LAUNCHED_ENV).is_some() {
        eprintln!("{PREFIX}{}", state.word());
    }
}

/// The state a log line announces, if it is a state line.
pub fn parse(line: &str) -> Option<NodeState> {
    match line.strip_prefix(PREFIX)?.trim() {
        "ready" => Some(NodeState::Ready),
        "running" => Some(NodeState::Running),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_lines_are_recognised_and_nothing_else() {
        assert_eq!(parse("lockstep-state: ready"), Some(NodeState::Ready));
        assert_eq!(parse("lockstep-state: running\r"), Some(NodeState::Running));
        assert_eq!(parse("lockstep-state: done"), None);
        assert_eq!(parse("node 'a' joined cluster 'cave'"), None);
    }
}
