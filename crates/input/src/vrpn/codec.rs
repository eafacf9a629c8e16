/*!
VRPN's TCP framing, without I/O, as `vrpn_Connection.C` (07.xx) writes it.

A connection starts with each side's 24-byte cookie (`vrpn: ver. 07.35`, two spaces, the log
mode as an ASCII digit, zeros). Then every message is a 24-byte header — `u32` length (header
plus unpadded body), `i32` seconds, `i32` microseconds, `i32` sender id, `i32` type id, `u32`
sequence number — and the body, padded with zeros to a multiple of 8. Everything is
big-endian. Negative type ids are the connection's own: −1 describes a sender, −2 a type (an
`i32` length, then the name with its NUL), −3 and −4 (UDP and log descriptions) are ignored
here.
*/
use crate::vrpn::VrpnError;

/// The magic our cookie carries; peers must match it up to the last `.` (major version).
pub const MAGIC: &[u8; 16] = b"vrpn: ver. 07.35";
/// Bytes of a cookie.
pub const COOKIE_LEN: usize = 24;
/// Bytes of a message header.
pub const HEADER_LEN: usize = 24;
/// Largest message accepted (VRPN's own receive buffer is 64000 bytes).
pub const MAX_MESSAGE: usize = 64_000;
/// Longest sender or type name (VRPN's `vrpn_CNAME`).
pub const MAX_NAME: usize = 100;

/// Type id of a sender description.
pub const SENDER_DESCRIPTION: i32 = -1;
/// Type id of a type description.
pub const TYPE_DESCRIPTION: i32 = -2;

/// Our cookie: the magic, two spaces, log mode `0` (no logging), zeros.
pub fn cookie() -> [u8; COOKIE_LEN] {
    let mut c = [0u8; COOKIE_LEN];
    c[..16].copy_from_slice(MAGIC);
    c[16] = b' ';
    c[17] = b' ';
    c[18] = b'0';
    c
}

/// Checks a peer's cookie: the same major version (the magic up to its last `.`), a log mode
/// from `0` to `3`.
pub fn check_cookie(c: &[u8; COOKIE_LEN]) -> Result<(), VrpnError> {
    let magic = &c[..16];
    let dot = magic.iter().rposition(|&b| b == b'.').unwrap_or(0);
    if dot == 0 || magic[..=dot] != MAGIC[..=dot] {
        return Err(VrpnError::Cookie(format!(
            "'{}' is not a VRPN 07 cookie",
            String::from_utf8_lossy(magic).escape_debug()
        )));
    }
    if !(b'0'..=b'3').contains(&c[18]) {
        return Err(VrpnError::Cookie(format!(
            "log mode byte {:#04x} is not '0' to '3'",
            c[18]
        )));
    }
    Ok(())
}

/// When a message was sent, as the sender's clock had it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stamp {
    /// Seconds.
    pub sec: i32,
    /// Microseconds.
    pub usec: i32,
}

/// One message, its body borrowed from the decoder's buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame<'a> {
    /// The sender's timestamp.
    pub time: Stamp,
    /// Sender id, in the sender's numbering.
    pub sender: i32,
    /// Type id, in the sender's numbering (negative: the connection's own).
    pub kind: i32,
    /// The body, unpadded.
    pub body: &'a [u8],
}

/// Appends one message to `out`: header, body, padding to 8.
pub fn encode(out: &mut Vec<u8>, time: Stamp, sender: i32, kind: i32, seq: u32, body: &[u8]) {
    let len = (HEADER_LEN + body.len()) as u32;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&time.sec.to_be_bytes());
    out.extend_from_slice(&time.usec.to_be_bytes());
    out.extend_from_slice(&sender.to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(body);
    out.resize(out.len() + padding(body.len()), 0);
}

/// Appends the description of sender or type `id` called `name` (`kind` is
/// [`SENDER_DESCRIPTION`] or [`TYPE_DESCRIPTION`]).
pub fn encode_description(out: &mut Vec<u8>, kind: i32, id: i32, name: &str) {
    let mut body = Vec::with_capacity(4 + name.len() + 1);
    body.extend_from_slice(&((name.len() + 1) as i32).to_be_bytes());
    body.extend_from_slice(name.as_bytes());
    body.push(0);
    encode(out, Stamp::default(), id, kind, 0, &body);
}

/// The name a description carries.
pub fn description_name(body: &[u8]) -> Result<&str, VrpnError> {
    let bad = |why: &str| VrpnError::Malformed(format!("a name description {why}"));
    if body.len() > 4 + MAX_NAME {
        return Err(bad(&format!("of {} bytes is over {MAX_NAME}", body.len())));
    }
    let (len, rest) = body.split_at_checked(4).ok_or_else(|| bad("is cut off"))?;
    let len = i32::from_be_bytes(len.try_into().unwrap_or_default());
    let len = usize::try_from(len).map_err(|_| bad("has a negative length"))?;
    let name = rest
        .get(..len)
        .ok_or_else(|| bad("is longer than its message"))?;
    // The length counts the NUL, which older senders may leave out.
    let name = name.strip_suffix(&[0]).unwrap_or(name);
    std::str::from_utf8(name).map_err(|_| bad("is not UTF-8"))
}

fn padding(n: usize) -> usize {
    (8 - n % 8) % 8
}

/// Splits a byte stream into messages: bytes are pushed as they arrive, whole messages come
/// out. A length past [`MAX_MESSAGE`] or under the header is refused before anything is kept.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out.
    used: usize,
}

impl Decoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.used > 0 {
            self.buf.drain(..self.used);
            self.used = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held and not yet handed out as a message.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.used
    }

    /// The next whole message, if one has arrived.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, VrpnError> {
        let rest = &self.buf[self.used..];
        if rest.len() < HEADER_LEN {
            return Ok(None);
        }
        let word = |i: usize| u32::from_be_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
        let len = word(0) as usize;
        if len < HEADER_LEN {
            return Err(VrpnError::Malformed(format!(
                "a message length of {len} is shorter than its header"
            )));
        }
        if len > MAX_MESSAGE {
            return Err(VrpnError::Malformed(format!(
                "a message of {len} bytes is over the limit of {MAX_MESSAGE}"
            )));
        }
        let body_len = len - HEADER_LEN;
        let whole = HEADER_LEN + body_len + padding(body_len);
        if rest.len() < whole {
            return Ok(None);
        }
        let frame = Frame {
            time: Stamp {
                sec: word(4) as i32,
                usec: word(8) as i32,
            },
            sender: word(12) as i32,
            kind: word(16) as i32,
            body: &rest[HEADER_LEN..len],
        };
        self.used += whole;
        Ok(Some(frame))
    }
}

/// Reads big-endian fields from a message body, each checked against its end.
pub(crate) struct Fields<'a> {
    body: &'a [u8],
}

impl<'a> Fields<'a> {
    pub fn new(body: &'a [u8]) -> Self {
        Fields { body }
    }

    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.body.split_at_checked(N)?;
        self.body = rest;
        head.try_into().ok()
    }

    pub fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }

    pub fn f64(&mut self) -> Option<f64> {
        self.take().map(f64::from_be_bytes)
    }

    pub fn left(&self) -> usize {
        self.body.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_its_header_then_its_body_padded_to_eight() {
        let mut out = Vec::new();
        let t = Stamp { sec: 7, usec: 9 };
        encode(&mut out, t, 2, 5, 1, &[1, 2, 3]);
        assert_eq!(out.len(), 24 + 8);
        assert_eq!(&out[..4], &27u32.to_be_bytes());
        assert_eq!(&out[24..], &[1, 2, 3, 0, 0, 0, 0, 0]);
        let mut d = Decoder::new();
        // A byte at a time: nothing comes out before the padding is in.
        for b in &out[..out.len() - 1] {
            d.push(&[*b]);
            assert_eq!(d.next_frame().unwrap(), None);
        }
        d.push(&out[out.len() - 1..]);
        let f = d.next_frame().unwrap().unwrap();
        assert_eq!(
            (f.time, f.sender, f.kind, f.body),
            (t, 2, 5, &[1u8, 2, 3][..])
        );
        assert_eq!(d.next_frame().unwrap(), None);
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn lengths_out_of_bounds_are_refused_before_the_body_arrives() {
        let mut d = Decoder::new();
        d.push(&64_001u32.to_be_bytes());
        d.push(&[0; 20]);
        let e = d.next_frame().unwrap_err().to_string();
        assert!(e.contains("64001 bytes is over the limit of 64000"), "{e}");
        let mut d = Decoder::new();
        d.push(&23u32.to_be_bytes());
        d.push(&[0; 20]);
        let e = d.next_frame().unwrap_err().to_string();
        assert!(e.contains("length of 23 is shorter than its header"), "{e}");
    }

    #[test]
    fn descriptions_carry_their_name_with_its_nul() {
        let mut out = Vec::new();
        encode_description(&mut out, SENDER_DESCRIPTION, 3, "Tracker0");
        let mut d = Decoder::new();
        d.push(&out);
        let f = d.next_frame().unwrap().unwrap();
        assert_eq!((f.kind, f.sender), (SENDER_DESCRIPTION, 3));
        assert_eq!(f.body.len(), 4 + 9);
        assert_eq!(description_name(f.body).unwrap(), "Tracker0");
        assert!(description_name(&[0, 0, 0, 9, b'a']).is_err());
        assert!(description_name(&[0xff, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn cookies_match_on_the_major_version_only() {
        let c = cookie();
        assert_eq!(&c[..19], b"vrpn: ver. 07.35  0");
        assert_eq!(&c[19..], &[0; 5]);
        check_cookie(&c).unwrap();
        let mut newer = c;
        newer[..16].copy_from_slice(b"vrpn: ver. 07.38");
        check_cookie(&newer).unwrap();
        let mut other = c;
        other[..16].copy_from_slice(b"vrpn: ver. 08.01");
        assert!(
            check_cookie(&other)
                .unwrap_err()
                .to_string()
                .contains("not a VRPN 07 cookie")
        );
        let mut mode = c;
        mode[18] = b'7';
        assert!(
            check_cookie(&mode)
                .unwrap_err()
                .to_string()
                .contains("log mode")
        );
        let junk = [b'x'; COOKIE_LEN];
        assert!(check_cookie(&junk).is_err());
    }
}
