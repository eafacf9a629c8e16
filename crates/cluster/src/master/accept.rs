/*!
Who may connect: the accept thread, and one thread per handshake, so a slow or hostile peer
never delays the frame loop. Nodes that pass go to the frame loop, which takes them in at the
next frame; control clients are served on their handshake's thread.
*/
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lockstep_wire::handshake::ServerStep;
use lockstep_wire::{ClusterKey, HANDSHAKE_MAX_FRAME, Message, ServerHandshake, random_nonce};

use crate::ClusterError;
use crate::control::{CONTROL_NAME, ControlCall};
use crate::link::{Link, io, wire};

/// A node that passed the handshake, waiting for the next frame.
pub(super) struct Joined {
    pub name: String,
    pub stream: TcpStream,
}

/// What the accept side needs, shared with the frame loop.
#[derive(Clone)]
pub(super) struct Gate {
    pub cluster: String,
    pub key: ClusterKey,
    pub max_frame: u32,
    pub handshake_timeout: Duration,
    /// Write timeout of a node's connection: a node that stops reading fails a write after
    /// this long instead of blocking the frame loop.
    pub write_timeout: Duration,
    /// Node names that may join; a reconfiguration changes them.
    pub allowed: Arc<Mutex<Vec<String>>>,
    pub joined: Arc<Mutex<Vec<Joined>>>,
    pub control: Sender<ControlCall>,
}

pub(super) fn accept_loop(listener: TcpListener, stop: Arc<AtomicBool>, gate: Gate) {
    for conn in listener.incoming() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(stream) = conn else { continue };
        let gate = gate.clone();
        // Each handshake on its own thread: a peer that sends nothing only holds its thread,
        // until the handshake timeout closes it.
        let _ = std::thread::Builder::new()
            .name("handshake".into())
            .spawn(move || {
                let peer = stream
                    .peer_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_else(|_| "unknown peer".into());
                match handshake(stream, &peer, &gate) {
                    Ok(mut link) if link.peer == CONTROL_NAME => {
                        // A cluster file, not a scene: a megabyte is plenty.
                        link.set_max_frame(1 << 20);
                        crate::control::serve(link, gate.control.clone())
                    }
                    Ok(link) => {
                        if let Ok(mut v) = gate.joined.lock() {
                            v.push(Joined {
                                name: link.peer,
                                stream: link.stream,
                            });
                        }
                    }
                    Err(e) => tracing::warn!("refused {peer}: {e}"),
                }
            });
    }
}

/// Authenticates a peer; the link comes back named after it (a node's name, or
/// [`CONTROL_NAME`]), with no read timeout for nodes and their write timeout set.
fn handshake(stream: TcpStream, peer: &str, gate: &Gate) -> Result<Link, ClusterError> {
    let mut link = Link::new(stream, peer.to_string(), HANDSHAKE_MAX_FRAME)?;
    link.set_timeout(Some(gate.handshake_timeout))?;
    let nonce = random_nonce().map_err(|e| wire(peer, e))?;
    let mut hs = ServerHandshake::new(gate.key.clone(), &gate.cluster, nonce, gate.max_frame);
    let result = (|| loop {
        let msg = link.recv()?;
        let step = hs.handle(&msg).map_err(|e| wire(peer, e));
        match step? {
            ServerStep::Challenge(reply) => link.send(&reply)?,
            ServerStep::Accept { node, max_frame } => {
                let allowed =
                    node == CONTROL_NAME || gate.allowed.lock().is_ok_and(|a| a.contains(&node));
                if !allowed {
                    return Err(ClusterError::Refused {
                        peer: peer.to_string(),
                        reason: format!("node name '{node}' is not in the cluster file"),
                    });
                }
                link.send(&Message::Welcome { max_frame })?;
                return Ok(node);
            }
        }
    })();
    match result {
        Ok(name) => {
            link.set_timeout(Some(gate.write_timeout))?;
            link.stream
                .set_read_timeout(None)
                .map_err(|e| io(peer, "cannot clear the timeout", e))?;
            link.peer = name;
            Ok(link)
        }
        Err(e) => {
            let reason = e.to_string();
            let _ = link.send(&Message::Refused { reason: &reason });
            Err(e)
        }
    }
}
