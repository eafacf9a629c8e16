/*!
Frame data as UDP datagrams, sans IO: what the multicast transport sends and how a node puts
a frame back together, asks again for what was lost, and refuses what it cannot trust.

A frame, encoded once, is cut into datagrams of at most `mtu` bytes:

```text
magic "LKSD" │ session: u64 │ frame: u64 │ total: u32 │ stride: u16 │ index: u16 │ count: u16
│ tag: 16 bytes │ payload
tag = HMAC-SHA256(multicast key, every header byte before it ‖ payload), first 16 bytes
```

All little-endian. `stride` is the payload of every datagram but the last, so the datagram
`index` of `count` carries the bytes from `index × stride` on; a receiver checks that every
field agrees with the others before it keeps a byte. The multicast key is derived from the
cluster key and the session (a number the master draws at start and tells each node over its
authenticated connection), so a datagram of another cluster, of an older run or from anyone
without the key is refused and counted, and the frame is repaired as if it were lost.

A [`Reassembler`] hands out frames in order, each whole. It notices a gap (a later datagram
came, or a newer frame began, or the frame went quiet for [`TAIL_WAIT`]) and asks for the
missing datagrams at once ([`Reassembler::poll_nak`]), then again every [`NAK_RETRY`]. The
[`Fragmenter`] keeps the last few frames to send again, within a per-node [`NakBudget`], so
that one node flooding requests cannot slow the others.
*/
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::ClusterKey;

type HmacSha256 = Hmac<Sha256>;

/// The first bytes of every datagram.
pub const DATAGRAM_MAGIC: [u8; 4] = *b"LKSD";
/// Header bytes before the tag.
const FIELDS: usize = 4 + 8 + 8 + 4 + 2 + 2 + 2;
/// Bytes of the tag.
const TAG: usize = 16;
/// Bytes before a datagram's payload.
pub const DATAGRAM_HEADER: usize = FIELDS + TAG;
/// The largest datagram that crosses an Ethernet link unfragmented (1500 − IP − UDP).
pub const ETHERNET_DATAGRAM: usize = 1472;
/// How long a frame may go quiet, incomplete, before its tail counts as lost.
pub const TAIL_WAIT: Duration = Duration::from_millis(2);
/// How long after asking for missing datagrams a node asks again.
pub const NAK_RETRY: Duration = Duration::from_millis(3);
/// Most frames a node assembles at once; a newer one beyond them abandons the oldest.
pub const MAX_PARTIAL: usize = 8;
/// How long a datagram sent again to the group is taken as on its way to every node.
pub const RESEND_GAP: Duration = Duration::from_millis(1);
/// Most datagram indices one request names.
pub const MAX_NAK: usize = 512;

/// Why a datagram was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatagramError {
    /// Too short, or not a lockstep datagram.
    #[error("not a lockstep datagram ({0} bytes)")]
    NotOurs(usize),
    /// Of another session (another cluster, or an earlier run).
    #[error("of session {got:#x}, not {want:#x}")]
    OtherSession {
        /// The session it names.
        got: u64,
        /// This session.
        want: u64,
    },
    /// Its tag does not match: forged or altered.
    #[error("frame {frame} datagram {index}: the tag does not match (forged or altered)")]
    Forged {
        /// The frame it claims.
        frame: u64,
        /// The index it claims.
        index: u16,
    },
    /// Its fields disagree with each other or with the frame's other datagrams.
    #[error("frame {frame}: {what}")]
    Inconsistent {
        /// The frame it claims.
        frame: u64,
        /// What disagrees.
        what: String,
    },
}

/// The key that authenticates one session's datagrams.
#[derive(Clone)]
pub struct MulticastKey {
    mac: HmacSha256,
    session: u64,
}

impl std::fmt::Debug for MulticastKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MulticastKey {{ session: {:#x} }}", self.session)
    }
}

impl MulticastKey {
    /// The key of session `session` of cluster `cluster` (HKDF-SHA256 from the cluster key).
    pub fn derive(key: &ClusterKey, cluster: &str, session: u64) -> MulticastKey {
        let kdf = Hkdf::<Sha256>::new(Some(&session.to_le_bytes()), key.bytes());
        let mut info = b"lockstep multicast ".to_vec();
        info.extend_from_slice(cluster.as_bytes());
        let mut okm = [0u8; 32];
        kdf.expand(&info, &mut okm)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        MulticastKey {
            mac: HmacSha256::new_from_slice(&okm).expect("HMAC takes keys of any length"),
            session,
        }
    }

    /// The session it belongs to.
    pub fn session(&self) -> u64 {
        self.session
    }

    /// Whether `tag` is the tag of `fields` and `payload`, compared in constant time.
    fn verify(&self, fields: &[u8], payload: &[u8], tag: &[u8]) -> bool {
        let mut m = self.mac.clone();
        m.update(fields);
        m.update(payload);
        m.verify_truncated_left(tag).is_ok()
    }

    fn tag(&self, fields: &[u8], payload: &[u8]) -> [u8; TAG] {
        let mut m = self.mac.clone();
        m.update(fields);
        m.update(payload);
        let full = m.finalize().into_bytes();
        let mut t = [0u8; TAG];
        t.copy_from_slice(&full[..TAG]);
        t
    }
}

/// Writes `key`'s session and the tag over whatever else `d` holds (for the fuzz target, which
/// must get past the tag to reach the checks behind it).
pub(crate) fn seal(key: &MulticastKey, d: &mut [u8]) {
    if d.len() < DATAGRAM_HEADER {
        return;
    }
    d[..4].copy_from_slice(&DATAGRAM_MAGIC);
    d[4..12].copy_from_slice(&key.session.to_le_bytes());
    let tag = key.tag(&d[..FIELDS], &d[DATAGRAM_HEADER..]);
    d[FIELDS..DATAGRAM_HEADER].copy_from_slice(&tag);
}

/// A datagram's header, read and checked for size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    session: u64,
    frame: u64,
    total: u32,
    stride: u16,
    index: u16,
    count: u16,
}

impl Header {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&DATAGRAM_MAGIC);
        out.extend_from_slice(&self.session.to_le_bytes());
        out.extend_from_slice(&self.frame.to_le_bytes());
        out.extend_from_slice(&self.total.to_le_bytes());
        out.extend_from_slice(&self.stride.to_le_bytes());
        out.extend_from_slice(&self.index.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
    }

    fn read(d: &[u8]) -> Option<Header> {
        if d.len() < DATAGRAM_HEADER || d[..4] != DATAGRAM_MAGIC {
            return None;
        }
        let u64_at = |i: usize| u64::from_le_bytes(d[i..i + 8].try_into().unwrap_or_default());
        let u16_at = |i: usize| u16::from_le_bytes([d[i], d[i + 1]]);
        Some(Header {
            session: u64_at(4),
            frame: u64_at(12),
            total: u32::from_le_bytes([d[20], d[21], d[22], d[23]]),
            stride: u16_at(24),
            index: u16_at(26),
            count: u16_at(28),
        })
    }

    /// Whether the fields agree with each other and with a payload of `len` bytes.
    fn check(&self, len: usize, max_frame: usize) -> Result<(), String> {
        if self.frame == u64::MAX {
            // One past it must exist: frames are counted from the one after.
            return Err("the last frame number".into());
        }
        let total = self.total as usize;
        if total > max_frame {
            return Err(format!("{total} bytes, over the limit of {max_frame}"));
        }
        if self.stride == 0 {
            return Err("a stride of 0".into());
        }
        let count = total.div_ceil(self.stride as usize).max(1);
        if count != self.count as usize {
            return Err(format!(
                "{} datagrams for {total} bytes of {} each (it takes {count})",
                self.count, self.stride
            ));
        }
        if self.index >= self.count {
            return Err(format!("datagram {} of {}", self.index, self.count));
        }
        let offset = self.index as usize * self.stride as usize;
        let want = (total - offset.min(total)).min(self.stride as usize);
        if len != want {
            return Err(format!(
                "datagram {} carries {len} bytes, not {want}",
                self.index
            ));
        }
        Ok(())
    }
}

/// One frame as datagrams, kept to send again.
#[derive(Debug, Default)]
struct Sent {
    frame: u64,
    datagrams: Vec<Vec<u8>>,
    /// When each was last sent again (to the whole group: every node that lacks it gets it).
    resent: Vec<Option<Instant>>,
}

/// Cuts frames into authenticated datagrams and keeps the last few for retransmission.
#[derive(Debug)]
pub struct Fragmenter {
    key: MulticastKey,
    stride: u16,
    keep: usize,
    sent: VecDeque<Sent>,
}

impl Fragmenter {
    /// Datagrams of at most `mtu` bytes (at least the header and one byte); the last `keep`
    /// frames kept to send again.
    pub fn new(key: MulticastKey, mtu: usize, keep: usize) -> Fragmenter {
        let stride = mtu
            .saturating_sub(DATAGRAM_HEADER)
            .clamp(1, u16::MAX as usize) as u16;
        Fragmenter {
            key,
            stride,
            keep: keep.max(1),
            sent: VecDeque::new(),
        }
    }

    /// The session its datagrams belong to.
    pub fn session(&self) -> u64 {
        self.key.session
    }

    /// Frame `frame`'s datagrams (frames increase), kept for [`Fragmenter::datagram`]. The
    /// buffers of the frame it stops keeping are reused.
    pub fn fragment(&mut self, frame: u64, bytes: &[u8]) -> Result<&[Vec<u8>], DatagramError> {
        let inconsistent = |what: String| DatagramError::Inconsistent { frame, what };
        let total = u32::try_from(bytes.len())
            .map_err(|_| inconsistent(format!("{} bytes do not fit a u32", bytes.len())))?;
        let count = bytes.len().div_ceil(self.stride as usize).max(1);
        let count = u16::try_from(count)
            .map_err(|_| inconsistent(format!("{count} datagrams are over {}", u16::MAX)))?;
        if self.sent.back().is_some_and(|s| s.frame >= frame) {
            return Err(inconsistent("frames must increase".into()));
        }
        let mut slot = if self.sent.len() >= self.keep {
            self.sent.pop_front().unwrap_or_default()
        } else {
            Sent::default()
        };
        slot.frame = frame;
        slot.datagrams.resize_with(count as usize, Vec::new);
        slot.resent.clear();
        slot.resent.resize(count as usize, None);
        for (index, d) in slot.datagrams.iter_mut().enumerate() {
            let header = Header {
                session: self.key.session,
                frame,
                total,
                stride: self.stride,
                index: index as u16,
                count,
            };
            let start = index * self.stride as usize;
            let payload =
                &bytes[start.min(bytes.len())..(start + self.stride as usize).min(bytes.len())];
            d.clear();
            header.write(d);
            let tag = self.key.tag(d, payload);
            d.extend_from_slice(&tag);
            d.extend_from_slice(payload);
        }
        self.sent.push_back(slot);
        Ok(self.sent.back().map_or(&[][..], |s| &s.datagrams[..]))
    }

    /// Datagram `index` of frame `frame`, if that frame is still kept.
    pub fn datagram(&self, frame: u64, index: u16) -> Option<&[u8]> {
        let s = self.sent.iter().find(|s| s.frame == frame)?;
        s.datagrams.get(index as usize).map(Vec::as_slice)
    }

    /// The datagrams a request asks for that `budget` allows now, in order: those named, or
    /// (`missing` empty) every datagram of the frame. One sent again less than
    /// [`RESEND_GAP`] ago is left out: that copy went to the whole group, so N nodes missing
    /// the same datagram cost one resend, not N. None if the frame is no longer kept.
    pub fn answer(
        &mut self,
        nak: &Nak,
        budget: &mut NakBudget,
        now: Instant,
    ) -> Option<Vec<&[u8]>> {
        let s = self.sent.iter_mut().find(|s| s.frame == nak.frame)?;
        let all = nak.missing.is_empty();
        let n = if all {
            s.datagrams.len()
        } else {
            nak.missing.len()
        };
        let wanted: Vec<usize> = (0..n)
            .map(|i| if all { i } else { nak.missing[i] as usize })
            .filter(|&i| {
                s.resent.get(i).is_some_and(|t| {
                    t.is_none_or(|t| now.saturating_duration_since(t) >= RESEND_GAP)
                })
            })
            .collect();
        let allowed = budget.take(wanted.len(), now);
        for &i in &wanted[..allowed] {
            s.resent[i] = Some(now);
        }
        Some(
            wanted[..allowed]
                .iter()
                .map(|&i| s.datagrams[i].as_slice())
                .collect(),
        )
    }
}

/// A request for missing datagrams of one frame: their indices, or none for all of them (a
/// frame of which nothing came).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nak {
    /// The frame.
    pub frame: u64,
    /// The datagrams missing (at most [`MAX_NAK`]); empty: all.
    pub missing: Vec<u16>,
}

impl Nak {
    /// The indices as a `Nak` message carries them (little-endian `u16`s), into `out`.
    pub fn missing_bytes(&self, out: &mut Vec<u8>) {
        out.clear();
        for i in &self.missing {
            out.extend_from_slice(&i.to_le_bytes());
        }
    }

    /// The request a `Nak` message makes; an error says what is wrong with it.
    pub fn from_message(frame: u64, missing: &[u8]) -> Result<Nak, String> {
        if !missing.len().is_multiple_of(2) || missing.len() / 2 > MAX_NAK {
            return Err(format!(
                "asked again for frame {frame} with {} bytes of indices: expected an even number, at most {}",
                missing.len(),
                2 * MAX_NAK
            ));
        }
        Ok(Nak {
            frame,
            missing: missing
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect(),
        })
    }
}

/// How many datagrams a node may have sent again: `rate` a second, in bursts of `burst`.
#[derive(Debug, Clone)]
pub struct NakBudget {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl NakBudget {
    /// A budget of `rate` datagrams a second, `burst` at once.
    pub fn new(rate: f64, burst: usize) -> NakBudget {
        NakBudget {
            rate,
            burst: burst as f64,
            tokens: burst as f64,
            last: None,
        }
    }

    /// Takes up to `n` datagrams from the budget at `now`; returns how many it may send.
    pub fn take(&mut self, n: usize, now: Instant) -> usize {
        if let Some(last) = self.last {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        }
        self.last = Some(now);
        let allowed = (self.tokens.floor() as usize).min(n);
        self.tokens -= allowed as f64;
        allowed
    }
}

/// A frame being put together.
#[derive(Debug)]
struct Partial {
    frame: u64,
    header: Option<Header>,
    got: Vec<bool>,
    received: usize,
    bytes: Vec<u8>,
    last_seen: Instant,
    /// When to ask again for what is missing (none: not asked yet).
    nak_at: Option<Instant>,
}

impl Partial {
    fn complete(&self) -> bool {
        self.header.is_some() && self.received == self.got.len()
    }
}

/// Counts of what a [`Reassembler`] saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DatagramStats {
    /// Datagrams kept.
    pub accepted: u64,
    /// Datagrams seen before (a retransmission another node asked for, or the network's).
    pub duplicates: u64,
    /// Datagrams refused: not ours, another session, forged, inconsistent.
    pub rejected: u64,
    /// Requests for missing datagrams made.
    pub naks: u64,
    /// Frames given up unfinished (too old, or too many at once).
    pub abandoned: u64,
}

/// Puts frames back together from datagrams, in order, each whole.
#[derive(Debug)]
pub struct Reassembler {
    key: MulticastKey,
    max_frame: usize,
    /// The next frame to hand out.
    next: u64,
    partial: VecDeque<Partial>,
    /// The newest frame any datagram named.
    newest: Option<u64>,
    /// The first frame given up unfinished, and whether that was told: nothing after it is
    /// handed out until [`Reassembler::restart_at`].
    lost: Option<(u64, bool)>,
    /// What was seen.
    pub stats: DatagramStats,
}

/// What [`Reassembler::poll_frame`] hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assembled {
    /// The next frame, whole.
    Frame(u64, Vec<u8>),
    /// This frame was given up unfinished (too many newer ones began while it was): the
    /// frames after it cannot be applied, and the node must join again
    /// ([`Reassembler::restart_at`] its new snapshot's frame).
    Lost(u64),
}

impl Reassembler {
    /// Frames of at most `max_frame` bytes from frame `first` on.
    pub fn new(key: MulticastKey, max_frame: usize, first: u64) -> Reassembler {
        Reassembler {
            key,
            max_frame,
            next: first,
            partial: VecDeque::new(),
            newest: None,
            lost: None,
            stats: DatagramStats::default(),
        }
    }

    /// The next frame it hands out.
    pub fn next_frame(&self) -> u64 {
        self.next
    }

    /// Takes one datagram that arrived at `now`. A refused one is counted and named; the
    /// frame it claims is repaired as if it were lost.
    pub fn accept(&mut self, datagram: &[u8], now: Instant) -> Result<(), DatagramError> {
        let result = self.take(datagram, now);
        if result.is_err() {
            self.stats.rejected += 1;
        }
        result
    }

    fn take(&mut self, d: &[u8], now: Instant) -> Result<(), DatagramError> {
        let h = Header::read(d).ok_or(DatagramError::NotOurs(d.len()))?;
        if h.session != self.key.session {
            return Err(DatagramError::OtherSession {
                got: h.session,
                want: self.key.session,
            });
        }
        let payload = &d[DATAGRAM_HEADER..];
        if !self
            .key
            .verify(&d[..FIELDS], payload, &d[FIELDS..DATAGRAM_HEADER])
        {
            return Err(DatagramError::Forged {
                frame: h.frame,
                index: h.index,
            });
        }
        let inconsistent = |what: String| DatagramError::Inconsistent {
            frame: h.frame,
            what,
        };
        h.check(payload.len(), self.max_frame)
            .map_err(inconsistent)?;
        if h.frame < self.next {
            self.stats.duplicates += 1;
            return Ok(());
        }
        self.newest = Some(self.newest.map_or(h.frame, |n| n.max(h.frame)));
        let p = self.partial_mut(h.frame, now);
        let Some(p) = p else {
            // Older than every frame kept: already abandoned.
            self.stats.duplicates += 1;
            return Ok(());
        };
        match p.header {
            None => {
                p.header = Some(h);
                p.got = vec![false; h.count as usize];
                p.bytes.resize(h.total as usize, 0);
            }
            Some(first) if (first.total, first.stride) != (h.total, h.stride) => {
                return Err(inconsistent(format!(
                    "{} bytes in datagrams of {}, after {} in datagrams of {}",
                    h.total, h.stride, first.total, first.stride
                )));
            }
            Some(_) => {}
        }
        p.last_seen = now;
        let i = h.index as usize;
        if p.got[i] {
            self.stats.duplicates += 1;
            return Ok(());
        }
        let offset = i * h.stride as usize;
        p.bytes[offset..offset + payload.len()].copy_from_slice(payload);
        p.got[i] = true;
        p.received += 1;
        self.stats.accepted += 1;
        Ok(())
    }

    /// The partial frame `frame`, made if needed (frames in between too, so that a frame of
    /// which nothing came is noticed); none if it is older than every one kept.
    fn partial_mut(&mut self, frame: u64, now: Instant) -> Option<&mut Partial> {
        let mut from = self.partial.back().map_or(self.next, |p| p.frame + 1);
        let window = MAX_PARTIAL as u64;
        if frame >= from.saturating_add(window) {
            // So far ahead that everything kept and in between is given up at once.
            let start = frame - (window - 1);
            self.stats.abandoned += self.partial.len() as u64 + (start - from);
            let first = self.partial.front().map_or(from, |p| p.frame);
            self.lost.get_or_insert((first, false));
            self.partial.clear();
            self.next = start;
            from = start;
        }
        for f in from..=frame {
            if self.partial.len() >= MAX_PARTIAL {
                if let Some(p) = self.partial.pop_front() {
                    self.lost.get_or_insert((p.frame, false));
                }
                self.stats.abandoned += 1;
                self.next = self.partial.front().map_or(f, |p| p.frame);
            }
            self.partial.push_back(Partial {
                frame: f,
                header: None,
                got: Vec::new(),
                received: 0,
                bytes: Vec::new(),
                last_seen: now,
                nak_at: None,
            });
        }
        self.partial.iter_mut().find(|p| p.frame == frame)
    }

    /// Frame `frame` was sent (the master said so over the node's connection, or with a
    /// swap release): if none of its datagrams came, it is asked for once [`TAIL_WAIT`] has
    /// passed — a frame lost whole, with no newer one to show the gap, is noticed too.
    pub fn expect(&mut self, frame: u64, now: Instant) {
        if frame < self.next || frame == u64::MAX {
            return;
        }
        self.newest = Some(self.newest.map_or(frame, |n| n.max(frame)));
        self.partial_mut(frame, now);
    }

    /// The next whole frame, in order; or, once, the first frame given up unfinished.
    pub fn poll_frame(&mut self) -> Option<Assembled> {
        match &mut self.lost {
            Some((f, told @ false)) => {
                *told = true;
                return Some(Assembled::Lost(*f));
            }
            Some(_) => return None,
            None => {}
        }
        if !self.partial.front().is_some_and(Partial::complete) {
            return None;
        }
        let p = self.partial.pop_front()?;
        self.next = p.frame + 1;
        Some(Assembled::Frame(p.frame, p.bytes))
    }

    /// Starts again at frame `frame` (a node that joined again: its snapshot came over its
    /// connection), dropping everything before it. False if frames after `frame` were given
    /// up already: then this snapshot is too old, and the node needs a newer one.
    pub fn restart_at(&mut self, frame: u64) -> bool {
        if frame < self.next {
            return false;
        }
        while self.partial.front().is_some_and(|p| p.frame < frame) {
            self.partial.pop_front();
        }
        self.lost = None;
        self.next = frame;
        true
    }

    /// A request for what is missing, if one is due at `now`: a frame with a gap (a later
    /// datagram of it, or a newer frame, came), or gone quiet for [`TAIL_WAIT`]; asked at
    /// once, then every [`NAK_RETRY`].
    pub fn poll_nak(&mut self, now: Instant) -> Option<Nak> {
        if self.lost.is_some() {
            // Nothing can be handed out before a restart: asking would only cost the network.
            return None;
        }
        let newest = self.newest?;
        for p in &mut self.partial {
            if p.complete() || p.nak_at.is_some_and(|t| now < t) {
                continue;
            }
            let newer = newest > p.frame;
            let quiet = now.saturating_duration_since(p.last_seen) >= TAIL_WAIT;
            let missing: Vec<u16> = match p.header {
                // Nothing of it came, and a newer frame did: all of it.
                None if newer || quiet => Vec::new(),
                None => continue,
                Some(_) => {
                    let highest = p.got.iter().rposition(|g| *g).unwrap_or(0);
                    // Past the highest received, only once the frame's tail is overdue.
                    let upto = if newer || quiet { p.got.len() } else { highest };
                    let m: Vec<u16> = (0..upto)
                        .filter(|i| !p.got[*i])
                        .take(MAX_NAK)
                        .map(|i| i as u16)
                        .collect();
                    if m.is_empty() {
                        // Nothing to ask yet: the next request waits for the tail.
                        p.nak_at = None;
                        continue;
                    }
                    m
                }
            };
            p.nak_at = Some(now + NAK_RETRY);
            self.stats.naks += 1;
            return Some(Nak {
                frame: p.frame,
                missing,
            });
        }
        None
    }

    /// When [`Reassembler::poll_nak`] may next have a request: the earliest retry or tail
    /// deadline of an incomplete frame.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.lost.is_some() {
            return None;
        }
        self.partial
            .iter()
            .filter(|p| !p.complete())
            .map(|p| p.nak_at.unwrap_or(p.last_seen + TAIL_WAIT))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(session: u64) -> MulticastKey {
        let k = ClusterKey::new(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap();
        MulticastKey::derive(&k, "cave", session)
    }

    #[test]
    fn a_frame_cut_into_datagrams_comes_back_whole_and_bad_ones_are_named() {
        let mut f = Fragmenter::new(key(7), 100, 4);
        let bytes: Vec<u8> = (0..500u32).map(|i| (i * 7) as u8).collect();
        let datagrams: Vec<Vec<u8>> = f.fragment(3, &bytes).unwrap().to_vec();
        // 54 payload bytes each: ten datagrams, the last one short.
        assert_eq!(datagrams.len(), 10);
        assert!(datagrams.iter().all(|d| d.len() <= 100));
        let now = Instant::now();
        let mut r = Reassembler::new(key(7), 1 << 20, 3);
        for d in datagrams.iter().rev() {
            r.accept(d, now).unwrap();
        }
        assert_eq!(r.poll_frame(), Some(Assembled::Frame(3, bytes.clone())));
        assert_eq!(r.poll_frame(), None);
        // Another session, a flipped bit, a lie about the size, garbage.
        let mut other = Reassembler::new(key(8), 1 << 20, 3);
        assert!(matches!(
            other.accept(&datagrams[0], now),
            Err(DatagramError::OtherSession { got: 7, want: 8 })
        ));
        let mut r = Reassembler::new(key(7), 1 << 20, 3);
        let mut bad = datagrams[2].clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(
            r.accept(&bad, now),
            Err(DatagramError::Forged { frame: 3, index: 2 })
        );
        let mut small = Reassembler::new(key(7), 100, 3);
        let e = small.accept(&datagrams[0], now).unwrap_err().to_string();
        assert_eq!(e, "frame 3: 500 bytes, over the limit of 100");
        assert_eq!(r.accept(b"hello", now), Err(DatagramError::NotOurs(5)));
        assert_eq!(r.stats.rejected, 2);
        assert_eq!(small.stats.rejected, 1);
    }

    #[test]
    fn a_gap_is_asked_for_at_once_then_again_and_a_lost_tail_once_overdue() {
        let mut f = Fragmenter::new(key(1), 100, 4);
        let bytes = vec![9u8; 300];
        let d: Vec<Vec<u8>> = f.fragment(0, &bytes).unwrap().to_vec();
        assert_eq!(d.len(), 6);
        let t0 = Instant::now();
        let mut r = Reassembler::new(key(1), 1 << 20, 0);
        for i in [0, 2, 3] {
            r.accept(&d[i], t0).unwrap();
        }
        // 1 is a gap now; 4 and 5 may still come.
        let nak = r.poll_nak(t0).unwrap();
        assert_eq!(
            nak,
            Nak {
                frame: 0,
                missing: vec![1]
            }
        );
        assert_eq!(r.poll_nak(t0 + Duration::from_millis(1)), None);
        // Quiet past the tail wait and the retry: everything missing.
        let later = t0 + NAK_RETRY;
        assert_eq!(
            r.poll_nak(later),
            Some(Nak {
                frame: 0,
                missing: vec![1, 4, 5]
            })
        );
        let mut budget = NakBudget::new(1000.0, 2);
        let ask = Nak {
            frame: 0,
            missing: vec![1, 4, 5],
        };
        let again: Vec<Vec<u8>> = f
            .answer(&ask, &mut budget, later)
            .unwrap()
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        // The budget allows two at once.
        assert_eq!(again.len(), 2);
        // Another node asking for the same at once gets nothing again: those two are on
        // their way to it too; only the one the budget held back is left.
        let mut other = NakBudget::new(1000.0, 9);
        let left: Vec<Vec<u8>> = f
            .answer(&ask, &mut other, later)
            .unwrap()
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        assert_eq!(left, [d[5].clone()]);
        for x in &again {
            r.accept(x, later).unwrap();
        }
        r.accept(&d[5], later).unwrap();
        assert_eq!(r.poll_frame(), Some(Assembled::Frame(0, bytes)));
        // A frame of which nothing came, noticed when the next one begins: all of it.
        f.fragment(1, &[1; 10]).unwrap();
        let two: Vec<Vec<u8>> = f.fragment(2, &[2; 10]).unwrap().to_vec();
        r.accept(&two[0], later).unwrap();
        assert_eq!(
            r.poll_nak(later),
            Some(Nak {
                frame: 1,
                missing: vec![]
            })
        );
        assert_eq!(r.poll_frame(), None, "frame 2 waits for frame 1");
        let whole = Nak {
            frame: 1,
            missing: vec![],
        };
        for x in f
            .answer(&whole, &mut NakBudget::new(1.0, 9), later)
            .unwrap()
        {
            r.accept(x, later).unwrap();
        }
        assert_eq!(r.poll_frame(), Some(Assembled::Frame(1, vec![1; 10])));
        assert_eq!(r.poll_frame(), Some(Assembled::Frame(2, vec![2; 10])));
        assert_eq!(r.stats.naks, 3);
        // Too many newer frames begin while one is unfinished: it is lost, and said so once.
        f.fragment(3, &[3; 200]).unwrap();
        for frame in 4..4 + MAX_PARTIAL as u64 {
            let d: Vec<Vec<u8>> = f.fragment(frame, &[4; 10]).unwrap().to_vec();
            r.accept(&d[0], later).unwrap();
        }
        assert_eq!(r.poll_frame(), Some(Assembled::Lost(3)));
        assert_eq!(
            r.poll_frame(),
            None,
            "frame 4 waits: nothing after a loss applies"
        );
        assert_eq!(
            r.poll_nak(later + NAK_RETRY * 10),
            None,
            "no requests after a loss"
        );
        assert_eq!(r.stats.abandoned, 1);
        // Joined again: a snapshot older than what is held is too old; a current one restarts.
        assert!(!r.restart_at(2));
        assert!(r.restart_at(4 + MAX_PARTIAL as u64 - 1));
        assert_eq!(
            r.poll_frame(),
            Some(Assembled::Frame(4 + MAX_PARTIAL as u64 - 1, vec![4; 10]))
        );
        // The last frame number is refused (there is no frame after it).
        let mut g = Fragmenter::new(key(1), 100, 4);
        let d: Vec<Vec<u8>> = g.fragment(u64::MAX, &[1]).unwrap().to_vec();
        assert!(matches!(
            r.accept(&d[0], later),
            Err(DatagramError::Inconsistent { .. })
        ));
    }
}
