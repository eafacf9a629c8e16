/*!
Entry points shared by the fuzz targets (`fuzz/`) and the stable tests that replay their
corpus and mutations: whatever the bytes, decoding them must end in values or errors, never a
panic, a hang or an allocation beyond the limits.
*/
use crate::handshake::ServerStep;
use crate::{ClientHandshake, ClusterKey, Decoder, HANDSHAKE_MAX_FRAME, ServerHandshake};

/// Feeds `data` to a decoder (in pieces whose sizes come from the data itself) and every
/// decoded message to a server and a client handshake. Returns how many messages decoded.
pub fn decode_stream(data: &[u8]) -> usize {
    let key = ClusterKey::new(vec![0x5a; 32]).expect("a 32-byte key is long enough");
    let mut server = ServerHandshake::new(key.clone(), "fuzz", [1; 32], 1 << 16);
    let mut client = ClientHandshake::new(key, "fuzz", "node", [2; 32]);
    let mut decoder = Decoder::new(HANDSHAKE_MAX_FRAME);
    let mut decoded = 0;
    let chunk = data.first().map_or(1, |b| (*b as usize % 61) + 1);
    for piece in data.chunks(chunk) {
        decoder.push(piece);
        loop {
            match decoder.next_message() {
                Ok(Some(msg)) => {
                    decoded += 1;
                    let accepted = match server.handle(&msg) {
                        Ok(ServerStep::Accept { keys, .. } | ServerStep::Refuse { keys, .. }) => {
                            Some(keys.opener)
                        }
                        _ => None,
                    };
                    let _ = client.handle(&msg);
                    if let Some(opener) = accepted {
                        decoder.authenticate(opener);
                    }
                }
                Ok(None) => break,
                Err(_) => return decoded,
            }
        }
    }
    let _ = decoder.finish();
    decoded
}

/// Feeds `data` to an authenticated decoder two ways: as it is (records a peer without the
/// key made up: each must be refused), and sealed with the session's keys (what a key holder
/// could send: every frame inside must decode or be refused). Returns how many messages
/// decoded.
pub fn decode_records(data: &[u8]) -> usize {
    let key = ClusterKey::new(vec![0x5a; 32]).expect("a 32-byte key is long enough");
    let (mut client, server) = crate::SessionKeys::pair(&key, &[1; 32], &[2; 32], "fuzz", "node");
    let mut raw = Decoder::new(1 << 16);
    raw.authenticate(server.opener);
    raw.push(data);
    let mut decoded = 0;
    while let Ok(Some(_)) = raw.next_message() {
        decoded += 1;
    }
    // The same keys again (they follow from the nonces): a fresh opener for the sealed run.
    let (_, server) = crate::SessionKeys::pair(&key, &[1; 32], &[2; 32], "fuzz", "node");
    let mut sealed = Decoder::new(1 << 16);
    sealed.authenticate(server.opener);
    // As few records as the limit allows: frames inside one, as a sender seals them.
    for payload in data.chunks(1 << 16) {
        let Ok(header) = client.sealer.seal(&[payload]) else {
            break;
        };
        sealed.push(&header);
        sealed.push(payload);
        loop {
            match sealed.next_message() {
                Ok(Some(_)) => decoded += 1,
                Ok(None) => break,
                Err(_) => return decoded,
            }
        }
    }
    decoded
}

/// The seed corpus of fuzz target `target` (`fuzz/corpus/<target>` in this source tree).
pub fn corpus(target: &str) -> std::path::PathBuf {
    std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus")).join(target)
}

/// A fuzz target's stable stand-in: `decode` on every seed of `target`'s corpus, then on
/// `cases` mutations of `valid` (from `seed`); panics naming the first input it panicked on.
pub fn replay_and_mutate(
    target: &str,
    valid: &[u8],
    seed: u64,
    cases: usize,
    decode: fn(&[u8]) -> usize,
) {
    let dir = corpus(target);
    let seeds = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in seeds {
        let path = entry.expect("a readable corpus folder").path();
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let result = std::panic::catch_unwind(|| decode(&bytes));
        assert!(result.is_ok(), "seed {} panicked", path.display());
    }
    let mut rng = Mutator::new(seed);
    for case in 0..cases {
        let bytes = rng.mutate(valid, case);
        let result = std::panic::catch_unwind(|| decode(&bytes));
        assert!(
            result.is_ok(),
            "{target}: case {case} panicked on {} bytes",
            bytes.len()
        );
    }
}

/// A deterministic mutator for the stable tests that stand in for the fuzzers between runs
/// (xorshift64*: a failure names a reproducible case).
#[derive(Debug, Clone)]
pub struct Mutator(u64);

impl Mutator {
    /// A mutator seeded with `seed` (not 0).
    pub fn new(seed: u64) -> Self {
        Mutator(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// Case `case` of `valid` mutated: bits flipped, cut short, a byte replaced, random bytes
    /// inserted, or all random, in turn.
    pub fn mutate(&mut self, valid: &[u8], case: usize) -> Vec<u8> {
        let mut bytes = valid.to_vec();
        match case % 5 {
            0 => {
                for _ in 0..1 + self.below(8) {
                    let i = self.below(bytes.len());
                    if let Some(b) = bytes.get_mut(i) {
                        *b ^= 1 << self.below(8);
                    }
                }
            }
            1 => bytes.truncate(self.below(bytes.len())),
            2 => {
                let i = self.below(bytes.len());
                let v = self.next() as u8;
                if let Some(b) = bytes.get_mut(i) {
                    *b = v;
                }
            }
            3 => {
                let extra: Vec<u8> = (0..self.below(2048)).map(|_| self.next() as u8).collect();
                let at = self.below(bytes.len());
                bytes.splice(at..at, extra);
            }
            _ => bytes = (0..self.below(4096)).map(|_| self.next() as u8).collect(),
        }
        bytes
    }
}

/// Feeds `data` to a multicast [`crate::datagram::Reassembler`] as datagrams: chunks of a
/// flags byte, a `u16` length and that many bytes. Unless flag bit 0 is set, a chunk is sealed
/// first (the session and tag written over it), so the checks behind the tag are reached;
/// bits 1–7 advance the clock by 100 µs each. Requests and frames are polled after each one.
/// Returns how many frames came out whole.
pub fn datagrams(data: &[u8]) -> usize {
    use crate::datagram::{Assembled, MAX_NAK, MAX_PARTIAL, MulticastKey, Reassembler, seal};
    let key = ClusterKey::new(vec![0x5a; 32]).expect("a 32-byte key is long enough");
    let key = MulticastKey::derive(&key, "fuzz", 1);
    let mut r = Reassembler::new(key.clone(), 1 << 16, 0);
    let mut now = std::time::Instant::now();
    let mut frames = 0;
    let (mut last, mut lost) = (None::<u64>, false);
    let mut rest = data;
    while rest.len() >= 3 {
        let flags = rest[0];
        let len = u16::from_le_bytes([rest[1], rest[2]]) as usize;
        rest = &rest[3..];
        let take = len.min(rest.len());
        let mut d = rest[..take].to_vec();
        rest = &rest[take..];
        if flags & 1 == 0 {
            seal(&key, &mut d);
        }
        now += std::time::Duration::from_micros(u64::from(flags >> 1) * 100);
        let _ = r.accept(&d, now);
        // A chunk's last byte may also say the node heard of a frame, or joined again.
        match d.last() {
            Some(0xf0) => r.expect(r.next_frame().saturating_add(u64::from(flags)), now),
            Some(0xf1) => {
                let to = r.next_frame().saturating_add(u64::from(flags & 7));
                if r.restart_at(to) {
                    lost = false;
                    last = None;
                }
            }
            _ => {}
        }
        let mut polls = 0;
        while let Some(nak) = r.poll_nak(now) {
            assert!(nak.missing.len() <= MAX_NAK, "a request past the limit");
            polls += 1;
            assert!(polls <= MAX_PARTIAL, "more requests than frames held");
        }
        if r.poll_timeout().is_some_and(|t| t <= now) {
            // A deadline already past with no request to make would make a driver spin.
            panic!("poll_timeout is past, yet poll_nak asks nothing");
        }
        while let Some(a) = r.poll_frame() {
            match a {
                Assembled::Frame(f, _) => {
                    assert!(!lost, "frame {f} handed out after a loss");
                    assert!(last.is_none_or(|l| f == l + 1), "frame {f} after {last:?}");
                    last = Some(f);
                    frames += 1;
                }
                Assembled::Lost(_) => lost = true,
            }
        }
    }
    frames
}

/// A valid input of [`datagrams`]: three frames' datagrams, the first frame's out of order.
pub fn sample_datagrams() -> Vec<u8> {
    use crate::datagram::{Fragmenter, MulticastKey};
    let key = ClusterKey::new(vec![0x5a; 32]).expect("a 32-byte key is long enough");
    let mut f = Fragmenter::new(MulticastKey::derive(&key, "fuzz", 1), 120, 4);
    let mut out = Vec::new();
    for frame in 0..3u64 {
        let bytes: Vec<u8> = (0..300 + frame as usize * 50).map(|i| i as u8).collect();
        let mut ds: Vec<Vec<u8>> = f
            .fragment(frame, &bytes)
            .expect("a small frame fragments")
            .to_vec();
        if frame == 0 {
            ds.reverse();
        }
        for d in ds {
            out.push(2);
            out.extend_from_slice(&(d.len() as u16).to_le_bytes());
            out.extend_from_slice(&d);
        }
    }
    out
}
