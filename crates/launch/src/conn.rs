/*!
A blocking, authenticated connection between a launcher and a daemon: the cluster protocol's
handshake (mutual HMAC over fresh nonces with the cluster key), then [`Request`]s and
[`Reply`]s in the same framing.
*/
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use lockstep_wire::handshake::{ClientStep, ServerStep};
use lockstep_wire::{
    ClientHandshake, ClusterKey, Decoder, FillError, HANDSHAKE_MAX_FRAME, Message, ServerHandshake,
    WireError, encode_frame_into, random_nonce,
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
        })
    }

    /// Bounds every later read and write (`None`: wait forever).
    pub fn set_timeout(&self, t: Option<Duration>) -> Result<(), LaunchError> {
        self.stream
            .set_read_timeout(t)
            .and_then(|_| self.stream.set_write_timeout(t))
            .map_err(|e| LaunchError::io(&self.peer, "cannot set a timeout", e))
    }

    /// A second handle on the socket, for a writer on another thread.
    pub fn try_clone(&self) -> Result<Conn, LaunchError> {
        let stream = self
            .stream
            .try_clone()
            .map_err(|e| LaunchError::io(&self.peer, "cannot clone the socket", e))?;
        let mut c = Conn::new(stream, self.peer.clone())?;
        c.decoder.set_max_frame(MAX_FRAME);
        Ok(c)
    }

    /// Closes both directions, which wakes a reader blocked on this socket.
    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    /// Sends one message.
    pub fn send<T: Serialize + ?Sized>(&mut self, msg: &T) -> Result<(), LaunchError> {
        self.out.clear();
        encode_frame_into(msg, &mut self.out).map_err(|e| LaunchError::wire(&self.peer, e))?;
        self.stream
            .write_all(&self.out)
            .map_err(|e| LaunchError::io(&self.peer, "cannot send", e))
    }

    /// Waits for the next message (up to the read timeout).
    pub fn recv<T: DeserializeOwned>(&mut self) -> Result<T, LaunchError> {
        self.fill()?;
        let peer = &self.peer;
        self.decoder
            .next_as::<T>()
            .map_err(|e| LaunchError::wire(peer, e))?
            .ok_or_else(|| LaunchError::Closed(peer.clone()))
    }

    fn recv_handshake(&mut self) -> Result<Message<'_>, LaunchError> {
        self.fill()?;
        let peer = &self.peer;
        self.decoder
            .next_message()
            .map_err(|e| LaunchError::wire(peer, e))?
            .ok_or_else(|| LaunchError::Closed(peer.clone()))
    }

    /// Reads until a whole frame is buffered.
    fn fill(&mut self) -> Result<(), LaunchError> {
        self.decoder
            .fill_from(&mut self.stream)
            .map_err(|e| match e {
                FillError::Closed(None) => LaunchError::Closed(self.peer.clone()),
                FillError::Closed(Some(e)) | FillError::Wire(e) => LaunchError::wire(&self.peer, e),
                FillError::TimedOut => LaunchError::Timeout(self.peer.clone()),
                FillError::Io(e) => LaunchError::io(&self.peer, "cannot receive", e),
            })
    }

    /// Sends `Refused` with the error's text (best effort) and returns the error.
    fn refuse(&mut self, e: WireError) -> LaunchError {
        let reason = e.to_string();
        let _ = self.send(&Message::Refused { reason: &reason });
        LaunchError::wire(&self.peer, e)
    }
}

/// Dials a daemon and proves the key; `who` names this launcher in the daemon's log.
pub fn dial(
    addr: SocketAddr,
    key: &ClusterKey,
    cluster: &str,
    who: &str,
    timeout: Duration,
) -> Result<Conn, LaunchError> {
    let peer = format!("daemon {addr}");
    let stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| LaunchError::io(&peer, "cannot connect", e))?;
    let mut conn = Conn::new(stream, peer)?;
    conn.set_timeout(Some(timeout))?;
    let nonce = random_nonce().map_err(|e| LaunchError::wire(&conn.peer, e))?;
    let mut hs = ClientHandshake::new(key.clone(), cluster, who, nonce);
    conn.send(&hs.hello())?;
    loop {
        let msg = conn.recv_handshake()?;
        match hs.handle(&msg) {
            Ok(ClientStep::Send(reply)) => conn.send(&reply)?,
            Ok(ClientStep::Established { .. }) => break,
            Err(e) => return Err(conn.refuse(e)),
        }
    }
    conn.decoder.set_max_frame(MAX_FRAME);
    Ok(conn)
}

/// Answers a launcher's handshake on an accepted socket; returns the connection and the name
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
    let mut conn = Conn::new(stream, peer)?;
    conn.set_timeout(Some(timeout))?;
    let nonce = random_nonce().map_err(|e| LaunchError::wire(&conn.peer, e))?;
    let mut hs = ServerHandshake::new(key.clone(), cluster, nonce, MAX_FRAME as u32);
    loop {
        let msg = conn.recv_handshake()?;
        let step = hs.handle(&msg);
        match step {
            Ok(ServerStep::Challenge(challenge)) => conn.send(&challenge)?,
            Ok(ServerStep::Accept { node, max_frame }) => {
                conn.send(&Message::Welcome { max_frame })?;
                conn.peer = format!("{} ({node})", conn.peer);
                conn.decoder.set_max_frame(MAX_FRAME);
                return Ok((conn, node));
            }
            Err(e) => return Err(conn.refuse(e)),
        }
    }
}
