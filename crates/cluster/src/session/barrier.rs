/*!
The swap barrier of one frame, sans IO: which nodes it waits for, what each answered, when it
gives up on the rest, and when it tells a node fed by multicast which unit was sent last.
Time is passed in and nothing here touches a socket: the master's driver
(`master/barrier.rs`) reads the nodes' connections, hands each `SwapReady` to
[`Round::handle_ready`], sleeps until [`Round::poll_timeout`], and sends what
[`Round::poll_transmit`] asks for.
*/
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use lockstep_wire::NodeStats;

use super::NodeId;

/// How long a barrier waits for a node fed by multicast before it tells the node which unit
/// was sent last: long enough that a node still drawing is not told every frame.
pub fn nudge(limit: Duration) -> Duration {
    (limit / 8).max(Duration::from_millis(20))
}

/// What a round asks its driver to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transmit {
    /// Tell this node, on its connection, the last multicast unit sent (`Units`): its answer
    /// is long in coming, and it may have lost the newest units whole.
    Units {
        /// The node, as the driver numbered it.
        node: NodeId,
    },
}

/// How a node's part in a round ended: the frame it is ready for, and its stats.
pub type Outcome = Result<(u64, NodeStats), String>;

/// A node the round waits for.
#[derive(Debug, Clone, Copy)]
struct Awaited {
    node: NodeId,
    /// Frame data reaches it by multicast.
    on_group: bool,
    /// An answer for a later frame counts too (a node catching up may draw a newer one).
    or_later: bool,
}

/// One frame's swap barrier.
#[derive(Debug)]
pub struct Round {
    frame: u64,
    limit: Duration,
    deadline: Instant,
    /// When nodes fed by multicast still awaited are told the last unit; none once done, or
    /// without multicast.
    nudge_at: Option<Instant>,
    awaited: Vec<Awaited>,
    ended: Vec<(NodeId, Outcome)>,
    transmits: VecDeque<Transmit>,
}

impl Round {
    /// The barrier of frame `frame`, begun at `now`, giving up after `limit`; `multicast`
    /// when frame data goes by multicast (its nodes may be nudged).
    pub fn new(frame: u64, now: Instant, limit: Duration, multicast: bool) -> Round {
        Round {
            frame,
            limit,
            deadline: now + limit,
            nudge_at: multicast.then(|| now + nudge(limit)),
            awaited: Vec::new(),
            ended: Vec::new(),
            transmits: VecDeque::new(),
        }
    }

    /// Waits for node `node` too (`on_group`: fed by multicast; `or_later`: an answer for
    /// a later frame counts too).
    pub fn wait_for(&mut self, node: NodeId, on_group: bool, or_later: bool) {
        if !self.is_awaited(node) && !self.ended.iter().any(|(n, _)| *n == node) {
            self.awaited.push(Awaited {
                node,
                on_group,
                or_later,
            });
        }
    }

    /// Node `node` reported it is ready to present frame `frame`. An answer for another
    /// frame (a late one to an earlier barrier) or from a node not awaited changes nothing.
    pub fn handle_ready(&mut self, node: NodeId, frame: u64, stats: NodeStats) {
        let Some(a) = self.awaited.iter().find(|a| a.node == node) else {
            return;
        };
        if frame == self.frame || (a.or_later && frame > self.frame) {
            self.end(node, Ok((frame, stats)));
        }
    }

    /// The frame this round is the barrier of.
    pub fn frame(&self) -> u64 {
        self.frame
    }

    /// Whether node `node` is still awaited.
    pub fn is_awaited(&self, node: NodeId) -> bool {
        self.awaited.iter().any(|a| a.node == node)
    }

    /// Node `node` failed (its connection broke, it broke the protocol): not awaited any
    /// more, with the reason.
    pub fn handle_failure(&mut self, node: NodeId, why: String) {
        self.end(node, Err(why));
    }

    /// Time passed: at the nudge, every node fed by multicast still awaited is to be told
    /// the last unit (once); at the deadline, every node still awaited missed it. A driver
    /// reads what the nodes already sent before it calls this at the deadline: a node whose
    /// answer was there was on time.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(at) = self.nudge_at
            && now >= at
        {
            self.nudge_at = None;
            let nudged = self.awaited.iter().filter(|a| a.on_group);
            self.transmits
                .extend(nudged.map(|a| Transmit::Units { node: a.node }));
        }
        if now >= self.deadline {
            let why = format!(
                "missed the swap deadline of {:?} at frame {}",
                self.limit, self.frame
            );
            for a in std::mem::take(&mut self.awaited) {
                self.ended.push((a.node, Err(why.clone())));
            }
        }
    }

    /// The next thing to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// When [`Round::handle_timeout`] is next due; none once every node has answered or
    /// failed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.awaited.is_empty() {
            return None;
        }
        Some(
            self.nudge_at
                .map_or(self.deadline, |t| t.min(self.deadline)),
        )
    }

    /// The deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The nodes still awaited.
    pub fn awaited(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.awaited.iter().map(|a| a.node)
    }

    /// Whether every node has answered or failed.
    pub fn is_done(&self) -> bool {
        self.awaited.is_empty()
    }

    /// How each node's part ended, in node order.
    pub fn finish(mut self) -> Vec<(NodeId, Outcome)> {
        self.ended.sort_by_key(|(n, _)| *n);
        self.ended
    }

    fn end(&mut self, node: NodeId, outcome: Outcome) {
        if let Some(i) = self.awaited.iter().position(|a| a.node == node) {
            self.awaited.swap_remove(i);
            self.ended.push((node, outcome));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(ready_ms: f32) -> NodeStats {
        NodeStats {
            ready_ms,
            ..NodeStats::default()
        }
    }

    const LIMIT: Duration = Duration::from_millis(400);

    #[test]
    fn every_answer_ends_the_round_in_node_order_and_late_or_foreign_answers_change_nothing() {
        let t0 = Instant::now();
        let mut r = Round::new(7, t0, LIMIT, false);
        for n in [2, 0, 1] {
            r.wait_for(n, false, false);
        }
        r.wait_for(2, false, false);
        assert_eq!(r.poll_timeout(), Some(t0 + LIMIT));
        r.handle_ready(1, 6, stats(1.0));
        r.handle_ready(9, 7, stats(9.0));
        assert_eq!(r.awaited().count(), 3);
        r.handle_ready(2, 7, stats(2.0));
        r.handle_ready(0, 7, stats(0.5));
        r.handle_ready(0, 7, stats(5.0));
        assert!(!r.is_done());
        r.handle_ready(1, 7, stats(1.5));
        assert!(r.is_done());
        assert_eq!(r.poll_timeout(), None);
        assert_eq!(r.poll_transmit(), None);
        let got: Vec<(NodeId, f32)> = r
            .finish()
            .into_iter()
            .map(|(n, o)| (n, o.unwrap().1.ready_ms))
            .collect();
        assert_eq!(got, [(0, 0.5), (1, 1.5), (2, 2.0)]);
    }

    #[test]
    fn a_node_silent_until_the_deadline_misses_it_and_the_others_do_not() {
        let t0 = Instant::now();
        let mut r = Round::new(5, t0, LIMIT, false);
        r.wait_for(0, false, false);
        r.wait_for(1, false, false);
        r.handle_ready(0, 5, stats(1.0));
        r.handle_timeout(t0 + LIMIT - Duration::from_millis(1));
        assert!(!r.is_done());
        r.handle_timeout(t0 + LIMIT);
        assert!(r.is_done());
        let ended = r.finish();
        assert!(ended[0].1.is_ok());
        assert_eq!(
            ended[1],
            (
                1,
                Err("missed the swap deadline of 400ms at frame 5".into())
            )
        );
    }

    #[test]
    fn a_multicast_node_late_by_the_nudge_is_told_the_last_unit_once() {
        let t0 = Instant::now();
        let mut r = Round::new(3, t0, LIMIT, true);
        r.wait_for(0, true, false);
        r.wait_for(1, false, false);
        r.wait_for(2, true, false);
        r.wait_for(3, true, false);
        r.handle_ready(3, 3, stats(0.0));
        let at = t0 + nudge(LIMIT);
        assert_eq!(nudge(LIMIT), Duration::from_millis(50));
        assert_eq!(r.poll_timeout(), Some(at));
        r.handle_timeout(at - Duration::from_millis(1));
        assert_eq!(r.poll_transmit(), None);
        r.handle_timeout(at);
        // Not the TCP node, not the one that answered.
        assert_eq!(r.poll_transmit(), Some(Transmit::Units { node: 0 }));
        assert_eq!(r.poll_transmit(), Some(Transmit::Units { node: 2 }));
        assert_eq!(r.poll_transmit(), None);
        assert_eq!(r.poll_timeout(), Some(t0 + LIMIT));
        r.handle_timeout(at + Duration::from_millis(10));
        assert_eq!(r.poll_transmit(), None, "told once");
        // A short deadline still nudges at 20 ms at least.
        assert_eq!(nudge(Duration::from_millis(40)), Duration::from_millis(20));
    }

    #[test]
    fn a_failed_node_is_not_awaited_and_keeps_its_reason() {
        let t0 = Instant::now();
        let mut r = Round::new(1, t0, LIMIT, false);
        r.wait_for(0, false, false);
        r.wait_for(1, false, false);
        r.handle_failure(1, "closed the connection".into());
        r.handle_failure(1, "twice".into());
        assert_eq!(r.awaited().collect::<Vec<_>>(), [0]);
        r.handle_ready(0, 1, stats(0.0));
        let ended = r.finish();
        assert_eq!(ended[1], (1, Err("closed the connection".into())));
        // Nothing is waited for that already ended.
        let mut r = Round::new(1, t0, LIMIT, false);
        r.wait_for(0, false, false);
        r.handle_ready(0, 1, stats(0.0));
        r.wait_for(0, false, false);
        assert!(r.is_done());
    }
}
