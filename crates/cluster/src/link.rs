/*!
A blocking connection: a TCP stream (with `TCP_NODELAY`) pumped through the sans-IO decoder.
Once authenticated, everything it sends is sealed and everything it receives is checked
(see `lockstep_wire::session`).
*/
use std::io::{IoSlice, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use lockstep_wire::{
    ByDeadline, Decoder, FillError, Message, Sealer, SessionKeys, encode_record_into,
};

use crate::ClusterError;

pub(crate) struct Link {
    pub stream: TcpStream,
    pub peer: String,
    decoder: Decoder,
    out: Vec<u8>,
    /// Seals what it sends, once authenticated (a reading half has none).
    sealer: Option<Sealer>,
    /// Largest record the peer accepts (its frame limit): larger sends are split.
    send_limit: usize,
}

impl Link {
    pub fn new(stream: TcpStream, peer: String, max_frame: usize) -> Result<Self, ClusterError> {
        stream
            .set_nodelay(true)
            .map_err(|e| io(&peer, "cannot set TCP_NODELAY", e))?;
        Ok(Link {
            stream,
            peer,
            decoder: Decoder::new(max_frame),
            out: Vec::new(),
            sealer: None,
            send_limit: usize::MAX,
        })
    }

    /// The largest record the peer accepts (the frame limit it was told).
    pub fn set_send_limit(&mut self, n: usize) {
        self.send_limit = n;
    }

    /// From now on every message this link sends is sealed, and every one it receives must
    /// be.
    pub fn authenticate(&mut self, keys: Box<SessionKeys>) {
        self.decoder.authenticate(keys.opener);
        self.sealer = Some(keys.sealer);
    }

    /// A second handle on the socket that does the sending (it takes the sealer); this one
    /// keeps receiving.
    pub fn split_writer(&mut self) -> Result<Link, ClusterError> {
        let stream = self
            .stream
            .try_clone()
            .map_err(|e| io(&self.peer, "cannot clone the socket", e))?;
        let mut writer = Link::new(stream, self.peer.clone(), 0)?;
        writer.sealer = self.sealer.take();
        Ok(writer)
    }

    pub fn max_frame(&self) -> usize {
        self.decoder.max_frame()
    }

    pub fn set_max_frame(&mut self, n: usize) {
        self.decoder.set_max_frame(n);
    }

    pub fn set_timeout(&self, t: Option<Duration>) -> Result<(), ClusterError> {
        self.stream
            .set_read_timeout(t)
            .and_then(|_| self.stream.set_write_timeout(t))
            .map_err(|e| io(&self.peer, "cannot set a timeout", e))
    }

    /// Sends one message (sealed, once authenticated).
    pub fn send(&mut self, msg: &Message<'_>) -> Result<(), ClusterError> {
        encode_record_into(msg, self.sealer.as_mut(), &mut self.out)
            .map_err(|e| wire(&self.peer, e))?;
        self.stream
            .write_all(&self.out)
            .map_err(|e| io(&self.peer, "cannot send", e))
    }

    /// Sends encoded frames `a` then `b` as one sealed record, without copying them: how
    /// the master sends the bytes of a frame, encoded once, to every node.
    pub fn send_encoded(&mut self, a: &[u8], b: &[u8]) -> std::io::Result<()> {
        if a.is_empty() && b.is_empty() {
            return Ok(());
        }
        let Some(sealer) = self.sealer.as_mut() else {
            return Err(std::io::Error::other("the link is not authenticated"));
        };
        if a.len() + b.len() <= self.send_limit {
            let header = sealer.seal(&[a, b]).map_err(std::io::Error::other)?;
            return write_all_vectored(&mut self.stream, [&header[..], a, b]);
        }
        // Too large for one record (a big snapshot): runs of whole frames, each its own.
        for part in [a, b] {
            for run in whole_frames(part, self.send_limit) {
                let header = sealer.seal(&[run]).map_err(std::io::Error::other)?;
                write_all_vectored(&mut self.stream, [&header[..], run])?;
            }
        }
        Ok(())
    }

    /// Waits for the next message until `deadline` (one deadline for a whole exchange,
    /// whatever the peer's pace).
    pub fn recv_by(&mut self, deadline: Instant) -> Result<Message<'_>, ClusterError> {
        let mut reader = ByDeadline {
            stream: &self.stream,
            deadline,
        };
        let filled = self.decoder.fill_from(&mut reader);
        filled.map_err(|e| self.fill_error(e))?;
        self.next_buffered()
    }

    /// Waits for the next message (up to the read timeout).
    pub fn recv(&mut self) -> Result<Message<'_>, ClusterError> {
        let filled = self.decoder.fill_from(&mut self.stream);
        filled.map_err(|e| self.fill_error(e))?;
        self.next_buffered()
    }

    /// The next message if it has arrived, without waiting for the rest of one: how the
    /// master looks at nodes it does not wait for (catching up, or between frames).
    pub fn try_recv(&mut self) -> Result<Option<Message<'_>>, ClusterError> {
        if self.fill_now()? {
            self.next_buffered().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Reads what has arrived without waiting; whether a whole message is buffered now. The
    /// socket stays blocking (`MSG_DONTWAIT` per read): another thread may be writing to it.
    pub fn fill_now(&mut self) -> Result<bool, ClusterError> {
        if self.has_message()? {
            return Ok(true);
        }
        let filled = self.decoder.fill_from(&mut DontWait(&self.stream));
        match filled {
            Ok(()) => Ok(true),
            Err(FillError::TimedOut) => Ok(false),
            Err(e) => Err(self.fill_error(e)),
        }
    }

    /// Whether a whole message is buffered.
    pub fn has_message(&self) -> Result<bool, ClusterError> {
        self.decoder.has_frame().map_err(|e| wire(&self.peer, e))
    }

    fn fill_error(&self, e: FillError) -> ClusterError {
        match e {
            FillError::Closed(cut) => ClusterError::Closed {
                peer: self.peer.clone(),
                detail: cut.map_or(String::new(), |e| format!(" ({e})")),
            },
            FillError::TimedOut => ClusterError::Timeout {
                peer: self.peer.clone(),
                what: "no message in time".into(),
            },
            FillError::Wire(e) => wire(&self.peer, e),
            FillError::Io(e) => io(&self.peer, "cannot receive", e),
        }
    }

    /// The whole frame the decoder holds, decoded.
    pub fn next_buffered(&mut self) -> Result<Message<'_>, ClusterError> {
        let peer = &self.peer;
        match self.decoder.next_message() {
            Ok(Some(m)) => Ok(m),
            Ok(None) => Err(ClusterError::Closed {
                peer: peer.clone(),
                detail: " (no message)".into(),
            }),
            Err(e) => Err(wire(peer, e)),
        }
    }
}

/// Encoded frames split into runs of whole frames of at most `limit` bytes each (a frame
/// larger than that alone makes a run, which the peer refuses as oversized).
pub(crate) fn whole_frames(bytes: &[u8], limit: usize) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= bytes.len() {
            return None;
        }
        let mut end = start;
        while end < bytes.len() {
            let len = bytes.get(end..end + 4).map_or(bytes.len(), |h| {
                u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize
            });
            let next = end.saturating_add(4).saturating_add(len).min(bytes.len());
            if next - start > limit && end > start {
                break;
            }
            end = next;
        }
        let run = &bytes[start..end];
        start = end;
        Some(run)
    })
}

/// Writes every part with as few system calls as the kernel allows (one, normally).
fn write_all_vectored<const N: usize>(
    stream: &mut TcpStream,
    parts: [&[u8]; N],
) -> std::io::Result<()> {
    let mut slices = parts.map(IoSlice::new);
    let mut slices: &mut [IoSlice<'_>] = &mut slices;
    // Drop empty parts first: with nothing left to write, a write of 0 bytes is no error.
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match stream.write_vectored(slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads from a socket without waiting, whatever its mode.
struct DontWait<'a>(&'a TcpStream);

impl std::io::Read for DontWait<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        rustix::net::recv(self.0, buf, rustix::net::RecvFlags::DONTWAIT)
            .map(|(n, _)| n)
            .map_err(std::io::Error::from)
    }
}

pub(crate) fn io(peer: &str, what: &'static str, source: std::io::Error) -> ClusterError {
    ClusterError::Io {
        peer: peer.to_string(),
        what,
        source: std::sync::Arc::new(source),
    }
}

/// A client's error for an answer it did not ask for: the peer's refusal (its reason
/// escaped and capped), or a protocol error naming the message.
pub(crate) fn unexpected(peer: &str, m: lockstep_wire::Message<'_>) -> ClusterError {
    match m {
        lockstep_wire::Message::Refused { reason } => ClusterError::Refused {
            peer: peer.to_string(),
            reason: lockstep_wire::printable(reason).to_string(),
        },
        other => ClusterError::Protocol {
            peer: peer.to_string(),
            what: format!("it answered with an unexpected {} message", other.kind()),
        },
    }
}

pub(crate) fn wire(peer: &str, source: lockstep_wire::WireError) -> ClusterError {
    ClusterError::Wire {
        peer: peer.to_string(),
        source,
    }
}

/// Largest answer to a client's proof: the server has proven the key by then, and a
/// refusal may be long (every way a node's application differs).
const REFUSAL_MAX_FRAME: usize = 64 * 1024;

/// Authenticates `link` as client `name` of `cluster` by `deadline`, sending `join` (what a
/// node runs) right after its proof; returns the frame limit the server announced. The
/// link comes back sealed.
pub(crate) fn client_handshake(
    link: &mut Link,
    key: &lockstep_wire::ClusterKey,
    cluster: &str,
    name: &str,
    deadline: Instant,
    join: Option<&Message<'_>>,
) -> Result<usize, ClusterError> {
    use lockstep_wire::handshake::ClientStep;
    let peer = link.peer.clone();
    let nonce = lockstep_wire::random_nonce().map_err(|e| wire(&peer, e))?;
    let mut hs = lockstep_wire::ClientHandshake::new(key.clone(), cluster, name, nonce);
    link.send(&hs.hello())?;
    loop {
        let msg = link.recv_by(deadline)?;
        match hs.handle(&msg) {
            Ok(ClientStep::Prove { proof, keys }) => {
                link.send(&proof)?;
                link.authenticate(keys);
                link.set_max_frame(REFUSAL_MAX_FRAME);
                if let Some(join) = join {
                    link.send(join)?;
                }
            }
            Ok(ClientStep::Established { max_frame }) => return Ok(max_frame),
            Err(e) => {
                let reason = e.to_string();
                let _ = link.send(&Message::Refused { reason: &reason });
                return Err(wire(&peer, e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn frames_too_large_for_one_record_are_split_between_whole_frames() {
        let mut bytes = Vec::new();
        for n in [10u8, 20, 5, 30] {
            lockstep_wire::encode_into(
                &lockstep_wire::Message::Block {
                    plugin: 1,
                    bytes: &vec![n; n as usize],
                },
                &mut bytes,
            )
            .unwrap();
        }
        let runs: Vec<usize> = super::whole_frames(&bytes, 40).map(<[u8]>::len).collect();
        // Frames of 17, 27, 12 and 37 bytes: 17 alone (17 + 27 > 40), 27 + 12, 37.
        assert_eq!(runs, [17, 39, 37]);
        assert_eq!(runs.iter().sum::<usize>(), bytes.len());
        assert_eq!(super::whole_frames(&bytes, 1 << 20).count(), 1);
    }
}
