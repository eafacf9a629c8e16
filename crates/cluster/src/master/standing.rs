/*!
Where each node stands in the session, and keeping the connections alive between
frames: heartbeats out, answers in, silent nodes dropped, restarting nodes let go.
*/
use std::time::{Duration, Instant};

use lockstep_wire::{Message, NodeStats};

use crate::ClusterError;
use crate::link::Link;

use super::barrier::SwapReport;
use super::control::Inbox;
use super::status::Rates;
use super::{FailurePolicy, Master};
use crate::multicast::MulticastOut;
use crate::session::liveness::Pulse;

/// Where a node stands in the session.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Standing {
    /// Connected; its first frame, the next one begun, is a snapshot unless no frame has
    /// been sent yet (then it is simply frame 0 and the node is in step from the start).
    Joining,
    /// Got its snapshot at frame `first` (at `since`); no barrier waits for it.
    CatchingUp { first: u64, since: Instant },
    /// Every barrier from frame `from` on waits for it.
    InStep { from: u64 },
    /// A reconfiguration restarts its pipeline: it got the switch frame and will come back
    /// on a new connection; nothing more is sent to it and nothing waited for.
    Leaving { since: Instant },
}

pub(super) struct NodeConn {
    pub(super) name: String,
    pub(super) standing: Standing,
    /// Frames are written to its stream; `SwapReady` is read from it by the barrier itself,
    /// on the master's thread: no reader thread and no channel between a node's answer and
    /// the barrier (each would cost a thread wake-up per frame).
    pub(super) link: Link,
    /// When it last sent anything.
    pub(super) heard: Instant,
    /// Its answers to the heartbeats.
    pub(super) pulse: Pulse,
    /// A `SwapReady` read between frames, for a barrier still to run.
    pub(super) early: Option<(u64, NodeStats)>,
    /// The last frame it reported ready, and its stats.
    pub(super) ready: Option<(u64, NodeStats)>,
    /// Its `SwapReady`s over the last second.
    pub(super) rate: Rates,
    /// Events and input it sent, not yet taken into the next frame.
    pub(super) inbox: Inbox,
    /// Frame data reaches it by multicast: it was told so after its first frame.
    pub(super) on_group: bool,
}

impl NodeConn {
    pub(super) fn waited_for(&self, frame: u64) -> bool {
        matches!(self.standing, Standing::InStep { from } if from <= frame)
    }
}

/// Reads what a node sent between frames: heartbeat answers, or a `SwapReady` kept for its
/// barrier.
pub(super) fn drain(
    n: &mut NodeConn,
    mut multicast: Option<&mut MulticastOut>,
) -> Result<(), String> {
    loop {
        match n.link.try_recv() {
            Ok(None) => return Ok(()),
            Ok(Some(m)) => {
                n.heard = Instant::now();
                n.pulse.heard();
                if let Some(ready) = n.inbox.keep(m, multicast.as_deref_mut())? {
                    n.early = Some(ready);
                    n.ready = Some(ready);
                }
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

impl Master {
    /// Between frames: keeps every connection alive for `period` — heartbeats out, answers
    /// in, nodes silent too long dropped — and answers control clients. What it saw goes into
    /// the next report.
    pub fn idle(&mut self, period: Duration) -> Result<(), ClusterError> {
        let until = Instant::now() + period;
        let mut report = std::mem::take(&mut self.carry);
        let result = loop {
            if let Err(e) = self.tick(&mut report) {
                break Err(e);
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break Ok(());
            }
            let wait = left.min(self.config.heartbeat);
            if let Err(e) = self.serve_control(Some(wait)) {
                break Err(e);
            }
        };
        self.carry = report;
        result
    }

    /// Heartbeats when due, and whatever the nodes sent meanwhile; drops nodes that fell
    /// silent.
    pub(super) fn tick(&mut self, report: &mut SwapReport) -> Result<(), ClusterError> {
        let now = Instant::now();
        if let Some(seq) = self.beats.poll_beat(now) {
            self.head.clear();
            Self::encode(&Message::Heartbeat { seq }, &mut self.head)?;
            let mut failed = Vec::new();
            // With it, the last unit sent: a node that lost it whole while nothing followed
            // (the cluster paused) asks for it.
            let units = self.multicast.as_ref().and_then(|m| m.units_sent());
            for n in &mut self.nodes {
                if matches!(n.standing, Standing::Leaving { .. }) {
                    continue;
                }
                let told = match &units {
                    Some(u) if n.on_group => n.link.send(u).map_err(|e| e.to_string()),
                    _ => Ok(()),
                };
                if let Err(e) = n
                    .link
                    .send_encoded(&self.head, &[])
                    .map_err(|e| e.to_string())
                    .and(told)
                {
                    failed.push((n.name.clone(), format!("cannot send a heartbeat: {e}")));
                }
                n.pulse.asked(now);
            }
            self.head.clear();
            self.fail_all(failed, report)?;
        }
        let limit = self.beats.limit();
        let mut failed = Vec::new();
        for n in &mut self.nodes {
            if let Err(why) = drain(n, self.multicast.as_mut()) {
                failed.push((n.name.clone(), why));
            } else if let Some(silent) = n.pulse.silent(Instant::now(), limit) {
                failed.push((
                    n.name.clone(),
                    format!("answered no heartbeat for {silent:?}"),
                ));
            }
        }
        self.fail_all(failed, report)?;
        self.check_leaving();
        Ok(())
    }

    /// Drops nodes that left to restart once their connection is closed (or after the load
    /// deadline).
    pub(super) fn check_leaving(&mut self) {
        let limit = self.config.load_deadline;
        self.nodes.retain_mut(|n| {
            let Standing::Leaving { since } = n.standing else {
                return true;
            };
            let closed = loop {
                match n.link.try_recv() {
                    Ok(Some(_)) => {}
                    Ok(None) => break false,
                    Err(_) => break true,
                }
            };
            !(closed || since.elapsed() > limit)
        });
    }

    pub(super) fn drop_node(
        &mut self,
        name: &str,
        reason: &str,
        report: &mut SwapReport,
    ) -> Result<(), ClusterError> {
        let Some(i) = self.nodes.iter().position(|n| n.name == name) else {
            return Ok(());
        };
        let n = self.nodes.remove(i);
        let _ = n.link.stream.shutdown(std::net::Shutdown::Both);
        tracing::warn!("node '{name}' dropped: {reason}");
        report.dropped.push((name.to_string(), reason.to_string()));
        self.gone.insert(name.to_string(), reason.to_string());
        match self.config.policy {
            FailurePolicy::Drop => Ok(()),
            FailurePolicy::Stop => Err(ClusterError::Policy(format!(
                "node '{name}' failed ({reason}) and the policy is stop"
            ))),
        }
    }

    pub(super) fn fail_all(
        &mut self,
        failed: Vec<(String, String)>,
        report: &mut SwapReport,
    ) -> Result<(), ClusterError> {
        for (name, why) in failed {
            self.drop_node(&name, &why, report)?;
        }
        Ok(())
    }
}
