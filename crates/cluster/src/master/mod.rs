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
*/
mod accept;
mod status;

use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lockstep_display::{ClusterConfig, ConfigChange};
use lockstep_scene::Scene;
use lockstep_wire::admission::Gatekeeper;
use lockstep_wire::{ClusterKey, Hook, LatchedHead, Message, NodeStats, encode_into};

use crate::assets::AssetServer;
use crate::control::ControlCall;
use crate::join::PluginEntry;
use crate::link::{Link, io, wire};
use crate::plugins::{Event, Events, MAX_EVENT_PAYLOAD, MAX_EVENTS_PER_FRAME};
use crate::{AppIdentity, ClusterError, ClusterManager, FrameInfo};
use accept::{Gate, Joined};
use status::Rates;

/// Why a master without a cluster file refuses every reconfiguration.
const NO_CLUSTER_FILE: &str =
    "this master was started without a cluster file, so it cannot be reconfigured";

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
        }
    }

    /// The same, with the nodes, cluster name and address of a cluster file, which it keeps
    /// for reconfiguration.
    pub fn for_cluster(file: &ClusterConfig, key: ClusterKey, listen: SocketAddr) -> Self {
        let nodes = file.nodes.iter().map(|n| n.name.clone()).collect();
        MasterConfig {
            cluster_file: Some(file.clone()),
            send_assets: file.assets.send,
            ..MasterConfig::new(&file.name, key, listen, nodes)
        }
    }

    /// Silence after which a node is dropped between frames.
    fn silence_limit(&self) -> Duration {
        (self.heartbeat * 4).max(self.swap_deadline)
    }
}

/// Where a node stands in the session.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Standing {
    /// Connected; its first frame, the next one begun, is a snapshot unless no frame has
    /// been sent yet (then it is simply frame 0 and the node is in step from the start).
    Joining,
    /// Got its snapshot at frame `first` (at `since`); no barrier waits for it.
    CatchingUp { first: u64, since: Instant },
    /// Every barrier from frame `from` on waits for it.
    InStep { from: u64 },
    /// A reconfiguration restarts its pipeline: it got the switch frame and will come back
    /// on a new connection; nothing more is sent to it and nothing waited for.
    Leaving { since: Instant },
}

struct NodeConn {
    name: String,
    standing: Standing,
    /// Frames are written to its stream; `SwapReady` is read from it by the barrier itself,
    /// on the master's thread: no reader thread and no channel between a node's answer and
    /// the barrier (each would cost a thread wake-up per frame).
    link: Link,
    /// When it last sent anything.
    heard: Instant,
    /// The first heartbeat it has not answered yet.
    asked: Option<Instant>,
    /// A `SwapReady` read between frames, for a barrier still to run.
    early: Option<(u64, NodeStats)>,
    /// The last frame it reported ready, and its stats.
    ready: Option<(u64, NodeStats)>,
    /// Its `SwapReady`s over the last second.
    rate: Rates,
    /// Events it sent, not yet taken into the master's queue: (name, postcard bytes).
    events: Vec<(String, Vec<u8>)>,
    /// What its own input devices reported since the last frame begun, batch by batch, and
    /// how many bytes that is.
    input: Vec<Vec<u8>>,
    input_bytes: usize,
}

impl NodeConn {
    fn waited_for(&self, frame: u64) -> bool {
        matches!(self.standing, Standing::InStep { from } if from <= frame)
    }
}

/// A node whose reported state differs from the master's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The node.
    pub node: String,
    /// The frame.
    pub frame: u64,
    /// The master's hash of that frame's state.
    pub expected: u64,
    /// The node's.
    pub got: u64,
}

/// What one barrier (or the time between frames) saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SwapReport {
    /// Nodes that presented the frame.
    pub presented: Vec<String>,
    /// Nodes dropped, with the reason.
    pub dropped: Vec<(String, String)>,
    /// Nodes that got in step with the cluster (after joining, or rejoining).
    pub joined: Vec<String>,
    /// Each presenting node's stats.
    pub stats: Vec<(String, NodeStats)>,
    /// With `verify`: nodes whose state differs from the master's.
    pub mismatches: Vec<Mismatch>,
    /// With `verify`: how many node states were compared.
    pub verified: usize,
    /// A reconfiguration took effect at this frame.
    pub reconfigured: Option<u64>,
    /// The frame whose barrier this report covers (none from a `send_frame` that ran no
    /// barrier).
    pub swapped: Option<u64>,
    /// How long the barrier waited.
    pub waited: Duration,
}

impl SwapReport {
    /// Adds what `other` saw (but not its barrier).
    fn absorb(&mut self, other: SwapReport) {
        self.dropped.extend(other.dropped);
        self.joined.extend(other.joined);
        self.mismatches.extend(other.mismatches);
        self.reconfigured = self.reconfigured.or(other.reconfigured);
    }
}

/// A reconfiguration accepted and waiting for its frame.
struct Pending {
    file: ClusterConfig,
    text: String,
    change: ConfigChange,
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
    /// Whether any frame was sent: nodes that join before are simply in step from frame 0.
    started: bool,
    /// The first frame sent: its barrier is the start barrier, with the load deadline.
    first_frame: Option<u64>,
    /// Nodes that restart at the frame being sent, for a reconfiguration.
    restarting: Vec<String>,
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
    /// Heartbeats: the next number, and when one was last sent.
    beat: (u64, Instant),
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
}

/// Where the master reads the newest head pose as it releases a frame's swap barrier (late
/// latching): the pose travels with that `SwapNow`, and every node projects the frame after
/// it from that pose in Draw, instead of from the older one the frame was made with.
pub trait HeadLatch: Send {
    /// The head pose for frame `frame`'s projection; `None` keeps that frame's own. `made`:
    /// whether that frame is made already (its input sampled); if not (paced: the swap is
    /// released before the next frame begins), a pose read now is older than the frame's
    /// own will be.
    fn newest(&mut self, frame: u64, made: bool) -> Option<LatchedHead>;
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
        let listener = Arc::new(listener);
        let accept = {
            let (stop, gate, listener) = (stop.clone(), gate.clone(), listener.clone());
            std::thread::Builder::new()
                .name("accept".into())
                .spawn(move || accept::accept_loop(&listener, stop, gate))
                .map_err(|e| io("accept", "cannot start the accept thread", e))?
        };
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
            started: false,
            first_frame: None,
            restarting: Vec::new(),
            in_flight: VecDeque::with_capacity(2),
            hashes: VecDeque::with_capacity(4),
            hasher: crate::SceneHasher::default(),
            file_text: None,
            pending: None,
            carry: SwapReport::default(),
            events: Vec::new(),
            beat: (0, Instant::now()),
            joins: HashMap::new(),
            gone: HashMap::new(),
            swaps: Rates::default(),
            last_sent: 0,
            manager,
            latch: None,
            latched: None,
            unsound_latches: 0,
        })
    }

    /// Latches the head pose `latch` gives with every swap released from now on, for the
    /// next frame. `None` stops it.
    pub fn set_latch(&mut self, latch: Option<Box<dyn HeadLatch>>) {
        self.latch = latch;
    }

    /// The head pose latched with the last swap released, and the frame it projects, if
    /// one was; taken once (what `--record` writes).
    pub fn take_latched(&mut self) -> Option<(u64, LatchedHead)> {
        self.latched.take()
    }

    /// Where the master listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Names of the nodes in the session (connected, whether in step or not).
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// Names of the nodes every barrier waits for.
    pub fn in_step(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| matches!(n.standing, Standing::InStep { .. }))
            .map(|n| n.name.clone())
            .collect()
    }

    /// With `verify`: the master's scene digest of frame `frame`, if it is one of the last few
    /// sent (so a caller that also records digests need not hash the scene a second time).
    pub fn digest_of(&self, frame: u64) -> Option<u64> {
        self.hashes.iter().find(|h| h.0 == frame).map(|h| h.1)
    }

    /// Bytes of the last frame sent to in-step nodes (with the `SwapNow` and post-frame
    /// blocks that travelled with it): what each node's record sealed.
    pub fn last_frame_bytes(&self) -> usize {
        self.last_sent
    }

    /// The cluster file in force (after any reconfiguration).
    pub fn cluster_file(&self) -> Option<&ClusterConfig> {
        self.config.cluster_file.as_ref()
    }

    /// Takes nodes that finished their handshake into the session; they start with the next
    /// frame begun. A node that connects again replaces its old connection.
    fn admit(&mut self) -> Result<(), ClusterError> {
        let joined: Vec<Joined> = match self.gate.joined.lock() {
            Ok(mut j) => j.drain(..).collect(),
            Err(_) => return Err(ClusterError::Internal("the accept thread panicked".into())),
        };
        for j in joined {
            if let Some(i) = self.nodes.iter().position(|n| n.name == j.name) {
                let old = self.nodes.remove(i);
                let _ = old.link.stream.shutdown(std::net::Shutdown::Both);
                tracing::info!(
                    "node '{}' connected again; its old connection is closed",
                    j.name
                );
            }
            tracing::info!("node '{}' joined", j.name);
            let mut link = j.link;
            link.peer = format!("node '{}'", j.name);
            // Nodes send only small messages (an event at most): a larger frame is an error,
            // not an allocation.
            link.set_max_frame(NODE_MAX_FRAME);
            // What it accepts: larger frames (snapshots) go in several records.
            link.set_send_limit(self.gate.max_frame as usize);
            *self.joins.entry(j.name.clone()).or_default() += 1;
            self.gone.remove(&j.name);
            self.nodes.push(NodeConn {
                name: j.name,
                standing: Standing::Joining,
                link,
                heard: Instant::now(),
                asked: None,
                early: None,
                ready: None,
                rate: Rates::default(),
                events: Vec::new(),
                input: Vec::new(),
                input_bytes: 0,
            });
        }
        // Cluster-file order, whatever order they connected in: reports read the same each run.
        let order = &self.config.nodes;
        self.nodes.sort_by_key(|n| {
            order
                .iter()
                .position(|o| *o == n.name)
                .unwrap_or(usize::MAX)
        });
        Ok(())
    }

    /// The start barrier: waits until every node of the configuration has joined.
    pub fn wait_for_nodes(&mut self, timeout: Duration) -> Result<(), ClusterError> {
        self.wait_for_nodes_unless(timeout, &AtomicBool::new(false))
    }

    /// The start barrier, given up as soon as `stop` is set. Nodes that joined get
    /// heartbeats meanwhile, and control clients are answered.
    pub fn wait_for_nodes_unless(
        &mut self,
        timeout: Duration,
        stop: &AtomicBool,
    ) -> Result<(), ClusterError> {
        let all = self.config.nodes.clone();
        self.wait_until(timeout, stop, Some(&all))
    }

    /// The start barrier for some nodes only: the others may join at any time later.
    pub fn wait_for_unless(
        &mut self,
        names: &[String],
        timeout: Duration,
        stop: &AtomicBool,
    ) -> Result<(), ClusterError> {
        self.wait_until(timeout, stop, Some(names))
    }

    /// Waits until at least one node is connected (every node left, and the cluster waits
    /// for one to come back), given up as soon as `stop` is set.
    pub fn wait_for_any_unless(
        &mut self,
        timeout: Duration,
        stop: &AtomicBool,
    ) -> Result<(), ClusterError> {
        self.wait_until(timeout, stop, None)
    }

    /// Waits until every node of `names` has joined, or (`None`) any node.
    fn wait_until(
        &mut self,
        timeout: Duration,
        stop: &AtomicBool,
        names: Option<&[String]>,
    ) -> Result<(), ClusterError> {
        let start = Instant::now();
        loop {
            if stop.load(Ordering::Relaxed) {
                return Err(ClusterError::Interrupted(
                    "stopped while waiting for the nodes to join".into(),
                ));
            }
            self.admit()?;
            let missing: Vec<&String> = names
                .unwrap_or(&self.config.nodes)
                .iter()
                .filter(|n| !self.nodes.iter().any(|c| &c.name == *n))
                .collect();
            let done = match names {
                Some(_) => missing.is_empty(),
                None => !self.nodes.is_empty(),
            };
            if done {
                return Ok(());
            }
            if start.elapsed() > timeout {
                let at = if names.is_some() {
                    "start barrier"
                } else {
                    "cluster"
                };
                return Err(ClusterError::NotJoined(format!(
                    "{at}: nodes {missing:?} did not join within {timeout:?}"
                )));
            }
            let mut report = std::mem::take(&mut self.carry);
            self.tick(&mut report)?;
            self.carry = report;
            // Joins are polled; control requests wake this at once.
            self.serve_control(Some(Duration::from_millis(5)))?;
        }
    }

    /// Between frames: keeps every connection alive for `period` — heartbeats out, answers
    /// in, nodes silent too long dropped — and answers control clients. What it saw goes into
    /// the next report.
    pub fn idle(&mut self, period: Duration) -> Result<(), ClusterError> {
        let until = Instant::now() + period;
        let mut report = std::mem::take(&mut self.carry);
        let result = loop {
            if let Err(e) = self.tick(&mut report) {
                break Err(e);
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break Ok(());
            }
            let wait = left.min(self.config.heartbeat);
            if let Err(e) = self.serve_control(Some(wait)) {
                break Err(e);
            }
        };
        self.carry = report;
        result
    }

    /// Heartbeats when due, and whatever the nodes sent meanwhile; drops nodes that fell
    /// silent.
    fn tick(&mut self, report: &mut SwapReport) -> Result<(), ClusterError> {
        let now = Instant::now();
        if now.duration_since(self.beat.1) >= self.config.heartbeat {
            self.beat = (self.beat.0 + 1, now);
            self.head.clear();
            Self::encode(&Message::Heartbeat { seq: self.beat.0 }, &mut self.head)?;
            let mut failed = Vec::new();
            for n in &mut self.nodes {
                if matches!(n.standing, Standing::Leaving { .. }) {
                    continue;
                }
                if let Err(e) = n.link.send_encoded(&self.head, &[]) {
                    failed.push((n.name.clone(), format!("cannot send a heartbeat: {e}")));
                }
                n.asked.get_or_insert(now);
            }
            self.head.clear();
            self.fail_all(failed, report)?;
        }
        let limit = self.config.silence_limit();
        let mut failed = Vec::new();
        for n in &mut self.nodes {
            if let Err(why) = drain(n) {
                failed.push((n.name.clone(), why));
            } else if let Some(asked) = n.asked.filter(|t| t.elapsed() > limit) {
                failed.push((
                    n.name.clone(),
                    format!("answered no heartbeat for {:?}", asked.elapsed()),
                ));
            }
        }
        self.fail_all(failed, report)?;
        self.check_leaving();
        Ok(())
    }

    /// Drops nodes that left to restart once their connection is closed (or after the load
    /// deadline).
    fn check_leaving(&mut self) {
        let limit = self.config.load_deadline;
        self.nodes.retain_mut(|n| {
            let Standing::Leaving { since } = n.standing else {
                return true;
            };
            let closed = loop {
                match n.link.try_recv() {
                    Ok(Some(_)) => {}
                    Ok(None) => break false,
                    Err(_) => break true,
                }
            };
            !(closed || since.elapsed() > limit)
        });
    }

    /// Takes what the nodes' own input devices reported since the last call, node by node
    /// in cluster-file order (the node's name, then its batches in the order sent).
    pub fn take_node_input(&mut self, into: &mut Vec<(String, Vec<u8>)>) {
        for n in &mut self.nodes {
            n.input_bytes = 0;
            for batch in n.input.drain(..) {
                into.push((n.name.clone(), batch));
            }
        }
    }

    /// Queues a cluster event for the next frame begun (every process sees it in that
    /// frame), after checking it against its declaration: `payload` is postcard bytes of the
    /// declared type, or JSON text if `json`. The master's own application sends with this.
    /// Returns the frame it will be delivered in.
    pub fn queue_event(&mut self, name: &str, payload: &[u8], json: bool) -> Result<u64, String> {
        let events = self
            .manager
            .get::<Events>()
            .ok_or_else(|| "this master has no events plugin".to_string())?;
        let event = events.accept(name, payload, json)?;
        self.queue_accepted(event)
    }

    /// Queues an event [`Events::accept`] has already checked (the master's own application
    /// checks what it sends as it sends it); the frame it will be delivered in.
    pub fn queue_accepted(&mut self, event: Event) -> Result<u64, String> {
        if self.events.len() >= MAX_QUEUED_EVENTS {
            return Err(format!(
                "{MAX_QUEUED_EVENTS} events are waiting to be delivered already; try again"
            ));
        }
        // Each frame delivers at most MAX_EVENTS_PER_FRAME, in order.
        let frame = self.next + (self.events.len() / MAX_EVENTS_PER_FRAME) as u64;
        self.events.push(event);
        Ok(frame)
    }

    /// Takes in the events nodes sent and hands this frame's to the events plugin (at most
    /// [`MAX_EVENTS_PER_FRAME`]; the rest wait for the next frames).
    fn deliver_events(&mut self) {
        for n in &mut self.nodes {
            for (name, payload) in std::mem::take(&mut n.events) {
                let accepted = match self.manager.get::<Events>() {
                    Some(events) => events.accept(&name, &payload, false),
                    None => Err("this master has no events plugin".into()),
                };
                match accepted {
                    Ok(e) if self.events.len() < MAX_QUEUED_EVENTS => self.events.push(e),
                    Ok(e) => tracing::warn!(
                        "node '{}' sent event '{}' while {MAX_QUEUED_EVENTS} wait already: dropped",
                        n.name,
                        e.name
                    ),
                    Err(why) => tracing::warn!("node '{}' sent an event refused: {why}", n.name),
                }
            }
        }
        let now: Vec<Event> = self
            .events
            .drain(..self.events.len().min(MAX_EVENTS_PER_FRAME))
            .collect();
        if let Some(events) = self.manager.get_mut::<Events>() {
            events.deliver(now);
        }
    }

    /// Answers control requests; waits up to `wait` for the first one.
    fn serve_control(&mut self, wait: Option<Duration>) -> Result<(), ClusterError> {
        self.gate.tell_refusals();
        let mut call = match wait {
            Some(w) => match self.control.recv_timeout(w) {
                Ok(c) => Some(c),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    // The accept side holds a sender for as long as the master lives.
                    std::thread::sleep(w);
                    None
                }
            },
            None => self.control.try_recv().ok(),
        };
        while let Some(c) = call {
            match c {
                ControlCall::Status(reply) => {
                    let _ = reply.send(self.status());
                }
                ControlCall::Reconfigure(text, reply) => {
                    let _ = reply.send(self.reconfigure_text(text).map(|(f, _)| f));
                }
                ControlCall::Event { name, json, reply } => {
                    let _ = reply.send(self.queue_event(&name, &json, true));
                }
            }
            call = self.control.try_recv().ok();
        }
        Ok(())
    }

    /// Checks `text` (a whole cluster file) against the running one and, if every node can
    /// follow, schedules it for the next frame begun: that frame number and what changes;
    /// otherwise every reason, and nothing changes.
    pub fn reconfigure_text(&mut self, text: String) -> Result<(u64, ConfigChange), Vec<String>> {
        let Some(current) = &self.config.cluster_file else {
            return Err(vec![NO_CLUSTER_FILE.into()]);
        };
        let file = ClusterConfig::parse(&current.path, &text)
            .map_err(|e| e.0.iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
        self.reconfigure(file, text)
    }

    /// [`Master::reconfigure_text`] with the file already read: `text` is what nodes get.
    pub fn reconfigure(
        &mut self,
        file: ClusterConfig,
        text: String,
    ) -> Result<(u64, ConfigChange), Vec<String>> {
        let Some(current) = &self.config.cluster_file else {
            return Err(vec![NO_CLUSTER_FILE.into()]);
        };
        let mut why = Vec::new();
        if self.pending.is_some() {
            why.push(format!(
                "another reconfiguration is waiting for frame {}",
                self.next + u64::from(self.begun.is_some())
            ));
        }
        // The text travels inside one frame, with room for the frame's own blocks.
        let room = (self.config.max_frame as usize) / 2;
        if text.len() > room {
            why.push(format!(
                "the cluster file is {} bytes; at most {room} fit in a frame",
                text.len()
            ));
        }
        let change = match current.change_to(&file) {
            Ok(c) => Some(c),
            Err(reasons) => {
                why.extend(reasons);
                None
            }
        };
        match change {
            Some(change) if why.is_empty() => {
                let frame = self.next + u64::from(self.begun.is_some());
                tracing::info!("reconfiguration accepted for frame {frame}: {change}");
                self.pending = Some(Pending {
                    file,
                    text,
                    change: change.clone(),
                });
                Ok((frame, change))
            }
            _ => Err(why),
        }
    }

    /// Switches to the pending cluster file at frame `frame`.
    fn switch(&mut self, frame: u64, report: &mut SwapReport) -> Result<(), ClusterError> {
        let Some(Pending { file, text, change }) = self.pending.take() else {
            return Ok(());
        };
        let names: Vec<String> = file.nodes.iter().map(|n| n.name.clone()).collect();
        if let Ok(mut a) = self.gate.allowed.lock() {
            a.clone_from(&names);
        }
        self.gate.assets.allow(file.assets.send);
        self.config.nodes = names;
        let why = format!("removed from the cluster by the reconfiguration at frame {frame}");
        for name in &change.removed {
            let Some(i) = self.nodes.iter().position(|n| &n.name == name) else {
                continue;
            };
            let mut n = self.nodes.remove(i);
            self.head.clear();
            Self::encode(&Message::Shutdown { reason: &why }, &mut self.head)?;
            let _ = n.link.send_encoded(&self.head, &[]);
            self.head.clear();
            tracing::info!("node '{name}' {why}");
            report.dropped.push((name.clone(), why.clone()));
            self.gone.insert(name.clone(), "removed".into());
        }
        self.manager.reconfigure(&file);
        self.config.cluster_file = Some(file);
        self.file_text = Some(text);
        report.reconfigured = Some(frame);
        self.restarting = change.restarted;
        Ok(())
    }

    fn drop_node(
        &mut self,
        name: &str,
        reason: &str,
        report: &mut SwapReport,
    ) -> Result<(), ClusterError> {
        let Some(i) = self.nodes.iter().position(|n| n.name == name) else {
            return Ok(());
        };
        let n = self.nodes.remove(i);
        let _ = n.link.stream.shutdown(std::net::Shutdown::Both);
        tracing::warn!("node '{name}' dropped: {reason}");
        report.dropped.push((name.to_string(), reason.to_string()));
        self.gone.insert(name.to_string(), reason.to_string());
        match self.config.policy {
            FailurePolicy::Drop => Ok(()),
            FailurePolicy::Stop => Err(ClusterError::Policy(format!(
                "node '{name}' failed ({reason}) and the policy is stop"
            ))),
        }
    }

    fn fail_all(
        &mut self,
        failed: Vec<(String, String)>,
        report: &mut SwapReport,
    ) -> Result<(), ClusterError> {
        for (name, why) in failed {
            self.drop_node(&name, &why, report)?;
        }
        Ok(())
    }

    /// Appends `message` to `out`.
    fn encode(message: &Message<'_>, out: &mut Vec<u8>) -> Result<(), ClusterError> {
        encode_into(message, out).map_err(|e| wire("master", e))
    }

    /// Appends every plugin's blocks for `hook` — its changes, or with `whole` its whole
    /// state — and the `EndBlock` closing them to `out`.
    fn encode_hook(
        manager: &mut ClusterManager,
        hook: Hook,
        info: &FrameInfo,
        scene: &Scene,
        whole: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), ClusterError> {
        let mut err = None;
        let emit = |plugin, bytes: &[u8]| {
            if let Err(e) = encode_into(&Message::Block { plugin, bytes }, out) {
                err.get_or_insert(e);
            }
        };
        if whole {
            manager.snapshot_all(hook, info, scene, emit)?;
        } else {
            manager.write_all(hook, info, scene, emit)?;
        }
        if let Some(e) = err {
            return Err(wire("master", e));
        }
        Self::encode(
            &Message::EndBlock {
                frame: info.frame,
                hook,
            },
            out,
        )
    }

    /// Begins frame `info`: takes in nodes that have joined (their first frame, sent with
    /// this one, is a snapshot), switches to a pending cluster file, answers control
    /// clients, then the frame-start hook writes. Call it before the App stage's update;
    /// [`Master::send_frame`] calls it if you did not.
    pub fn begin_frame(&mut self, info: &FrameInfo, scene: &Scene) -> Result<(), ClusterError> {
        if let Some(b) = self.begun {
            return Err(ClusterError::Misuse(format!(
                "frame {} begun while frame {} was not sent yet",
                info.frame, b.frame
            )));
        }
        self.admit()?;
        self.serve_control(None)?;
        let mut report = std::mem::take(&mut self.carry);
        self.switch(info.frame, &mut report)?;
        self.carry = report;
        let started = self.started;
        if !started {
            self.first_frame = Some(info.frame);
        }
        for n in self
            .nodes
            .iter_mut()
            .filter(|n| n.standing == Standing::Joining)
        {
            n.standing = if started {
                Standing::CatchingUp {
                    first: info.frame,
                    since: Instant::now(),
                }
            } else {
                Standing::InStep { from: info.frame }
            };
        }
        self.bytes.clear();
        Self::encode(
            &Message::FrameBegin {
                frame: info.frame,
                time: info.time,
                dt: info.dt,
            },
            &mut self.bytes,
        )?;
        if self.carry.reconfigured == Some(info.frame)
            && let Some(text) = &self.file_text
        {
            Self::encode(
                &Message::Reconfigure {
                    frame: info.frame,
                    config: text,
                },
                &mut self.bytes,
            )?;
        }
        self.deliver_events();
        Self::encode_hook(
            &mut self.manager,
            Hook::FrameStart,
            info,
            scene,
            false,
            &mut self.bytes,
        )?;
        self.begun = Some(*info);
        self.next = info.frame + 1;
        Ok(())
    }

    /// Finishes frame `info` (the pre-draw hook writes, after the App stage's update) and
    /// sends it: the same bytes to every node, and a snapshot to nodes joining with it. If
    /// `pipeline_depth` frames are already in flight, the oldest one's swap barrier runs
    /// first and its `SwapNow` travels in the same write; the report is that barrier's.
    /// Nodes that cannot take the frame are dropped.
    pub fn send_frame(
        &mut self,
        info: &FrameInfo,
        scene: &Scene,
    ) -> Result<SwapReport, ClusterError> {
        match self.begun {
            Some(b) if b.frame == info.frame => {}
            Some(b) => {
                return Err(ClusterError::Misuse(format!(
                    "frame {} sent while frame {} was begun",
                    info.frame, b.frame
                )));
            }
            None => self.begin_frame(info, scene)?,
        }
        Self::encode_hook(
            &mut self.manager,
            Hook::PreDraw,
            info,
            scene,
            false,
            &mut self.bytes,
        )?;
        self.begun = None;
        let mut report = std::mem::take(&mut self.carry);
        self.head.clear();
        let depth = self.config.pipeline_depth.clamp(1, 2);
        if self.in_flight.len() >= depth
            && let Some(oldest) = self.in_flight.pop_front()
        {
            // The frame sent now is made: the swap may latch a pose for the one after it.
            self.barrier(&oldest, scene, &mut report, true)?;
        }
        if self.config.verify {
            if self.hashes.len() >= 4 {
                self.hashes.pop_front();
            }
            let digest = self.hasher.hash(scene);
            self.hashes.push_back((info.frame, digest));
        }
        // After the barrier: the snapshot holds what its post-frame blocks wrote.
        let joining = self.nodes.iter().any(
            |n| matches!(n.standing, Standing::CatchingUp { first, .. } if first == info.frame),
        );
        if joining {
            self.encode_snapshot(info, scene)?;
        }
        self.write_frame(info.frame, &mut report)?;
        self.in_flight.push_back(*info);
        self.started = true;
        if report.swapped.is_some() {
            report.presented = self.presenting(report.swapped.unwrap_or(0));
        }
        Ok(report)
    }

    /// A joiner's first frame: `FrameBegin`, the cluster file if it was ever reconfigured,
    /// every plugin's whole state.
    fn encode_snapshot(&mut self, info: &FrameInfo, scene: &Scene) -> Result<(), ClusterError> {
        self.snapshot.clear();
        Self::encode(
            &Message::FrameBegin {
                frame: info.frame,
                time: info.time,
                dt: info.dt,
            },
            &mut self.snapshot,
        )?;
        if let Some(text) = &self.file_text {
            Self::encode(
                &Message::Reconfigure {
                    frame: info.frame,
                    config: text,
                },
                &mut self.snapshot,
            )?;
        }
        for hook in [Hook::FrameStart, Hook::PreDraw] {
            Self::encode_hook(
                &mut self.manager,
                hook,
                info,
                scene,
                true,
                &mut self.snapshot,
            )?;
        }
        Ok(())
    }

    /// Writes the head and frame `frame` to every node (a joiner's first frame: its
    /// snapshot alone); drops the nodes that cannot take it. Nodes that restart for a
    /// reconfiguration get this frame, then nothing more.
    fn write_frame(&mut self, frame: u64, report: &mut SwapReport) -> Result<(), ClusterError> {
        self.last_sent = self.head.len() + self.bytes.len();
        let mut failed = Vec::new();
        let restarting = std::mem::take(&mut self.restarting);
        for n in &mut self.nodes {
            let result = match n.standing {
                Standing::Leaving { .. } => continue,
                // The swap before its first frame (its post-frame blocks are dropped there):
                // with late latching it carries the pose that frame is projected from.
                Standing::CatchingUp { first, .. } if first == frame => {
                    n.link.send_encoded(&self.head, &self.snapshot)
                }
                _ => n.link.send_encoded(&self.head, &self.bytes),
            };
            if let Err(e) = result {
                failed.push((n.name.clone(), format!("cannot send frame {frame}: {e}")));
            } else if restarting.contains(&n.name) {
                n.standing = Standing::Leaving {
                    since: Instant::now(),
                };
            }
        }
        self.fail_all(failed, report)
    }

    /// The swap barrier of frame `frame`, the oldest in flight, alone: for the last frames,
    /// or for an application that wants each frame presented before it prepares the next.
    /// `scene` is what the post-frame hook sees.
    pub fn swap(
        &mut self,
        frame: u64,
        scene: &Scene,
        report: &mut SwapReport,
    ) -> Result<(), ClusterError> {
        let info = match self.in_flight.front() {
            Some(oldest) if oldest.frame == frame => *oldest,
            _ => {
                return Err(ClusterError::Misuse(format!(
                    "no barrier for frame {frame}: it is not the oldest frame in flight"
                )));
            }
        };
        self.in_flight.pop_front();
        report.absorb(std::mem::take(&mut self.carry));
        self.head.clear();
        let next_made = !self.in_flight.is_empty();
        self.barrier(&info, scene, report, next_made)?;
        let mut failed = Vec::new();
        for n in &mut self.nodes {
            if matches!(n.standing, Standing::Leaving { .. }) {
                continue;
            }
            if let Err(e) = n.link.send_encoded(&self.head, &[]) {
                failed.push((n.name.clone(), format!("cannot send SwapNow {frame}: {e}")));
            }
        }
        self.head.clear();
        self.fail_all(failed, report)?;
        report.presented = self.presenting(frame);
        Ok(())
    }

    /// Nodes that present frame `frame` with the others.
    fn presenting(&self, frame: u64) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.waited_for(frame))
            .map(|n| n.name.clone())
            .collect()
    }

    /// How many frames may be in flight (1 or 2).
    pub fn pipeline_depth(&self) -> usize {
        self.config.pipeline_depth.clamp(1, 2)
    }

    /// The oldest frame in flight when `pipeline_depth` frames are (the next `send_frame`
    /// would first run its barrier). A loop that swaps it before sampling its input shows
    /// that input a barrier's wait sooner.
    pub fn due(&self) -> Option<u64> {
        let depth = self.config.pipeline_depth.clamp(1, 2);
        (self.in_flight.len() >= depth)
            .then(|| self.in_flight())
            .flatten()
    }

    /// The oldest frame sent and not yet swapped, if any.
    pub fn in_flight(&self) -> Option<u64> {
        self.in_flight.front().map(|i| i.frame)
    }

    /// Waits for every in-step node's `SwapReady(frame)` until the deadline and drops the
    /// late or lost ones; looks, without waiting, at the nodes catching up; then
    /// `SwapNow(frame)`, with the head pose latched for the next frame (`made` already or
    /// not), and the post-frame hook's blocks go to `self.head`.
    fn barrier(
        &mut self,
        info: &FrameInfo,
        scene: &Scene,
        report: &mut SwapReport,
        made: bool,
    ) -> Result<(), ClusterError> {
        let frame = info.frame;
        let start = Instant::now();
        // The first frame loads the scene everywhere: the start barrier.
        let loading = self.first_frame == Some(frame);
        let limit = if loading {
            self.config.load_deadline
        } else {
            self.config.swap_deadline
        };
        let deadline = start + limit;
        let mut failed: Vec<(String, String)> = Vec::new();
        let expected = self
            .hashes
            .iter()
            .find(|(f, _)| *f == frame)
            .map(|(_, h)| *h);
        for n in self.nodes.iter_mut().filter(|n| n.waited_for(frame)) {
            let outcome = match n.early.take() {
                Some((f, stats)) if f == frame => Ok(stats),
                _ => wait_ready(n, frame, false, deadline, limit).map(|(_, s)| s),
            };
            match outcome {
                Ok(stats) => {
                    n.heard = Instant::now();
                    n.asked = None;
                    n.ready = Some((frame, stats));
                    n.rate.push(n.heard, Duration::ZERO);
                    check_state(&n.name, frame, expected, &stats, report);
                    report.stats.push((n.name.clone(), stats));
                }
                Err(why) => failed.push((n.name.clone(), why)),
            }
        }
        // Nodes catching up. One still loading is only looked at: in step from this frame
        // if its answer is already here. One that has loaded (it answered a frame after its
        // snapshot) draws at the cluster's pace, so this barrier waits for it once, as for
        // any node: in step from this frame, or from the newer one it drew instead.
        let (load_limit, swap_limit) = (self.config.load_deadline, self.config.swap_deadline);
        for n in &mut self.nodes {
            let Standing::CatchingUp { first, since } = n.standing else {
                continue;
            };
            // At the cluster's pace: it answered one of the last two frames.
            let loaded = n.ready.is_some_and(|(f, _)| f >= first && f + 2 >= frame);
            tracing::debug!(
                "node '{}' catching up at frame {frame}: last ready {:?}, early {:?}",
                n.name,
                n.ready.map(|r| r.0),
                n.early.map(|r| r.0)
            );
            let outcome = if let Some((f, stats)) = n.early.take().filter(|(f, _)| *f >= frame) {
                Ok(Some((f, stats)))
            } else if loaded {
                wait_ready(n, frame, true, Instant::now() + swap_limit, swap_limit).map(Some)
            } else {
                catch_up(n, frame).map(|r| r.map(|s| (frame, s)))
            };
            match outcome {
                Err(why) => failed.push((n.name.clone(), why)),
                Ok(Some((from, stats))) => {
                    n.standing = Standing::InStep { from };
                    n.ready = Some((from, stats));
                    if from == frame {
                        check_state(&n.name, frame, expected, &stats, report);
                        report.stats.push((n.name.clone(), stats));
                    } else {
                        n.early = Some((from, stats));
                    }
                    report.joined.push(n.name.clone());
                    tracing::info!("node '{}' is in step from frame {from}", n.name);
                }
                Ok(None) if since.elapsed() > load_limit => failed.push((
                    n.name.clone(),
                    format!("did not catch up with the cluster within {load_limit:?}"),
                )),
                Ok(None) => {}
            }
        }
        self.fail_all(failed, report)?;
        self.check_leaving();
        report.waited = start.elapsed();
        report.swapped = Some(frame);
        self.swaps.push(Instant::now(), report.waited);
        let head = self.latch_for(frame + 1, made);
        Self::encode(&Message::SwapNow { frame, head }, &mut self.head)?;
        Self::encode_hook(
            &mut self.manager,
            Hook::PostFrame,
            info,
            scene,
            false,
            &mut self.head,
        )
    }

    /// The pose to latch for frame `next` (`made` or not yet), if a latch is set.
    fn latch_for(&mut self, next: u64, made: bool) -> Option<LatchedHead> {
        let head = self.latch.as_mut()?.newest(next, made)?;
        if let Err(why) = head.check() {
            // The frame's own pose stands; a sound one may come with the next swap.
            self.unsound_latches += 1;
            if self.unsound_latches.is_power_of_two() {
                tracing::warn!(
                    "frame {next}: {why}; not latched ({} so far)",
                    self.unsound_latches
                );
            }
            return None;
        }
        self.latched = Some((next, head));
        Some(head)
    }

    /// Tells every node the cluster stops, and closes the session.
    pub fn shutdown(mut self, reason: &str) {
        self.bytes.clear();
        if encode_into(&Message::Shutdown { reason }, &mut self.bytes).is_ok() {
            for n in &mut self.nodes {
                let _ = n.link.send_encoded(&self.bytes, &[]);
            }
        }
    }
}

/// Reads what a node sent between frames: heartbeat answers, or a `SwapReady` kept for its
/// barrier.
fn drain(n: &mut NodeConn) -> Result<(), String> {
    loop {
        match n.link.try_recv() {
            Ok(None) => return Ok(()),
            Ok(Some(m)) => {
                n.heard = Instant::now();
                n.asked = None;
                match m {
                    Message::Heartbeat { .. } => {}
                    Message::SwapReady { frame, stats } => {
                        n.early = Some((frame, stats));
                        n.ready = Some((frame, stats));
                    }
                    Message::Event { name, payload, .. } => {
                        keep_event(&mut n.events, name, payload)?;
                    }
                    Message::Input { payload } => {
                        keep_input(&mut n.input, &mut n.input_bytes, payload)?
                    }
                    other => return Err(unexpected(other)),
                }
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Most events waiting for delivery: four frames' worth.
const MAX_QUEUED_EVENTS: usize = 4 * MAX_EVENTS_PER_FRAME;

/// Most events a node may send between two frames begun (its application may send
/// `MAX_EVENTS_SENT_PER_FRAME` per frame, and pipelining can put several of its frames in
/// that time): more is a node out of control, dropped rather than buffered.
const MAX_NODE_EVENTS: usize = 4 * crate::plugins::MAX_EVENTS_SENT_PER_FRAME;

/// Most bytes of input a node may send between two frames begun.
pub const MAX_NODE_INPUT: usize = 256 * 1024;

/// Most batches of input a node may send between two frames begun (one a frame; more while
/// the master is slower than the node's own loop).
const MAX_NODE_INPUT_BATCHES: usize = 64;

/// Keeps a batch of input a node's devices reported, for the next frame begun.
fn keep_input(kept: &mut Vec<Vec<u8>>, bytes: &mut usize, payload: &[u8]) -> Result<(), String> {
    if *bytes + payload.len() > MAX_NODE_INPUT || kept.len() >= MAX_NODE_INPUT_BATCHES {
        return Err(format!(
            "sent more than {MAX_NODE_INPUT} bytes or {MAX_NODE_INPUT_BATCHES} batches of input in one frame"
        ));
    }
    *bytes += payload.len();
    kept.push(payload.to_vec());
    Ok(())
}

/// Keeps an event a node sent, for the master to check and queue at the next frame begun.
fn keep_event(kept: &mut Vec<(String, Vec<u8>)>, name: &str, payload: &[u8]) -> Result<(), String> {
    if kept.len() >= MAX_NODE_EVENTS {
        return Err(format!(
            "sent more than {MAX_NODE_EVENTS} events in one frame"
        ));
    }
    kept.push((name.to_string(), payload.to_vec()));
    Ok(())
}

/// Largest message a node may send: an event of the largest payload, with room for its name.
const NODE_MAX_FRAME: usize = MAX_EVENT_PAYLOAD + 1024;

fn unexpected(m: Message<'_>) -> String {
    match m {
        Message::Refused { reason } => format!("it left: {}", lockstep_wire::printable(reason)),
        other => format!("sent an unexpected {} message", other.kind()),
    }
}

/// Waits for a node's `SwapReady(frame)` (or, `or_later`, of any frame from `frame` on)
/// until `deadline`.
fn wait_ready(
    n: &mut NodeConn,
    frame: u64,
    or_later: bool,
    deadline: Instant,
    limit: Duration,
) -> Result<(u64, NodeStats), String> {
    loop {
        // Past the deadline (spent waiting on a slower node), still take what this node has
        // already sent: it was on time.
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        if let Err(e) = n.link.stream.set_read_timeout(Some(left)) {
            return Err(format!("cannot wait for it: {e}"));
        }
        match n.link.recv() {
            Ok(Message::SwapReady { frame: f, stats }) if f == frame || (or_later && f > frame) => {
                return Ok((f, stats));
            }
            // A late answer to an earlier frame, or a sign of life.
            Ok(Message::SwapReady { .. } | Message::Heartbeat { .. }) => {}
            Ok(Message::Event { name, payload, .. }) => {
                keep_event(&mut n.events, name, payload)?;
            }
            Ok(Message::Input { payload }) => {
                keep_input(&mut n.input, &mut n.input_bytes, payload)?
            }
            Ok(other) => return Err(unexpected(other)),
            Err(ClusterError::Timeout { .. }) => {
                return Err(format!(
                    "missed the swap deadline of {limit:?} at frame {frame}"
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Looks, without waiting, at what a node catching up sent: its stats if it is ready for
/// `frame` before `frame`'s `SwapNow` left.
fn catch_up(n: &mut NodeConn, frame: u64) -> Result<Option<NodeStats>, String> {
    loop {
        match n.link.try_recv() {
            Ok(None) => return Ok(None),
            Ok(Some(m)) => {
                n.heard = Instant::now();
                n.asked = None;
                match m {
                    Message::SwapReady { frame: f, stats } => {
                        n.ready = Some((f, stats));
                        n.rate.push(n.heard, Duration::ZERO);
                        if f == frame {
                            return Ok(Some(stats));
                        }
                    }
                    Message::Heartbeat { .. } => {}
                    Message::Event { name, payload, .. } => {
                        keep_event(&mut n.events, name, payload)?;
                    }
                    Message::Input { payload } => {
                        keep_input(&mut n.input, &mut n.input_bytes, payload)?
                    }
                    other => return Err(unexpected(other)),
                }
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// With `verify`: compares a node's reported state with the master's.
fn check_state(
    node: &str,
    frame: u64,
    expected: Option<u64>,
    stats: &NodeStats,
    report: &mut SwapReport,
) {
    let (Some(expected), Some(got)) = (expected, stats.state) else {
        return;
    };
    report.verified += 1;
    if expected != got {
        tracing::warn!(
            "node '{node}' shows another state than the master at frame {frame}: {got:016x}, not {expected:016x}"
        );
        report.mismatches.push(Mismatch {
            node: node.to_string(),
            frame,
            expected,
            got,
        });
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
