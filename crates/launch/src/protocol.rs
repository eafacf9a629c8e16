/*!
The launcher protocol: what `lockstep launch` (and `stop`, `status`) asks a daemon, and what
the daemon answers. It runs after the cluster protocol's handshake, with the same framing.

Every request gets exactly one reply, in order ([`Reply::Ok`], [`Reply::Refused`] or a reply
carrying data); [`Reply::Log`] and [`Reply::Exited`] are events that may come at any time
between them. Requests are plain data: a daemon never hands any of it to a shell.
*/
use serde::{Deserialize, Serialize};

/// Largest frame either side accepts after the handshake: a file chunk plus room.
pub const MAX_FRAME: usize = CHUNK + 64 * 1024;

/// Bytes of file data per [`Request::Chunk`].
pub const CHUNK: usize = 1024 * 1024;

/// Most files one manifest may name.
pub const MAX_FILES: usize = 4096;

/// Largest file the launcher ships (models and textures, not videos).
pub const MAX_FILE_SIZE: u64 = 4 << 30;

/// Longest log line passed on; longer lines are cut (and marked) so one chatty process
/// cannot make a frame too big.
pub const MAX_LOG_LINE: usize = 8 * 1024;

/// A SHA-256 digest: a file's name in a daemon's store.
pub type Digest = [u8; 32];

/// Lower-case hex of a digest.
pub fn hex(d: &Digest) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// One file the cluster needs, named by its path relative to the cluster file's folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative path with `/` separators and no `..`.
    pub path: String,
    /// SHA-256 of the contents.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
}

/// What to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Program {
    /// The daemon's own `lockstep` binary, with this subcommand (`node`, `master`).
    Lockstep(String),
    /// A program named by absolute path; only those in the daemon's allow-list run.
    Path(String),
}

impl std::fmt::Display for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Program::Lockstep(role) => write!(f, "lockstep {role}"),
            Program::Path(p) => f.write_str(p),
        }
    }
}

/// Launcher → daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// The files of cluster `cluster`; the daemon answers [`Reply::Missing`].
    Manifest {
        /// Cluster name (the workspace's name).
        cluster: String,
        /// Every file, with its digest.
        files: Vec<FileEntry>,
    },
    /// Part of a missing file, in order from offset 0.
    Chunk {
        /// Which file.
        digest: Digest,
        /// Where these bytes go.
        offset: u64,
        /// The bytes (at most [`CHUNK`]).
        bytes: Vec<u8>,
    },
    /// Every missing file was sent: lay the manifest's files out in the cluster's workspace.
    /// The daemon answers [`Reply::Synced`].
    Commit,
    /// Start a process named `name` (unique among this cluster's running processes).
    Start {
        /// Cluster it belongs to.
        cluster: String,
        /// Its name (the node's, or `master`).
        name: String,
        /// The program.
        program: Program,
        /// Arguments, passed as they are (no shell).
        args: Vec<String>,
        /// Working folder; `None` is the cluster's workspace.
        folder: Option<String>,
    },
    /// Stop processes of `cluster` (all of them when `names` is empty): TERM, then KILL after
    /// the daemon's grace period. The reply comes once they have exited.
    Stop {
        /// Cluster.
        cluster: String,
        /// Process names; empty means every process of the cluster.
        names: Vec<String>,
    },
    /// What runs here; answered by [`Reply::Status`].
    Status,
    /// Still here (the daemon drops launchers that are silent too long).
    Ping,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
}

impl ExitStatus {
    /// Exited with code 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit code {c}"),
            ExitStatus::Signal(s) => {
                let name = nix::sys::signal::Signal::try_from(*s)
                    .map(|s| s.as_str())
                    .unwrap_or("unknown");
                write!(f, "killed by signal {s} ({name})")
            }
        }
    }
}

/// One process a daemon started, as [`Request::Status`] reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// Cluster.
    pub cluster: String,
    /// Process name.
    pub name: String,
    /// What runs.
    pub program: Program,
    /// Its process id (and process group id).
    pub pid: u32,
    /// Start time, seconds since the Unix epoch.
    pub started_unix: u64,
    /// `None` while it runs.
    pub exit: Option<ExitStatus>,
    /// Seconds since the Unix epoch at which it ended.
    pub ended_unix: Option<u64>,
}

/// Which output a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Daemon → launcher.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    /// Done.
    Ok,
    /// Not done, and why (also in the daemon's log).
    Refused(String),
    /// The manifest's files this daemon does not have: send them with [`Request::Chunk`].
    Missing(Vec<Digest>),
    /// The workspace is ready.
    Synced {
        /// Its absolute path on the daemon's host.
        workspace: String,
        /// File bytes received in this session.
        received: u64,
    },
    /// A process started.
    Started {
        /// Its pid.
        pid: u32,
    },
    /// Everything the daemon started (running or ended).
    Status(Vec<ProcessInfo>),
    /// Answer to [`Request::Stop`]: the processes that were stopped.
    Stopped(Vec<String>),
    /// Answer to [`Request::Ping`].
    Pong,
    /// Event: a line a process wrote.
    Log {
        /// Process name.
        name: String,
        /// stdout or stderr.
        stream: Stream,
        /// The line, without its line break.
        line: String,
    },
    /// Event: a process ended.
    Exited {
        /// Process name.
        name: String,
        /// How.
        status: ExitStatus,
    },
}

impl Reply {
    /// Whether this is an event rather than the answer to a request.
    pub fn is_event(&self) -> bool {
        matches!(self, Reply::Log { .. } | Reply::Exited { .. })
    }
}

/// The name rule every part of lockstep shares (cluster, node and process names become
/// folder names, thread names and log prefixes).
pub use lockstep_display::check_name;

/// Checks a manifest path: relative, `/`-separated, no `.`/`..`/empty parts, no NUL, and
/// short. Returns the reason it is unsafe.
pub fn check_relative_path(path: &str) -> Result<(), String> {
    if path.is_empty() || path.len() > 1024 {
        return Err(format!("path of {} bytes (1 to 1024 allowed)", path.len()));
    }
    if path.starts_with('/') || path.contains('\\') || path.contains('\0') {
        return Err(format!("'{path}' is not a relative path with / separators"));
    }
    if path
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(format!(
            "'{path}' has an empty, '.' or '..' part: files stay inside the workspace"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_could_leave_the_workspace_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a\\b",
            "a/.",
            "a\0b",
        ] {
            assert!(check_relative_path(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["cave.toml", "models/room.glb", "a/b/c.png", "..x", "x.."] {
            assert_eq!(check_relative_path(good), Ok(()), "{good:?}");
        }
    }

    #[test]
    fn exit_statuses_read_as_a_person_would_say_them() {
        assert_eq!(ExitStatus::Code(3).to_string(), "exit code 3");
        assert_eq!(
            ExitStatus::Signal(9).to_string(),
            "killed by signal 9 (SIGKILL)"
        );
        assert!(ExitStatus::Code(0).success() && !ExitStatus::Signal(15).success());
    }
}
