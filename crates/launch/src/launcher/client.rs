/*!
The launcher's side of one daemon connection: requests go out from the launcher's thread, and a
reader thread sorts what comes back into answers (for the request waiting on one) and events
(log lines, exits, a lost connection) for the launcher's loop.
*/
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use lockstep_wire::ClusterKey;

use crate::LaunchError;
use crate::conn::{self, Conn};
use crate::protocol::{Reply, Request};

/// Silence from a daemon after which it counts as gone (it answers every ping).
const DAEMON_TIMEOUT: Duration = Duration::from_secs(20);

/// What the reader thread passes on.
#[derive(Debug)]
pub enum Event {
    /// A log line or exit from host `host`.
    Reply {
        /// Index of the host.
        host: usize,
        /// The event.
        reply: Reply,
    },
    /// The connection to host `host` ended.
    Lost {
        /// Index of the host.
        host: usize,
        /// Why.
        why: String,
    },
}

/// A connected, authenticated daemon.
pub struct DaemonClient {
    conn: Conn,
    answers: Receiver<Reply>,
    /// The daemon, for messages.
    pub peer: String,
}

impl DaemonClient {
    /// Connects to the daemon of host `host` at `addr`; events go to `events`.
    pub fn connect(
        host: usize,
        addr: std::net::SocketAddr,
        key: &ClusterKey,
        cluster: &str,
        events: Sender<Event>,
    ) -> Result<DaemonClient, LaunchError> {
        let who = format!(
            "launcher@{}",
            nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "?".into())
        );
        let mut reader = conn::dial(addr, key, cluster, &who, Duration::from_secs(5))?;
        let conn = reader.split_writer()?;
        reader.set_timeout(Some(DAEMON_TIMEOUT))?;
        let peer = conn.peer.clone();
        let (tx, answers) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("daemon {host}"))
            .spawn(move || {
                let why = loop {
                    match reader.recv::<Reply>() {
                        Ok(Reply::Pong) => {}
                        Ok(reply) if reply.is_event() => {
                            let _ = events.send(Event::Reply { host, reply });
                        }
                        Ok(answer) => {
                            if tx.send(answer).is_err() {
                                break "the launcher stopped listening".to_string();
                            }
                        }
                        Err(e) => break e.to_string(),
                    }
                };
                let _ = events.send(Event::Lost { host, why });
            })
            .map_err(|e| LaunchError::Config(format!("cannot start a thread: {e}")))?;
        Ok(DaemonClient {
            conn,
            answers,
            peer,
        })
    }

    /// Sends a request without waiting (pings).
    pub fn send(&mut self, req: &Request) -> Result<(), LaunchError> {
        self.conn.send(req)
    }

    /// Sends a request and waits up to `timeout` for its answer; a refusal is an error.
    pub fn call(&mut self, req: &Request, timeout: Duration) -> Result<Reply, LaunchError> {
        self.conn.send(req)?;
        match self.answers.recv_timeout(timeout) {
            Ok(Reply::Refused(reason)) => Err(LaunchError::Refused {
                peer: self.peer.clone(),
                reason,
            }),
            Ok(reply) => Ok(reply),
            Err(RecvTimeoutError::Timeout) => Err(LaunchError::Timeout(self.peer.clone())),
            Err(RecvTimeoutError::Disconnected) => Err(LaunchError::Closed(self.peer.clone())),
        }
    }

    /// Closes the connection (the daemon then stops what this launcher started, unless it is
    /// configured to keep it).
    pub fn close(&self) {
        self.conn.shutdown();
    }
}

/// Error for an answer of the wrong kind.
pub fn unexpected(client: &DaemonClient, got: &Reply) -> LaunchError {
    LaunchError::Unexpected {
        peer: client.peer.clone(),
        got: format!("{got:?}").chars().take(200).collect(),
    }
}
