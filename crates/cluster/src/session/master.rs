/*!
The master's session, sans IO: which nodes are in it and where each stands (joining,
catching up, in step, leaving to restart), what each frame is sent to whom, the swap barrier
with its deadline, the nodes that catch up into step, heartbeats between frames and the
silence that drops a node.

It reads no socket and no clock. Its driver (`crate::master`) numbers each connection
([`NodeId`]), hands over what the nodes sent ([`MasterSession::handle_ready`],
[`MasterSession::handle_alive`], [`MasterSession::handle_failure`]) and the time, sleeps until
[`MasterSession::poll_timeout`], sends each [`Transmit`] — to one node or to the multicast
group — with the bytes it encoded for that payload, and acts on each [`Event`] (closing a
dropped node's connection, reporting it). The in-memory harness (`session/harness.rs`) drives
the same session over a simulated network and clock.
*/
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use lockstep_wire::NodeStats;

pub use super::NodeId;
use super::barrier::{self, Round};
use super::liveness::{Heartbeats, Pulse};

/// The session's time limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a barrier waits for a node's `SwapReady`.
    pub swap_deadline: Duration,
    /// How long the first frame's barrier waits (the start barrier), and how long a late
    /// joiner may take to load and catch up, or a node leaving to restart to go.
    pub load_deadline: Duration,
    /// A heartbeat goes to every node this often between frames.
    pub heartbeat: Duration,
    /// A node that answers no heartbeat for this long is dropped.
    pub silence: Duration,
}

/// Where a node stands in the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Connected; its first frame, the next one begun, is a snapshot unless no frame has
    /// been sent yet (then it is simply frame 0 and the node is in step from the start).
    Joining,
    /// Got its snapshot at frame `first` (at `since`); no barrier waits for it.
    CatchingUp {
        /// Its first frame.
        first: u64,
        /// When that frame was begun.
        since: Instant,
    },
    /// Every barrier from frame `from` on waits for it.
    InStep {
        /// The first frame it presents with the others.
        from: u64,
    },
    /// A reconfiguration restarts its pipeline: it got the switch frame and will come back
    /// on a new connection; nothing more is sent to it and nothing waited for.
    Leaving {
        /// When it got the switch frame.
        since: Instant,
    },
}

/// One node in the session.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Its connection.
    pub id: NodeId,
    /// Its name in the cluster file.
    pub name: String,
    /// Where it stands.
    pub standing: Standing,
    /// Frame data reaches it by multicast: it was told the group with its first frame.
    pub on_group: bool,
    /// The last frame it reported ready, and its stats.
    pub ready: Option<(u64, NodeStats)>,
    /// A `SwapReady` for a barrier still to run.
    early: Option<(u64, NodeStats)>,
    pulse: Pulse,
}

impl Peer {
    /// Whether the barrier of `frame` waits for it.
    pub fn waited_for(&self, frame: u64) -> bool {
        matches!(self.standing, Standing::InStep { from } if from <= frame)
    }

    fn leaving(&self) -> bool {
        matches!(self.standing, Standing::Leaving { .. })
    }
}

/// Where a transmission goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// One node's connection.
    Node(NodeId),
    /// The multicast group: every node on it.
    Group,
}

/// What is to be sent; the driver holds the bytes of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// The group to join (`Multicast`), ahead of the node's first frame.
    JoinGroup,
    /// The release and post-frame blocks of the frame before, then frame `frame` (to the
    /// group: as two units).
    Frame {
        /// The frame.
        frame: u64,
    },
    /// The same release, then frame `frame` as a snapshot: a late joiner's first frame.
    Snapshot {
        /// The frame.
        frame: u64,
    },
    /// The release of frame `frame` alone (`SwapNow` and its post-frame blocks), when no
    /// frame follows it yet.
    Release {
        /// The frame released.
        frame: u64,
    },
    /// Heartbeat `seq`.
    Heartbeat {
        /// Its number.
        seq: u64,
    },
    /// The last multicast unit sent (`Units`): a node that lost the newest units whole
    /// asks for them.
    Units,
}

/// One transmission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Where.
    pub to: Dest,
    /// What.
    pub what: Payload,
}

/// What happened to a node, for the driver to act on and report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// It failed (a broken connection, a missed deadline, silence) and is out of the
    /// session; its connection is to be closed.
    Dropped {
        /// Its connection.
        node: NodeId,
        /// Its name.
        name: String,
        /// Why.
        why: String,
    },
    /// It connected again: its old connection is out of the session and to be closed.
    Replaced {
        /// The old connection.
        node: NodeId,
        /// Its name.
        name: String,
    },
    /// It left to restart (its connection closed, or the load deadline passed): out of the
    /// session, nothing to report.
    Left {
        /// Its connection.
        node: NodeId,
    },
    /// It is in step: every barrier from frame `from` on waits for it.
    InStep {
        /// Its connection.
        node: NodeId,
        /// Its name.
        name: String,
        /// The first frame it presents with the others.
        from: u64,
    },
}

/// A barrier under way.
#[derive(Debug)]
struct Barrier {
    round: Round,
    /// Nodes catching up whose answer is looked for without waiting.
    peeked: Vec<NodeId>,
}

/// The master's side of a session.
#[derive(Debug)]
pub struct MasterSession {
    limits: Limits,
    multicast: bool,
    /// Cluster-file order: the nodes are kept in it, so reports read the same each run.
    order: Vec<String>,
    peers: Vec<Peer>,
    /// Whether any frame was sent (nodes that join before are in step from frame 0), and
    /// whether any went to the group.
    started: bool,
    sent_group: bool,
    /// The first frame sent: its barrier is the start barrier, with the load deadline.
    first_frame: Option<u64>,
    /// Nodes that restart at the next frame sent, for a reconfiguration.
    restarting: Vec<String>,
    barrier: Option<Barrier>,
    beats: Heartbeats,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

impl MasterSession {
    /// A session of the nodes named in `order`, begun at `now`; `multicast` when frame data
    /// goes to a multicast group.
    pub fn new(limits: Limits, order: Vec<String>, multicast: bool, now: Instant) -> Self {
        MasterSession {
            limits,
            multicast,
            order,
            peers: Vec::new(),
            started: false,
            sent_group: false,
            first_frame: None,
            restarting: Vec::new(),
            barrier: None,
            beats: Heartbeats::new(limits.heartbeat, limits.silence, now),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The nodes in the session, in cluster-file order.
    pub fn peers(&self) -> &[Peer] {
        &self.peers
    }

    /// The node on connection `id`.
    pub fn peer(&self, id: NodeId) -> Option<&Peer> {
        self.peers.iter().find(|p| p.id == id)
    }

    /// The nodes that present frame `frame` with the others.
    pub fn presenting(&self, frame: u64) -> impl Iterator<Item = &Peer> {
        self.peers.iter().filter(move |p| p.waited_for(frame))
    }

    /// The first frame sent, if any.
    pub fn first_frame(&self) -> Option<u64> {
        self.first_frame
    }

    /// A new cluster file's node order (a reconfiguration).
    pub fn set_order(&mut self, order: Vec<String>) {
        self.order = order;
        self.sort();
    }

    /// Nodes `names` restart with the next frame sent: they get it, then nothing more.
    pub fn restart_with_next_frame(&mut self, names: Vec<String>) {
        self.restarting = names;
    }

    /// Node `name` finished its handshake on connection `id`; it starts with the next frame
    /// begun. A node that connects again replaces its old connection.
    pub fn handle_joined(&mut self, id: NodeId, name: &str) {
        if let Some(old) = self.take(|p| p.name == name) {
            self.events.push_back(Event::Replaced {
                node: old.id,
                name: old.name,
            });
        }
        self.peers.push(Peer {
            id,
            name: name.to_string(),
            standing: Standing::Joining,
            on_group: false,
            ready: None,
            early: None,
            pulse: Pulse::default(),
        });
        self.sort();
    }

    /// Takes node `id` out of the session without a word (a reconfiguration removed it);
    /// what it was is handed back.
    pub fn remove(&mut self, id: NodeId) -> Option<Peer> {
        self.take(|p| p.id == id)
    }

    /// Frame `frame` is begun at `now`: the nodes that joined since the last one get it as
    /// their first frame (a snapshot, once the session has started).
    pub fn begin_frame(&mut self, frame: u64, now: Instant) {
        if !self.started {
            self.first_frame = Some(frame);
        }
        let started = self.started;
        for p in self
            .peers
            .iter_mut()
            .filter(|p| p.standing == Standing::Joining)
        {
            p.standing = if started {
                Standing::CatchingUp {
                    first: frame,
                    since: now,
                }
            } else {
                Standing::InStep { from: frame }
            };
        }
    }

    /// Whether any node gets frame `frame` as its first (a snapshot is to be encoded).
    pub fn needs_snapshot(&self, frame: u64) -> bool {
        self.peers
            .iter()
            .any(|p| matches!(p.standing, Standing::CatchingUp { first, .. } if first == frame))
    }

    /// Frame `frame` is sent at `now`: once to the group with multicast, and on each
    /// connection that does not take it from there (a node's first frame, which comes after
    /// the group it is told to join). Nodes restarting get it, then nothing more.
    pub fn send_frame(&mut self, frame: u64, now: Instant) {
        if self.multicast {
            self.transmits.push_back(Transmit {
                to: Dest::Group,
                what: Payload::Frame { frame },
            });
            self.sent_group = true;
        }
        let restarting = std::mem::take(&mut self.restarting);
        for p in self.peers.iter_mut().filter(|p| !p.leaving()) {
            let to = Dest::Node(p.id);
            if self.multicast && !p.on_group {
                p.on_group = true;
                self.transmits.push_back(Transmit {
                    to,
                    what: Payload::JoinGroup,
                });
            } else if p.on_group {
                continue;
            }
            let what = match p.standing {
                Standing::CatchingUp { first, .. } if first == frame => Payload::Snapshot { frame },
                _ => Payload::Frame { frame },
            };
            self.transmits.push_back(Transmit { to, what });
        }
        for p in self
            .peers
            .iter_mut()
            .filter(|p| restarting.contains(&p.name))
        {
            p.standing = Standing::Leaving { since: now };
        }
        self.started = true;
    }

    /// Frame `frame`'s release goes out alone (no frame follows it yet): to the group, and
    /// to every connection that frame data travels on.
    pub fn release(&mut self, frame: u64) {
        let what = Payload::Release { frame };
        if self.multicast {
            self.transmits.push_back(Transmit {
                to: Dest::Group,
                what,
            });
        }
        for p in self.peers.iter().filter(|p| !p.leaving() && !p.on_group) {
            self.transmits.push_back(Transmit {
                to: Dest::Node(p.id),
                what,
            });
        }
    }

    /// The barrier of frame `frame` begins at `now`: it waits for every node in step (with
    /// the load deadline for the first frame) and for each node catching up that draws at
    /// the cluster's pace; it looks, without waiting, for the answers of those still
    /// loading.
    pub fn begin_barrier(&mut self, frame: u64, now: Instant) {
        let limit = if self.first_frame == Some(frame) {
            self.limits.load_deadline
        } else {
            self.limits.swap_deadline
        };
        let mut round = Round::new(frame, now, limit, self.sent_group);
        let mut peeked = Vec::new();
        for p in &mut self.peers {
            if p.waited_for(frame) {
                round.wait_for(p.id, p.on_group, false);
                // An answer kept from between frames; one to an earlier frame is late.
                if let Some((f, stats)) = p.early.take() {
                    round.handle_ready(p.id, f, stats);
                }
            } else if let Standing::CatchingUp { first, .. } = p.standing {
                // At the cluster's pace: it answered one of the last two frames. It is
                // waited for once, as any node: in step from this frame, or from the newer
                // one it drew instead.
                let loaded = p.ready.is_some_and(|(f, _)| f >= first && f + 2 >= frame);
                if p.early.is_some_and(|(f, _)| f >= frame) {
                    peeked.push(p.id);
                } else if loaded {
                    round.wait_for(p.id, p.on_group, true);
                } else {
                    peeked.push(p.id);
                }
            }
        }
        self.barrier = Some(Barrier { round, peeked });
    }

    /// The nodes the barrier under way waits for.
    pub fn awaited(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.barrier.iter().flat_map(|b| b.round.awaited())
    }

    /// The nodes whose answers the barrier under way takes without waiting for them: their
    /// connections are to be read once more before it ends.
    pub fn peeked(&self) -> &[NodeId] {
        self.barrier.as_ref().map_or(&[], |b| &b.peeked)
    }

    /// The deadline of the barrier under way.
    pub fn deadline(&self) -> Option<Instant> {
        self.barrier.as_ref().map(|b| b.round.deadline())
    }

    /// Whether the barrier under way waits for nobody any more.
    pub fn barrier_done(&self) -> bool {
        self.barrier.as_ref().is_none_or(|b| b.round.is_done())
    }

    /// Node `id` reported that it is ready to present frame `frame`: for the barrier under
    /// way if it awaits the node, else kept for a later one.
    pub fn handle_ready(&mut self, id: NodeId, frame: u64, stats: NodeStats) {
        let Some(p) = self.peers.iter_mut().find(|p| p.id == id) else {
            return;
        };
        p.pulse.heard();
        p.ready = Some((frame, stats));
        match &mut self.barrier {
            Some(b) if b.round.is_awaited(id) => b.round.handle_ready(id, frame, stats),
            // A late answer to an earlier barrier is only a sign of life.
            Some(b) if frame < b.round.frame() => {}
            _ => p.early = Some((frame, stats)),
        }
    }

    /// Node `id` sent something other than a `SwapReady`: a sign of life.
    pub fn handle_alive(&mut self, id: NodeId) {
        if let Some(p) = self.peers.iter_mut().find(|p| p.id == id) {
            p.pulse.heard();
        }
    }

    /// Node `id` failed: its connection broke, or it broke the protocol. A node leaving to
    /// restart that closes its connection has simply left.
    pub fn handle_failure(&mut self, id: NodeId, why: String) {
        self.fail(id, why, true);
    }

    /// What the session asked to send to node `id` could not be written: it is dropped,
    /// even a node leaving to restart (its switch frame did not reach it).
    pub fn handle_send_failure(&mut self, id: NodeId, why: String) {
        self.fail(id, why, false);
    }

    fn fail(&mut self, id: NodeId, why: String, leaving_left: bool) {
        let Some(p) = self.take(|p| p.id == id) else {
            return;
        };
        if p.leaving() && leaving_left {
            self.events.push_back(Event::Left { node: id });
            return;
        }
        if let Some(b) = &mut self.barrier {
            b.round.handle_failure(id, why.clone());
        }
        self.events.push_back(Event::Dropped {
            node: id,
            name: p.name,
            why,
        });
    }

    /// Time passed. In a barrier: nodes fed by multicast that are late are told the last
    /// unit, and at the deadline the nodes still awaited missed it (a driver reads what
    /// they sent before it calls this at the deadline). Between frames: nodes silent too
    /// long are dropped, nodes leaving too long let go, and a heartbeat goes out when due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(b) = &mut self.barrier {
            b.round.handle_timeout(now);
            while let Some(barrier::Transmit::Units { node }) = b.round.poll_transmit() {
                self.transmits.push_back(Transmit {
                    to: Dest::Node(node),
                    what: Payload::Units,
                });
            }
            return;
        }
        let limit = self.beats.limit();
        let silent: Vec<(NodeId, Duration)> = self
            .peers
            .iter()
            .filter(|p| !p.leaving())
            .filter_map(|p| p.pulse.silent(now, limit).map(|d| (p.id, d)))
            .collect();
        for (id, silent) in silent {
            self.handle_failure(id, format!("answered no heartbeat for {silent:?}"));
        }
        self.let_go(now);
        if let Some(seq) = self.beats.poll_beat(now) {
            for p in self.peers.iter_mut().filter(|p| !p.leaving()) {
                // With it, the last unit sent: a node that lost it whole while nothing
                // followed (the cluster paused) asks for it.
                if p.on_group && self.sent_group {
                    self.transmits.push_back(Transmit {
                        to: Dest::Node(p.id),
                        what: Payload::Units,
                    });
                }
                self.transmits.push_back(Transmit {
                    to: Dest::Node(p.id),
                    what: Payload::Heartbeat { seq },
                });
                p.pulse.asked(now);
            }
        }
    }

    /// When [`MasterSession::handle_timeout`] is next due: the barrier's nudge or deadline,
    /// or the next heartbeat. None while a barrier waits for nobody.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.barrier {
            Some(b) => b.round.poll_timeout(),
            None => Some(self.beats.poll_timeout()),
        }
    }

    /// Ends the barrier under way at `now`: the nodes that answered are heard, the others
    /// dropped; nodes catching up whose answer came are in step, those over the load
    /// deadline dropped. Gives the stats of each node that answered this frame, in order.
    pub fn end_barrier(&mut self, now: Instant) -> Vec<(NodeId, NodeStats)> {
        let Some(Barrier { round, .. }) = self.barrier.take() else {
            return Vec::new();
        };
        let frame = round.frame();
        let mut answered = Vec::new();
        for (id, outcome) in round.finish() {
            let Some(p) = self.peers.iter_mut().find(|p| p.id == id) else {
                continue;
            };
            match outcome {
                Ok((f, stats)) => {
                    p.pulse.heard();
                    p.ready = Some((f, stats));
                    if let Standing::CatchingUp { .. } = p.standing {
                        if f > frame {
                            // It drew a newer frame instead: kept for that frame's barrier,
                            // which takes it in step, so a node told in step at a frame's
                            // swap presents that frame.
                            p.early = Some((f, stats));
                            continue;
                        }
                        p.standing = Standing::InStep { from: f };
                        self.events.push_back(Event::InStep {
                            node: id,
                            name: p.name.clone(),
                            from: f,
                        });
                    }
                    answered.push((id, stats));
                }
                Err(why) => self.handle_failure(id, why),
            }
        }
        let load = self.limits.load_deadline;
        let mut late = Vec::new();
        for p in &mut self.peers {
            let Standing::CatchingUp { since, .. } = p.standing else {
                continue;
            };
            match p.early {
                Some((from, stats)) if from == frame => {
                    p.standing = Standing::InStep { from };
                    p.early = None;
                    self.events.push_back(Event::InStep {
                        node: p.id,
                        name: p.name.clone(),
                        from,
                    });
                    answered.push((p.id, stats));
                }
                // Ready for a later frame (its snapshot came before this barrier ran): that
                // frame's barrier takes it in step.
                Some((from, _)) if from > frame => {}
                _ if now.saturating_duration_since(since) > load => late.push(p.id),
                _ => {}
            }
        }
        for id in late {
            self.handle_failure(
                id,
                format!("did not catch up with the cluster within {load:?}"),
            );
        }
        self.let_go(now);
        let order = |id: &NodeId| self.peers.iter().position(|p| p.id == *id);
        answered.sort_by_key(|(id, _)| order(id));
        answered
    }

    /// The next thing to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next thing that happened to a node, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Nodes leaving to restart for longer than the load deadline are let go.
    fn let_go(&mut self, now: Instant) {
        let load = self.limits.load_deadline;
        let events = &mut self.events;
        self.peers.retain(|p| match p.standing {
            Standing::Leaving { since } if now.saturating_duration_since(since) > load => {
                events.push_back(Event::Left { node: p.id });
                false
            }
            _ => true,
        });
    }

    fn take(&mut self, which: impl Fn(&Peer) -> bool) -> Option<Peer> {
        let i = self.peers.iter().position(which)?;
        Some(self.peers.remove(i))
    }

    fn sort(&mut self) {
        let order = &self.order;
        self.peers.sort_by_key(|p| {
            order
                .iter()
                .position(|o| *o == p.name)
                .unwrap_or(usize::MAX)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn limits() -> Limits {
        Limits {
            swap_deadline: 100 * MS,
            load_deadline: 2000 * MS,
            heartbeat: 50 * MS,
            silence: 200 * MS,
        }
    }

    fn in_step_events(s: &mut MasterSession) -> Vec<(NodeId, u64)> {
        std::iter::from_fn(|| s.poll_event())
            .filter_map(|e| match e {
                Event::InStep { node, from, .. } => Some((node, from)),
                _ => None,
            })
            .collect()
    }

    /// Two frames in flight: a joiner's snapshot is frame 6, sent before frame 5's barrier.
    /// Its answer for 6 must not make it in step at 5 (it has no frame 5 to present).
    #[test]
    fn a_joiner_ready_for_a_later_frame_is_taken_in_step_at_that_frame_not_before() {
        let t0 = Instant::now();
        let order = vec!["a".to_string(), "late".to_string()];
        let mut s = MasterSession::new(limits(), order, false, t0);
        s.handle_joined(0, "a");
        for f in 0..5 {
            s.begin_frame(f, t0);
            s.send_frame(f, t0);
            s.begin_barrier(f, t0);
            s.handle_ready(0, f, NodeStats::default());
            assert_eq!(s.end_barrier(t0).len(), 1);
            s.release(f);
        }
        s.begin_frame(5, t0);
        s.send_frame(5, t0);
        s.handle_joined(1, "late");
        s.begin_frame(6, t0);
        assert!(s.needs_snapshot(6));
        s.send_frame(6, t0);
        while s.poll_transmit().is_some() {}
        let _ = in_step_events(&mut s);
        s.begin_barrier(5, t0);
        assert_eq!(s.awaited().collect::<Vec<_>>(), [0]);
        s.handle_ready(0, 5, NodeStats::default());
        s.handle_ready(1, 6, NodeStats::default());
        let answered: Vec<_> = s.end_barrier(t0).into_iter().map(|(id, _)| id).collect();
        assert_eq!(answered, [0]);
        assert_eq!(in_step_events(&mut s), []);
        assert!(matches!(
            s.peer(1).map(|p| p.standing),
            Some(Standing::CatchingUp { .. })
        ));
        s.release(5);
        s.begin_barrier(6, t0 + MS);
        s.handle_ready(0, 6, NodeStats::default());
        let answered: Vec<_> = s
            .end_barrier(t0 + MS)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(answered, [0, 1]);
        assert_eq!(in_step_events(&mut s), [(1, 6)]);
        let names: Vec<_> = s.presenting(6).map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "late"]);
    }

    /// A node restarting for a reconfiguration whose switch frame cannot be written is
    /// dropped (and reported), not let go quietly as if it had left.
    #[test]
    fn a_restarting_node_whose_switch_frame_fails_is_dropped_one_that_closes_has_left() {
        let t0 = Instant::now();
        let order = vec!["a".to_string(), "b".to_string()];
        let mut s = MasterSession::new(limits(), order, false, t0);
        s.handle_joined(0, "a");
        s.handle_joined(1, "b");
        s.begin_frame(0, t0);
        s.restart_with_next_frame(vec!["a".into(), "b".into()]);
        s.send_frame(0, t0);
        while s.poll_transmit().is_some() {}
        assert!(matches!(
            s.peer(0).map(|p| p.standing),
            Some(Standing::Leaving { .. })
        ));
        s.handle_send_failure(0, "cannot send frame 0: broken pipe".into());
        s.handle_failure(1, "closed the connection".into());
        let events: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
        assert_eq!(
            events,
            [
                Event::Dropped {
                    node: 0,
                    name: "a".into(),
                    why: "cannot send frame 0: broken pipe".into()
                },
                Event::Left { node: 1 },
            ]
        );
    }
}
