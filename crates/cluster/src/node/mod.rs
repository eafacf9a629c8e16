/*!
A render node's side of a session. A reader thread owns the socket's receiving half and routes
what the master sends: whole frames (from `FrameBegin` to `EndBlock`) to the App side, and
`SwapNow` to the Draw side, so the two can live on different threads. It answers heartbeats
itself, and never stops reading: a node that is loading or behind queues frames instead of
making the master's writes block (the master drops a node that stays behind longer than its
load deadline, which bounds the queue).

A node that falls behind — a late joiner loading its first frame — catches up by applying
every frame whose `SwapNow` has already passed and drawing only the newest, and presents only
frames whose `SwapNow` it was waiting for: never a stale one.
*/
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lockstep_display::ClusterConfig;
use lockstep_scene::Scene;
use lockstep_wire::admission::ask_until_admitted;
use lockstep_wire::{ClusterKey, HANDSHAKE_MAX_FRAME, LatchedHead, Message, NodeStats, WireError};

mod from_master;

use from_master::FromMaster;

use crate::frame::{Assembler, FrameBlocks, Step};
use crate::link::{Link, client_handshake};
use crate::{AppIdentity, ClusterError, ClusterManager, FrameInfo};

/// How a node joins.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Cluster name.
    pub cluster: String,
    /// The shared key.
    pub key: ClusterKey,
    /// This node's name in the cluster file.
    pub name: String,
    /// The master's address.
    pub master: SocketAddr,
    /// How long to try to reach the master and finish the handshake.
    pub connect_timeout: Duration,
    /// Silence from the master after which it counts as gone (it sends heartbeats when no
    /// frame is in flight).
    pub master_timeout: Duration,
    /// The cluster file this node was started with: a new file from the master is read as
    /// if it were this one (relative paths, error messages).
    pub cluster_file: PathBuf,
    /// The application this node runs, sent in its `Join` (its plugin list is taken from
    /// the manager it connects with).
    pub identity: AppIdentity,
}

impl NodeConfig {
    /// Node `name` of cluster `cluster`, whose master is at `master`: 30 s to connect, the
    /// master counts as gone after 2 s of silence.
    pub fn new(cluster: &str, key: ClusterKey, name: &str, master: SocketAddr) -> Self {
        NodeConfig {
            cluster: cluster.to_string(),
            key,
            name: name.to_string(),
            master,
            connect_timeout: Duration::from_secs(30),
            master_timeout: Duration::from_secs(2),
            cluster_file: PathBuf::from("cluster.toml"),
            identity: AppIdentity::default(),
        }
    }

    /// How long to try to reach the master.
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// Silence after which the master counts as gone.
    pub fn master_timeout(mut self, t: Duration) -> Self {
        self.master_timeout = t;
        self
    }

    /// The cluster file's path.
    pub fn cluster_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.cluster_file = path.into();
        self
    }

    /// The application this node runs.
    pub fn identity(mut self, identity: AppIdentity) -> Self {
        self.identity = identity;
        self
    }

    /// The same, with the plugin list of `manager`.
    fn joining_with(&self, manager: &ClusterManager) -> NodeConfig {
        let mut c = self.clone();
        c.identity.plugins = crate::join::PluginEntry::all(manager);
        c
    }
}

/// One frame's data as it arrived.
struct FrameData {
    info: FrameInfo,
    blocks: FrameBlocks,
}

enum ToApp {
    Frame(FrameData),
    /// The master stopped; the last frame's post-frame blocks.
    Shutdown(String, FrameBlocks),
    /// The session ended: the connection was lost, or the master broke the protocol.
    Ended(ClusterError),
}

/// The `SwapNow`s a node has received: the newest, and the head pose it carried.
#[derive(Debug, Default, Clone, Copy)]
struct Swaps {
    newest: Option<u64>,
    latched: Option<(u64, LatchedHead)>,
}

impl Swaps {
    fn record(&mut self, frame: u64, head: Option<LatchedHead>) {
        self.newest = Some(frame);
        self.latched = head.map(|h| (frame, h));
    }

    /// Whether the swap before frame `frame` has yet to come (the node's first frame: the
    /// master sends that swap before it, or two deep after it).
    fn before_pending(&self, frame: u64) -> bool {
        frame > 0 && self.newest.is_none_or(|n| n + 1 < frame)
    }

    /// The pose the swap before frame `frame` latched for it, if it did.
    fn latched_for(&self, frame: u64) -> Option<LatchedHead> {
        self.latched
            .filter(|(f, _)| f.checked_add(1) == Some(frame))
            .map(|(_, h)| h)
    }
}

enum ToDraw {
    SwapNow(u64, Option<LatchedHead>),
    Ended(ClusterError),
}

/// The App side of a node: frames from the master.
pub struct NodeSession {
    name: String,
    origin: PathBuf,
    frames: Receiver<ToApp>,
    /// Applied frames' buffers go back to the reader thread for the next frames.
    recycle: Sender<FrameBlocks>,
    /// One more than the newest frame whose `SwapNow` the reader has seen.
    swapped: Arc<AtomicU64>,
    /// A frame taken from the queue while catching up, to apply next.
    held: Option<ToApp>,
    /// The cluster file the master switched to, not yet taken.
    config: Option<Box<ClusterConfig>>,
    /// The sending half, shared with the Draw side and the reader (events go out on it).
    writer: Arc<Mutex<Link>>,
    /// The plugins that apply each frame's blocks.
    pub manager: ClusterManager,
}

/// The Draw side of a node: `SwapReady` out, `SwapNow` in.
pub struct SwapLink {
    name: String,
    /// The master's address, as errors name it.
    master: String,
    /// Shared with the reader thread, which answers heartbeats: those come only while no
    /// frame is in flight, so the lock is never waited for on the frame path.
    writer: Arc<Mutex<Link>>,
    swaps: Receiver<ToDraw>,
    /// The `SwapNow`s already received.
    swapped: Swaps,
    master_timeout: Duration,
}

/// Connects and authenticates within the connect timeout (a master too busy with other
/// handshakes is asked again); the link's frame limit is the one the master announced.
pub(crate) fn dial(config: &NodeConfig) -> Result<Link, ClusterError> {
    let deadline = Instant::now() + config.connect_timeout;
    let busy = |e: &ClusterError| match e {
        ClusterError::Wire {
            source: WireError::Busy(why),
            ..
        } => {
            tracing::debug!("master {}: {why}; asking again", config.master);
            true
        }
        _ => false,
    };
    ask_until_admitted(deadline, busy, || dial_once(config, deadline))
}

fn dial_once(config: &NodeConfig, deadline: Instant) -> Result<Link, ClusterError> {
    let peer = format!("master {}", config.master);
    let stream = loop {
        match TcpStream::connect_timeout(&config.master, Duration::from_millis(500)) {
            Ok(s) => break s,
            Err(e) if Instant::now() < deadline => {
                tracing::debug!("{peer}: {e}; retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => {
                return Err(ClusterError::Unreachable {
                    peer,
                    within: config.connect_timeout,
                    source: Arc::new(e),
                });
            }
        }
    };
    let mut link = Link::new(stream, peer.clone(), HANDSHAKE_MAX_FRAME)?;
    link.set_timeout(Some(config.connect_timeout))?;
    // A node says what it runs; a service connection (a leading `@`) runs nothing.
    let join = (!config.name.starts_with('@')).then(|| config.identity.to_message());
    let max_frame = client_handshake(
        &mut link,
        &config.key,
        &config.cluster,
        &config.name,
        deadline,
        join.as_ref(),
    )?;
    link.set_max_frame(max_frame);
    link.set_timeout(Some(config.master_timeout))?;
    Ok(link)
}

/// Connects, authenticates, and returns the two halves (App side and Draw side), served by
/// one reader thread.
pub fn connect(
    config: &NodeConfig,
    manager: ClusterManager,
) -> Result<(NodeSession, SwapLink), ClusterError> {
    let mut link = dial(&config.joining_with(&manager))?;
    let peer = link.peer.clone();
    let writer = Arc::new(Mutex::new(link.split_writer()?));
    let max_frame = link.max_frame();
    let src = FromMaster::new(
        link,
        Some(writer.clone()),
        config.master_timeout,
        config.key.clone(),
        &config.cluster,
        max_frame,
    );
    let (app_tx, frames) = mpsc::channel::<ToApp>();
    let (draw_tx, swaps) = mpsc::channel::<ToDraw>();
    let (recycle, recycled) = mpsc::channel::<FrameBlocks>();
    let swapped = Arc::new(AtomicU64::new(0));
    {
        let (writer, swapped) = (writer.clone(), swapped.clone());
        std::thread::Builder::new()
            .name("from master".into())
            .spawn(move || read_loop(src, writer, swapped, app_tx, draw_tx, recycled))
            .map_err(|e| ClusterError::Internal(format!("cannot start the reader thread: {e}")))?;
    }
    Ok((
        NodeSession {
            name: config.name.clone(),
            origin: config.cluster_file.clone(),
            frames,
            recycle,
            swapped,
            held: None,
            config: None,
            writer: writer.clone(),
            manager,
        },
        SwapLink {
            name: config.name.clone(),
            master: peer.clone(),
            writer,
            swaps,
            swapped: Swaps::default(),
            master_timeout: config.master_timeout,
        },
    ))
}

fn read_loop(
    mut src: FromMaster,
    writer: Arc<Mutex<Link>>,
    swapped: Arc<AtomicU64>,
    app: Sender<ToApp>,
    draw: Sender<ToDraw>,
    recycled: Receiver<FrameBlocks>,
) {
    let mut frames = Assembler::default();
    let ended = loop {
        let step = match src.next(|msg| frames.accept(msg)) {
            Ok(s) => s,
            Err(e) => break e,
        };
        match step {
            Ok(Step::More) => {}
            Ok(Step::Frame(info)) => {
                let mut next = recycled.try_recv().unwrap_or_default();
                next.clear();
                let blocks = std::mem::replace(&mut frames.blocks, next);
                if app.send(ToApp::Frame(FrameData { info, blocks })).is_err() {
                    return;
                }
            }
            Ok(Step::SwapNow(frame, head)) => {
                swapped.fetch_max(frame + 1, Ordering::Relaxed);
                if draw.send(ToDraw::SwapNow(frame, head)).is_err() {
                    return;
                }
            }
            Ok(Step::Heartbeat(seq)) => {
                let answered = match writer.lock() {
                    Ok(mut w) => w.send(&Message::Heartbeat { seq }),
                    Err(_) => return,
                };
                if let Err(e) = answered {
                    break e;
                }
            }
            Ok(Step::Shutdown(reason)) => {
                let blocks = std::mem::take(&mut frames.blocks);
                let _ = app.send(ToApp::Shutdown(reason.clone(), blocks));
                let _ = draw.send(ToDraw::Ended(ClusterError::Shutdown(reason)));
                return;
            }
            Err(what) => {
                break ClusterError::Protocol {
                    peer: src.link.peer.clone(),
                    what,
                };
            }
        }
    };
    let _ = app.send(ToApp::Ended(ended.clone()));
    let _ = draw.send(ToDraw::Ended(ended));
}

impl NodeSession {
    /// Waits for the next frame and applies its blocks to `scene`; `None` when the master
    /// shut the cluster down. A node that is behind applies every frame already swapped
    /// without drawing it, and returns the newest.
    pub fn next_frame(&mut self, scene: &mut Scene) -> Result<Option<FrameInfo>, ClusterError> {
        let mut next = match self.held.take() {
            Some(m) => m,
            None => self.frames.recv().map_err(|_| self.ended())?,
        };
        loop {
            match next {
                ToApp::Frame(f) => {
                    if let Some(c) = f.blocks.apply(&mut self.manager, scene, &self.origin)? {
                        self.config = Some(Box::new(c));
                    }
                    // If the reader has ended, the buffer is simply dropped.
                    let _ = self.recycle.send(f.blocks);
                    let past = f.info.frame < self.swapped.load(Ordering::Relaxed);
                    if past {
                        match self.frames.try_recv() {
                            Ok(m) => {
                                next = m;
                                continue;
                            }
                            Err(TryRecvError::Empty | TryRecvError::Disconnected) => {}
                        }
                    }
                    return Ok(Some(f.info));
                }
                ToApp::Shutdown(reason, post) => {
                    post.apply(&mut self.manager, scene, &self.origin)?;
                    tracing::info!("node '{}': the master shut down: {reason}", self.name);
                    return Ok(None);
                }
                ToApp::Ended(e) => return Err(e),
            }
        }
    }

    /// The cluster file the master switched to with the frames applied since the last
    /// call, if it did: every plugin's reconfigure hook has already seen it.
    pub fn take_config(&mut self) -> Option<ClusterConfig> {
        self.config.take().map(|c| *c)
    }

    /// Sends a cluster event (postcard bytes of its declared type) to the master, which
    /// delivers it to every process in the next frame it begins.
    pub fn send_event(&mut self, name: &str, payload: &[u8]) -> Result<(), ClusterError> {
        let msg = Message::Event {
            name,
            payload,
            json: false,
        };
        match self.writer.lock() {
            Ok(mut w) => w.send(&msg),
            Err(_) => Err(self.ended()),
        }
    }

    /// Sends what this node's own input devices reported (encoded by the input layer) to
    /// the master, which gives it to every process in the next frame it begins.
    pub fn send_input(&mut self, payload: &[u8]) -> Result<(), ClusterError> {
        match self.writer.lock() {
            Ok(mut w) => w.send(&Message::Input { payload }),
            Err(_) => Err(self.ended()),
        }
    }

    fn ended(&self) -> ClusterError {
        ClusterError::Internal(format!(
            "node '{}': the thread reading from the master ended",
            self.name
        ))
    }
}

impl SwapLink {
    /// Frame `frame` is drawn: tells the master and waits until it says to present; `false`
    /// if the cluster presented this frame already (this node is catching up: the frame
    /// must not be shown late).
    pub fn swap(&mut self, frame: u64, stats: NodeStats) -> Result<bool, ClusterError> {
        self.drain()?;
        let late = self.swapped.newest.is_some_and(|n| n >= frame);
        // Even late, the master hears of it: it tells the master this node has loaded and
        // draws at the cluster's pace, so the next barrier may wait for it.
        let sent = match self.writer.lock() {
            Ok(mut w) => w.send(&Message::SwapReady { frame, stats }),
            Err(_) => return Err(self.internal("the reader thread panicked")),
        };
        sent?;
        if late {
            return Ok(false);
        }
        loop {
            let f = self.next_swap(frame)?;
            if f == frame {
                return Ok(true);
            }
            // A SwapNow for an earlier frame (this node was slow): skip it.
            if f > frame {
                return Err(ClusterError::Protocol {
                    peer: self.master.clone(),
                    what: format!("it swapped frame {f} before frame {frame}"),
                });
            }
        }
    }

    /// Waits for the next `SwapNow` (this node waits for the one of frame `frame`) and
    /// returns its frame.
    fn next_swap(&mut self, frame: u64) -> Result<u64, ClusterError> {
        match self.swaps.recv_timeout(self.master_timeout) {
            Ok(ToDraw::SwapNow(f, head)) => {
                self.swapped.record(f, head);
                Ok(f)
            }
            Ok(ToDraw::Ended(e)) => Err(e),
            Err(RecvTimeoutError::Timeout) => Err(ClusterError::Timeout {
                peer: self.master.clone(),
                what: format!(
                    "no SwapNow for frame {frame} within {:?}",
                    self.master_timeout
                ),
            }),
            Err(RecvTimeoutError::Disconnected) => {
                Err(self.internal("the thread reading from the master ended"))
            }
        }
    }

    /// The head pose to project frame `frame` from, if the master latched one with the
    /// previous frame's `SwapNow` (the same on every node, as that message is). For this
    /// node's first frame, that swap may still be on its way (the master sends it before the
    /// frame, or two deep after it): it is waited for, so that the frame is projected as on
    /// every other node.
    pub fn latched_for(&mut self, frame: u64) -> Result<Option<LatchedHead>, ClusterError> {
        self.drain()?;
        while self.swapped.before_pending(frame) {
            // This node's first frame: the swap before it (sent to every node) is on its way.
            self.next_swap(frame - 1)?;
        }
        Ok(self.swapped.latched_for(frame))
    }

    /// Takes in the `SwapNow`s already received, without waiting.
    fn drain(&mut self) -> Result<(), ClusterError> {
        loop {
            match self.swaps.try_recv() {
                Ok(ToDraw::SwapNow(f, head)) => self.swapped.record(f, head),
                Ok(ToDraw::Ended(e)) => return Err(e),
                Err(_) => return Ok(()),
            }
        }
    }

    fn internal(&self, why: &str) -> ClusterError {
        ClusterError::Internal(format!("node '{}': {why}", self.name))
    }
}

impl Drop for SwapLink {
    /// Leaving the session closes the connection at once (the reader thread holds a clone of
    /// the socket, which would otherwise keep it open), so the master drops this node
    /// immediately instead of at the swap deadline.
    fn drop(&mut self) {
        if let Ok(w) = self.writer.lock() {
            let _ = w.stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// A node's connection used from one thread for both frames and swaps, with no reader thread
/// between the socket and the node (each hop would cost a thread wake-up per frame): for nodes
/// that do not split App and Draw across threads, such as `--renderer none`.
pub struct DirectNode {
    src: FromMaster,
    name: String,
    origin: PathBuf,
    /// Frames being received; its buffer is reused every frame.
    frames: Assembler,
    /// A frame that arrived complete while this node waited for a swap: the next one to
    /// apply (its blocks are all the assembler holds).
    early: Option<FrameInfo>,
    /// The cluster file the master switched to, not yet taken.
    config: Option<Box<ClusterConfig>>,
    /// The `SwapNow`s received.
    swapped: Swaps,
    /// The plugins that apply each frame's blocks.
    pub manager: ClusterManager,
}

/// Connects and authenticates, for use from one thread.
pub fn connect_direct(
    config: &NodeConfig,
    manager: ClusterManager,
) -> Result<DirectNode, ClusterError> {
    let link = dial(&config.joining_with(&manager))?;
    let max_frame = link.max_frame();
    Ok(DirectNode {
        src: FromMaster::new(
            link,
            None,
            config.master_timeout,
            config.key.clone(),
            &config.cluster,
            max_frame,
        ),
        name: config.name.clone(),
        origin: config.cluster_file.clone(),
        frames: Assembler::default(),
        early: None,
        config: None,
        swapped: Swaps::default(),
        manager,
    })
}

impl DirectNode {
    /// The next step of the master's stream; heartbeats are answered here.
    fn step(&mut self) -> Result<Step, ClusterError> {
        loop {
            let frames = &mut self.frames;
            let step = self.src.next(|msg| frames.accept(msg))?.map_err(|what| {
                ClusterError::Protocol {
                    peer: self.src.link.peer.clone(),
                    what,
                }
            })?;
            match step {
                Step::Heartbeat(seq) => self.src.link.send(&Message::Heartbeat { seq })?,
                Step::SwapNow(f, head) => {
                    self.swapped.record(f, head);
                    return Ok(step);
                }
                other => return Ok(other),
            }
        }
    }

    /// Applies the blocks received so far.
    fn apply(&mut self, scene: &mut Scene) -> Result<(), ClusterError> {
        let applied = self
            .frames
            .blocks
            .apply(&mut self.manager, scene, &self.origin);
        self.frames.blocks.clear();
        if let Some(c) = applied? {
            self.config = Some(Box::new(c));
        }
        Ok(())
    }

    /// Receives the next frame and applies it once its last `EndBlock` has arrived; `None`
    /// when the master shut the cluster down.
    pub fn next_frame(&mut self, scene: &mut Scene) -> Result<Option<FrameInfo>, ClusterError> {
        loop {
            let step = match self.early.take() {
                Some(info) => Step::Frame(info),
                None => self.step()?,
            };
            match step {
                Step::Frame(info) => {
                    self.apply(scene)?;
                    return Ok(Some(info));
                }
                Step::Shutdown(reason) => {
                    self.apply(scene)?;
                    tracing::info!("node '{}': the master shut down: {reason}", self.name);
                    return Ok(None);
                }
                Step::More | Step::SwapNow(..) | Step::Heartbeat(_) => {}
            }
        }
    }

    /// The head pose to project frame `frame` from, if the master latched one with the
    /// previous frame's `SwapNow`. For this node's first frame, that swap may still be on its
    /// way (the master sends it before the frame, or two deep after it): it is waited for,
    /// so that this frame is projected as on every other node.
    pub fn latched_for(&mut self, frame: u64) -> Result<Option<LatchedHead>, ClusterError> {
        while self.swapped.before_pending(frame) {
            self.step_while_swapping(frame - 1)?;
        }
        Ok(self.swapped.latched_for(frame))
    }

    /// The cluster file the master switched to with the frames applied since the last
    /// call, if it did: every plugin's reconfigure hook has already seen it.
    pub fn take_config(&mut self) -> Option<ClusterConfig> {
        self.config.take().map(|c| *c)
    }

    /// Sends a cluster event (postcard bytes of its declared type) to the master, which
    /// delivers it to every process in the next frame it begins.
    pub fn send_event(&mut self, name: &str, payload: &[u8]) -> Result<(), ClusterError> {
        self.src.link.send(&Message::Event {
            name,
            payload,
            json: false,
        })
    }

    /// Sends what this node's own input devices reported to the master.
    pub fn send_input(&mut self, payload: &[u8]) -> Result<(), ClusterError> {
        self.src.link.send(&Message::Input { payload })
    }

    /// With multicast, what the group brought: datagrams kept, seen twice, refused (forged,
    /// altered, of another cluster), requests made, units given up.
    pub fn datagram_stats(&self) -> Option<lockstep_wire::datagram::DatagramStats> {
        self.src.datagram_stats()
    }

    /// Tells the master frame `frame` is ready and waits for its `SwapNow`.
    pub fn swap(&mut self, frame: u64, stats: NodeStats) -> Result<(), ClusterError> {
        self.src.link.send(&Message::SwapReady { frame, stats })?;
        while self.swapped.newest != Some(frame) {
            self.step_while_swapping(frame)?;
        }
        Ok(())
    }

    /// One step while waiting for the `SwapNow` of frame `frame`: a frame that completes
    /// meanwhile is kept for the next `next_frame` (one at most: the master is at most a
    /// frame ahead of its barrier).
    fn step_while_swapping(&mut self, frame: u64) -> Result<(), ClusterError> {
        match self.step()? {
            Step::Shutdown(reason) => Err(ClusterError::Shutdown(reason)),
            Step::Frame(info) if self.early.is_none() => {
                self.early = Some(info);
                Ok(())
            }
            Step::Frame(info) => Err(ClusterError::Protocol {
                peer: self.src.link.peer.clone(),
                what: format!(
                    "it sent frame {} two frames ahead of swapping frame {frame}",
                    info.frame
                ),
            }),
            Step::More | Step::SwapNow(..) | Step::Heartbeat(_) => Ok(()),
        }
    }
}
