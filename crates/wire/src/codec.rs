/*!
Framing: `u32` little-endian payload length, then the postcard-encoded message.

[`Decoder`] buffers received bytes and yields complete messages; it checks an announced length
against the limit before reserving any memory for it, rejects frames whose payload does not
decode to exactly one message, and reports a connection that ends mid-frame.
*/
use std::io::Read;

use crate::session::{Opener, RECORD_HEADER, Sealer};
use crate::{Message, WireError};

const HEADER: usize = 4;

/// Encodes `msg` as one frame appended to `out` (reusing its allocation).
pub fn encode_into(msg: &Message<'_>, out: &mut Vec<u8>) -> Result<(), WireError> {
    encode_frame_into(msg, out)
}

/// Encodes any serializable value as one frame appended to `out`: the framing of the cluster
/// protocol, for protocols that run after the same handshake (the launcher's).
pub fn encode_frame_into<T: serde::Serialize + ?Sized>(
    msg: &T,
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    let v = std::mem::take(out);
    *out = postcard::to_extend(msg, v)
        .map_err(|e| WireError::Malformed(format!("cannot encode: {e}")))?;
    let len = out.len() - start - HEADER;
    let len32 = u32::try_from(len).map_err(|_| WireError::Oversized {
        len,
        limit: u32::MAX as usize,
    })?;
    out[start..start + HEADER].copy_from_slice(&len32.to_le_bytes());
    Ok(())
}

/// Encodes `msg` as one frame into `out` (cleared first): bare, or with `sealer` as one
/// sealed record — how a connection sends a single message before and after its handshake.
pub fn encode_record_into<T: serde::Serialize + ?Sized>(
    msg: &T,
    sealer: Option<&mut Sealer>,
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    out.clear();
    match sealer {
        None => encode_frame_into(msg, out),
        Some(sealer) => {
            out.resize(RECORD_HEADER, 0);
            encode_frame_into(msg, out)?;
            sealer.seal_in_place(out)
        }
    }
}

/// Encodes `msg` as one frame.
pub fn encode(msg: &Message<'_>) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::new();
    encode_into(msg, &mut out)?;
    Ok(out)
}

/// A socket read under one deadline for a whole exchange (the handshake) rather than a
/// timeout per read: a peer sending one byte a second cannot stretch the exchange.
#[derive(Debug)]
pub struct ByDeadline<'a> {
    /// The socket.
    pub stream: &'a std::net::TcpStream,
    /// When the exchange must be over.
    pub deadline: std::time::Instant,
}

impl Read for ByDeadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self
            .deadline
            .saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut s = self.stream;
        s.read(buf)
    }
}

/// Why [`Decoder::fill_from`] returned without a whole frame.
#[derive(Debug)]
pub enum FillError {
    /// The stream ended; with the reason if it ended in the middle of a frame.
    Closed(Option<WireError>),
    /// The reader's timeout passed with no whole frame.
    TimedOut,
    /// The next frame is over the limit.
    Wire(WireError),
    /// Reading failed.
    Io(std::io::Error),
}

/// Turns a byte stream into messages.
///
/// Before [`Decoder::authenticate`] the stream is bare frames (the handshake); after it,
/// sealed records of whole frames (see [`crate::session`]): a record is checked as a whole
/// before any frame in it is decoded.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Start of the first unconsumed byte in `buf`.
    start: usize,
    /// With records: where the payload of the record being decoded ends (`start` when no
    /// record is open).
    record_end: usize,
    opener: Option<Opener>,
    max_frame: usize,
}

impl Decoder {
    /// A decoder accepting frames of at most `max_frame` payload bytes.
    pub fn new(max_frame: usize) -> Self {
        Decoder {
            buf: Vec::new(),
            start: 0,
            record_end: 0,
            opener: None,
            max_frame,
        }
    }

    /// Changes the limit (raised after the handshake). With records it bounds a record.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Changes the frame limit.
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.max_frame = max_frame;
    }

    /// From the next byte on, the stream is sealed records checked by `opener`.
    pub fn authenticate(&mut self, opener: Opener) {
        self.opener = Some(opener);
        self.record_end = self.start;
    }

    /// Bytes received but not yet returned as messages.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Drops consumed bytes so the buffer does not grow without end.
    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.record_end = self.record_end.saturating_sub(self.start);
            self.start = 0;
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    /// Reads once from `r` straight into the buffer (no intermediate copy); returns the number
    /// of bytes read, 0 at end of stream.
    pub fn read_from(&mut self, r: &mut impl Read) -> std::io::Result<usize> {
        self.compact();
        let have = self.buf.len();
        // Read at most what the current frame or record still needs (or a header), so that
        // an oversized announcement is refused before its bytes are buffered.
        let want = match self.next_unit() {
            Some((header, len)) if len <= self.max_frame => {
                (header + len).saturating_sub(have).max(1)
            }
            _ => 64 * 1024,
        }
        .min(1 << 20);
        self.buf.resize(have + want, 0);
        let n = match r.read(&mut self.buf[have..]) {
            Ok(n) => n,
            Err(e) => {
                self.buf.truncate(have);
                return Err(e);
            }
        };
        self.buf.truncate(have + n);
        Ok(n)
    }

    /// Reads from `r` until a whole frame is buffered, retrying interrupted reads: the receive
    /// loop of every blocking connection (cluster links and launcher connections).
    pub fn fill_from(&mut self, r: &mut impl Read) -> Result<(), FillError> {
        while !self.has_frame().map_err(FillError::Wire)? {
            match self.read_from(r) {
                Ok(0) => return Err(FillError::Closed(self.finish().err())),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(FillError::TimedOut);
                }
                Err(e) => return Err(FillError::Io(e)),
            }
        }
        Ok(())
    }

    /// Whether a record is open: its frames are checked and buffered.
    fn in_record(&self) -> bool {
        self.opener.is_some() && self.start < self.record_end
    }

    /// The next unit to wait for, once its length is known: its header size and announced
    /// payload length (a frame's, or with records a record's).
    fn next_unit(&self) -> Option<(usize, usize)> {
        let b = &self.buf[self.start..];
        let header = if self.opener.is_some() {
            RECORD_HEADER
        } else {
            HEADER
        };
        (b.len() >= 4).then(|| {
            (
                header,
                u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize,
            )
        })
    }

    /// Whether a whole frame is buffered (an error if the next one is over the limit).
    pub fn has_frame(&self) -> Result<bool, WireError> {
        if self.in_record() {
            return Ok(true);
        }
        match self.next_unit() {
            None => Ok(false),
            Some((_, len)) if len > self.max_frame => Err(WireError::Oversized {
                len,
                limit: self.max_frame,
            }),
            Some((header, len)) => Ok(self.buffered() >= header + len),
        }
    }

    /// With records and none open: checks the next whole record and opens it. `Ok(false)`
    /// if it has not fully arrived.
    fn open_record(&mut self) -> Result<bool, WireError> {
        let Some((header, len)) = self.next_unit() else {
            return Ok(false);
        };
        if len > self.max_frame {
            return Err(WireError::Oversized {
                len,
                limit: self.max_frame,
            });
        }
        if self.buffered() < header + len {
            return Ok(false);
        }
        if len == 0 {
            return Err(WireError::Malformed("an empty record".into()));
        }
        let (from, to) = (self.start + header, self.start + header + len);
        if let Some(opener) = self.opener.as_mut() {
            opener.open(&self.buf[self.start..from], &self.buf[from..to])?;
        }
        self.start = from;
        self.record_end = to;
        Ok(true)
    }

    /// The next complete message, `Ok(None)` if more bytes are needed, or the reason the
    /// stream is unusable (the connection should then be closed).
    pub fn next_message(&mut self) -> Result<Option<Message<'_>>, WireError> {
        self.next_as::<Message<'_>>()
    }

    /// The next complete frame decoded as a `T` (see [`encode_frame_into`]), `Ok(None)` if
    /// more bytes are needed.
    pub fn next_as<'a, T: serde::Deserialize<'a>>(&'a mut self) -> Result<Option<T>, WireError> {
        let sealed = self.opener.is_some();
        if sealed && !self.in_record() && !self.open_record()? {
            return Ok(None);
        }
        let b = &self.buf[self.start..];
        let Some(len) =
            (b.len() >= HEADER).then(|| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        else {
            if sealed {
                return Err(crosses());
            }
            return Ok(None);
        };
        if len > self.max_frame {
            return Err(WireError::Oversized {
                len,
                limit: self.max_frame,
            });
        }
        if sealed && HEADER + len > self.record_end - self.start {
            return Err(crosses());
        }
        if self.buffered() < HEADER + len {
            return Ok(None);
        }
        let from = self.start + HEADER;
        let to = from + len;
        self.start = to;
        let (msg, rest) = postcard::take_from_bytes::<T>(&self.buf[from..to])
            .map_err(|e| WireError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(WireError::Malformed(format!(
                "{} bytes left over after a message",
                rest.len(),
            )));
        }
        Ok(Some(msg))
    }

    /// Call at end of stream: an error if a frame was cut off.
    pub fn finish(&self) -> Result<(), WireError> {
        match self.buffered() {
            0 => Ok(()),
            n => Err(WireError::Truncated { buffered: n }),
        }
    }
}

/// A record's payload must be whole frames.
fn crosses() -> WireError {
    WireError::Malformed("a message crosses the end of its record".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Hook, NodeStats};

    fn samples() -> Vec<Message<'static>> {
        vec![
            Message::Hello {
                magic: crate::MAGIC,
                version: 1,
                cluster: "cave",
                node: "front",
                nonce: [7; 32],
            },
            Message::Challenge {
                nonce: [1; 32],
                proof: [2; 32],
            },
            Message::Proof { proof: [3; 32] },
            Message::Welcome { max_frame: 1 << 20 },
            Message::Refused {
                reason: "wrong key",
            },
            Message::FrameBegin {
                frame: 42,
                time: 1234.5678901234,
                dt: 1.0 / 60.0,
            },
            Message::Block {
                plugin: 3,
                bytes: &[0, 1, 2, 255],
            },
            Message::EndBlock {
                frame: 42,
                hook: Hook::PreDraw,
            },
            Message::EndBlock {
                frame: 42,
                hook: Hook::PostFrame,
            },
            Message::SwapReady {
                frame: 42,
                stats: NodeStats {
                    cull_ms: 0.5,
                    draw_ms: 4.0,
                    ready_ms: 4.6,
                    state: Some(0xfeed),
                },
            },
            Message::SwapNow {
                frame: 42,
                head: None,
            },
            Message::Heartbeat { seq: 9 },
            Message::Shutdown { reason: "operator" },
            Message::Reconfigure {
                frame: 43,
                config: "name = \"cave\"",
            },
            Message::ReconfigureRequest { config: "x" },
            Message::Reconfigured { frame: 44 },
            Message::StatusRequest,
            Message::Status {
                frame: 45,
                fps: 60.0,
                sync_ms: 0.2,
                nodes: vec![crate::NodeStatus {
                    name: "front",
                    state: "in step",
                    frame: 44,
                    fps: 59.5,
                    ready_ms: 3.0,
                    joins: 2,
                }],
            },
            Message::Event {
                name: "hello",
                payload: b"\"hi\"",
                json: true,
            },
            Message::Queued { frame: 46 },
            Message::AssetRequest {
                path: "models/duck.glb",
                send: true,
            },
            Message::AssetInfo {
                digest: [7; 32],
                size: 3,
            },
            Message::AssetChunk { bytes: &[1, 2, 3] },
            Message::Input { payload: &[4, 5] },
            Message::Multicast {
                session: 9,
                group: "239.255.76.83:7471",
                first: 12,
            },
            Message::Nak {
                frame: 12,
                missing: &[1, 0, 3, 0],
            },
            Message::Units { through: 40 },
            Message::Datagram { bytes: b"LKSD" },
            Message::StripRequest {
                frame: 5,
                viewport: 1,
                rect: [0, 0, 2, 1],
                codec: crate::STRIP_LZ4,
            },
            Message::StripReady,
            Message::Strip {
                frame: 5,
                viewport: 1,
                rect: [0, 0, 2, 1],
                render_us: 900,
                codec: crate::STRIP_RGBA8,
                pixels: &[1, 2, 3, 4, 5, 6, 7, 8],
            },
        ]
    }

    /// Every message `stream` decodes to, pushed `chunk` bytes at a time.
    fn in_pieces(d: &mut Decoder, stream: &[u8], chunk: usize) -> Vec<String> {
        let mut got = Vec::new();
        for piece in stream.chunks(chunk) {
            d.push(piece);
            while let Some(m) = d.next_message().unwrap() {
                got.push(format!("{m:?}"));
            }
        }
        got
    }

    fn every_sample() -> Vec<String> {
        samples().iter().map(|m| format!("{m:?}")).collect()
    }

    #[test]
    fn every_message_round_trips_through_one_stream() {
        let mut stream = Vec::new();
        for m in samples() {
            encode_into(&m, &mut stream).unwrap();
        }
        let mut d = Decoder::new(1 << 20);
        d.push(&stream);
        for want in samples() {
            assert_eq!(d.next_message().unwrap(), Some(want));
        }
        assert_eq!(d.next_message().unwrap(), None);
        d.finish().unwrap();
    }

    #[test]
    fn frames_split_anywhere_decode_the_same() {
        let mut stream = Vec::new();
        for m in samples() {
            encode_into(&m, &mut stream).unwrap();
        }
        for chunk in [1, 2, 3, 5, 7, 64] {
            let mut d = Decoder::new(1 << 20);
            assert_eq!(
                in_pieces(&mut d, &stream, chunk),
                every_sample(),
                "chunks of {chunk}"
            );
        }
    }

    #[test]
    fn an_oversized_length_is_refused_before_reading_the_payload() {
        let mut d = Decoder::new(1024);
        d.push(&u32::MAX.to_le_bytes());
        assert_eq!(
            d.next_message(),
            Err(WireError::Oversized {
                len: u32::MAX as usize,
                limit: 1024
            })
        );
        // read_from never buffers more than a header beyond a frame it will refuse.
        let mut d = Decoder::new(1024);
        let mut bytes: &[u8] = &[0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4, 5, 6, 7, 8];
        d.read_from(&mut bytes).unwrap();
        assert!(d.buf.capacity() <= 64 * 1024 + 16);
        assert!(matches!(d.next_message(), Err(WireError::Oversized { .. })));
    }

    /// A reader that hands out one byte per call, interrupted before each.
    struct Trickle<'a>(&'a [u8], bool);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.1 = !self.1;
            if self.1 {
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            let Some((first, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            buf[0] = *first;
            self.0 = rest;
            Ok(1)
        }
    }

    #[test]
    fn fill_from_waits_for_a_whole_frame_and_tells_a_cut_stream_from_a_closed_one() {
        let frame = encode(&Message::SwapNow {
            frame: 9,
            head: None,
        })
        .unwrap();
        let mut two = frame.clone();
        two.extend_from_slice(&frame[..3]);
        let mut r = Trickle(&two, false);
        let mut d = Decoder::new(1024);
        d.fill_from(&mut r).unwrap();
        assert_eq!(
            d.next_message(),
            Ok(Some(Message::SwapNow {
                frame: 9,
                head: None
            }))
        );
        match d.fill_from(&mut r) {
            Err(FillError::Closed(Some(WireError::Truncated { buffered: 3 }))) => {}
            other => panic!("{other:?}"),
        }
        let mut d = Decoder::new(1024);
        assert!(matches!(
            d.fill_from(&mut &[][..]),
            Err(FillError::Closed(None))
        ));
        let mut d = Decoder::new(frame.len() - 5);
        assert!(matches!(
            d.fill_from(&mut &frame[..]),
            Err(FillError::Wire(WireError::Oversized { .. }))
        ));
    }

    #[test]
    fn garbage_trailing_bytes_and_truncation_are_errors() {
        let mut d = Decoder::new(1024);
        d.push(&[3, 0, 0, 0, 0xff, 0xff, 0xff]);
        assert!(matches!(d.next_message(), Err(WireError::Malformed(_))));

        let mut frame = encode(&Message::SwapNow {
            frame: 1,
            head: None,
        })
        .unwrap();
        frame.push(0);
        let n = frame.len() as u32 - 4;
        frame[..4].copy_from_slice(&n.to_le_bytes());
        let mut d = Decoder::new(1024);
        d.push(&frame);
        assert_eq!(
            d.next_message(),
            Err(WireError::Malformed(
                "1 bytes left over after a message".into()
            ))
        );

        let frame = encode(&Message::Heartbeat { seq: 5 }).unwrap();
        let mut d = Decoder::new(1024);
        d.push(&frame[..frame.len() - 1]);
        assert_eq!(d.next_message(), Ok(None));
        assert_eq!(
            d.finish(),
            Err(WireError::Truncated {
                buffered: frame.len() - 1
            })
        );
    }

    #[test]
    fn the_buffer_does_not_grow_with_the_stream() {
        let frame = encode(&Message::Block {
            plugin: 1,
            bytes: &[9; 100],
        })
        .unwrap();
        let mut d = Decoder::new(1024);
        for _ in 0..10_000 {
            d.push(&frame);
            assert!(d.next_message().unwrap().is_some());
        }
        assert!(d.buf.capacity() < 4 * frame.len());
    }

    fn session() -> (crate::Sealer, crate::Opener) {
        let key = crate::ClusterKey::new(vec![3; 32]).unwrap();
        let keys = crate::session::derive(
            &key,
            &[1; 32],
            &[2; 32],
            "c",
            "n",
            crate::session::Side::Client,
        );
        let peer = crate::session::derive(
            &key,
            &[1; 32],
            &[2; 32],
            "c",
            "n",
            crate::session::Side::Server,
        );
        (keys.sealer, peer.opener)
    }

    /// Every sample, in records of two messages each (the last alone).
    fn sealed_stream(sealer: &mut crate::Sealer) -> Vec<u8> {
        let mut stream = Vec::new();
        for pair in samples().chunks(2) {
            let mut payload = Vec::new();
            for m in pair {
                encode_into(m, &mut payload).unwrap();
            }
            stream.extend_from_slice(&sealer.seal(&[&payload]).unwrap());
            stream.extend_from_slice(&payload);
        }
        stream
    }

    #[test]
    fn sealed_records_decode_split_anywhere() {
        for chunk in [1, 3, 7, 64, 4096] {
            let (mut sealer, opener) = session();
            let stream = sealed_stream(&mut sealer);
            let mut d = Decoder::new(1 << 20);
            d.authenticate(opener);
            assert_eq!(
                in_pieces(&mut d, &stream, chunk),
                every_sample(),
                "chunks of {chunk}"
            );
            d.finish().unwrap();
        }
    }

    #[test]
    fn a_record_with_one_flipped_bit_yields_no_message_from_it() {
        let (mut sealer, opener) = session();
        let mut stream = sealed_stream(&mut sealer);
        // A bit of the second record's payload (the first record is Hello and Challenge).
        let first = RECORD_HEADER + u32::from_le_bytes(stream[..4].try_into().unwrap()) as usize;
        stream[first + RECORD_HEADER + 2] ^= 0x04;
        let mut d = Decoder::new(1 << 20);
        d.authenticate(opener);
        d.push(&stream);
        assert!(matches!(d.next_message(), Ok(Some(Message::Hello { .. }))));
        assert!(matches!(
            d.next_message(),
            Ok(Some(Message::Challenge { .. }))
        ));
        assert_eq!(d.next_message(), Err(WireError::Unauthentic { record: 1 }));
    }

    #[test]
    fn a_frame_must_end_inside_its_record_and_a_record_must_hold_one() {
        let (mut sealer, opener) = session();
        let frame = encode(&Message::SwapNow {
            frame: 3,
            head: None,
        })
        .unwrap();
        // The record holds the frame but one byte.
        let part = &frame[..frame.len() - 1];
        let mut stream = sealer.seal(&[part]).unwrap().to_vec();
        stream.extend_from_slice(part);
        let mut d = Decoder::new(1 << 20);
        d.authenticate(opener);
        d.push(&stream);
        assert_eq!(
            d.next_message(),
            Err(WireError::Malformed(
                "a message crosses the end of its record".into()
            ))
        );
        let (mut sealer, opener) = session();
        let mut d = Decoder::new(1 << 20);
        d.authenticate(opener);
        d.push(&sealer.seal(&[]).unwrap());
        assert_eq!(
            d.next_message(),
            Err(WireError::Malformed("an empty record".into()))
        );
    }
}
