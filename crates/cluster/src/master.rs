/*!
The master's side of a session: it accepts render nodes (each authenticated on its own thread,
so a slow or hostile connection never delays the frame loop), sends every frame as one buffer
encoded once, and runs the swap barrier.
*/
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lockstep_scene::Scene;
use lockstep_wire::handshake::ServerStep;
use lockstep_wire::{
    ClusterKey, HANDSHAKE_MAX_FRAME, Message, NodeStats, ServerHandshake, encode_into, random_nonce,
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
}

struct Joined {
    name: String,
    stream: TcpStream,
}

struct NodeConn {
    name: String,
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
    bytes: Vec<u8>,
    /// The frame in flight carries the whole scene to someone.
    loading: bool,
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
            loading: false,
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

    /// Takes nodes that finished their handshake into the session (at a frame boundary).
    fn admit(&mut self) -> Result<bool, ClusterError> {
        let joined: Vec<Joined> = match self.joined.lock() {
            Ok(mut j) => j.drain(..).collect(),
            Err(_) => return Err(ClusterError::Stopped("the accept thread panicked".into())),
        };
        let any = !joined.is_empty();
        for j in joined {
            tracing::info!("node '{}' joined", j.name);
            let link = Link::new(j.stream, format!("node '{}'", j.name), HANDSHAKE_MAX_FRAME)?;
            self.nodes.push(NodeConn { name: j.name, link });
        }
        // Cluster-file order, whatever order they connected in: reports read the same each run.
        let order = &self.config.nodes;
        self.nodes.sort_by_key(|n| {
            order
                .iter()
                .position(|o| *o == n.name)
                .unwrap_or(usize::MAX)
        });
        Ok(any)
    }

    /// The start barrier: waits until every node of the configuration has joined.
    pub fn wait_for_nodes(&mut self, timeout: Duration) -> Result<(), ClusterError> {
        let start = Instant::now();
        loop {
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

    /// Sends frame `info`: `FrameBegin`, every plugin's block, `EndBlock`, encoded once and
    /// written to every node. Nodes that cannot take it are dropped.
    pub fn send_frame(
        &mut self,
        info: &FrameInfo,
        scene: &Scene,
    ) -> Result<SwapReport, ClusterError> {
        if self.admit()? {
            self.manager.resync();
            self.loading = true;
        }
        self.bytes.clear();
        let mut err = None;
        encode_into(
            &Message::FrameBegin {
                frame: info.frame,
                time: info.time,
                dt: info.dt,
            },
            &mut self.bytes,
        )
        .map_err(|e| wire("master", e))?;
        let bytes = &mut self.bytes;
        self.manager.write_all(info, scene, |plugin, block| {
            if let Err(e) = encode_into(
                &Message::Block {
                    plugin,
                    bytes: block,
                },
                bytes,
            ) {
                err.get_or_insert(e);
            }
        })?;
        if let Some(e) = err {
            return Err(wire("master", e));
        }
        encode_into(&Message::EndBlock { frame: info.frame }, &mut self.bytes)
            .map_err(|e| wire("master", e))?;
        let mut report = SwapReport::default();
        let mut failed = Vec::new();
        for n in &mut self.nodes {
            if let Err(e) = n.link.stream.write_all(&self.bytes) {
                failed.push((
                    n.name.clone(),
                    format!("cannot send frame {}: {e}", info.frame),
                ));
            }
        }
        for (name, why) in failed {
            self.drop_node(&name, &why, &mut report)?;
        }
        Ok(report)
    }

    /// The swap barrier of frame `frame`: waits for every node's `SwapReady` until the
    /// deadline, drops the late or lost ones, then tells the rest to present.
    pub fn swap(&mut self, frame: u64, report: &mut SwapReport) -> Result<(), ClusterError> {
        let start = Instant::now();
        let limit = if std::mem::take(&mut self.loading) {
            self.config.load_deadline
        } else {
            self.config.swap_deadline
        };
        let deadline = start + limit;
        let mut failed: Vec<(String, String)> = Vec::new();
        for n in &mut self.nodes {
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
        self.bytes.clear();
        encode_into(&Message::SwapNow { frame }, &mut self.bytes).map_err(|e| wire("master", e))?;
        let mut failed = Vec::new();
        for n in &mut self.nodes {
            if let Err(e) = n.link.stream.write_all(&self.bytes) {
                failed.push((n.name.clone(), format!("cannot send SwapNow: {e}")));
            }
        }
        for (name, why) in failed {
            self.drop_node(&name, &why, report)?;
        }
        report.presented = self.node_names();
        report.waited = start.elapsed();
        Ok(())
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
