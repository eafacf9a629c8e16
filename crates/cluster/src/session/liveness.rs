/*!
Keeping connections alive between frames, sans IO: when a heartbeat is due, and which node
has answered none for too long. While frames flow, each `SwapReady` is the node's sign of
life; between them (a paced master, the start barrier) the master sends heartbeats, and a
node that answers none for the silence limit is dropped. Time is passed in; the master's
driver (`master/standing.rs`) sends and reads.
*/
use std::time::{Duration, Instant};

/// The master's heartbeats.
#[derive(Debug, Clone)]
pub struct Heartbeats {
    period: Duration,
    limit: Duration,
    seq: u64,
    last: Instant,
}

impl Heartbeats {
    /// A heartbeat every `period` from `now` on; a node silent for `limit` since the first
    /// one it did not answer is gone.
    pub fn new(period: Duration, limit: Duration, now: Instant) -> Heartbeats {
        Heartbeats {
            period,
            limit,
            seq: 0,
            last: now,
        }
    }

    /// The number of the heartbeat to send now, if one is due (it counts as sent).
    pub fn poll_beat(&mut self, now: Instant) -> Option<u64> {
        if now.saturating_duration_since(self.last) < self.period {
            return None;
        }
        self.seq += 1;
        self.last = now;
        Some(self.seq)
    }

    /// When the next heartbeat is due.
    pub fn poll_timeout(&self) -> Instant {
        self.last + self.period
    }

    /// How long a node may stay silent.
    pub fn limit(&self) -> Duration {
        self.limit
    }
}

/// One node's answers to the heartbeats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pulse {
    /// The first heartbeat it has not answered yet.
    asked: Option<Instant>,
}

impl Pulse {
    /// A heartbeat went to it at `now` (the first unanswered one is kept).
    pub fn asked(&mut self, now: Instant) {
        self.asked.get_or_insert(now);
    }

    /// It sent something: every heartbeat so far counts as answered.
    pub fn heard(&mut self) {
        self.asked = None;
    }

    /// How long it has been silent since the first unanswered heartbeat, once that is over
    /// `limit`.
    pub fn silent(&self, now: Instant, limit: Duration) -> Option<Duration> {
        self.asked
            .map(|t| now.saturating_duration_since(t))
            .filter(|d| *d > limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn heartbeats_are_due_every_period_numbered_from_one() {
        let t0 = Instant::now();
        let mut h = Heartbeats::new(250 * MS, MS * 1000, t0);
        assert_eq!(h.poll_beat(t0 + 249 * MS), None);
        assert_eq!(h.poll_timeout(), t0 + 250 * MS);
        assert_eq!(h.poll_beat(t0 + 250 * MS), Some(1));
        assert_eq!(h.poll_beat(t0 + 260 * MS), None);
        // A late wake sends one, not the ones it slept through.
        assert_eq!(h.poll_beat(t0 + 900 * MS), Some(2));
        assert_eq!(h.poll_beat(t0 + 1000 * MS), None);
        assert_eq!(h.poll_timeout(), t0 + 1150 * MS);
    }

    #[test]
    fn a_node_that_answers_no_heartbeat_for_the_limit_is_silent_one_that_answers_never() {
        let t0 = Instant::now();
        let limit = 1000 * MS;
        let (mut answering, mut silent) = (Pulse::default(), Pulse::default());
        for k in 0..8u32 {
            let now = t0 + k * 250 * MS;
            answering.asked(now);
            silent.asked(now);
            answering.heard();
            assert_eq!(answering.silent(now, limit), None);
        }
        // Silent since the first heartbeat, at t0: over the limit only after it.
        assert_eq!(silent.silent(t0 + limit, limit), None);
        assert_eq!(
            silent.silent(t0 + limit + 5 * MS, limit),
            Some(limit + 5 * MS)
        );
        // One answer and it is alive again.
        silent.heard();
        assert_eq!(silent.silent(t0 + 5000 * MS, limit), None);
        assert_eq!(answering, Pulse::default());
    }
}
