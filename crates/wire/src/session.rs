/*!
Authenticated records: what every byte after the handshake travels in.

The handshake proves both sides know the cluster key; it does not protect what follows. So
both sides derive two session keys from the key and both nonces (HKDF-SHA256, one key per
direction), and from then on bytes travel in records:

```text
len: u32 LE │ tag: 16 bytes │ payload: len bytes (one or more whole frames)
tag = HMAC-SHA256(direction key, seq: u64 LE ‖ len ‖ payload), first 16 bytes
```

`seq` counts the records of one direction from 0 and is never sent: a record that is forged,
altered by one bit, replayed, reordered or left out fails the check of the record it stands
in for, and the connection ends. A record holds whole frames, so the master seals one frame's
bytes (encoded once) per node with that node's key, without copying them.
*/
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::{ClusterKey, WireError};

type HmacSha256 = Hmac<Sha256>;

/// Bytes of a record's MAC tag (HMAC-SHA256 truncated to 128 bits, as in RFC 4868).
pub const TAG_LEN: usize = 16;

/// Bytes before a record's payload: its length and its tag.
pub const RECORD_HEADER: usize = 4 + TAG_LEN;

/// Which end of the connection derives the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The side that dialled (a node, a launcher, `ctl`).
    Client,
    /// The side that accepted (the master, a daemon).
    Server,
}

/// The two halves of an established session: one seals what this side sends, the other opens
/// what it receives. They can live on different threads.
#[derive(Debug)]
pub struct SessionKeys {
    /// Seals outgoing records.
    pub sealer: Sealer,
    /// Opens incoming records.
    pub opener: Opener,
}

impl SessionKeys {
    /// Both ends' keys of one session, as a handshake with these nonces would give them
    /// (client's, server's): for benchmarks and tests that need a session without sockets.
    pub fn pair(
        key: &ClusterKey,
        client_nonce: &[u8; 32],
        server_nonce: &[u8; 32],
        cluster: &str,
        node: &str,
    ) -> (SessionKeys, SessionKeys) {
        (
            derive(key, client_nonce, server_nonce, cluster, node, Side::Client),
            derive(key, client_nonce, server_nonce, cluster, node, Side::Server),
        )
    }
}

/// Derives the session keys of one connection from the cluster key and both nonces. Both
/// sides call it with the same inputs and their own [`Side`].
pub(crate) fn derive(
    key: &ClusterKey,
    client_nonce: &[u8; 32],
    server_nonce: &[u8; 32],
    cluster: &str,
    node: &str,
    side: Side,
) -> SessionKeys {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(client_nonce);
    salt[32..].copy_from_slice(server_nonce);
    let kdf = Hkdf::<Sha256>::new(Some(&salt), key.bytes());
    let direction = |label: &[u8]| {
        let mut info = Vec::with_capacity(label.len() + cluster.len() + node.len() + 8);
        info.extend_from_slice(label);
        // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        for s in [cluster, node] {
            info.extend_from_slice(&(s.len() as u32).to_le_bytes());
            info.extend_from_slice(s.as_bytes());
        }
        let mut okm = [0u8; 32];
        kdf.expand(&info, &mut okm)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        HmacSha256::new_from_slice(&okm).expect("HMAC takes keys of any length")
    };
    let to_server = direction(b"lockstep record client to server");
    let to_client = direction(b"lockstep record server to client");
    let (send, recv) = match side {
        Side::Client => (to_server, to_client),
        Side::Server => (to_client, to_server),
    };
    SessionKeys {
        sealer: Sealer { mac: send, seq: 0 },
        opener: Opener { mac: recv, seq: 0 },
    }
}

/// The MAC state keyed once; cloned per record, so each record costs only its own bytes.
fn tag(keyed: &HmacSha256, seq: u64, len: u32, parts: &[&[u8]]) -> [u8; TAG_LEN] {
    let mut m = keyed.clone();
    m.update(&seq.to_le_bytes());
    m.update(&len.to_le_bytes());
    for p in parts {
        m.update(p);
    }
    let full = m.finalize().into_bytes();
    let mut t = [0u8; TAG_LEN];
    t.copy_from_slice(&full[..TAG_LEN]);
    t
}

/// Seals the records this side sends.
#[derive(Debug)]
pub struct Sealer {
    mac: HmacSha256,
    seq: u64,
}

impl Sealer {
    /// The header (length and tag) of the next record, whose payload is `parts` in order.
    /// Write the header, then the parts.
    pub fn seal(&mut self, parts: &[&[u8]]) -> Result<[u8; RECORD_HEADER], WireError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let len = u32::try_from(len).map_err(|_| WireError::Oversized {
            len,
            limit: u32::MAX as usize,
        })?;
        let seq = self.next_seq()?;
        let mut header = [0u8; RECORD_HEADER];
        header[..4].copy_from_slice(&len.to_le_bytes());
        header[4..].copy_from_slice(&tag(&self.mac, seq, len, parts));
        Ok(header)
    }

    /// Seals a record built in place: `record` starts with [`RECORD_HEADER`] bytes reserved
    /// for the header, the payload follows.
    pub fn seal_in_place(&mut self, record: &mut [u8]) -> Result<(), WireError> {
        let (header, payload) = record.split_at_mut(RECORD_HEADER);
        header.copy_from_slice(&self.seal(&[payload])?);
        Ok(())
    }

    fn next_seq(&mut self) -> Result<u64, WireError> {
        let seq = self.seq;
        self.seq = seq.checked_add(1).ok_or_else(|| {
            WireError::Malformed("the session has used up its record numbers".into())
        })?;
        Ok(seq)
    }
}

/// Checks the records this side receives, in order.
#[derive(Debug)]
pub struct Opener {
    mac: HmacSha256,
    seq: u64,
}

impl Opener {
    /// Checks the next record: `header` as received, then its payload. An error means the
    /// record is not the one the peer sealed next; the connection must end.
    pub fn open(&mut self, header: &[u8], payload: &[u8]) -> Result<(), WireError> {
        let seq = self.seq;
        let forged = WireError::Unauthentic { record: seq };
        let (Some(len), Some(got)) = (header.get(..4), header.get(4..RECORD_HEADER)) else {
            return Err(forged);
        };
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]);
        if len as usize != payload.len() {
            return Err(forged);
        }
        // Constant-time comparison of the truncated tag.
        let mut m = self.mac.clone();
        m.update(&seq.to_le_bytes());
        m.update(&len.to_le_bytes());
        m.update(payload);
        m.verify_truncated_left(got).map_err(|_| forged)?;
        self.seq += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (SessionKeys, SessionKeys) {
        let key = ClusterKey::new(vec![7; 32]).unwrap();
        let c = derive(&key, &[1; 32], &[2; 32], "cave", "front", Side::Client);
        let s = derive(&key, &[1; 32], &[2; 32], "cave", "front", Side::Server);
        (c, s)
    }

    #[test]
    fn what_one_side_seals_the_other_opens_in_order() {
        let (mut c, mut s) = pair();
        for n in 0..3u8 {
            let payload = [n; 10];
            let h = c.sealer.seal(&[&payload[..4], &payload[4..]]).unwrap();
            s.opener.open(&h, &payload).unwrap();
            let h = s.sealer.seal(&[&payload]).unwrap();
            c.opener.open(&h, &payload).unwrap();
        }
    }

    #[test]
    fn a_flipped_bit_a_replay_a_reordering_and_a_foreign_key_are_refused() {
        let (mut c, mut s) = pair();
        let (a, b) = (b"first record".to_vec(), b"second record".to_vec());
        let ha = c.sealer.seal(&[&a]).unwrap();
        let hb = c.sealer.seal(&[&b]).unwrap();
        // Reordered: the second record where the first belongs.
        assert_eq!(
            s.opener.open(&hb, &b),
            Err(WireError::Unauthentic { record: 0 })
        );
        let mut flipped = a.clone();
        flipped[3] ^= 0x10;
        assert!(s.opener.open(&ha, &flipped).is_err());
        let mut bad_len = ha;
        bad_len[0] ^= 1;
        assert!(s.opener.open(&bad_len, &a).is_err());
        s.opener.open(&ha, &a).unwrap();
        // Replayed: the first record again.
        assert_eq!(
            s.opener.open(&ha, &a),
            Err(WireError::Unauthentic { record: 1 })
        );
        s.opener.open(&hb, &b).unwrap();
        // A record sealed with another session's keys (other nonces).
        let key = ClusterKey::new(vec![7; 32]).unwrap();
        let mut other = derive(&key, &[1; 32], &[3; 32], "cave", "front", Side::Client);
        let h = other.sealer.seal(&[&a]).unwrap();
        assert!(s.opener.open(&h, &a).is_err());
        // A record sealed for the other direction does not open either.
        let (_, mut s2) = pair();
        let (mut c2, _) = pair();
        let h = s2.sealer.seal(&[&a]).unwrap();
        assert!(s2.opener.open(&h, &a).is_err());
        c2.opener.open(&h, &a).unwrap();
    }
}
