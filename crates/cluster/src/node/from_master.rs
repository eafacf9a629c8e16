/*!
What a node receives from the master, in order, from its connection and — once the master
said so after its first frame — from the multicast group: datagrams put back into units,
units decoded into the same messages the connection would have carried. Missing datagrams
are asked for on the connection; a unit lost beyond repair ends the session, so the node
joins again rather than apply a frame it does not have whole.

Without multicast this is the connection alone, read with blocking calls as before. With it,
this is the driver of the sans-IO [`NodeStream`] (`crate::session::node`): one `poll(2)`
waits on both sockets until the next datagram, message, repair or timeout the stream names;
what comes is handed to it, and the whole units it gives are decoded here.
*/
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lockstep_wire::datagram::{DatagramStats, MulticastKey};
use lockstep_wire::{ClusterKey, Decoder, Message};
use rustix::event::{PollFd, PollFlags, Timespec, poll};

use crate::ClusterError;
use crate::link::{Link, io};
use crate::multicast::open_receiver;
use crate::session::node::{Event, NodeStream};

/// The largest datagram received.
const MAX_DATAGRAM: usize = 64 * 1024;

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
    stream: NodeStream,
    /// The unit being read: its bytes are messages like the connection's (not sealed:
    /// every datagram was authenticated).
    decoder: Decoder,
    buf: Vec<u8>,
    nak: Vec<u8>,
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
        self.group.as_ref().map(|g| g.stream.stats())
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
        // The unit being read, to its end.
        if g.decoder.has_frame().map_err(|e| protocol(e.to_string()))? {
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
                g.stream.handle_group_shutdown();
            }
            return Ok(f.take().map(|f| f(m)));
        }
        if g.decoder.buffered() > 0 {
            return Err(protocol(format!(
                "a multicast unit ended inside a message ({} bytes left)",
                g.decoder.buffered()
            )));
        }
        let now = Instant::now();
        while let Some(e) = g.stream.poll_event() {
            match e {
                Event::Unit(bytes) => {
                    g.decoder.push(&bytes);
                    return Ok(None);
                }
                Event::Shutdown(reason) => {
                    return Ok(f.take().map(|f| f(Message::Shutdown { reason: &reason })));
                }
                // A lost connection, as far as this session goes: the node joins again.
                Event::Lost(unit) => {
                    return Err(ClusterError::Timeout {
                        peer,
                        what: format!(
                            "multicast unit {unit} was lost beyond repair; joining again"
                        ),
                    });
                }
                Event::Silent(_) => return Err(silent(&peer, self.silence)),
                Event::Refused(n) => tracing::warn!(
                    "{peer}: {n} multicast datagrams refused so far (another cluster, forged or altered); their frames are repaired"
                ),
            }
        }
        while let Some(nak) = g.stream.poll_transmit(now) {
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
        let tcp = g.stream.reads_connection();
        if tcp && (g.tcp_ready || self.link.has_message()?) && !self.link.fill_now()? {
            g.tcp_ready = false;
        }
        if tcp && self.link.has_message()? {
            let m = self.link.next_buffered()?;
            return match g.stream.handle_message(&m, now) {
                Ok(true) => Ok(f.take().map(|f| f(m))),
                Ok(false) => Ok(None),
                Err(what) => Err(protocol(what)),
            };
        }
        // Datagrams waiting; a bounded number a turn, so a flood cannot starve the rest.
        let mut read = 0;
        while g.udp_ready && read < MAX_DATAGRAMS_PER_TURN {
            match g.socket.recv(&mut g.buf) {
                Ok(n) => {
                    read += 1;
                    if let Err(e) = g.stream.handle_datagram(&g.buf[..n], now) {
                        tracing::debug!("{peer}: datagram refused: {e}");
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => g.udp_ready = false,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io("multicast group", "cannot receive", e)),
            }
        }
        if read > 0 {
            // Stopped at the cap, the connection is looked at next turn without a poll; a
            // flood that never lets `poll` find the sockets empty is no sign of life unless
            // its datagrams are the master's, so silence (and a shutdown's grace) is judged
            // here too.
            if read >= MAX_DATAGRAMS_PER_TURN {
                g.tcp_ready = true;
                g.stream.handle_timeout(now);
            }
            return Ok(None);
        }
        // Nothing ready: wait for either socket until the stream has something to do.
        let wait = g
            .stream
            .poll_timeout()
            .map_or(Duration::from_secs(1), |t| t.saturating_duration_since(now))
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
        // Silence (and the shutdown's grace) is judged only once `poll` found nothing
        // waiting: a node that was busy (loading, drawing) reads what came meanwhile first.
        if !g.udp_ready && !g.tcp_ready {
            g.stream.handle_timeout(Instant::now());
        }
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
            stream: NodeStream::new(key, self.max_frame, first, self.silence, Instant::now()),
            decoder: Decoder::new(self.max_frame),
            buf: vec![0; MAX_DATAGRAM],
            nak: Vec::new(),
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
