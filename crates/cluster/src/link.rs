/*!
A blocking connection: a TCP stream (with `TCP_NODELAY`) pumped through the sans-IO decoder.
*/
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use lockstep_wire::{Decoder, FillError, Message, encode_into};

use crate::ClusterError;

pub(crate) struct Link {
    pub stream: TcpStream,
    pub peer: String,
    decoder: Decoder,
    out: Vec<u8>,
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
        })
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

    pub fn send(&mut self, msg: &Message<'_>) -> Result<(), ClusterError> {
        self.out.clear();
        encode_into(msg, &mut self.out).map_err(|e| wire(&self.peer, e))?;
        self.stream
            .write_all(&self.out)
            .map_err(|e| io(&self.peer, "cannot send", e))
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
        let nonblocking = |s: &TcpStream, on: bool, peer: &str| {
            s.set_nonblocking(on)
                .map_err(|e| io(peer, "cannot switch blocking mode", e))
        };
        nonblocking(&self.stream, true, &self.peer)?;
        let filled = self.decoder.fill_from(&mut self.stream);
        nonblocking(&self.stream, false, &self.peer)?;
        match filled {
            Ok(()) => self.next_buffered().map(Some),
            Err(FillError::TimedOut) => Ok(None),
            Err(e) => Err(self.fill_error(e)),
        }
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
    fn next_buffered(&mut self) -> Result<Message<'_>, ClusterError> {
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

pub(crate) fn io(peer: &str, what: &'static str, source: std::io::Error) -> ClusterError {
    ClusterError::Io {
        peer: peer.to_string(),
        what,
        source: std::sync::Arc::new(source),
    }
}

pub(crate) fn wire(peer: &str, source: lockstep_wire::WireError) -> ClusterError {
    ClusterError::Wire {
        peer: peer.to_string(),
        source,
    }
}
