/*!
The control connection of a running master (`lockstep ctl`): status and run-time
reconfiguration. A control client authenticates like a node, with the cluster key, under the
reserved name [`CONTROL_NAME`] (cluster files cannot name a node with a leading `@`).

On the master each control connection is served on its own thread; requests reach the frame
loop through a channel that the loop looks at between frames (never inside one), and the
answer goes back the same way, so a slow or silent control client never touches the frame path.
*/
use std::net::SocketAddr;
use std::sync::mpsc::{self, Sender};
use std::time::Duration;

use lockstep_wire::{ClusterKey, Message, NodeStatus};

use crate::ClusterError;
use crate::link::{Link, unexpected};
use crate::node::{NodeConfig, dial};

/// The name a control client gives in the handshake.
pub const CONTROL_NAME: &str = "@ctl";

/// One node as the master sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeReport {
    /// The node's name.
    pub name: String,
    /// `in step`, `catching up`, `joining`, `leaving`, `absent`, or why it was dropped.
    pub state: String,
    /// The last frame it reported ready.
    pub frame: u64,
    /// Frames it reported ready over the last second.
    pub fps: f32,
    /// Milliseconds from the frame reaching it to its `SwapReady`, as it last reported.
    pub ready_ms: f32,
    /// How many times it has joined since the master started.
    pub joins: u32,
}

/// The cluster as the master sees it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClusterStatus {
    /// The last frame begun.
    pub frame: u64,
    /// Frames swapped over the last second.
    pub fps: f32,
    /// Median time the swap barrier waited over the last second, in milliseconds.
    pub sync_ms: f32,
    /// The cluster file's nodes, in its order, then connected nodes it no longer names.
    pub nodes: Vec<NodeReport>,
}

/// A request on its way from a control connection to the frame loop, with where the answer
/// goes.
pub(crate) enum ControlCall {
    Status(Sender<ClusterStatus>),
    Reconfigure(String, Sender<Result<u64, Vec<String>>>),
    /// An event with a JSON value; the answer is the frame it is delivered in.
    Event {
        name: String,
        json: Vec<u8>,
        reply: Sender<Result<u64, String>>,
    },
}

/// How long a control connection waits for the frame loop's answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// How long a control connection may stay silent.
const IDLE_LIMIT: Duration = Duration::from_secs(60);

/// Master: serves one authenticated control connection until it closes.
pub(crate) fn serve(mut link: Link, calls: Sender<ControlCall>) {
    let peer = link.peer.clone();
    if link.set_timeout(Some(IDLE_LIMIT)).is_err() {
        return;
    }
    loop {
        let request = match link.recv() {
            Ok(Message::StatusRequest) => None,
            Ok(Message::ReconfigureRequest { config }) => Some(config.to_string()),
            Ok(Message::Event {
                name,
                payload,
                json: true,
            }) => {
                let (tx, rx) = mpsc::channel();
                let call = ControlCall::Event {
                    name: name.to_string(),
                    json: payload.to_vec(),
                    reply: tx,
                };
                let answer = calls
                    .send(call)
                    .ok()
                    .and_then(|_| rx.recv_timeout(ANSWER_WITHIN).ok());
                let sent = match answer {
                    Some(Ok(frame)) => link.send(&Message::Queued { frame }),
                    Some(Err(reason)) => link.send(&Message::Refused { reason: &reason }),
                    None => not_answering(&mut link),
                };
                if sent.is_err() {
                    return;
                }
                continue;
            }
            Ok(other) => {
                let reason = format!("a control connection cannot send {}", other.kind());
                let _ = link.send(&Message::Refused { reason: &reason });
                return;
            }
            Err(_) => return,
        };
        let sent = match request {
            None => {
                let (tx, rx) = mpsc::channel();
                let status = calls
                    .send(ControlCall::Status(tx))
                    .ok()
                    .and_then(|_| rx.recv_timeout(ANSWER_WITHIN).ok());
                match status {
                    Some(s) => send_status(&mut link, &s),
                    None => not_answering(&mut link),
                }
            }
            Some(text) => {
                let (tx, rx) = mpsc::channel();
                let answer = calls
                    .send(ControlCall::Reconfigure(text, tx))
                    .ok()
                    .and_then(|_| rx.recv_timeout(ANSWER_WITHIN).ok());
                match answer {
                    Some(Ok(frame)) => link.send(&Message::Reconfigured { frame }),
                    Some(Err(reasons)) => link.send(&Message::Refused {
                        reason: &reasons.join("\n"),
                    }),
                    None => not_answering(&mut link),
                }
            }
        };
        if let Err(e) = sent {
            tracing::debug!("control connection {peer}: {e}");
            return;
        }
    }
}

fn not_answering(link: &mut Link) -> Result<(), ClusterError> {
    link.send(&Message::Refused {
        reason: "the master's frame loop did not answer within 10 s",
    })
}

fn send_status(link: &mut Link, s: &ClusterStatus) -> Result<(), ClusterError> {
    let nodes = s
        .nodes
        .iter()
        .map(|n| NodeStatus {
            name: &n.name,
            state: &n.state,
            frame: n.frame,
            fps: n.fps,
            ready_ms: n.ready_ms,
            joins: n.joins,
        })
        .collect();
    link.send(&Message::Status {
        frame: s.frame,
        fps: s.fps,
        sync_ms: s.sync_ms,
        nodes,
    })
}

/// A control client's connection to a running master.
pub struct ControlClient {
    link: Link,
}

impl ControlClient {
    /// Connects to the master of cluster `cluster` at `master` and authenticates with `key`.
    pub fn connect(
        cluster: &str,
        key: ClusterKey,
        master: SocketAddr,
        timeout: Duration,
    ) -> Result<ControlClient, ClusterError> {
        let config = NodeConfig::new(cluster, key, CONTROL_NAME, master)
            .connect_timeout(timeout)
            .master_timeout(ANSWER_WITHIN + Duration::from_secs(2));
        Ok(ControlClient {
            link: dial(&config)?,
        })
    }

    /// Sends the cluster event `name` with a JSON value; the master checks it against the
    /// application's declaration and answers with the frame every process sees it in.
    pub fn event(&mut self, name: &str, json: &str) -> Result<u64, ClusterError> {
        self.link.send(&Message::Event {
            name,
            payload: json.as_bytes(),
            json: true,
        })?;
        match self.link.recv()? {
            Message::Queued { frame } => Ok(frame),
            Message::Refused { reason } => {
                Err(ClusterError::Rejected(vec![lockstep_wire::printable(
                    reason,
                )]))
            }
            other => Err(unexpected("the master", other)),
        }
    }

    /// The cluster now.
    pub fn status(&mut self) -> Result<ClusterStatus, ClusterError> {
        self.link.send(&Message::StatusRequest)?;
        match self.link.recv()? {
            Message::Status {
                frame,
                fps,
                sync_ms,
                nodes,
            } => Ok(ClusterStatus {
                frame,
                fps,
                sync_ms,
                nodes: nodes
                    .into_iter()
                    .map(|n| NodeReport {
                        name: n.name.to_string(),
                        state: n.state.to_string(),
                        frame: n.frame,
                        fps: n.fps,
                        ready_ms: n.ready_ms,
                        joins: n.joins,
                    })
                    .collect(),
            }),
            other => Err(unexpected("the master", other)),
        }
    }

    /// Asks the master to switch to the cluster file `text`; the frame it applies at, or
    /// every reason it was rejected ([`ClusterError::Rejected`]).
    pub fn reconfigure(&mut self, text: &str) -> Result<u64, ClusterError> {
        self.link
            .send(&Message::ReconfigureRequest { config: text })?;
        match self.link.recv()? {
            Message::Reconfigured { frame } => Ok(frame),
            Message::Refused { reason } => Err(ClusterError::Rejected(
                reason.lines().map(str::to_string).collect(),
            )),
            other => Err(unexpected("the master", other)),
        }
    }
}
