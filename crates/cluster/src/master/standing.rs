/*!
The master's driver of its sans-IO session (`crate::session::master`): each node's
connection, what is read from it handed to the session, what the session asks for sent, and
what it says happened to a node acted on — a dropped node's connection closed and reported.
Between frames: heartbeats out, answers in, silent nodes dropped.
*/
use std::time::{Duration, Instant};

use lockstep_wire::Message;

use crate::ClusterError;
use crate::link::Link;
use crate::multicast::MulticastOut;
use crate::session::NodeId;
use crate::session::master::{Dest, Event, MasterSession, Payload};

use super::barrier::SwapReport;
use super::control::Inbox;
use super::status::Rates;
use super::{FailurePolicy, Master};

/// One node's connection.
pub(super) struct NodeConn {
    /// Its number in the session.
    pub(super) id: NodeId,
    pub(super) name: String,
    /// Frames are written to its stream; `SwapReady` is read from it by the barrier itself,
    /// on the master's thread: no reader thread and no channel between a node's answer and
    /// the barrier (each would cost a thread wake-up per frame).
    pub(super) link: Link,
    /// Its `SwapReady`s over the last second.
    pub(super) rate: Rates,
    /// Events and input it sent, not yet taken into the next frame.
    pub(super) inbox: Inbox,
}

/// Reads, without waiting, everything node `n` sent, and hands it to the session: its
/// `SwapReady`s, its signs of life, or why it fails.
pub(super) fn read_node(
    n: &mut NodeConn,
    session: &mut MasterSession,
    mut multicast: Option<&mut MulticastOut>,
) {
    loop {
        let why = match n.link.try_recv() {
            Ok(None) => return,
            Ok(Some(m)) => match n.inbox.keep(m, multicast.as_deref_mut()) {
                Ok(Some((frame, stats))) => {
                    n.rate.push(Instant::now(), Duration::ZERO);
                    session.handle_ready(n.id, frame, stats);
                    continue;
                }
                Ok(None) => {
                    session.handle_alive(n.id);
                    continue;
                }
                Err(why) => why,
            },
            Err(e) => e.to_string(),
        };
        session.handle_failure(n.id, why);
        return;
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

    /// Whatever the nodes sent meanwhile, then heartbeats when due; drops nodes that fell
    /// silent and lets go of those that left to restart.
    pub(super) fn tick(&mut self, report: &mut SwapReport) -> Result<(), ClusterError> {
        for n in &mut self.nodes {
            read_node(n, &mut self.session, self.multicast.as_mut());
        }
        self.session.handle_timeout(Instant::now());
        self.transmit(report)
    }

    /// Sends what the session asks for, and acts on what it says happened, until it has
    /// nothing more of either. A node that cannot be written to fails.
    ///
    /// Everything queued is sent and acted on even after an error (a later call must not
    /// send a transmit of this frame with the next frame's bytes); the first error is
    /// returned.
    pub(super) fn transmit(&mut self, report: &mut SwapReport) -> Result<(), ClusterError> {
        let mut first = None;
        loop {
            if let Some(t) = self.session.poll_transmit() {
                match t.to {
                    Dest::Group => {
                        if let Err(e) = self.send_to_group(t.what) {
                            first.get_or_insert(e);
                        }
                    }
                    Dest::Node(id) => {
                        if let Err(why) = self.send_to_node(id, t.what) {
                            self.session.handle_send_failure(id, why);
                        }
                    }
                }
                continue;
            }
            let Some(event) = self.session.poll_event() else {
                return first.map_or(Ok(()), Err);
            };
            if let Err(e) = self.act_on(event, report) {
                first.get_or_insert(e);
            }
        }
    }

    /// Where node `id`'s connection is in `nodes`.
    pub(super) fn node_index(&self, id: NodeId) -> Option<usize> {
        self.index.get(&id).copied()
    }

    /// `nodes` changed: where each connection is now.
    pub(super) fn reindex(&mut self) {
        self.index.clear();
        self.index
            .extend(self.nodes.iter().enumerate().map(|(i, n)| (n.id, i)));
    }

    fn send_to_group(&mut self, what: Payload) -> Result<(), ClusterError> {
        let Some(out) = &mut self.multicast else {
            return Ok(());
        };
        match what {
            // The release (one datagram, as a rule) ahead of the frame.
            Payload::Frame { .. } => {
                out.send(&self.head)?;
                out.send(&self.bytes)
            }
            Payload::Release { .. } => out.send(&self.head),
            // Snapshots, heartbeats and the rest go on connections only.
            _ => Ok(()),
        }
    }

    fn send_to_node(&mut self, id: NodeId, what: Payload) -> Result<(), String> {
        let Some(i) = self.node_index(id) else {
            return Ok(());
        };
        let n = &mut self.nodes[i];
        let sent = match what {
            Payload::JoinGroup => match &self.multicast {
                Some(out) => n
                    .link
                    .send(&Message::Multicast {
                        session: out.session(),
                        group: &out.group,
                        first: out.next_unit(),
                    })
                    .map_err(|e| e.to_string()),
                None => Ok(()),
            },
            Payload::Frame { .. } => n
                .link
                .send_encoded(&self.head, &self.bytes)
                .map_err(|e| e.to_string()),
            // The swap before its first frame (its post-frame blocks are dropped there): with
            // late latching it carries the pose that frame is projected from.
            Payload::Snapshot { .. } => n
                .link
                .send_encoded(&self.head, &self.snapshot)
                .map_err(|e| e.to_string()),
            Payload::Release { .. } => n
                .link
                .send_encoded(&self.head, &[])
                .map_err(|e| e.to_string()),
            Payload::Heartbeat { seq } => n
                .link
                .send(&Message::Heartbeat { seq })
                .map_err(|e| e.to_string()),
            Payload::Units => {
                let Some(out) = &mut self.multicast else {
                    return Ok(());
                };
                if self.session.deadline().is_some() {
                    out.stats.nudges += 1;
                }
                match out.units_sent() {
                    Some(units) => n.link.send(&units).map_err(|e| e.to_string()),
                    None => Ok(()),
                }
            }
        };
        sent.map_err(|e| match what {
            Payload::Frame { frame } | Payload::Snapshot { frame } => {
                format!("cannot send frame {frame}: {e}")
            }
            Payload::Release { frame } => format!("cannot send SwapNow {frame}: {e}"),
            Payload::Heartbeat { .. } => format!("cannot send a heartbeat: {e}"),
            Payload::Units => format!("cannot tell it the units sent: {e}"),
            Payload::JoinGroup => format!("cannot tell it the multicast group: {e}"),
        })
    }

    /// Closes the connection of a node out of the session, and reports why.
    fn act_on(&mut self, event: Event, report: &mut SwapReport) -> Result<(), ClusterError> {
        match event {
            Event::Dropped { node, name, why } => {
                self.close(node);
                tracing::warn!("node '{name}' dropped: {why}");
                report.dropped.push((name.clone(), why.clone()));
                self.gone.insert(name.clone(), why.clone());
                if self.config.policy == FailurePolicy::Stop {
                    return Err(ClusterError::Policy(format!(
                        "node '{name}' failed ({why}) and the policy is stop"
                    )));
                }
            }
            Event::Replaced { node, name } => {
                self.close(node);
                tracing::info!("node '{name}' connected again; its old connection is closed");
            }
            Event::Left { node } => self.close(node),
            Event::InStep { name, from, .. } => {
                tracing::info!("node '{name}' is in step from frame {from}");
                report.joined.push(name);
            }
        }
        Ok(())
    }

    fn close(&mut self, id: NodeId) {
        if let Some(i) = self.node_index(id) {
            let n = self.nodes.remove(i);
            self.reindex();
            let _ = n.link.stream.shutdown(std::net::Shutdown::Both);
        }
    }
}
