/*!
The master's side of a session: it accepts render nodes (see `accept.rs`), sends every frame
as one buffer encoded once, runs the swap barrier, takes late joiners in without stalling the
others, keeps idle connections alive with heartbeats, and switches cluster files at run time.

A frame is begun ([`Master::begin_frame`]: `FrameBegin` and the frame-start blocks), finished
and sent ([`Master::send_frame`]: the pre-draw blocks). Its barrier runs either alone
([`Master::swap`]) or, pipelined, inside a later `send_frame`: with a pipeline depth of 2 the
master prepares frame F+2 while the nodes draw F (and already hold F+1), then waits for their
`SwapReady(F)`, and `SwapNow(F)`, F's post-frame blocks and frame F+2 leave in one write per
node — the same number of writes as a bare barrier.

**Joining late.** A node that connects while the cluster runs gets, as its first frame, a
snapshot: every plugin's whole state ([`crate::ClusterPlugin::snapshot`]) instead of the
changes the others get, then every later frame like the others. It is *catching up*: no
barrier waits for it while it loads. Each barrier looks (without waiting) for its
`SwapReady`; once one arrives before that frame's `SwapNow` left, the node is *in step* and
the barriers wait for it from the next frame on. A node presents only frames whose `SwapNow`
it was waiting for, so its first presented frame is one every node presents at once.

**Reconfiguring.** [`Master::reconfigure`] checks a whole new cluster file against the running
one and schedules it for the next frame begun; that frame carries the file's text, so every
node switches at the same frame, and every plugin's reconfigure hook runs then, on the master
and on the nodes.

By concern: `accept.rs` (handshakes, off the frame loop), `admission.rs` (taking nodes in at
frame boundaries, the start barrier), `standing.rs` (where each node stands, heartbeats,
drops), `frames.rs` (encoding and writing each frame), `barrier.rs` (the swap barrier),
`control.rs` (ctl requests, events and the nodes' input, within their limits),
`reconfigure.rs`, `verify.rs` (state digests), `latch.rs` (late latching) and `status.rs`.
*/
mod accept;
mod admission;
mod barrier;
mod control;
mod frames;
mod latch;
mod reconfigure;
mod standing;
mod status;
mod verify;

pub use barrier::SwapReport;
pub use control::MAX_NODE_INPUT;
pub use latch::HeadLatch;
pub use verify::Mismatch;

use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lockstep_display::{ClusterConfig, MulticastConfig, Transport};
use lockstep_wire::admission::Gatekeeper;
use lockstep_wire::{ClusterKey, LatchedHead, Message, encode_into};

use crate::assets::AssetServer;
use crate::control::ControlCall;
use crate::join::PluginEntry;
use crate::link::io;
use crate::multicast::{MulticastOut, MulticastStats};
use crate::plugins::Event;
use crate::session::NodeId;
use crate::session::master::{Limits, MasterSession, Standing};
use crate::{AppIdentity, ClusterError, ClusterManager, FrameInfo};
use accept::Gate;
use reconfigure::Pending;
use standing::NodeConn;
use status::Rates;

/// What happens when a node fails (disconnects or misses the swap deadline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// Drop the node, log why, and go on with the others.
    #[default]
    Drop,
    /// Stop the whole cluster.
    Stop,
}

/// How the master runs.
#[derive(Debug, Clone)]
pub struct MasterConfig {
    /// Cluster name (must match the nodes').
    pub cluster: String,
    /// The shared key.
    pub key: ClusterKey,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Node names allowed to join; others are refused.
    pub nodes: Vec<String>,
    /// How long the barrier waits for a node's `SwapReady`.
    pub swap_deadline: Duration,
    /// How long the first frame's barrier waits (loading the scene and starting the GPU take
    /// longer than a frame: the start barrier), and how long a late joiner may take to load
    /// and catch up before it is dropped.
    pub load_deadline: Duration,
    /// How long a connecting peer has to complete the handshake.
    pub handshake_timeout: Duration,
    /// What a failed node does to the cluster.
    pub policy: FailurePolicy,
    /// Frame limit announced to nodes.
    pub max_frame: u32,
    /// How many frames may be sent and not yet swapped. 1: frame F+1 is prepared while the
    /// nodes draw F and leaves with `SwapNow(F)` (the master's update is one frame ahead of
    /// what is shown). 2: frame F+1 reaches the nodes while they draw F, so their App and
    /// Cull of F+1 overlap their Draw of F, as in a single process's pipeline (full speed;
    /// the master's update is two frames ahead). Values above 2 count as 2.
    pub pipeline_depth: usize,
    /// While no frame is in flight ([`Master::idle`], the start barrier), a heartbeat goes to
    /// every node this often; a node that answers none for four of them (and at least the
    /// swap deadline) is dropped.
    pub heartbeat: Duration,
    /// The cluster file the nodes run; without it reconfiguration is refused.
    pub cluster_file: Option<ClusterConfig>,
    /// Hash the scene of every frame and compare it with the hash each node reports with
    /// its `SwapReady` (a pass over the scene per frame).
    pub verify: bool,
    /// Send a node's asset connection the files the application loaded (the cluster file's
    /// `[assets] send`; a reconfiguration changes it).
    pub send_assets: bool,
    /// The application this master runs: a node whose `Join` differs is refused. Its plugin
    /// list is taken from the manager the master starts with.
    pub identity: AppIdentity,
    /// Send frame data once, to this multicast group, instead of to each node's connection
    /// (the cluster file's `transport = "multicast"`).
    pub multicast: Option<MulticastConfig>,
    /// With multicast: the share of datagrams (0 to 0.5) not sent the first time, so that
    /// nodes must ask for them again — a lossy network, simulated, for tests and
    /// benchmarks.
    pub simulated_loss: f64,
}

impl MasterConfig {
    /// A master of cluster `cluster` for `nodes`, listening on `listen`, with the defaults:
    /// 1 s swap deadline, 30 s load deadline, 5 s handshakes, drop failed nodes, pipeline
    /// depth 2, heartbeats every 250 ms, no reconfiguration, no verification.
    pub fn new(cluster: &str, key: ClusterKey, listen: SocketAddr, nodes: Vec<String>) -> Self {
        MasterConfig {
            cluster: cluster.to_string(),
            key,
            listen,
            nodes,
            swap_deadline: Duration::from_secs(1),
            load_deadline: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(5),
            policy: FailurePolicy::Drop,
            max_frame: lockstep_wire::DEFAULT_MAX_FRAME as u32,
            pipeline_depth: 2,
            heartbeat: Duration::from_millis(250),
            cluster_file: None,
            verify: false,
            identity: AppIdentity::default(),
            send_assets: false,
            multicast: None,
            simulated_loss: 0.0,
        }
    }

    /// The same, with the nodes, cluster name and address of a cluster file, which it keeps
    /// for reconfiguration.
    pub fn for_cluster(file: &ClusterConfig, key: ClusterKey, listen: SocketAddr) -> Self {
        let nodes = file.nodes.iter().map(|n| n.name.clone()).collect();
        MasterConfig {
            cluster_file: Some(file.clone()),
            send_assets: file.assets.send,
            multicast: match file.transport {
                Transport::Tcp => None,
                Transport::Multicast(m) => Some(m),
            },
            ..MasterConfig::new(&file.name, key, listen, nodes)
        }
    }

    /// Silence after which a node is dropped between frames.
    fn silence_limit(&self) -> Duration {
        (self.heartbeat * 4).max(self.swap_deadline)
    }
}

/// A running master session.
pub struct Master {
    config: MasterConfig,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    /// Shared with the accept thread, so that stopping can wake it without a descriptor.
    listener: Arc<TcpListener>,
    gate: Gate,
    control: Receiver<ControlCall>,
    nodes: Vec<NodeConn>,
    /// The frame being assembled: `FrameBegin`, then each hook's blocks.
    bytes: Vec<u8>,
    /// A joiner's first frame: the same frame with every plugin's whole state.
    snapshot: Vec<u8>,
    /// What precedes the frame on the wire: `SwapNow` of the frame before, and that frame's
    /// post-frame blocks.
    head: Vec<u8>,
    /// The frame begun and not yet sent.
    begun: Option<FrameInfo>,
    /// The next frame number expected (the switch frame of a reconfiguration made now).
    next: u64,
    /// Where each node stands, what goes to whom, the barriers and heartbeats: the
    /// protocol, sans IO; this driver moves its bytes.
    session: MasterSession,
    /// The number the next connection gets in the session.
    next_id: NodeId,
    /// Where each node's connection is in `nodes` (kept in cluster-file order, so that the
    /// nodes' input and events are taken in the same order everywhere).
    index: std::collections::HashMap<NodeId, usize>,
    /// Frames sent whose barrier has not run yet, oldest first.
    in_flight: VecDeque<FrameInfo>,
    /// With `verify`: the master's state hash of each frame in flight.
    hashes: VecDeque<(u64, u64)>,
    /// Digests the scene of each frame sent, rehashing only what changed.
    hasher: crate::SceneHasher,
    /// The cluster file's text once reconfigured: part of every joiner's first frame.
    file_text: Option<String>,
    pending: Option<Pending>,
    /// What happened outside a barrier, for the next report.
    carry: SwapReport,
    /// Per node name: how many times it joined; why it last left.
    joins: HashMap<String, u32>,
    gone: HashMap<String, String>,
    /// Barriers over the last second, with their waits.
    swaps: Rates,
    /// Bytes of the last frame written to an in-step node (head and frame).
    last_sent: usize,
    /// The manager whose plugins write each frame.
    pub manager: ClusterManager,
    /// Events accepted and not delivered yet, in the order they came.
    events: Vec<Event>,
    /// Where the newest head pose is read as a swap is released (late latching).
    latch: Option<Box<dyn HeadLatch>>,
    /// The last pose latched, and the frame it projects.
    latched: Option<(u64, LatchedHead)>,
    /// Poses the latch gave that were no poses (told now and then, not at each).
    unsound_latches: u64,
    /// With multicast: the sender of every frame's data.
    multicast: Option<MulticastOut>,
}

impl Master {
    /// Listens and starts accepting nodes.
    pub fn start(config: MasterConfig, manager: ClusterManager) -> Result<Master, ClusterError> {
        let listener = TcpListener::bind(config.listen)
            .map_err(|e| io(&config.listen.to_string(), "cannot listen", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| io("listener", "no local address", e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (control_tx, control) = mpsc::channel();
        let identity = Arc::new(AppIdentity {
            plugins: PluginEntry::all(&manager),
            ..config.identity.clone()
        });
        let gate = Gate {
            cluster: config.cluster.clone(),
            key: config.key.clone(),
            max_frame: config.max_frame,
            handshake_timeout: config.handshake_timeout,
            write_timeout: config.swap_deadline.max(Duration::from_secs(1)),
            allowed: Arc::new(Mutex::new(config.nodes.clone())),
            joined: Arc::new(Mutex::new(Vec::new())),
            control: control_tx,
            gatekeeper: Gatekeeper::for_listener(),
            identity: identity.clone(),
            assets: Arc::new(AssetServer::new(identity, config.send_assets)),
        };
        let multicast = match &config.multicast {
            Some(m) => Some(MulticastOut::open(
                m,
                addr,
                &config.key,
                &config.cluster,
                config.max_frame as usize,
                config.simulated_loss,
            )?),
            None => None,
        };
        let listener = Arc::new(listener);
        let accept = {
            let (stop, gate, listener) = (stop.clone(), gate.clone(), listener.clone());
            std::thread::Builder::new()
                .name("accept".into())
                .spawn(move || accept::accept_loop(&listener, stop, gate))
                .map_err(|e| io("accept", "cannot start the accept thread", e))?
        };
        let limits = Limits {
            swap_deadline: config.swap_deadline,
            load_deadline: config.load_deadline,
            heartbeat: config.heartbeat,
            silence: config.silence_limit(),
        };
        let session = MasterSession::new(
            limits,
            config.nodes.clone(),
            multicast.is_some(),
            Instant::now(),
        );
        Ok(Master {
            config,
            addr,
            listener,
            stop,
            accept: Some(accept),
            gate,
            control,
            nodes: Vec::new(),
            bytes: Vec::new(),
            snapshot: Vec::new(),
            head: Vec::new(),
            begun: None,
            next: 0,
            session,
            next_id: 0,
            index: Default::default(),
            in_flight: VecDeque::with_capacity(2),
            hashes: VecDeque::with_capacity(4),
            hasher: crate::SceneHasher::default(),
            file_text: None,
            pending: None,
            carry: SwapReport::default(),
            events: Vec::new(),
            joins: HashMap::new(),
            gone: HashMap::new(),
            swaps: Rates::default(),
            last_sent: 0,
            manager,
            latch: None,
            latched: None,
            unsound_latches: 0,
            multicast,
        })
    }

    /// Where the master listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Names of the nodes in the session (connected, whether in step or not).
    pub fn node_names(&self) -> Vec<String> {
        self.session
            .peers()
            .iter()
            .map(|p| p.name.clone())
            .collect()
    }

    /// Names of the nodes every barrier waits for.
    pub fn in_step(&self) -> Vec<String> {
        self.session
            .peers()
            .iter()
            .filter(|p| matches!(p.standing, Standing::InStep { .. }))
            .map(|p| p.name.clone())
            .collect()
    }

    /// Bytes of the last frame sent to in-step nodes (with the `SwapNow` and post-frame
    /// blocks that travelled with it): what each node's record sealed.
    pub fn last_frame_bytes(&self) -> usize {
        self.last_sent
    }

    /// What was sent by multicast so far, if frame data goes by multicast.
    pub fn multicast_stats(&self) -> Option<MulticastStats> {
        self.multicast.as_ref().map(|m| m.stats)
    }

    /// The cluster file in force (after any reconfiguration).
    pub fn cluster_file(&self) -> Option<&ClusterConfig> {
        self.config.cluster_file.as_ref()
    }

    /// Tells every node the cluster stops, and closes the session.
    pub fn shutdown(mut self, reason: &str) {
        self.bytes.clear();
        if encode_into(&Message::Shutdown { reason }, &mut self.bytes).is_ok() {
            // In order after the last frames; each connection gets it too, after the last
            // unit's number, so that a node applies everything before it and nothing after.
            // The last release, too: no barrier follows it to have it repaired.
            let units = self.multicast.as_ref().and_then(|m| m.units_sent());
            let session = &self.session;
            let on_group = |n: &NodeConn| session.peer(n.id).is_some_and(|p| p.on_group);
            for n in self.nodes.iter_mut().filter(|n| on_group(n)) {
                if let (Some(u), Some(out)) = (&units, &self.multicast) {
                    let _ = n.link.send(u);
                    for bytes in out.last_unit() {
                        let _ = n.link.send(&Message::Datagram { bytes });
                    }
                }
            }
            if let Some(out) = &mut self.multicast {
                let _ = out.send(&self.bytes);
            }
            for n in &mut self.nodes {
                let _ = n.link.send_encoded(&self.bytes, &[]);
            }
        }
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        lockstep_wire::admission::stop_accepting(&self.listener);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        for n in &self.nodes {
            let _ = n.link.stream.shutdown(std::net::Shutdown::Both);
        }
    }
}
