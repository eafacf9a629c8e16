/*!
lockstep's cluster protocol, without any I/O (sans-IO): it turns messages into bytes and bytes
into messages, enforces size limits, and runs the authenticated handshake as a state machine.
Sockets, threads and timeouts live in `lockstep-cluster` and `lockstep-launch`; here everything
is deterministic, so every rule is unit-tested and the decoder can be fuzzed.

- [`codec`]: frames are a `u32` little-endian length and a postcard-encoded [`Message`]. The
  length is checked against the limit *before* anything is allocated; a frame is encoded once
  and the same bytes go to every node.
- [`handshake`]: magic, protocol version, cluster name and node name, then a mutual
  challenge–response with HMAC-SHA256 over both sides' nonces and the cluster key. A peer that
  fails any step gets a [`Message::Refused`] with the reason, and nothing else.
- [`session`]: after the handshake every byte travels in records sealed with per-connection,
  per-direction keys, so a relay that passed the handshake through can neither inject, alter,
  replay, reorder nor drop a message unnoticed.
- [`datagram`]: frame data as authenticated UDP datagrams for the multicast transport —
  fragmenting, reassembly in order, requests for what was lost (NAK) and their budget.

Nothing received is ever executed: messages are plain data.
*/
#![deny(missing_docs)]

pub mod admission;
pub mod codec;
pub mod datagram;
mod error;
pub mod fuzzing;
pub mod handshake;
mod key;
mod message;
pub mod session;

pub use codec::{
    ByDeadline, Decoder, FillError, encode, encode_frame_into, encode_into, encode_record_into,
};
pub use error::{WireError, printable};
pub use handshake::{ClientHandshake, ServerHandshake};
pub use key::{ClusterKey, MIN_KEY_LEN, random_nonce};
pub use message::{
    ASSET_CHUNK, AssetSig, Hook, LatchedHead, MAGIC, Message, NodeStats, NodeStatus,
    PROTOCOL_VERSION, PluginSig, STRIP_LZ4, STRIP_RGBA8,
};
pub use session::{Opener, RECORD_HEADER, Sealer, SessionKeys};

/// Largest frame a peer may send before it has authenticated: enough for the handshake, too
/// little for an unauthenticated peer to make us allocate much.
pub const HANDSHAKE_MAX_FRAME: usize = 1024;

/// Default largest frame after the handshake (scene snapshots for late joiners are the big
/// ones).
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024 * 1024;
