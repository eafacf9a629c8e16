/*!
The master's side of a session: it accepts render nodes (each authenticated on its own thread,
so a slow or hostile connection never delays the frame loop), sends every frame as one buffer
encoded once, and runs the swap barrier.

A frame is begun ([`Master::begin_frame`]: `FrameBegin` and the frame-start blocks), finished
and sent ([`Master::send_frame`]: the pre-draw blocks). Its barrier runs either alone
([`Master::swap`]) or, pipelined, inside a later `send_frame`: with a pipeline depth of 2 the
master prepares frame F+2 while the nodes draw F (and already hold F+1), then waits for their
`SwapReady(F)`, and `SwapNow(F)`, F's post-frame blocks and frame F+2 leave in one write per
node — the same number of writes as a bare barrier.
*/
use std::collections::VecDeque;
use std::io::{IoSlice, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lockstep_scene::Scene;
use lockstep_wire::handshake::ServerStep;
use lockstep_wire::{
    ClusterKey, HANDSHAKE_MAX_FRAME, Hook, Message, NodeStats, ServerHandshake, encode_into,
    random_nonce,
};

use crate::link::{Link, io, wire};
use crate::{ClusterError, ClusterManager, FrameInfo};

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
    /// How long the barrier waits at a frame that brings nodes the whole scene (the first
    /// frame, or the one after a node joins): loading meshes and textures and starting the
    /// GPU take longer than a frame (the start barrier).
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
}

struct Joined {
    name: String,
    stream: TcpStream,
}

struct NodeConn {
    name: String,
    /// The first frame it was sent (none until the next frame begins): it takes part in
    /// barriers from that frame on, and that frame's barrier, which brings it the whole
    /// scene, waits the load deadline.
    first_frame: Option<u64>,
    /// Frames are written to its stream; `SwapReady` is read from it by the barrier itself,
    /// on the master's thread: no reader thread and no channel between a node's answer and
    /// the barrier (each would cost a thread wake-up per frame).
    link: Link,
}

/// What one barrier saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SwapReport {
    /// Nodes that presented the frame.
    pub presented: Vec<String>,
    /// Nodes dropped at this frame, with the reason.
    pub dropped: Vec<(String, String)>,
    /// Each presenting node's stats.
    pub stats: Vec<(String, NodeStats)>,
    /// The frame whose barrier this report covers (none from a `send_frame` that ran no
    /// barrier).
    pub swapped: Option<u64>,
    /// How long the barrier waited.
    pub waited: Duration,
}

/// A running master session.
pub struct Master {
    config: MasterConfig,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    joined: Arc<Mutex<Vec<Joined>>>,
    nodes: Vec<NodeConn>,
    /// The frame being assembled: `FrameBegin`, then each hook's blocks.
    bytes: Vec<u8>,
    /// What precedes it on the wire: `SwapNow` of the frame before, and that frame's
    /// post-frame blocks.
    head: Vec<u8>,
    /// The frame begun and not yet sent.
    begun: Option<FrameInfo>,
    /// Frames sent whose barrier has not run yet, oldest first.
    in_flight: VecDeque<FrameInfo>,
    /// The manager whose plugins write each frame.
    pub manager: ClusterManager,
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
        let joined = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let (stop, joined, config) = (stop.clone(), joined.clone(), config.clone());
            std::thread::Builder::new()
                .name("accept".into())
                .spawn(move || accept_loop(listener, stop, joined, config))
                .map_err(|e| io("accept", "cannot start the accept thread", e))?
        };
        Ok(Master {
            config,
            addr,
            stop,
            accept: Some(accept),
            joined,
            nodes: Vec::new(),
            bytes: Vec::new(),
            head: Vec::new(),
            begun: None,
            in_flight: VecDeque::with_capacity(2),
            manager,
        })
    }

    /// Where the master listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Names of the nodes in the session.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// Takes nodes that finished their handshake into the session; they start with the next
    /// frame begun.
    fn admit(&mut self) -> Result<(), ClusterError> {
        let joined: Vec<Joined> = match self.joined.lock() {
            Ok(mut j) => j.drain(..).collect(),
            Err(_) => return Err(ClusterError::Stopped("the accept thread panicked".into())),
        };
        for j in joined {
            tracing::info!("node '{}' joined", j.name);
            let link = Link::new(j.stream, format!("node '{}'", j.name), HANDSHAKE_MAX_FRAME)?;
            self.nodes.push(NodeConn {
                name: j.name,
                first_frame: None,
                link,
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

    /// The start barrier, given up as soon as `stop` is set.
    pub fn wait_for_nodes_unless(
        &mut self,
        timeout: Duration,
        stop: &AtomicBool,
    ) -> Result<(), ClusterError> {
        let start = Instant::now();
        loop {
            if stop.load(Ordering::Relaxed) {
                return Err(ClusterError::Stopped(
                    "stopped while waiting for the nodes to join".into(),
                ));
            }
            self.admit()?;
            let missing: Vec<&String> = self
                .config
                .nodes
                .iter()
                .filter(|n| !self.nodes.iter().any(|c| &c.name == *n))
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(ClusterError::Timeout {
                    peer: "start barrier".into(),
                    what: format!("nodes {missing:?} did not join within {timeout:?}"),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
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
        match self.config.policy {
            FailurePolicy::Drop => Ok(()),
            FailurePolicy::Stop => Err(ClusterError::Stopped(format!(
                "node '{name}' failed ({reason}) and the policy is stop"
            ))),
        }
    }

    /// Appends `message` to `out`.
    fn encode(message: &Message<'_>, out: &mut Vec<u8>) -> Result<(), ClusterError> {
        encode_into(message, out).map_err(|e| wire("master", e))
    }

    /// Appends every plugin's blocks for `hook` and the `EndBlock` closing them to `out`.
    fn encode_hook(
        manager: &mut ClusterManager,
        hook: Hook,
        info: &FrameInfo,
        scene: &Scene,
        out: &mut Vec<u8>,
    ) -> Result<(), ClusterError> {
        let mut err = None;
        manager.write_all(hook, info, scene, |plugin, bytes| {
            if let Err(e) = encode_into(&Message::Block { plugin, bytes }, out) {
                err.get_or_insert(e);
            }
        })?;
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

    /// Begins frame `info`: takes in nodes that have joined (they start with this frame, and
    /// every plugin resends its full state), then the frame-start hook writes. Call it
    /// before the App stage's update; [`Master::send_frame`] calls it if you did not.
    pub fn begin_frame(&mut self, info: &FrameInfo, scene: &Scene) -> Result<(), ClusterError> {
        if let Some(b) = self.begun {
            return Err(ClusterError::Stopped(format!(
                "frame {} begun while frame {} was not sent yet",
                info.frame, b.frame
            )));
        }
        self.admit()?;
        let mut joining = false;
        for n in self.nodes.iter_mut().filter(|n| n.first_frame.is_none()) {
            n.first_frame = Some(info.frame);
            joining = true;
        }
        if joining {
            self.manager.resync();
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
        Self::encode_hook(
            &mut self.manager,
            Hook::FrameStart,
            info,
            scene,
            &mut self.bytes,
        )?;
        self.begun = Some(*info);
        Ok(())
    }

    /// Finishes frame `info` (the pre-draw hook writes, after the App stage's update) and
    /// sends it: the same bytes to every node. If `pipeline_depth` frames are already in
    /// flight, the oldest one's swap barrier runs first and its `SwapNow` travels in the same
    /// write; the report is that barrier's. Nodes that cannot take the frame are dropped.
    pub fn send_frame(
        &mut self,
        info: &FrameInfo,
        scene: &Scene,
    ) -> Result<SwapReport, ClusterError> {
        match self.begun {
            Some(b) if b.frame == info.frame => {}
            Some(b) => {
                return Err(ClusterError::Stopped(format!(
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
            &mut self.bytes,
        )?;
        self.begun = None;
        let mut report = SwapReport::default();
        self.head.clear();
        let depth = self.config.pipeline_depth.clamp(1, 2);
        if self.in_flight.len() >= depth
            && let Some(oldest) = self.in_flight.pop_front()
        {
            self.barrier(&oldest, scene, &mut report)?;
        }
        self.write_to_nodes(true, &format!("frame {}", info.frame), &mut report)?;
        self.in_flight.push_back(*info);
        if report.swapped.is_some() {
            report.presented = self.node_names();
        }
        Ok(report)
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
                return Err(ClusterError::Stopped(format!(
                    "no barrier for frame {frame}: it is not the oldest frame in flight"
                )));
            }
        };
        self.in_flight.pop_front();
        self.head.clear();
        self.barrier(&info, scene, report)?;
        self.write_to_nodes(false, &format!("SwapNow {frame}"), report)?;
        report.presented = self.node_names();
        Ok(())
    }

    /// Writes `self.head`, and `self.bytes` too if `with_frame`, to every node in one
    /// system call each; drops the nodes that cannot take `what`.
    fn write_to_nodes(
        &mut self,
        with_frame: bool,
        what: &str,
        report: &mut SwapReport,
    ) -> Result<(), ClusterError> {
        let frame: &[u8] = if with_frame { &self.bytes } else { &[] };
        let mut failed = Vec::new();
        for n in &mut self.nodes {
            if let Err(e) = write_both(&mut n.link.stream, &self.head, frame) {
                failed.push((n.name.clone(), format!("cannot send {what}: {e}")));
            }
        }
        for (name, why) in failed {
            self.drop_node(&name, &why, report)?;
        }
        Ok(())
    }

    /// The oldest frame sent and not yet swapped, if any.
    pub fn in_flight(&self) -> Option<u64> {
        self.in_flight.front().map(|i| i.frame)
    }

    /// Waits for every node's `SwapReady(frame)` until the deadline and drops the late or
    /// lost ones; then `SwapNow(frame)` and the post-frame hook's blocks go to `self.head`.
    fn barrier(
        &mut self,
        info: &FrameInfo,
        scene: &Scene,
        report: &mut SwapReport,
    ) -> Result<(), ClusterError> {
        let frame = info.frame;
        let start = Instant::now();
        let loading = self.nodes.iter().any(|n| n.first_frame == Some(frame));
        let limit = if loading {
            self.config.load_deadline
        } else {
            self.config.swap_deadline
        };
        let deadline = start + limit;
        let mut failed: Vec<(String, String)> = Vec::new();
        for n in self
            .nodes
            .iter_mut()
            .filter(|n| n.first_frame.is_some_and(|f| f <= frame))
        {
            let outcome = loop {
                // Past the deadline (spent waiting on a slower node), still take what this
                // node has already sent: it was on time.
                let left = deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1));
                if let Err(e) = n.link.stream.set_read_timeout(Some(left)) {
                    break Err(format!("cannot wait for it: {e}"));
                }
                match n.link.recv() {
                    Ok(Message::SwapReady { frame: f, stats }) if f == frame => break Ok(stats),
                    // A late answer to an earlier frame, or a sign of life.
                    Ok(Message::SwapReady { .. } | Message::Heartbeat { .. }) => {}
                    Ok(Message::Refused { reason }) => break Err(format!("it left: {reason}")),
                    Ok(other) => break Err(format!("sent an unexpected {} message", other.kind())),
                    Err(ClusterError::Timeout { .. }) => {
                        break Err(format!(
                            "missed the swap deadline of {limit:?} at frame {frame}"
                        ));
                    }
                    Err(e) => break Err(e.to_string()),
                }
            };
            match outcome {
                Ok(stats) => report.stats.push((n.name.clone(), stats)),
                Err(why) => failed.push((n.name.clone(), why)),
            }
        }
        for (name, why) in failed {
            self.drop_node(&name, &why, report)?;
        }
        report.waited = start.elapsed();
        report.swapped = Some(frame);
        Self::encode(&Message::SwapNow { frame }, &mut self.head)?;
        Self::encode_hook(
            &mut self.manager,
            Hook::PostFrame,
            info,
            scene,
            &mut self.head,
        )
    }

    /// Tells every node the cluster stops, and closes the session.
    pub fn shutdown(mut self, reason: &str) {
        self.bytes.clear();
        if encode_into(&Message::Shutdown { reason }, &mut self.bytes).is_ok() {
            for n in &mut self.nodes {
                let _ = n.link.stream.write_all(&self.bytes);
            }
        }
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept thread blocked in accept().
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        for n in &self.nodes {
            let _ = n.link.stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Writes `a` then `b` with as few system calls as the kernel allows (one, normally).
fn write_both(stream: &mut TcpStream, a: &[u8], b: &[u8]) -> std::io::Result<()> {
    let mut parts = [IoSlice::new(a), IoSlice::new(b)];
    let mut parts: &mut [IoSlice<'_>] = &mut parts;
    // Drop empty parts first: with nothing left to write, a write of 0 bytes is no error.
    IoSlice::advance_slices(&mut parts, 0);
    while !parts.is_empty() {
        match stream.write_vectored(parts) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut parts, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn accept_loop(
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    joined: Arc<Mutex<Vec<Joined>>>,
    config: MasterConfig,
) {
    for conn in listener.incoming() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(stream) = conn else { continue };
        let (joined, config) = (joined.clone(), config.clone());
        // Each handshake on its own thread: a peer that sends nothing only holds its thread,
        // until the handshake timeout closes it.
        let _ = std::thread::Builder::new()
            .name("handshake".into())
            .spawn(move || {
                let peer = stream
                    .peer_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_else(|_| "unknown peer".into());
                match handshake(stream, &peer, &config) {
                    Ok(j) => {
                        if let Ok(mut v) = joined.lock() {
                            v.push(j);
                        }
                    }
                    Err(e) => tracing::warn!("refused {peer}: {e}"),
                }
            });
    }
}

fn handshake(stream: TcpStream, peer: &str, config: &MasterConfig) -> Result<Joined, ClusterError> {
    let mut link = Link::new(stream, peer.to_string(), HANDSHAKE_MAX_FRAME)?;
    link.set_timeout(Some(config.handshake_timeout))?;
    let nonce = random_nonce().map_err(|e| wire(peer, e))?;
    let mut hs = ServerHandshake::new(config.key.clone(), &config.cluster, nonce, config.max_frame);
    let result = (|| loop {
        let msg = link.recv()?;
        let step = hs.handle(&msg).map_err(|e| wire(peer, e));
        match step? {
            ServerStep::Challenge(reply) => link.send(&reply)?,
            ServerStep::Accept { node, max_frame } => {
                if !config.nodes.contains(&node) {
                    return Err(ClusterError::Stopped(format!(
                        "node name '{node}' is not in the cluster file"
                    )));
                }
                link.send(&Message::Welcome { max_frame })?;
                return Ok(node);
            }
        }
    })();
    match result {
        Ok(name) => {
            link.set_timeout(Some(config.swap_deadline.max(Duration::from_secs(1))))?;
            link.stream
                .set_read_timeout(None)
                .map_err(|e| io(peer, "cannot clear the timeout", e))?;
            Ok(Joined {
                name,
                stream: link.stream,
            })
        }
        Err(e) => {
            let reason = e.to_string();
            let _ = link.send(&Message::Refused { reason: &reason });
            Err(e)
        }
    }
}
