use serde::{Deserialize, Serialize};

/// The first bytes of every `Hello`.
pub const MAGIC: [u8; 4] = *b"LKST";

/// Bumped whenever a message changes shape or meaning; peers of different versions refuse
/// each other. 4: the state in `NodeStats` is the XXH3 scene digest, and scene change lists
/// may carry the root order. 5: everything after the handshake travels in sealed records.
/// 6: a node says which application it runs (`Join`) before the master welcomes it; cluster
/// events (`Event`, `Queued`). 7: the master sends the files its application loaded
/// (`AssetRequest`, `AssetInfo`, `AssetChunk`). 8: nodes send the input of their own
/// devices (`Input`). 9: `SwapNow` may carry the newest head pose (late latching). 10: frame
/// data may come by multicast (`Multicast`, `Nak`, `Units`, `Datagram`). 11: strips of a view
/// split across nodes (`StripRequest`, `StripReady`, `Strip`).
pub const PROTOCOL_VERSION: u16 = 11;

/// The points of a frame where plugins' blocks are applied on a node; each hook's blocks are
/// closed by an `EndBlock` naming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Hook {
    /// Start of frame F, before anything else of it (clock-driven state, input events).
    FrameStart,
    /// After the frame-start blocks, before frame F's scene goes to Cull and Draw (scene
    /// changes, camera, head pose, application data).
    PreDraw,
    /// Once the swap barrier of frame F has released: things that must not change F's image.
    /// These blocks travel right after `SwapNow(F)`.
    PostFrame,
}

impl Hook {
    /// Every hook, in the order a node applies them within one frame.
    pub const ALL: [Hook; 3] = [Hook::FrameStart, Hook::PreDraw, Hook::PostFrame];

    /// The hook's name, for logs and errors.
    pub fn name(self) -> &'static str {
        match self {
            Hook::FrameStart => "frame-start",
            Hook::PreDraw => "pre-draw",
            Hook::PostFrame => "post-frame",
        }
    }
}

/// What a node reports with each `SwapReady`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStats {
    /// Milliseconds spent in Cull for this frame.
    pub cull_ms: f32,
    /// Milliseconds spent in Draw for this frame (before the swap barrier).
    pub draw_ms: f32,
    /// Milliseconds from `EndBlock` received to `SwapReady` sent.
    pub ready_ms: f32,
    /// A hash of the node's state after applying the frame, when it reports one (the master
    /// compares it with its own to prove every node shows the same state).
    pub state: Option<u64>,
}

/// The head pose the master read as it released a swap, for the next frame's projection
/// (late latching): position in metres, orientation as a quaternion (x, y, z, w).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatchedHead {
    /// Position, in the cluster's space.
    pub position: [f32; 3],
    /// Orientation (x, y, z, w), a unit quaternion.
    pub rotation: [f32; 4],
}

impl LatchedHead {
    /// Why this pose cannot be used, if it cannot: not finite, or not a unit quaternion.
    pub fn check(&self) -> Result<(), String> {
        if !self
            .position
            .iter()
            .chain(&self.rotation)
            .all(|x| x.is_finite())
        {
            return Err(format!("the latched head pose {self:?} is not finite"));
        }
        let norm: f32 = self.rotation.iter().map(|x| x * x).sum::<f32>().sqrt();
        if (norm - 1.0).abs() > 1e-3 {
            return Err(format!(
                "the latched head's orientation {:?} is not a unit quaternion (length {norm})",
                self.rotation
            ));
        }
        Ok(())
    }
}

/// One node as `lockstep ctl status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus<'a> {
    /// The node's name.
    pub name: &'a str,
    /// `absent`, `loading`, `catching up` or `in step`; or why it was dropped.
    pub state: &'a str,
    /// The last frame it reported ready.
    pub frame: u64,
    /// Frames per second it reported ready over the last second.
    pub fps: f32,
    /// Milliseconds from the frame reaching it to its `SwapReady`, last frame.
    pub ready_ms: f32,
    /// How many times it has joined since the master started.
    pub joins: u32,
}

/// One plugin as a node or the master registered it (see `Join`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginSig<'a> {
    /// Its wire id.
    pub id: u16,
    /// Its name.
    pub name: &'a str,
    /// What its blocks hold (e.g. the Rust type of a shared value), as text.
    pub schema: &'a str,
}

/// One file the application loaded in its setup, by path and SHA-256 (see `Join`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetSig<'a> {
    /// The path the application named, relative to where it runs.
    pub path: &'a str,
    /// SHA-256 of the file's bytes.
    pub digest: [u8; 32],
}

/// Every message of the protocol. Strings and byte blocks borrow from the receive buffer, so
/// decoding a frame allocates nothing.
///
/// New variants are only ever appended, and any change bumps [`PROTOCOL_VERSION`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message<'a> {
    /// Client → server, first: who is calling, and a fresh nonce.
    Hello {
        /// Always [`MAGIC`].
        magic: [u8; 4],
        /// The client's [`PROTOCOL_VERSION`].
        version: u16,
        /// Cluster name from the cluster file.
        cluster: &'a str,
        /// The caller's node name.
        node: &'a str,
        /// Client nonce.
        nonce: [u8; 32],
    },
    /// Server → client: the server's nonce, and its proof that it knows the key.
    Challenge {
        /// Server nonce.
        nonce: [u8; 32],
        /// HMAC proving the server knows the key.
        proof: [u8; 32],
    },
    /// Client → server: the client's proof that it knows the key.
    Proof {
        /// HMAC proving the client knows the key.
        proof: [u8; 32],
    },
    /// Server → client: accepted; frames up to `max_frame` bytes may follow.
    Welcome {
        /// Frame limit for the rest of the session.
        max_frame: u32,
    },
    /// Either way: refused or ending, with the reason; the connection closes after it.
    Refused {
        /// Why.
        reason: &'a str,
    },
    /// Master → nodes: frame `frame` starts; the master's clock.
    FrameBegin {
        /// Frame number.
        frame: u64,
        /// Seconds since the cluster started (f64: exact for years).
        time: f64,
        /// Seconds since the previous frame.
        dt: f64,
    },
    /// Master → nodes: one plugin's data for the hook now open.
    Block {
        /// The plugin's id.
        plugin: u16,
        /// Its payload, opaque to the protocol.
        bytes: &'a [u8],
    },
    /// Master → nodes: all blocks of frame `frame` for `hook` have been sent. A frame is
    /// `FrameBegin`, frame-start blocks, `EndBlock(FrameStart)`, pre-draw blocks,
    /// `EndBlock(PreDraw)`; after its `SwapNow` come its post-frame blocks and
    /// `EndBlock(PostFrame)`.
    EndBlock {
        /// Frame number.
        frame: u64,
        /// Which hook's blocks end here.
        hook: Hook,
    },
    /// Node → master: frame `frame` is drawn and waits for the swap.
    SwapReady {
        /// Frame number.
        frame: u64,
        /// The node's timings for it.
        stats: NodeStats,
    },
    /// Master → nodes: every node is ready; present frame `frame` now.
    SwapNow {
        /// Frame number.
        frame: u64,
        /// With late latching: the newest head pose, for frame `frame + 1`'s projection
        /// (that frame's Draw picks it, so every node projects it from the same pose).
        head: Option<LatchedHead>,
    },
    /// Either way, when no frame is in flight: still alive.
    Heartbeat {
        /// Sequence number.
        seq: u64,
    },
    /// Master → nodes: the cluster is stopping.
    Shutdown {
        /// Why.
        reason: &'a str,
    },
    /// Master → nodes, right after `FrameBegin(frame)`: from this frame on, the cluster file
    /// is this text. Also part of a late joiner's first frame once the cluster was
    /// reconfigured, so that it never runs an older file than the others.
    Reconfigure {
        /// The frame it applies to.
        frame: u64,
        /// The whole cluster file.
        config: &'a str,
    },
    /// Control client → master: validate this cluster file and switch to it.
    ReconfigureRequest {
        /// The whole cluster file.
        config: &'a str,
    },
    /// Master → control client: the reconfiguration was accepted and applies at `frame`.
    Reconfigured {
        /// The switch frame.
        frame: u64,
    },
    /// Control client → master: how is the cluster?
    StatusRequest,
    /// Master → control client: the cluster now. (Decoding this one allocates its list.)
    Status {
        /// The last frame begun.
        frame: u64,
        /// Frames swapped per second over the last second.
        fps: f32,
        /// Median time the swap barrier waited over the last second, in milliseconds.
        sync_ms: f32,
        /// Every node of the cluster file, and any node still connected but removed.
        #[serde(borrow)]
        nodes: Vec<NodeStatus<'a>>,
    },
    /// Server → client instead of a handshake: no room for another handshake now (too many
    /// in progress); try again shortly. The connection closes after it.
    Busy {
        /// Why.
        reason: &'a str,
    },
    /// Node → master, the first sealed record after its `Proof`: the application it runs, as
    /// its setup left it. The master answers `Welcome` only if all of it is the master's
    /// own, else `Refused` naming the difference. (Decoding this one allocates its lists.)
    Join {
        /// The application's name.
        app: &'a str,
        /// Every plugin, in registration order.
        #[serde(borrow)]
        plugins: Vec<PluginSig<'a>>,
        /// Every file its setup loaded.
        #[serde(borrow)]
        assets: Vec<AssetSig<'a>>,
        /// The digest of the scene its setup built: the base that frames' changes apply to.
        baseline: u64,
    },
    /// Node or control client → master: a cluster event, for the master to deliver to every
    /// process in one frame.
    Event {
        /// The event's name, as the application declared it.
        name: &'a str,
        /// Its value: postcard bytes of the declared type, or (`json`) JSON text.
        payload: &'a [u8],
        /// The payload is JSON (from a sender outside the application, `lockstep ctl`).
        json: bool,
    },
    /// Master → control client: the event was accepted and is delivered in frame `frame`.
    Queued {
        /// The frame every process sees it in.
        frame: u64,
    },
    /// Node's asset connection → master: the master's copy of a file its application loaded
    /// at setup, named as the master loaded it. The master answers `AssetInfo` (then, with
    /// `send`, the file's bytes in `AssetChunk`s) or `Refused`.
    AssetRequest {
        /// The file, as the master's setup named it.
        path: &'a str,
        /// Send the bytes too, not only their digest and size.
        send: bool,
    },
    /// Master → asset connection: the file's SHA-256 and size, as the master loaded it.
    AssetInfo {
        /// SHA-256 of its bytes.
        digest: [u8; 32],
        /// Its size in bytes: the `AssetChunk`s that follow (with `send`) add up to it.
        size: u64,
    },
    /// Master → asset connection: the next bytes of the file requested.
    AssetChunk {
        /// At most [`ASSET_CHUNK`] bytes.
        bytes: &'a [u8],
    },
    /// Node → master: what the input devices read on this node reported since its last
    /// frame, for the master to give every process in the next frame it begins.
    Input {
        /// The events, encoded by the input layer (opaque here).
        payload: &'a [u8],
    },
    /// Master → node, right after the node's first frame: frame data from now on comes as
    /// multicast datagrams (`crate::datagram`) of session `session` to `group`, starting
    /// with datagram frame `first`; this connection keeps the handshake, heartbeats and the
    /// node's answers.
    Multicast {
        /// The session number the datagrams' key is derived with.
        session: u64,
        /// The group and port, as `a.b.c.d:port`.
        group: &'a str,
        /// The first datagram frame this node applies.
        first: u64,
    },
    /// Node → master: datagrams of one multicast frame that did not come; the master sends
    /// them again to the group.
    Nak {
        /// The datagram frame.
        frame: u64,
        /// Indices of the missing datagrams, each a little-endian `u16` (none: all of
        /// them); at most [`crate::datagram::MAX_NAK`].
        missing: &'a [u8],
    },
    /// Master → node, on its connection, when its `SwapReady` is long in coming: the
    /// multicast units sent so far end with `through`. A node that lacks one (a release lost
    /// whole, with nothing after it to show the gap) asks for it.
    Units {
        /// The newest unit sent.
        through: u64,
    },
    /// Master → node, on its connection: a multicast datagram, as sent to the group (the
    /// last release before a shutdown, which no later barrier would repair).
    Datagram {
        /// The datagram, authenticated like any other.
        bytes: &'a [u8],
    },
    /// Display node → helper, on the helper's strip connection: render the pixels `rect` of
    /// viewport `viewport` of the display node's own views for frame `frame`.
    StripRequest {
        /// The master's frame number.
        frame: u64,
        /// The viewport's place among the display node's views (`ClusterConfig::views`).
        viewport: u16,
        /// x, y (in the display node's window, from its top-left), width, height.
        rect: [u32; 4],
        /// How to send the pixels back: [`STRIP_RGBA8`] or [`STRIP_LZ4`].
        codec: u8,
    },
    /// Helper → display node, once after the handshake: its Draw side takes requests from
    /// now on (before it, a request might find nobody waiting for it).
    StripReady,
    /// Helper → display node: the strip it was asked for, as rendered.
    Strip {
        /// The frame it shows.
        frame: u64,
        /// As in the request.
        viewport: u16,
        /// As in the request.
        rect: [u32; 4],
        /// Microseconds from the request's arrival to the strip read back (for balancing).
        render_us: u32,
        /// How `pixels` is encoded: [`STRIP_RGBA8`] or [`STRIP_LZ4`].
        codec: u8,
        /// The pixels: RGBA8 sRGB, rows top to bottom, `rect`'s width × height.
        pixels: &'a [u8],
    },
}

/// A `Strip`'s pixels as they are.
pub const STRIP_RGBA8: u8 = 0;
/// A `Strip`'s pixels compressed with LZ4 (block format, size prepended).
pub const STRIP_LZ4: u8 = 1;

/// Largest `AssetChunk` the master sends.
pub const ASSET_CHUNK: usize = 1 << 20;

impl Message<'_> {
    /// The variant's name, for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "Hello",
            Message::Challenge { .. } => "Challenge",
            Message::Proof { .. } => "Proof",
            Message::Welcome { .. } => "Welcome",
            Message::Refused { .. } => "Refused",
            Message::FrameBegin { .. } => "FrameBegin",
            Message::Block { .. } => "Block",
            Message::EndBlock { .. } => "EndBlock",
            Message::SwapReady { .. } => "SwapReady",
            Message::SwapNow { .. } => "SwapNow",
            Message::Heartbeat { .. } => "Heartbeat",
            Message::Shutdown { .. } => "Shutdown",
            Message::Reconfigure { .. } => "Reconfigure",
            Message::ReconfigureRequest { .. } => "ReconfigureRequest",
            Message::Reconfigured { .. } => "Reconfigured",
            Message::StatusRequest => "StatusRequest",
            Message::Status { .. } => "Status",
            Message::Busy { .. } => "Busy",
            Message::Join { .. } => "Join",
            Message::Event { .. } => "Event",
            Message::Queued { .. } => "Queued",
            Message::AssetRequest { .. } => "AssetRequest",
            Message::AssetInfo { .. } => "AssetInfo",
            Message::AssetChunk { .. } => "AssetChunk",
            Message::Input { .. } => "Input",
            Message::Multicast { .. } => "Multicast",
            Message::Nak { .. } => "Nak",
            Message::Units { .. } => "Units",
            Message::Datagram { .. } => "Datagram",
            Message::StripRequest { .. } => "StripRequest",
            Message::StripReady => "StripReady",
            Message::Strip { .. } => "Strip",
        }
    }
}
