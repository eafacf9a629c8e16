/*!
What a node receives from the master, in order, from its connection and — once the master
said so after its first frame — from the multicast group: datagrams put back into units,
units decoded into the same messages the connection would have carried. Missing datagrams
are asked for on the connection; a unit lost beyond repair ends the session, so the node
joins again rather than apply a frame it does not have whole.

Without multicast this is the connection alone, read with blocking calls as before. With it,
one `poll(2)` waits on both sockets, until the next datagram, message or repair is due.
*/
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lockstep_wire::datagram::{Assembled, DatagramStats, MulticastKey, Reassembler};
use lockstep_wire::{ClusterKey, Decoder, Hook, Message};
use rustix::event::{PollFd, PollFlags, Timespec, poll};

use crate::ClusterError;
use crate::link::{Link, io};
use crate::multicast::open_receiver;

/// How long a `Shutdown` on the connection waits, at most, for the units sent before it
/// (the master names the last of them first, and sends the shutdown to the group too).
const SHUTDOWN_GRACE: Duration = Duration::from_millis(100);

/// The largest datagram received.
const MAX_DATAGRAM: usize = 64 * 1024;

/// A `Shutdown` that came on the connection while units may still be on their way.
struct Farewell {
    reason: String,
    since: Instant,
    /// The last unit sent before it: those up to it are applied first, none after.
    through: Option<u64>,
}

/// Datagrams read at most before the rest of a turn (repairs, the connection) runs.
const MAX_DATAGRAMS_PER_TURN: usize = 256;

/// The master's stream to one node.
pub(crate) struct FromMaster {
    /// The connection (its receiving half, or the whole link on a single-threaded node).
    pub link: Link,
    /// The sending half, when another thread holds it; requests for datagrams go there.
    writer: Option<Arc<Mutex<Link>>>,
    /// Silence after which the master counts as gone.
    silence: Duration,
    key: ClusterKey,
    cluster: String,
    max_frame: usize,
    group: Option<Box<Group>>,
}

/// The multicast side, once joined.
struct Group {
    socket: UdpSocket,
    units: Reassembler,
    /// The unit being read: its bytes are messages like the connection's (not sealed:
    /// every datagram was authenticated).
    decoder: Decoder,
    buf: Vec<u8>,
    nak: Vec<u8>,
    /// When anything last came from the master.
    heard: Instant,
    /// Its first frame is still to come on the connection (the master names the group
    /// before it): datagrams of the units after it are read and repaired meanwhile, and
    /// handed out only once that frame is whole.
    first_on_tcp: bool,
    /// The last unit the master said it sent (`Units`).
    sent: Option<u64>,
    /// A `Shutdown` read on the connection, waiting for the units sent before it.
    shutdown: Option<Farewell>,
    /// Refused datagrams are told when their count reaches this (then twice as many).
    warn_at: u64,
    /// Whether the last `poll` found each socket readable (or none ran yet): the other is
    /// not read in vain (a read that finds nothing is a system call per frame per node).
    udp_ready: bool,
    tcp_ready: bool,
}

impl FromMaster {
    /// The stream of `link`, with `writer` its sending half if another thread holds it.
    pub fn new(
        link: Link,
        writer: Option<Arc<Mutex<Link>>>,
        silence: Duration,
        key: ClusterKey,
        cluster: &str,
        max_frame: usize,
    ) -> FromMaster {
        FromMaster {
            link,
            writer,
            silence,
            key,
            cluster: cluster.to_string(),
            max_frame,
            group: None,
        }
    }

    /// What the group brought so far, once joined.
    pub fn datagram_stats(&self) -> Option<DatagramStats> {
        self.group.as_ref().map(|g| g.units.stats)
    }

    /// Gives the next message to `f` and returns what it made of it. `Multicast` is taken
    /// here (the group is joined); `Shutdown` on the connection waits, while frames still
    /// arrive by multicast, for the group's own copy or a short grace.
    pub fn next<R>(&mut self, f: impl FnOnce(Message<'_>) -> R) -> Result<R, ClusterError> {
        let mut f = Some(f);
        loop {
            if self.group.is_none() {
                let m = match self.link.recv() {
                    Ok(m) => m,
                    Err(ClusterError::Timeout { .. }) => {
                        return Err(silent(&self.link.peer, self.silence));
                    }
                    Err(e) => return Err(e),
                };
                if let Message::Multicast {
                    session,
                    group,
                    first,
                } = m
                {
                    let group = group.to_string();
                    self.join(session, &group, first)?;
                    continue;
                }
                if let Some(f) = f.take() {
                    return Ok(f(m));
                }
                continue;
            }
            if let Some(r) = self.group_turn(&mut f)? {
                return Ok(r);
            }
        }
    }

    /// One turn with the group joined: a message if one is ready (given to `f`, which is
    /// then taken), else reads or waits for datagrams and the connection.
    fn group_turn<R, F: FnOnce(Message<'_>) -> R>(
        &mut self,
        f: &mut Option<F>,
    ) -> Result<Option<R>, ClusterError> {
        let peer = self.link.peer.clone();
        let Some(g) = self.group.as_deref_mut() else {
            return Ok(None);
        };
        let protocol = |what: String| ClusterError::Protocol {
            peer: peer.clone(),
            what,
        };
        let now = Instant::now();
        // The unit being read, to its end.
        if !g.first_on_tcp && g.decoder.has_frame().map_err(|e| protocol(e.to_string()))? {
            let m = g
                .decoder
                .next_message()
                .map_err(|e| protocol(format!("a multicast unit: {e}")))?
                .ok_or_else(|| protocol("a multicast unit ended early".into()))?;
            if matches!(
                m,
                Message::Multicast { .. } | Message::Units { .. } | Message::Datagram { .. }
            ) {
                return Err(protocol(format!("it sent {} by multicast", m.kind())));
            }
            if matches!(m, Message::Shutdown { .. }) {
                g.shutdown = None;
            }
            return Ok(f.take().map(|f| f(m)));
        }
        if g.decoder.buffered() > 0 {
            return Err(protocol(format!(
                "a multicast unit ended inside a message ({} bytes left)",
                g.decoder.buffered()
            )));
        }
        // A shutdown on the connection, once every unit sent before it is applied.
        let through = g.shutdown.as_ref().and_then(|s| s.through);
        let done = through.is_some_and(|t| g.units.next_frame() > t);
        let overdue = g
            .shutdown
            .as_ref()
            .is_some_and(|s| now.saturating_duration_since(s.since) >= SHUTDOWN_GRACE);
        if done || overdue {
            let reason = g.shutdown.take().map(|s| s.reason).unwrap_or_default();
            return Ok(f.take().map(|f| f(Message::Shutdown { reason: &reason })));
        }
        if !g.first_on_tcp {
            match g.units.poll_frame() {
                Some(Assembled::Frame(_, bytes)) => {
                    g.decoder.push(&bytes);
                    return Ok(None);
                }
                Some(Assembled::Lost(unit)) => {
                    // A lost connection, as far as this session goes: the node joins again.
                    return Err(ClusterError::Timeout {
                        peer,
                        what: format!(
                            "multicast unit {unit} was lost beyond repair; joining again"
                        ),
                    });
                }
                None => {}
            }
        }
        // Once the master said goodbye it answers no more requests.
        while g.shutdown.is_none()
            && let Some(nak) = g.units.poll_nak(now)
        {
            nak.missing_bytes(&mut g.nak);
            let msg = Message::Nak {
                frame: nak.frame,
                missing: &g.nak,
            };
            match &self.writer {
                Some(w) => w
                    .lock()
                    .map_err(|_| ClusterError::Internal("the sending half is poisoned".into()))?
                    .send(&msg)?,
                None => self.link.send(&msg)?,
            }
        }
        // The connection: the first frame, heartbeats, units sent, a shutdown (after which
        // the master closes it).
        let tcp = g.shutdown.is_none();
        if tcp && (g.tcp_ready || self.link.has_message()?) && !self.link.fill_now()? {
            g.tcp_ready = false;
        }
        if tcp && self.link.has_message()? {
            g.heard = now;
            let m = self.link.next_buffered()?;
            match m {
                Message::Shutdown { reason } if !g.first_on_tcp => {
                    g.shutdown = Some(Farewell {
                        reason: reason.to_string(),
                        since: now,
                        through: g.sent,
                    });
                    return Ok(None);
                }
                Message::Units { through } => {
                    g.sent = Some(through);
                    g.units.expect(through, now);
                    return Ok(None);
                }
                Message::Datagram { bytes } => {
                    if let Err(e) = g.units.accept(bytes, now) {
                        tracing::debug!("{peer}: datagram on the connection refused: {e}");
                    }
                    return Ok(None);
                }
                Message::Multicast { .. } => {
                    return Err(protocol("it sent Multicast twice".into()));
                }
                Message::EndBlock {
                    hook: Hook::PreDraw,
                    ..
                } if g.first_on_tcp => {
                    // The first frame is whole: the units after it come by multicast.
                    g.first_on_tcp = false;
                    return Ok(f.take().map(|f| f(m)));
                }
                Message::Heartbeat { .. } => return Ok(f.take().map(|f| f(m))),
                _ if g.first_on_tcp => return Ok(f.take().map(|f| f(m))),
                other => {
                    return Err(protocol(format!(
                        "it sent {} on the connection, while frames come by multicast",
                        other.kind()
                    )));
                }
            }
        }
        // Datagrams waiting; a bounded number a turn, so a flood cannot starve the rest.
        let mut got = false;
        let mut read = 0;
        while g.udp_ready && read < MAX_DATAGRAMS_PER_TURN {
            match g.socket.recv(&mut g.buf) {
                Ok(n) => {
                    read += 1;
                    match g.units.accept(&g.buf[..n], now) {
                        // Only the master's own datagrams show it is alive.
                        Ok(()) => got = true,
                        Err(e) => tracing::debug!("{peer}: datagram refused: {e}"),
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => g.udp_ready = false,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io("multicast group", "cannot receive", e)),
            }
        }
        let rejected = g.units.stats.rejected;
        if rejected >= g.warn_at {
            tracing::warn!(
                "{peer}: {rejected} multicast datagrams refused so far (another cluster, forged or altered); their frames are repaired"
            );
            g.warn_at = rejected.saturating_mul(2);
        }
        if got {
            g.heard = now;
        }
        // Forged datagrams that keep coming are no sign of the master's life.
        if now.saturating_duration_since(g.heard) > self.silence {
            return Err(silent(&peer, self.silence));
        }
        if read > 0 {
            // Stopped at the cap, the connection is looked at next turn without a poll.
            if read >= MAX_DATAGRAMS_PER_TURN {
                g.tcp_ready = true;
            }
            return Ok(None);
        }
        // Nothing ready: wait for either socket until the next repair, the shutdown's grace
        // or the silence limit.
        let mut until = g.heard + self.silence;
        // Repairs are asked for only until a shutdown: no waking for them after.
        if let Some(t) = g.units.poll_timeout().filter(|_| g.shutdown.is_none()) {
            until = until.min(t);
        }
        if let Some(s) = &g.shutdown {
            until = until.min(s.since + SHUTDOWN_GRACE);
        }
        let wait = until
            .saturating_duration_since(now)
            .max(Duration::from_micros(100));
        let timeout = Timespec::try_from(wait).unwrap_or(Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        });
        let mut fds = [
            PollFd::new(&g.socket, PollFlags::IN),
            PollFd::new(&self.link.stream, PollFlags::IN),
        ];
        let watched = if tcp { &mut fds[..] } else { &mut fds[..1] };
        match poll(watched, Some(&timeout)) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(io("multicast group", "cannot wait", e.into())),
        }
        let ready = |f: &PollFd<'_>| !f.revents().is_empty();
        g.udp_ready = ready(&fds[0]);
        g.tcp_ready = tcp && ready(&fds[1]);
        Ok(None)
    }

    /// Joins the group the master named; units from `first` on are applied.
    fn join(&mut self, session: u64, group: &str, first: u64) -> Result<(), ClusterError> {
        if self.group.is_some() {
            return Err(ClusterError::Protocol {
                peer: self.link.peer.clone(),
                what: "it sent Multicast twice".into(),
            });
        }
        let local = match self.link.stream.local_addr() {
            Ok(a) => match a.ip() {
                IpAddr::V4(ip) => ip,
                IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
            },
            Err(e) => return Err(io(&self.link.peer, "no local address", e)),
        };
        let socket = open_receiver(group, local)?;
        let key = MulticastKey::derive(&self.key, &self.cluster, session);
        tracing::debug!(
            "{}: frame data from {group} from unit {first} on",
            self.link.peer
        );
        self.group = Some(Box::new(Group {
            socket,
            units: Reassembler::new(key, self.max_frame, first),
            decoder: Decoder::new(self.max_frame),
            buf: vec![0; MAX_DATAGRAM],
            nak: Vec::new(),
            heard: Instant::now(),
            first_on_tcp: true,
            sent: None,
            shutdown: None,
            warn_at: 1,
            udp_ready: true,
            tcp_ready: true,
        }));
        Ok(())
    }
}

/// The master's silence after `silence`: the connection counts as lost.
pub(crate) fn silent(peer: &str, silence: Duration) -> ClusterError {
    ClusterError::Timeout {
        peer: peer.to_string(),
        what: format!("sent nothing for {silence:?}"),
    }
}
