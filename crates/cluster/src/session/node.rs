/*!
A node's side of the session once the master feeds it by multicast, sans IO: the master's
stream put back in order from two sources — its connection (the first frame, heartbeats,
`Units`, the shutdown, datagrams sent again) and the group (every unit after that first
frame, as authenticated datagrams) — with requests for what is missing, the master's
silence, and a shutdown that waits for the units sent before it.

It reads no socket and no clock. Its driver (`crate::node::from_master`) hands over each
datagram ([`NodeStream::handle_datagram`]) and each message of the connection
([`NodeStream::handle_message`], which says whether the message goes on to the node as it
is), sleeps until [`NodeStream::poll_timeout`], sends each [`Nak`] that
[`NodeStream::poll_transmit`] gives on the connection, and takes [`Event`]s: whole units to
decode, the shutdown, or why the session ends. The in-memory harness (`session/harness.rs`)
drives the same stream over a simulated network and clock.
*/
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use lockstep_wire::datagram::{
    Assembled, DatagramError, DatagramStats, MulticastKey, Nak, Reassembler,
};
use lockstep_wire::{Hook, Message};

/// How long a `Shutdown` on the connection waits, at most, for the units sent before it
/// (the master names the last of them first, and sends the shutdown to the group too).
pub const SHUTDOWN_GRACE: Duration = Duration::from_millis(100);

/// What the stream has for its node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The next unit, whole and authenticated: messages as the connection carries them.
    Unit(Vec<u8>),
    /// The master shut the cluster down, and every unit it sent before is out.
    Shutdown(String),
    /// This unit was lost beyond repair: the node must join again rather than apply the
    /// frames after it.
    Lost(u64),
    /// The master sent nothing this node could trust for this long: it counts as gone.
    Silent(Duration),
    /// So many datagrams were refused so far (another cluster's, forged or altered); told
    /// at 1, 2, 4, … so a flood is logged, not every datagram of it.
    Refused(u64),
}

/// A `Shutdown` that came on the connection while units may still be on their way.
#[derive(Debug)]
struct Farewell {
    reason: String,
    since: Instant,
    /// The last unit sent before it: those up to it are handed out first, none after.
    through: Option<u64>,
}

/// The master's stream to one node fed by the group.
#[derive(Debug)]
pub struct NodeStream {
    units: Reassembler,
    silence: Duration,
    /// When anything trustworthy last came from the master.
    heard: Instant,
    /// Its first frame is still to come on the connection (the master names the group
    /// before it): units after it are gathered and repaired meanwhile, and handed out only
    /// once that frame is whole.
    first_on_tcp: bool,
    /// The last unit the master said it sent (`Units`).
    sent: Option<u64>,
    shutdown: Option<Farewell>,
    /// Refusals are told when their count reaches this (then twice as many).
    warn_at: u64,
    events: VecDeque<Event>,
    /// An event that ends the stream was handed out: nothing more is.
    ended: bool,
}

impl NodeStream {
    /// The stream from unit `first` on (what `Multicast` named), of units of at most
    /// `max_frame` bytes authenticated with `key`; the master counts as gone after
    /// `silence` without a sign from it.
    pub fn new(
        key: MulticastKey,
        max_frame: usize,
        first: u64,
        silence: Duration,
        now: Instant,
    ) -> Self {
        NodeStream {
            units: Reassembler::new(key, max_frame, first),
            silence,
            heard: now,
            first_on_tcp: true,
            sent: None,
            shutdown: None,
            warn_at: 1,
            events: VecDeque::new(),
            ended: false,
        }
    }

    /// What the group brought so far.
    pub fn stats(&self) -> DatagramStats {
        self.units.stats
    }

    /// Whether the connection is still read: after a shutdown the master closes it, and
    /// only the group's last units are waited for.
    pub fn reads_connection(&self) -> bool {
        self.shutdown.is_none()
    }

    /// Takes a message that came on the connection at `now`: `Ok(true)` if it goes on to
    /// the node as it is (the first frame's messages, heartbeats), `Ok(false)` if the stream
    /// kept it, or what is wrong with it.
    pub fn handle_message(&mut self, m: &Message<'_>, now: Instant) -> Result<bool, String> {
        self.heard = now;
        match *m {
            Message::Shutdown { reason } if !self.first_on_tcp => {
                self.handle_shutdown(reason, now);
                Ok(false)
            }
            Message::Units { through } => {
                self.handle_units(through, now);
                Ok(false)
            }
            Message::Datagram { bytes } => {
                // Refused ones are counted and repaired like lost ones.
                let _ = self.take_datagram(bytes, now);
                Ok(false)
            }
            Message::Multicast { .. } => Err("it sent Multicast twice".into()),
            Message::EndBlock {
                hook: Hook::PreDraw,
                ..
            } if self.first_on_tcp => {
                self.first_frame_done();
                Ok(true)
            }
            Message::Heartbeat { .. } => Ok(true),
            _ if self.first_on_tcp => Ok(true),
            ref other => Err(format!(
                "it sent {} on the connection, while frames come by multicast",
                other.kind()
            )),
        }
    }

    /// The first frame, on the connection, is whole: the units after it are handed out.
    pub fn first_frame_done(&mut self) {
        self.first_on_tcp = false;
    }

    /// The master said it has sent every unit up to `through`: one of which nothing came
    /// is asked for too.
    pub fn handle_units(&mut self, through: u64, now: Instant) {
        self.heard = now;
        self.sent = Some(through);
        self.units.expect(through, now);
    }

    /// The master shut down (on the connection): told once the units it sent before are
    /// handed out, or after [`SHUTDOWN_GRACE`].
    pub fn handle_shutdown(&mut self, reason: &str, now: Instant) {
        self.heard = now;
        self.shutdown = Some(Farewell {
            reason: reason.to_string(),
            since: now,
            through: self.sent,
        });
    }

    /// The group's own copy of the shutdown was decoded from a unit: the one from the
    /// connection is not told again.
    pub fn handle_group_shutdown(&mut self) {
        self.shutdown = None;
        self.ended = true;
    }

    /// Takes a datagram from the group that arrived at `now`. A refused one is counted (and
    /// its frame repaired as if it were lost); only the master's own show it is alive.
    pub fn handle_datagram(&mut self, datagram: &[u8], now: Instant) -> Result<(), DatagramError> {
        let r = self.take_datagram(datagram, now);
        if r.is_ok() {
            self.heard = now;
        }
        r
    }

    fn take_datagram(&mut self, datagram: &[u8], now: Instant) -> Result<(), DatagramError> {
        let r = self.units.accept(datagram, now);
        let rejected = self.units.stats.rejected;
        if rejected >= self.warn_at {
            self.events.push_back(Event::Refused(rejected));
            self.warn_at = rejected.saturating_mul(2);
        }
        r
    }

    /// Time passes: the master's silence, the shutdown's grace.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.ended {
            return;
        }
        if let Some(s) = &self.shutdown
            && now.saturating_duration_since(s.since) >= SHUTDOWN_GRACE
        {
            let reason = std::mem::take(&mut self.shutdown).map(|s| s.reason);
            self.end(Event::Shutdown(reason.unwrap_or_default()));
            return;
        }
        // A shutdown pending is the master's last word: its silence after is no failure.
        if self.shutdown.is_none() && now.saturating_duration_since(self.heard) >= self.silence {
            self.end(Event::Silent(self.silence));
        }
    }

    fn end(&mut self, e: Event) {
        self.ended = true;
        self.events.push_back(e);
    }

    /// The next event: refusals told, then whole units in order — none before the first
    /// frame is whole, none after a shutdown's last — a lost one, the shutdown.
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some(e) = self.events.pop_front() {
            return Some(e);
        }
        if self.ended {
            return None;
        }
        if let Some(s) = &self.shutdown
            && s.through.is_some_and(|t| self.units.next_frame() > t)
        {
            let reason = std::mem::take(&mut self.shutdown).map(|s| s.reason);
            self.ended = true;
            return Some(Event::Shutdown(reason.unwrap_or_default()));
        }
        if self.first_on_tcp {
            return None;
        }
        match self.units.poll_frame()? {
            Assembled::Frame(_, bytes) => Some(Event::Unit(bytes)),
            Assembled::Lost(unit) => {
                self.ended = true;
                Some(Event::Lost(unit))
            }
        }
    }

    /// A request for missing datagrams due at `now`, to send on the connection; none once
    /// the master said goodbye (it answers no more).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Nak> {
        if self.shutdown.is_some() || self.ended {
            return None;
        }
        self.units.poll_nak(now)
    }

    /// When [`NodeStream::handle_timeout`] or [`NodeStream::poll_transmit`] next has
    /// something to do: the next repair, the shutdown's grace, or the silence limit; none
    /// once the stream has ended.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.ended {
            return None;
        }
        if let Some(s) = &self.shutdown {
            return Some(s.since + SHUTDOWN_GRACE);
        }
        let silent = self.heard + self.silence;
        Some(match self.units.poll_timeout() {
            Some(t) => t.min(silent),
            None => silent,
        })
    }
}

#[cfg(test)]
mod tests {
    use lockstep_wire::ClusterKey;
    use lockstep_wire::datagram::{Fragmenter, NAK_RETRY, TAIL_WAIT};

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn key() -> MulticastKey {
        MulticastKey::derive(
            &ClusterKey::new(vec![7; 32]).expect("a 32-byte key"),
            "wall",
            42,
        )
    }

    /// A stream from unit 0 and a fragmenter for the same session, with 200 ms silence.
    fn pair(now: Instant) -> (NodeStream, Fragmenter) {
        (
            NodeStream::new(key(), 1 << 20, 0, 200 * MS, now),
            Fragmenter::new(key(), 200, 8),
        )
    }

    fn datagrams(f: &mut Fragmenter, unit: u64, bytes: &[u8]) -> Vec<Vec<u8>> {
        f.fragment(unit, bytes).unwrap().to_vec()
    }

    fn events(s: &mut NodeStream) -> Vec<Event> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    #[test]
    fn units_wait_for_the_first_frame_on_the_connection_then_come_in_order() {
        let t0 = Instant::now();
        let (mut s, mut f) = pair(t0);
        let one = datagrams(&mut f, 0, &[1; 500]);
        let two = datagrams(&mut f, 1, &[2; 300]);
        // The second unit first, and the first one's datagrams backwards.
        for d in two.iter().chain(one.iter().rev()) {
            s.handle_datagram(d, t0).unwrap();
        }
        assert_eq!(events(&mut s), vec![], "nothing before the first frame");
        let frame_begin = Message::FrameBegin {
            frame: 5,
            time: 0.0,
            dt: 0.0,
        };
        assert_eq!(s.handle_message(&frame_begin, t0), Ok(true));
        let end = Message::EndBlock {
            hook: Hook::PreDraw,
            frame: 5,
        };
        assert_eq!(s.handle_message(&end, t0), Ok(true));
        assert_eq!(
            events(&mut s),
            vec![Event::Unit(vec![1; 500]), Event::Unit(vec![2; 300])]
        );
        // After it, frames on the connection are a broken protocol.
        let err = s.handle_message(&frame_begin, t0).unwrap_err();
        assert_eq!(
            err,
            "it sent FrameBegin on the connection, while frames come by multicast"
        );
        assert_eq!(
            s.handle_message(&Message::Heartbeat { seq: 3 }, t0),
            Ok(true)
        );
    }

    #[test]
    fn a_gap_is_asked_for_at_once_and_again_until_repaired() {
        let t0 = Instant::now();
        let (mut s, mut f) = pair(t0);
        s.first_frame_done();
        let d = datagrams(&mut f, 0, &[9; 700]);
        assert!(d.len() >= 3);
        s.handle_datagram(&d[0], t0).unwrap();
        s.handle_datagram(&d[2], t0).unwrap();
        let nak = s.poll_transmit(t0).expect("the gap at once");
        assert_eq!((nak.frame, nak.missing.clone()), (0, vec![1]));
        assert!(s.poll_transmit(t0).is_none());
        assert_eq!(s.poll_timeout(), Some(t0 + NAK_RETRY));
        // Asked again; quiet by then, the frame's tail is asked for too.
        let again = s.poll_transmit(t0 + NAK_RETRY).expect("asked again");
        let missing: Vec<u16> = (1..d.len() as u16).filter(|i| *i != 2).collect();
        assert_eq!(again.missing, missing);
        for x in &d[1..] {
            s.handle_datagram(x, t0 + NAK_RETRY).unwrap();
        }
        assert_eq!(events(&mut s), vec![Event::Unit(vec![9; 700])]);
        assert!(s.poll_transmit(t0 + 10 * NAK_RETRY).is_none());
    }

    #[test]
    fn a_unit_lost_whole_is_asked_for_once_the_master_says_it_was_sent() {
        let t0 = Instant::now();
        let (mut s, _) = pair(t0);
        s.first_frame_done();
        s.handle_message(&Message::Units { through: 0 }, t0)
            .unwrap();
        assert!(s.poll_transmit(t0).is_none(), "it waits for the tail");
        let nak = s
            .poll_transmit(t0 + TAIL_WAIT)
            .expect("then asks for all of it");
        assert_eq!((nak.frame, nak.missing.is_empty()), (0, true));
    }

    #[test]
    fn forged_datagrams_are_refused_counted_told_sparingly_and_no_sign_of_life() {
        let t0 = Instant::now();
        let (mut s, mut f) = pair(t0);
        s.first_frame_done();
        let mut d = datagrams(&mut f, 0, &[3; 100]).remove(0);
        let last = d.len() - 1;
        d[last] ^= 1;
        for i in 0..5u32 {
            let at = t0 + 50 * MS * i;
            assert!(matches!(
                s.handle_datagram(&d, at),
                Err(DatagramError::Forged { frame: 0, index: 0 })
            ));
        }
        assert_eq!(s.stats().rejected, 5);
        assert_eq!(
            events(&mut s),
            vec![Event::Refused(1), Event::Refused(2), Event::Refused(4)]
        );
        // Forged datagrams kept coming, but the master was silent since t0.
        assert_eq!(s.poll_timeout(), Some(t0 + 200 * MS));
        s.handle_timeout(t0 + 199 * MS);
        assert_eq!(events(&mut s), vec![]);
        s.handle_timeout(t0 + 200 * MS);
        assert_eq!(events(&mut s), vec![Event::Silent(200 * MS)]);
        s.handle_timeout(t0 + 400 * MS);
        assert_eq!(events(&mut s), vec![], "ended once");
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn a_shutdown_on_the_connection_waits_for_the_units_sent_before_it() {
        let t0 = Instant::now();
        let (mut s, mut f) = pair(t0);
        s.first_frame_done();
        let last = datagrams(&mut f, 0, &[4; 50]);
        s.handle_message(&Message::Units { through: 0 }, t0)
            .unwrap();
        let bye = Message::Shutdown { reason: "done" };
        assert_eq!(s.handle_message(&bye, t0), Ok(false));
        assert!(!s.reads_connection());
        assert_eq!(events(&mut s), vec![]);
        assert!(
            s.poll_transmit(t0 + TAIL_WAIT).is_none(),
            "no repairs after goodbye"
        );
        s.handle_datagram(&last[0], t0 + MS).unwrap();
        assert_eq!(
            events(&mut s),
            vec![Event::Unit(vec![4; 50]), Event::Shutdown("done".into())]
        );
    }

    #[test]
    fn a_shutdown_whose_units_never_come_is_told_after_the_grace() {
        let t0 = Instant::now();
        let (mut s, _) = pair(t0);
        s.first_frame_done();
        s.handle_units(3, t0);
        s.handle_shutdown("bye", t0);
        assert_eq!(s.poll_timeout(), Some(t0 + SHUTDOWN_GRACE));
        s.handle_timeout(t0 + SHUTDOWN_GRACE - MS);
        assert_eq!(events(&mut s), vec![]);
        // Past the silence limit too: the shutdown, not silence, is what ended it.
        s.handle_timeout(t0 + 300 * MS);
        assert_eq!(events(&mut s), vec![Event::Shutdown("bye".into())]);
    }

    #[test]
    fn a_unit_lost_beyond_repair_ends_the_stream() {
        let t0 = Instant::now();
        let (mut s, mut f) = pair(t0);
        s.first_frame_done();
        // Unit 0 never comes; units 1..=8 do, so it falls out of the window.
        let _ = datagrams(&mut f, 0, &[0; 10]);
        for u in 1..=8u64 {
            for d in datagrams(&mut f, u, &[u as u8; 10]) {
                s.handle_datagram(&d, t0).unwrap();
            }
        }
        assert_eq!(events(&mut s), vec![Event::Lost(0)]);
        assert!(s.poll_transmit(t0 + MS).is_none());
    }
}
