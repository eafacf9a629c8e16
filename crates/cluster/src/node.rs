/*!
A render node's side of a session. A reader thread owns the socket's receiving half and routes
what the master sends: whole frames (from `FrameBegin` to `EndBlock`) to the App side, and
`SwapNow` to the Draw side, so the two can live on different threads.
*/
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use lockstep_scene::Scene;
use lockstep_wire::handshake::ClientStep;
use lockstep_wire::{
    ClientHandshake, ClusterKey, HANDSHAKE_MAX_FRAME, Message, NodeStats, random_nonce,
};

use crate::frame::{Assembler, FrameBlocks, Step};
use crate::link::{Link, io, wire};
use crate::{ClusterError, ClusterManager, FrameInfo};

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
    /// Silence from the master after which it counts as gone.
    pub master_timeout: Duration,
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
    Lost(String),
}

enum ToDraw {
    SwapNow(u64),
    Lost(String),
}

/// The App side of a node: frames from the master.
pub struct NodeSession {
    name: String,
    frames: Receiver<ToApp>,
    /// Applied frames' buffers go back to the reader thread for the next frames.
    recycle: Sender<FrameBlocks>,
    /// The plugins that apply each frame's blocks.
    pub manager: ClusterManager,
}

/// The Draw side of a node: `SwapReady` out, `SwapNow` in.
pub struct SwapLink {
    name: String,
    writer: Link,
    swaps: Receiver<ToDraw>,
    master_timeout: Duration,
}

/// Connects and authenticates; the link's frame limit is the one the master announced.
fn dial(config: &NodeConfig) -> Result<Link, ClusterError> {
    let peer = format!("master {}", config.master);
    let start = std::time::Instant::now();
    let stream = loop {
        match TcpStream::connect_timeout(&config.master, Duration::from_millis(500)) {
            Ok(s) => break s,
            Err(e) if start.elapsed() < config.connect_timeout => {
                tracing::debug!("{peer}: {e}; retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(io(&peer, "cannot connect", e)),
        }
    };
    let mut link = Link::new(stream, peer.clone(), HANDSHAKE_MAX_FRAME)?;
    link.set_timeout(Some(config.connect_timeout))?;
    let nonce = random_nonce().map_err(|e| wire(&peer, e))?;
    let mut hs = ClientHandshake::new(config.key.clone(), &config.cluster, &config.name, nonce);
    link.send(&hs.hello())?;
    let max_frame = loop {
        let msg = link.recv()?;
        match hs.handle(&msg) {
            Ok(ClientStep::Send(reply)) => link.send(&reply)?,
            Ok(ClientStep::Established { max_frame }) => break max_frame,
            Err(e) => {
                let reason = e.to_string();
                let _ = link.send(&Message::Refused { reason: &reason });
                return Err(wire(&peer, e));
            }
        }
    };
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
    let link = dial(config)?;
    let peer = link.peer.clone();
    let writer_stream = link
        .stream
        .try_clone()
        .map_err(|e| io(&peer, "cannot clone the socket", e))?;
    let writer = Link::new(writer_stream, peer.clone(), HANDSHAKE_MAX_FRAME)?;
    let (app_tx, frames) = mpsc::sync_channel::<ToApp>(2);
    let (draw_tx, swaps) = mpsc::channel::<ToDraw>();
    let (recycle, recycled) = mpsc::channel::<FrameBlocks>();
    std::thread::Builder::new()
        .name("from master".into())
        .spawn(move || read_loop(link, app_tx, draw_tx, recycled))
        .map_err(|e| io(&peer, "cannot start the reader thread", e))?;
    Ok((
        NodeSession {
            name: config.name.clone(),
            frames,
            recycle,
            manager,
        },
        SwapLink {
            name: config.name.clone(),
            writer,
            swaps,
            master_timeout: config.master_timeout,
        },
    ))
}

fn read_loop(
    mut link: Link,
    app: mpsc::SyncSender<ToApp>,
    draw: Sender<ToDraw>,
    recycled: Receiver<FrameBlocks>,
) {
    let mut frames = Assembler::default();
    let lost = loop {
        let msg = match link.recv() {
            Ok(m) => m,
            Err(ClusterError::Timeout { .. }) => {
                break "the master sent nothing within the timeout".to_string();
            }
            Err(e) => break format!("lost the master: {e}"),
        };
        match frames.accept(msg) {
            Ok(Step::More) => {}
            Ok(Step::Frame(info)) => {
                let mut next = recycled.try_recv().unwrap_or_default();
                next.clear();
                let blocks = std::mem::replace(&mut frames.blocks, next);
                if app.send(ToApp::Frame(FrameData { info, blocks })).is_err() {
                    return;
                }
            }
            Ok(Step::SwapNow(frame)) => {
                if draw.send(ToDraw::SwapNow(frame)).is_err() {
                    return;
                }
            }
            Ok(Step::Shutdown(reason)) => {
                let blocks = std::mem::take(&mut frames.blocks);
                let _ = app.send(ToApp::Shutdown(reason.clone(), blocks));
                let _ = draw.send(ToDraw::Lost(format!("the master shut down: {reason}")));
                return;
            }
            Err(why) => break why,
        }
    };
    let _ = app.send(ToApp::Lost(lost.clone()));
    let _ = draw.send(ToDraw::Lost(lost));
}

impl NodeSession {
    /// Waits for the next frame and applies its blocks to `scene`; `None` when the master
    /// shut the cluster down.
    pub fn next_frame(&mut self, scene: &mut Scene) -> Result<Option<FrameInfo>, ClusterError> {
        match self.frames.recv() {
            Ok(ToApp::Frame(f)) => {
                f.blocks.apply(&mut self.manager, scene)?;
                // If the reader has ended, the buffer is simply dropped.
                let _ = self.recycle.send(f.blocks);
                Ok(Some(f.info))
            }
            Ok(ToApp::Shutdown(reason, post)) => {
                post.apply(&mut self.manager, scene)?;
                tracing::info!("node '{}': the master shut down: {reason}", self.name);
                Ok(None)
            }
            Ok(ToApp::Lost(reason)) => Err(ClusterError::Stopped(format!(
                "node '{}': {reason}",
                self.name
            ))),
            Err(_) => Err(ClusterError::Stopped(format!(
                "node '{}': the connection to the master ended",
                self.name
            ))),
        }
    }
}

impl SwapLink {
    /// Frame `frame` is drawn: tells the master and waits until it says to present.
    pub fn swap(&mut self, frame: u64, stats: NodeStats) -> Result<(), ClusterError> {
        self.writer.send(&Message::SwapReady { frame, stats })?;
        loop {
            match self.swaps.recv_timeout(self.master_timeout) {
                Ok(ToDraw::SwapNow(f)) if f == frame => return Ok(()),
                // A SwapNow for an earlier frame (this node was slow): skip it.
                Ok(ToDraw::SwapNow(f)) if f < frame => continue,
                Ok(ToDraw::SwapNow(f)) => {
                    return Err(ClusterError::Stopped(format!(
                        "node '{}': the master swapped frame {f} before {frame}",
                        self.name
                    )));
                }
                Ok(ToDraw::Lost(reason)) => {
                    return Err(ClusterError::Stopped(format!(
                        "node '{}': {reason}",
                        self.name
                    )));
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(ClusterError::Timeout {
                        peer: format!("node '{}'", self.name),
                        what: format!(
                            "no SwapNow for frame {frame} within {:?}",
                            self.master_timeout
                        ),
                    });
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(ClusterError::Stopped(format!(
                        "node '{}': the connection to the master ended",
                        self.name
                    )));
                }
            }
        }
    }
}

impl Drop for SwapLink {
    /// Leaving the session closes the connection at once (the reader thread holds a clone of
    /// the socket, which would otherwise keep it open), so the master drops this node
    /// immediately instead of at the swap deadline.
    fn drop(&mut self) {
        let _ = self.writer.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// A node's connection used from one thread for both frames and swaps, with no reader thread
/// between the socket and the node (each hop would cost a thread wake-up per frame): for nodes
/// that do not split App and Draw across threads, such as `--renderer none`.
pub struct DirectNode {
    link: Link,
    name: String,
    /// Frames being received; its buffer is reused every frame.
    frames: Assembler,
    /// A frame that arrived complete while this node waited for a swap: the next one to
    /// apply (its blocks are all the assembler holds).
    early: Option<FrameInfo>,
    /// The plugins that apply each frame's blocks.
    pub manager: ClusterManager,
}

/// Connects and authenticates, for use from one thread.
pub fn connect_direct(
    config: &NodeConfig,
    manager: ClusterManager,
) -> Result<DirectNode, ClusterError> {
    Ok(DirectNode {
        link: dial(config)?,
        name: config.name.clone(),
        frames: Assembler::default(),
        early: None,
        manager,
    })
}

impl DirectNode {
    fn lost(&self, why: impl std::fmt::Display) -> ClusterError {
        ClusterError::Stopped(format!("node '{}': {why}", self.name))
    }

    /// The next step of the master's stream.
    fn step(&mut self) -> Result<Step, ClusterError> {
        let msg = match self.link.recv() {
            Ok(m) => m,
            Err(e) => return Err(self.lost(format!("lost the master: {e}"))),
        };
        let step = self.frames.accept(msg);
        step.map_err(|why| self.lost(why))
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
                    self.frames.blocks.apply(&mut self.manager, scene)?;
                    self.frames.blocks.clear();
                    return Ok(Some(info));
                }
                Step::Shutdown(reason) => {
                    self.frames.blocks.apply(&mut self.manager, scene)?;
                    self.frames.blocks.clear();
                    tracing::info!("node '{}': the master shut down: {reason}", self.name);
                    return Ok(None);
                }
                Step::More | Step::SwapNow(_) => {}
            }
        }
    }

    /// Tells the master frame `frame` is ready and waits for its `SwapNow`.
    pub fn swap(&mut self, frame: u64, stats: NodeStats) -> Result<(), ClusterError> {
        self.link.send(&Message::SwapReady { frame, stats })?;
        loop {
            match self.step()? {
                Step::SwapNow(f) if f == frame => return Ok(()),
                Step::Shutdown(reason) => {
                    return Err(self.lost(format!("the master shut down: {reason}")));
                }
                Step::Frame(info) if self.early.is_none() => self.early = Some(info),
                Step::Frame(info) => {
                    return Err(self.lost(format!(
                        "the master sent frame {} two frames ahead of swapping frame {frame}",
                        info.frame
                    )));
                }
                Step::More | Step::SwapNow(_) => {}
            }
        }
    }
}
