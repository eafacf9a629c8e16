/*!
The swap barrier: waiting for every in-step node's `SwapReady` until the deadline,
taking nodes that caught up in step, then `SwapNow`.
*/
use std::time::{Duration, Instant};

use lockstep_scene::Scene;
use lockstep_wire::{Hook, Message, NodeStats};

use crate::{ClusterError, FrameInfo};

use rustix::event::{PollFd, PollFlags, Timespec, poll};

use super::Master;
use super::standing::read_node;
use super::verify::{Mismatch, check_state};
use crate::session::NodeId;
use crate::session::master::Standing;

/// What one barrier (or the time between frames) saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SwapReport {
    /// Nodes that presented the frame.
    pub presented: Vec<String>,
    /// Nodes dropped, with the reason.
    pub dropped: Vec<(String, String)>,
    /// Nodes that got in step with the cluster (after joining, or rejoining).
    pub joined: Vec<String>,
    /// Each presenting node's stats.
    pub stats: Vec<(String, NodeStats)>,
    /// With `verify`: nodes whose state differs from the master's.
    pub mismatches: Vec<Mismatch>,
    /// With `verify`: how many node states were compared.
    pub verified: usize,
    /// A reconfiguration took effect at this frame.
    pub reconfigured: Option<u64>,
    /// The frame whose barrier this report covers (none from a `send_frame` that ran no
    /// barrier).
    pub swapped: Option<u64>,
    /// How long the barrier waited.
    pub waited: Duration,
}

impl SwapReport {
    /// Adds what `other` saw (but not its barrier).
    pub(super) fn absorb(&mut self, other: SwapReport) {
        self.dropped.extend(other.dropped);
        self.joined.extend(other.joined);
        self.mismatches.extend(other.mismatches);
        self.reconfigured = self.reconfigured.or(other.reconfigured);
    }
}

impl Master {
    /// The swap barrier of frame `frame`, the oldest in flight, alone: for the last frames,
    /// or for an application that wants each frame presented before it prepares the next.
    /// `scene` is what the post-frame hook sees.
    pub fn swap(
        &mut self,
        frame: u64,
        scene: &Scene,
        report: &mut SwapReport,
    ) -> Result<(), ClusterError> {
        let info = match self.in_flight.front() {
            Some(oldest) if oldest.frame == frame => *oldest,
            _ => {
                return Err(ClusterError::Misuse(format!(
                    "no barrier for frame {frame}: it is not the oldest frame in flight"
                )));
            }
        };
        self.in_flight.pop_front();
        report.absorb(std::mem::take(&mut self.carry));
        self.head.clear();
        let next_made = !self.in_flight.is_empty();
        self.barrier(&info, scene, report, next_made)?;
        self.session.release(frame);
        self.transmit(report)?;
        self.head.clear();
        report.presented = self.presenting(frame);
        Ok(())
    }

    /// Nodes that present frame `frame` with the others.
    pub(super) fn presenting(&self, frame: u64) -> Vec<String> {
        self.session
            .presenting(frame)
            .map(|p| p.name.clone())
            .collect()
    }

    /// How many frames may be in flight (1 or 2).
    pub fn pipeline_depth(&self) -> usize {
        self.config.pipeline_depth.clamp(1, 2)
    }

    /// The oldest frame in flight when `pipeline_depth` frames are (the next `send_frame`
    /// would first run its barrier). A loop that swaps it before sampling its input shows
    /// that input a barrier's wait sooner.
    pub fn due(&self) -> Option<u64> {
        let depth = self.config.pipeline_depth.clamp(1, 2);
        (self.in_flight.len() >= depth)
            .then(|| self.in_flight())
            .flatten()
    }

    /// The oldest frame sent and not yet swapped, if any.
    pub fn in_flight(&self) -> Option<u64> {
        self.in_flight.front().map(|i| i.frame)
    }

    /// Waits for every in-step node's `SwapReady(frame)` until the deadline and drops the
    /// late or lost ones; looks, without waiting, at the nodes catching up; then
    /// `SwapNow(frame)`, with the head pose latched for the next frame (`made` already or
    /// not), and the post-frame hook's blocks go to `self.head`.
    pub(super) fn barrier(
        &mut self,
        info: &FrameInfo,
        scene: &Scene,
        report: &mut SwapReport,
        made: bool,
    ) -> Result<(), ClusterError> {
        let frame = info.frame;
        let start = Instant::now();
        let expected = self
            .hashes
            .iter()
            .find(|(f, _)| *f == frame)
            .map(|(_, h)| *h);
        self.session.begin_barrier(frame, start);
        let answered = self.gather(report)?;
        for (id, stats) in answered {
            if let Some(p) = self.session.peer(id) {
                check_state(&p.name, frame, expected, &stats, report);
                report.stats.push((p.name.clone(), stats));
            }
        }
        report.waited = start.elapsed();
        report.swapped = Some(frame);
        self.swaps.push(Instant::now(), report.waited);
        let head = self.latch_for(frame + 1, made);
        Self::encode(&Message::SwapNow { frame, head }, &mut self.head)?;
        Self::encode_hook(
            &mut self.manager,
            Hook::PostFrame,
            info,
            scene,
            false,
            &mut self.head,
        )
    }

    /// Drives the session's barrier: what has arrived from the nodes it awaits (read
    /// without waiting), then one `poll(2)` on every node still awaited until one of them
    /// has sent something — so the master sleeps once per wake for all of them, not once per
    /// node, and reads only the sockets that have data — until it waits for nobody. Then a
    /// last look at the nodes catching up and leaving, and the barrier's end: the stats of
    /// each node that answered. The barrier's rules (deadline, nudge, catching up) are the
    /// session's; this only moves bytes.
    fn gather(
        &mut self,
        report: &mut SwapReport,
    ) -> Result<Vec<(NodeId, NodeStats)>, ClusterError> {
        let mut check: Vec<NodeId> = self.session.awaited().collect();
        let mut last_look = false;
        // The awaited nodes' places, kept across wakes.
        let mut awaited: Vec<usize> = Vec::with_capacity(check.len());
        loop {
            for &id in &check {
                if let Some(i) = self.node_index(id) {
                    read_node(
                        &mut self.nodes[i],
                        &mut self.session,
                        self.multicast.as_mut(),
                    );
                }
            }
            let now = Instant::now();
            // At the deadline: one last look at every node still awaited (what it sent in
            // time counts, even if reading the others took past the deadline) before the
            // session gives up on it.
            if self.session.deadline().is_some_and(|d| now >= d) && !last_look {
                last_look = true;
                check = self.session.awaited().collect();
                continue;
            }
            self.session.handle_timeout(now);
            if let Err(e) = self.transmit(report) {
                // The barrier ends with the error: heartbeats and silence go on after it.
                self.session.end_barrier(Instant::now());
                return Err(e);
            }
            let Some(until) = self.session.poll_timeout() else {
                break;
            };
            let wait = until.saturating_duration_since(Instant::now());
            awaited.clear();
            awaited.extend(self.session.awaited().filter_map(|id| self.node_index(id)));
            // Made per wake: each borrows a node's socket, which the reads above need
            // mutably.
            let nodes = &self.nodes;
            let mut fds: Vec<PollFd<'_>> = awaited
                .iter()
                .map(|i| PollFd::new(&nodes[*i].link.stream, PollFlags::IN))
                .collect();
            let timeout = Timespec::try_from(wait).unwrap_or(Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            });
            check.clear();
            match poll(&mut fds, Some(&timeout)) {
                Ok(_) => check.extend(
                    fds.iter()
                        .zip(&awaited)
                        .filter(|(f, _)| !f.revents().is_empty())
                        .map(|(_, i)| nodes[*i].id),
                ),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    let ids: Vec<NodeId> = awaited.iter().map(|i| nodes[*i].id).collect();
                    drop(fds);
                    for id in ids {
                        self.session
                            .handle_failure(id, format!("cannot wait for it: {e}"));
                    }
                }
            }
        }
        // Nodes catching up are only looked at; nodes leaving, for their closed connection.
        let peek: Vec<NodeId> = self.session.peeked().to_vec();
        let leaving = self
            .session
            .peers()
            .iter()
            .filter(|p| matches!(p.standing, Standing::Leaving { .. }))
            .map(|p| p.id);
        let peek: Vec<NodeId> = peek.into_iter().chain(leaving).collect();
        for id in peek {
            if let Some(i) = self.node_index(id) {
                read_node(
                    &mut self.nodes[i],
                    &mut self.session,
                    self.multicast.as_mut(),
                );
            }
        }
        let answered = self.session.end_barrier(Instant::now());
        self.transmit(report)?;
        Ok(answered)
    }
}
