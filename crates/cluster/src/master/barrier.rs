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
use super::standing::{NodeConn, Standing};
use super::verify::{Mismatch, check_state};
use crate::multicast::MulticastOut;
use crate::session::barrier::{Round, Transmit, nudge};

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

/// Waits for a node's `SwapReady(frame)` (or, `or_later`, of any frame from `frame` on)
/// until `deadline`. A node fed by multicast that has not answered after [`nudge`] is told
/// on its connection which unit was sent last, once: if it lost the newest units whole
/// (nothing after them shows it a gap), it asks for them again rather than miss the deadline.
pub(super) fn wait_ready(
    n: &mut NodeConn,
    frame: u64,
    or_later: bool,
    deadline: Instant,
    limit: Duration,
    mut multicast: Option<&mut MulticastOut>,
) -> Result<(u64, NodeStats), String> {
    let mut nudge_at = (n.on_group && multicast.as_ref().is_some_and(|m| m.next_unit() > 0))
        .then(|| Instant::now() + nudge(limit));
    loop {
        // Past the deadline (spent waiting on a slower node), still take what this node has
        // already sent: it was on time.
        let until = nudge_at.map_or(deadline, |t| t.min(deadline));
        let left = until
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        if let Err(e) = n.link.stream.set_read_timeout(Some(left)) {
            return Err(format!("cannot wait for it: {e}"));
        }
        match n.link.recv() {
            Ok(m) => match n.inbox.keep(m, multicast.as_deref_mut())? {
                Some((f, stats)) if f == frame || (or_later && f > frame) => {
                    return Ok((f, stats));
                }
                // A late answer to an earlier frame, or kept for the next frame.
                _ => {}
            },
            Err(ClusterError::Timeout { .. })
                if nudge_at.is_some() && Instant::now() < deadline =>
            {
                nudge_at = None;
                if let Some(out) = multicast.as_deref_mut()
                    && let Some(units) = out.units_sent()
                {
                    out.stats.nudges += 1;
                    if let Err(e) = n.link.send(&units) {
                        return Err(format!("cannot tell it the units sent: {e}"));
                    }
                }
            }
            Err(ClusterError::Timeout { .. }) => {
                return Err(format!(
                    "missed the swap deadline of {limit:?} at frame {frame}"
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Every in-step node's `SwapReady(frame)` until `deadline`, by node index: answers already
/// kept, then whatever has arrived (read without waiting), then one `poll(2)` on every node
/// still awaited until one of them has sent something — so the master sleeps once per wake
/// for all of them, not once per node, and reads only the sockets that have data. The
/// barrier's rules (deadline, nudge) are the sans-IO [`Round`]'s; this only moves bytes.
fn gather(
    nodes: &mut [NodeConn],
    frame: u64,
    limit: Duration,
    mut multicast: Option<&mut MulticastOut>,
) -> Vec<(usize, Result<NodeStats, String>)> {
    let sent_units = multicast.as_ref().is_some_and(|m| m.next_unit() > 0);
    let mut round = Round::new(frame, Instant::now(), limit, sent_units);
    for (i, n) in nodes.iter_mut().enumerate() {
        if !n.waited_for(frame) {
            continue;
        }
        round.wait_for(i, n.on_group);
        // An answer kept from between frames; one to an earlier frame is late and ignored.
        if let Some((f, stats)) = n.early.take() {
            round.handle_ready(i, f, stats);
        }
    }
    let mut check: Vec<usize> = round.awaited().collect();
    let mut last_look = false;
    loop {
        for &i in &check {
            let n = &mut nodes[i];
            loop {
                match n.link.try_recv() {
                    Ok(None) => break,
                    Ok(Some(m)) => match n.inbox.keep(m, multicast.as_deref_mut()) {
                        Ok(Some((f, stats))) => round.handle_ready(i, f, stats),
                        // A sign of life.
                        Ok(None) => {}
                        Err(why) => {
                            round.handle_failure(i, why);
                            break;
                        }
                    },
                    Err(e) => {
                        round.handle_failure(i, e.to_string());
                        break;
                    }
                }
            }
        }
        let now = Instant::now();
        // At the deadline: one last look at every node still awaited (what it sent in time
        // counts, even if reading the others took past the deadline) before the round gives
        // up on it.
        if now >= round.deadline() && !last_look {
            last_look = true;
            check = round.awaited().collect();
            continue;
        }
        round.handle_timeout(now);
        while let Some(Transmit::Units { node }) = round.poll_transmit() {
            let told = multicast.as_deref_mut().and_then(|m| {
                m.stats.nudges += 1;
                m.units_sent()
            });
            if let Some(units) = told
                && let Err(e) = nodes[node].link.send(&units)
            {
                round.handle_failure(node, format!("cannot tell it the units sent: {e}"));
            }
        }
        let Some(until) = round.poll_timeout() else {
            break;
        };
        let wait = until.saturating_duration_since(Instant::now());
        let awaited: Vec<usize> = round.awaited().collect();
        // Made per wake: each borrows a node's socket, which the reads above need mutably.
        let mut fds: Vec<PollFd<'_>> = awaited
            .iter()
            .map(|&i| PollFd::new(&nodes[i].link.stream, PollFlags::IN))
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
                    .map(|(_, &i)| i),
            ),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                for &i in &awaited {
                    round.handle_failure(i, format!("cannot wait for it: {e}"));
                }
            }
        }
    }
    round.finish()
}

/// Looks, without waiting, at what a node catching up sent: its stats if it is ready for
/// `frame` before `frame`'s `SwapNow` left.
pub(super) fn catch_up(
    n: &mut NodeConn,
    frame: u64,
    mut multicast: Option<&mut MulticastOut>,
) -> Result<Option<NodeStats>, String> {
    loop {
        match n.link.try_recv() {
            Ok(None) => return Ok(None),
            Ok(Some(m)) => {
                n.heard = Instant::now();
                n.pulse.heard();
                if let Some((f, stats)) = n.inbox.keep(m, multicast.as_deref_mut())? {
                    n.ready = Some((f, stats));
                    n.rate.push(n.heard, Duration::ZERO);
                    if f == frame {
                        return Ok(Some(stats));
                    }
                    // Ready for a later frame already (its snapshot came before this
                    // barrier ran): kept for that frame's barrier, which takes it in step.
                    if f > frame {
                        n.early = Some((f, stats));
                    }
                }
            }
            Err(e) => return Err(e.to_string()),
        }
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
        if let Some(out) = &mut self.multicast {
            out.send(&self.head)?;
        }
        let mut failed = Vec::new();
        for n in &mut self.nodes {
            if matches!(n.standing, Standing::Leaving { .. }) || n.on_group {
                continue;
            }
            if let Err(e) = n.link.send_encoded(&self.head, &[]) {
                failed.push((n.name.clone(), format!("cannot send SwapNow {frame}: {e}")));
            }
        }
        self.head.clear();
        self.fail_all(failed, report)?;
        report.presented = self.presenting(frame);
        Ok(())
    }

    /// Nodes that present frame `frame` with the others.
    pub(super) fn presenting(&self, frame: u64) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.waited_for(frame))
            .map(|n| n.name.clone())
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
        // The first frame loads the scene everywhere: the start barrier.
        let loading = self.first_frame == Some(frame);
        let limit = if loading {
            self.config.load_deadline
        } else {
            self.config.swap_deadline
        };
        let mut failed: Vec<(String, String)> = Vec::new();
        let expected = self
            .hashes
            .iter()
            .find(|(f, _)| *f == frame)
            .map(|(_, h)| *h);
        let outcomes = gather(&mut self.nodes, frame, limit, self.multicast.as_mut());
        for (i, outcome) in outcomes {
            let n = &mut self.nodes[i];
            match outcome {
                Ok(stats) => {
                    n.heard = Instant::now();
                    n.pulse.heard();
                    n.ready = Some((frame, stats));
                    n.rate.push(n.heard, Duration::ZERO);
                    check_state(&n.name, frame, expected, &stats, report);
                    report.stats.push((n.name.clone(), stats));
                }
                Err(why) => failed.push((n.name.clone(), why)),
            }
        }
        // Nodes catching up. One still loading is only looked at: in step from this frame
        // if its answer is already here. One that has loaded (it answered a frame after its
        // snapshot) draws at the cluster's pace, so this barrier waits for it once, as for
        // any node: in step from this frame, or from the newer one it drew instead.
        let (load_limit, swap_limit) = (self.config.load_deadline, self.config.swap_deadline);
        for n in &mut self.nodes {
            let Standing::CatchingUp { first, since } = n.standing else {
                continue;
            };
            // At the cluster's pace: it answered one of the last two frames.
            let loaded = n.ready.is_some_and(|(f, _)| f >= first && f + 2 >= frame);
            tracing::debug!(
                "node '{}' catching up at frame {frame}: last ready {:?}, early {:?}",
                n.name,
                n.ready.map(|r| r.0),
                n.early.map(|r| r.0)
            );
            let outcome = if let Some((f, stats)) = n.early.take().filter(|(f, _)| *f >= frame) {
                Ok(Some((f, stats)))
            } else if loaded {
                wait_ready(
                    n,
                    frame,
                    true,
                    Instant::now() + swap_limit,
                    swap_limit,
                    self.multicast.as_mut(),
                )
                .map(Some)
            } else {
                catch_up(n, frame, self.multicast.as_mut()).map(|r| r.map(|s| (frame, s)))
            };
            match outcome {
                Err(why) => failed.push((n.name.clone(), why)),
                Ok(Some((from, stats))) => {
                    n.standing = Standing::InStep { from };
                    n.ready = Some((from, stats));
                    if from == frame {
                        check_state(&n.name, frame, expected, &stats, report);
                        report.stats.push((n.name.clone(), stats));
                    } else {
                        n.early = Some((from, stats));
                    }
                    report.joined.push(n.name.clone());
                    tracing::info!("node '{}' is in step from frame {from}", n.name);
                }
                Ok(None) if since.elapsed() > load_limit => failed.push((
                    n.name.clone(),
                    format!("did not catch up with the cluster within {load_limit:?}"),
                )),
                Ok(None) => {}
            }
        }
        self.fail_all(failed, report)?;
        self.check_leaving();
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
}
