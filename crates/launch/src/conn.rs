/*!
A blocking, authenticated connection between a launcher and a daemon: the cluster protocol's
handshake (mutual HMAC over fresh nonces with the cluster key), then [`Request`]s and
[`Reply`]s in the same framing, every one of them in a sealed record (per-connection keys, as
on the cluster's links), so a relay that passed the handshake through cannot speak for
either side.
*/
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use lockstep_wire::admission::ask_until_admitted;
use lockstep_wire::handshake::{ClientStep, ServerStep};
use lockstep_wire::{
    ByDeadline, ClientHandshake, ClusterKey, Decoder, FillError, HANDSHAKE_MAX_FRAME, Message,
    Sealer, ServerHandshake, SessionKeys, WireError, encode_record_into, random_nonce,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::LaunchError;
use crate::protocol::MAX_FRAME;

/// One end of a launcher–daemon connection.
pub struct Conn {
    stream: TcpStream,
    /// The other side, for messages.
    pub peer: String,
    decoder: Decoder,
    out: Vec<u8>,
    /// Seals what it sends, once authenticated (the receiving half of a split has none).
    sealer: Option<Sealer>,
}

impl Conn {
    fn new(stream: TcpStream, peer: String) -> Result<Self, LaunchError> {
        stream
            .set_nodelay(true)
            .map_err(|e| LaunchError::io(&peer, "cannot set TCP_NODELAY", e))?;
        Ok(Conn {
            stream,
            peer,
            decoder: Decoder::new(HANDSHAKE_MAX_FRAME),
            out: Vec::new(),
            sealer: None,
        })
    }

    /// Bounds every later read and write (`None`: wait forever).
    pub fn set_timeout(&self, t: Option<Duration>) -> Result<(), LaunchError> {
        self.stream
            .set_read_timeout(t)
            .and_then(|_| self.stream.set_write_timeout(t))
            .map_err(|e| LaunchError::io(&self.peer, "cannot set a timeout", e))
    }

    /// A second handle on the socket that does the sending, for a writer on another thread
    /// (it takes the sealer); this one keeps receiving.
    pub fn split_writer(&mut self) -> Result<Conn, LaunchError> {
        let stream = self
            .stream
            .try_clone()
            .map_err(|e| LaunchError::io(&self.peer, "cannot clone the socket", e))?;
        let mut c = Conn::new(stream, self.peer.clone())?;
        c.sealer = self.sealer.take();
        Ok(c)
    }

    /// Closes both directions, which wakes a reader blocked on this socket.
    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    /// From now on every message is sealed, and every one received must be.
    fn authenticate(&mut self, keys: Box<SessionKeys>) {
        self.decoder.authenticate(keys.opener);
        self.sealer = Some(keys.sealer);
    }

    /// Sends one message.
    pub fn send<T: Serialize + ?Sized>(&mut self, msg: &T) -> Result<(), LaunchError> {
        encode_record_into(msg, self.sealer.as_mut(), &mut self.out)
            .map_err(|e| LaunchError::wire(&self.peer, e))?;
        self.stream
            .write_all(&self.out)
            .map_err(|e| LaunchError::io(&self.peer, "cannot send", e))
    }

    /// Waits for the next message (up to the read timeout).
    pub fn recv<T: DeserializeOwned>(&mut self) -> Result<T, LaunchError> {
        let mut stream = &self.stream;
        fill(&mut self.decoder, &mut stream, &self.peer)?;
        let peer = &self.peer;
        self.decoder
            .next_as::<T>()
            .map_err(|e| LaunchError::wire(peer, e))?
            .ok_or_else(|| LaunchError::Closed(peer.clone()))
    }

    /// A handshake message, by the handshake's deadline.
    fn recv_handshake(&mut self, deadline: Instant) -> Result<Message<'_>, LaunchError> {
        let mut reader = ByDeadline {
            stream: &self.stream,
            deadline,
        };
        fill(&mut self.decoder, &mut reader, &self.peer)?;
        let peer = &self.peer;
        self.decoder
            .next_message()
            .map_err(|e| LaunchError::wire(peer, e))?
            .ok_or_else(|| LaunchError::Closed(peer.clone()))
    }

    /// Sends `Refused` with the error's text (best effort) and returns the error.
    fn refuse(&mut self, e: WireError) -> LaunchError {
        let reason = e.to_string();
        let _ = self.send(&Message::Refused { reason: &reason });
        LaunchError::wire(&self.peer, e)
    }
}

/// Reads until a whole frame is buffered.
fn fill(decoder: &mut Decoder, r: &mut impl Read, peer: &str) -> Result<(), LaunchError> {
    decoder.fill_from(r).map_err(|e| match e {
        FillError::Closed(None) => LaunchError::Closed(peer.to_string()),
        FillError::Closed(Some(e)) | FillError::Wire(e) => LaunchError::wire(peer, e),
        FillError::TimedOut => LaunchError::Timeout(peer.to_string()),
        FillError::Io(e) => LaunchError::io(peer, "cannot receive", e),
    })
}

/// Dials a daemon and proves the key, all within `timeout` (a daemon too busy with other
/// handshakes is asked again); `who` names this launcher in the daemon's log.
pub fn dial(
    addr: SocketAddr,
    key: &ClusterKey,
    cluster: &str,
    who: &str,
    timeout: Duration,
) -> Result<Conn, LaunchError> {
    let deadline = Instant::now() + timeout;
    let busy = |e: &LaunchError| {
        matches!(
            e,
            LaunchError::Wire {
                source: WireError::Busy(_),
                ..
            }
        )
    };
    ask_until_admitted(deadline, busy, || {
        dial_once(addr, key, cluster, who, (timeout, deadline))
    })
}

fn dial_once(
    addr: SocketAddr,
    key: &ClusterKey,
    cluster: &str,
    who: &str,
    (timeout, deadline): (Duration, Instant),
) -> Result<Conn, LaunchError> {
    let peer = format!("daemon {addr}");
    let left = deadline.saturating_duration_since(Instant::now());
    let stream = TcpStream::connect_timeout(&addr, left.max(Duration::from_millis(1)))
        .map_err(|e| LaunchError::io(&peer, "cannot connect", e))?;
    let mut conn = Conn::new(stream, peer)?;
    // Writes too end by the deadline; afterwards each operation has the whole timeout.
    conn.set_timeout(Some(left.max(Duration::from_millis(1))))?;
    let nonce = random_nonce().map_err(|e| LaunchError::wire(&conn.peer, e))?;
    let mut hs = ClientHandshake::new(key.clone(), cluster, who, nonce);
    conn.send(&hs.hello())?;
    loop {
        let msg = conn.recv_handshake(deadline)?;
        match hs.handle(&msg) {
            Ok(ClientStep::Prove { proof, keys }) => {
                conn.send(&proof)?;
                conn.authenticate(keys);
            }
            Ok(ClientStep::Established { .. }) => break,
            Err(e) => return Err(conn.refuse(e)),
        }
    }
    conn.decoder.set_max_frame(MAX_FRAME);
    conn.set_timeout(Some(timeout))?;
    Ok(conn)
}

/// Answers a launcher's handshake on an accepted socket, all of it within `timeout`; returns the connection and the name
/// the launcher gave.
pub fn accept(
    stream: TcpStream,
    key: &ClusterKey,
    cluster: &str,
    timeout: Duration,
) -> Result<(Conn, String), LaunchError> {
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "launcher".to_string(), |a| format!("launcher {a}"));
    let deadline = Instant::now() + timeout;
    let mut conn = Conn::new(stream, peer)?;
    conn.set_timeout(Some(timeout))?;
    let nonce = random_nonce().map_err(|e| LaunchError::wire(&conn.peer, e))?;
    let mut hs = ServerHandshake::new(key.clone(), cluster, nonce, MAX_FRAME as u32);
    loop {
        let step = match conn.recv_handshake(deadline) {
            Ok(msg) => hs.handle(&msg),
            // Bytes that are no handshake get a reason too; a closed or silent peer none.
            Err(LaunchError::Wire { source, .. }) => Err(source),
            Err(e) => return Err(e),
        };
        match step {
            Ok(ServerStep::Challenge(challenge)) => conn.send(&challenge)?,
            Ok(ServerStep::Accept {
                node,
                max_frame,
                keys,
            }) => {
                conn.authenticate(keys);
                conn.send(&Message::Welcome { max_frame })?;
                let node = lockstep_wire::printable(&node);
                conn.peer = format!("{} ({node})", conn.peer);
                conn.decoder.set_max_frame(MAX_FRAME);
                return Ok((conn, node));
            }
            Ok(ServerStep::Refuse { error, keys }) => {
                conn.authenticate(keys);
                return Err(conn.refuse(error));
            }
            Err(e) => return Err(conn.refuse(e)),
        }
    }
}
