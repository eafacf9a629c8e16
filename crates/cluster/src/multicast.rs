/*!
The multicast transport's sockets: the master sends each frame once, as authenticated
datagrams (`lockstep_wire::datagram`), to a group every node joins, and sends again what a
node asks for; a node receives them and puts frames back together. The handshake, control
and each node's `SwapReady` stay on its TCP connection, which also carries its requests for
missing datagrams.

Frame data is cut into *units*: each write the master would have made to every node's
connection (the swap release with its post-frame blocks, a frame) is one unit, numbered in
order, so that a release is one datagram and need not wait for the frame behind it.
*/
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::Instant;

use lockstep_display::MulticastConfig;
use lockstep_wire::datagram::{
    DatagramError, ETHERNET_DATAGRAM, Fragmenter, MulticastKey, Nak, NakBudget,
};
use lockstep_wire::{ClusterKey, random_nonce};
use socket2::{Domain, Protocol, Socket, Type};

use crate::ClusterError;
use crate::link::{io, whole_frames};

/// How many units the master keeps to send again: those of the last few frames (two per
/// frame, a release and a frame).
const KEEP_UNITS: usize = 16;

/// Socket buffers asked for, so a burst of frames to slow receivers is queued, not lost.
const SOCKET_BUFFER: usize = 4 << 20;

/// Datagrams a node may have sent again per second, and at once: a frame of 1 MiB is about
/// 700 datagrams; a node asking for more than this is flooding, and the others are not
/// slowed by it.
pub(crate) const NAK_RATE: f64 = 10_000.0;
/// See [`NAK_RATE`].
pub(crate) const NAK_BURST: usize = 1024;

/// Requests for missing datagrams a node may send per second, and at once: a node repairing
/// eight units at a time, retrying every few milliseconds while the master is busy, stays
/// far below; one sending more is out of control and is dropped.
pub(crate) const NAK_MESSAGE_RATE: f64 = 2_000.0;
/// See [`NAK_MESSAGE_RATE`].
pub(crate) const NAK_MESSAGE_BURST: usize = 1024;

/// What the master sent by multicast.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MulticastStats {
    /// Units sent.
    pub units: u64,
    /// Datagrams sent (first copies).
    pub datagrams: u64,
    /// Datagrams sent again for nodes that asked.
    pub resent: u64,
    /// Datagrams asked for and not sent again: over the node's budget, or sent again to the
    /// group a moment before.
    pub withheld: u64,
    /// Requests for units no longer kept (the node was too far behind, and was dropped).
    pub too_old: u64,
    /// Sends that failed (the datagrams count as lost; nodes ask again).
    pub send_errors: u64,
    /// Nodes told on their connection which unit was sent last, as their answer was long in
    /// coming.
    pub nudges: u64,
}

/// The master's multicast sender.
pub(crate) struct MulticastOut {
    socket: UdpSocket,
    to: SocketAddr,
    /// `group:port` as nodes are told it.
    pub group: String,
    fragmenter: Fragmenter,
    /// The number of the next unit.
    next: u64,
    /// The largest unit: what a node accepts as one frame. Larger writes go as several
    /// units, each a run of whole messages, as over TCP.
    max_unit: usize,
    pub stats: MulticastStats,
    /// A lossy network, simulated: the share of first copies not sent, and the state of
    /// the generator that picks them.
    drop: Option<(f64, u64)>,
}

impl MulticastOut {
    /// A sender to `config`'s group for cluster `cluster`, from `config.interface`, else the
    /// address the master listens on (when it names one), else the kernel's route; a fresh
    /// session number keys its datagrams.
    /// `max_unit` is the frame limit nodes were told; `loss` (0 to 0.5) the share of
    /// datagrams not sent the first time, to simulate a lossy network.
    pub fn open(
        config: &MulticastConfig,
        listen: SocketAddr,
        key: &ClusterKey,
        cluster: &str,
        max_unit: usize,
        loss: f64,
    ) -> Result<MulticastOut, ClusterError> {
        let to = SocketAddr::V4(SocketAddrV4::new(config.group, config.port));
        let what = format!("multicast to {to}");
        let failed = |step: &'static str| {
            let what = &what;
            move |e| io(what, step, e)
        };
        let socket = udp_socket(&what)?;
        let interface = config.interface.or(match listen {
            SocketAddr::V4(a) if !a.ip().is_unspecified() => Some(*a.ip()),
            _ => None,
        });
        if let Some(i) = interface {
            socket
                .set_multicast_if_v4(&i)
                .map_err(failed("cannot send from that interface"))?;
        }
        socket
            .set_multicast_ttl_v4(config.ttl)
            .map_err(failed("cannot set the TTL"))?;
        // Nodes on the master's own machine receive the datagrams too.
        socket
            .set_multicast_loop_v4(true)
            .map_err(failed("cannot loop datagrams back"))?;
        let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
        let from = SocketAddr::V4(SocketAddrV4::new(
            interface.unwrap_or(Ipv4Addr::UNSPECIFIED),
            0,
        ));
        socket
            .bind(&from.into())
            .map_err(failed("cannot bind the sending socket"))?;
        let nonce = random_nonce().map_err(|e| ClusterError::Internal(e.to_string()))?;
        let session = u64::from_le_bytes(nonce[..8].try_into().unwrap_or_default());
        let key = MulticastKey::derive(key, cluster, session);
        let drop = (loss > 0.0).then_some((loss.min(0.5), session | 1));
        if let Some((p, _)) = drop {
            tracing::warn!(
                "simulating a lossy network: {:.1} % of multicast datagrams are not sent the first time",
                p * 100.0
            );
        }
        Ok(MulticastOut {
            drop,
            socket: socket.into(),
            to,
            group: to.to_string(),
            fragmenter: Fragmenter::new(key, ETHERNET_DATAGRAM, KEEP_UNITS),
            next: 0,
            max_unit: max_unit.max(1),
            stats: MulticastStats::default(),
        })
    }

    /// The session number nodes derive the key with.
    pub fn session(&self) -> u64 {
        self.fragmenter.session()
    }

    /// The number the next unit will have: a node switching to multicast after the writes
    /// made so far starts there.
    pub fn next_unit(&self) -> u64 {
        self.next
    }

    /// Sends `bytes` (whole messages) as the next unit, or as several when they are more
    /// than a node accepts at once; nothing when they are empty.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), ClusterError> {
        if bytes.len() <= self.max_unit {
            return self.send_unit(bytes);
        }
        for run in whole_frames(bytes, self.max_unit) {
            self.send_unit(run)?;
        }
        Ok(())
    }

    fn send_unit(&mut self, bytes: &[u8]) -> Result<(), ClusterError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let unit = self.next;
        self.next += 1;
        let datagrams = self
            .fragmenter
            .fragment(unit, bytes)
            .map_err(|e: DatagramError| ClusterError::Internal(e.to_string()))?;
        self.stats.units += 1;
        for d in datagrams {
            self.stats.datagrams += 1;
            if let Some((p, state)) = &mut self.drop {
                // xorshift64: a lossy network needs no better randomness.
                *state ^= *state << 13;
                *state ^= *state >> 7;
                *state ^= *state << 17;
                if (*state >> 11) as f64 / (1u64 << 53) as f64 <= *p {
                    continue;
                }
            }
            if let Err(e) = self.socket.send_to(d, self.to) {
                self.stats.send_errors += 1;
                tracing::debug!("multicast unit {unit}: cannot send a datagram: {e}");
            }
        }
        Ok(())
    }

    /// Sends again, to the group, what `nak` asks for and `budget` allows; false if that unit
    /// is no longer kept.
    pub fn answer(&mut self, nak: &Nak, budget: &mut NakBudget, now: Instant) -> bool {
        let asked = if nak.missing.is_empty() {
            None
        } else {
            Some(nak.missing.len())
        };
        let Some(datagrams) = self.fragmenter.answer(nak, budget, now) else {
            self.stats.too_old += 1;
            return false;
        };
        let sent = datagrams.len();
        let mut errors = 0;
        for d in datagrams {
            if self.socket.send_to(d, self.to).is_err() {
                errors += 1;
            }
        }
        self.stats.resent += sent as u64;
        self.stats.send_errors += errors;
        if let Some(asked) = asked {
            self.stats.withheld += asked.saturating_sub(sent) as u64;
        }
        true
    }

    /// The datagrams of the last unit sent, as sent.
    pub fn last_unit(&self) -> impl Iterator<Item = &[u8]> {
        let unit = self.next.checked_sub(1);
        (0..=u16::MAX).map_while(move |i| unit.and_then(|u| self.fragmenter.datagram(u, i)))
    }

    /// What tells a node on its connection which unit was sent last (none before the first).
    pub fn units_sent(&self) -> Option<lockstep_wire::Message<'static>> {
        (self.next > 0).then(|| lockstep_wire::Message::Units {
            through: self.next - 1,
        })
    }
}

/// A node's socket for `group` (`a.b.c.d:port`), joined on the interface with address
/// `local` (the one its connection to the master uses), non-blocking.
pub(crate) fn open_receiver(group: &str, local: Ipv4Addr) -> Result<UdpSocket, ClusterError> {
    let what = format!("multicast group {group}");
    let to: SocketAddrV4 = group.parse().map_err(|_| ClusterError::Protocol {
        peer: "master".into(),
        what: format!("it named multicast group '{group}', which is no IPv4 address and port"),
    })?;
    if !to.ip().is_multicast() {
        return Err(ClusterError::Protocol {
            peer: "master".into(),
            what: format!("it named {to} as the multicast group, which is no multicast address"),
        });
    }
    let failed = |step: &'static str| {
        let what = &what;
        move |e| io(what, step, e)
    };
    let socket = udp_socket(&what)?;
    // Every node on one machine (and a node restarting) listens on the same group and port.
    socket
        .set_reuse_address(true)
        .map_err(failed("cannot share the port"))?;
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    socket
        .bind(&SocketAddr::V4(to).into())
        .map_err(failed("cannot bind to the group's port"))?;
    socket
        .join_multicast_v4(to.ip(), &local)
        .map_err(failed("cannot join the group"))?;
    socket
        .set_nonblocking(true)
        .map_err(failed("cannot make the socket non-blocking"))?;
    Ok(socket.into())
}

/// A fresh budget for one node's requests: the datagrams sent again for it, and its
/// requests themselves.
pub(crate) fn nak_budgets() -> (NakBudget, NakBudget) {
    (
        NakBudget::new(NAK_RATE, NAK_BURST),
        NakBudget::new(NAK_MESSAGE_RATE, NAK_MESSAGE_BURST),
    )
}

fn udp_socket(what: &str) -> Result<Socket, ClusterError> {
    Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| io(what, "cannot open a UDP socket", e))
}
