/*!
Who may connect: the accept thread, and one thread per handshake, so a slow or hostile peer
never delays the frame loop. Nodes that pass go to the frame loop, which takes them in at the
next frame; control clients are served on their handshake's thread.

The listener cannot be worn down: a handshake has one deadline as a whole, few run at once
(fewer per peer address; the rest are refused at once), a failing `accept` (no descriptors
left) backs off instead of spinning, and refusals are summarised in the log, not told one by
one.
*/
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lockstep_wire::admission::{AcceptBackoff, Gatekeeper, Incoming};
use lockstep_wire::handshake::ServerStep;
use lockstep_wire::{
    ClusterKey, HANDSHAKE_MAX_FRAME, Message, ServerHandshake, printable, random_nonce,
};

use crate::assets::{ASSETS_NAME, AssetServer};
use crate::control::{CONTROL_NAME, ControlCall};
use crate::link::{Link, wire};
use crate::{AppIdentity, ClusterError};

/// A node that passed the handshake, waiting for the next frame.
pub(super) struct Joined {
    pub name: String,
    /// Its authenticated link.
    pub link: Link,
}

/// What the accept side needs, shared with the frame loop.
#[derive(Clone)]
pub(super) struct Gate {
    pub cluster: String,
    pub key: ClusterKey,
    pub max_frame: u32,
    /// The whole handshake must be over within this.
    pub handshake_timeout: Duration,
    /// Write timeout of a node's connection: a node that stops reading fails a write after
    /// this long instead of blocking the frame loop.
    pub write_timeout: Duration,
    /// Node names that may join; a reconfiguration changes them.
    pub allowed: Arc<Mutex<Vec<String>>>,
    pub joined: Arc<Mutex<Vec<Joined>>>,
    pub control: Sender<ControlCall>,
    /// Handshake slots and refusals.
    pub gatekeeper: Arc<Gatekeeper>,
    /// What a node's `Join` must match.
    pub identity: Arc<AppIdentity>,
    /// Serves asset connections: the files the master's setup loaded.
    pub assets: Arc<AssetServer>,
}

impl Gate {
    /// Logs a refusal (summarised with the others).
    pub fn refused(&self, kind: &'static str, detail: String) {
        tell(self.gatekeeper.refused(kind, detail));
    }

    /// Logs the summary of refusals counted, when one is due.
    pub fn tell_refusals(&self) {
        tell(self.gatekeeper.summary());
    }
}

fn tell(line: Option<String>) {
    if let Some(line) = line {
        tracing::warn!("{line}");
    }
}

pub(super) fn accept_loop(listener: &TcpListener, stop: Arc<AtomicBool>, gate: Gate) {
    let mut backoff = AcceptBackoff::default();
    loop {
        let incoming = gate.gatekeeper.accept(listener, &mut backoff);
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let (stream, addr, slot) = match incoming {
            Incoming::Admitted { stream, addr, slot } => (stream, addr, slot),
            Incoming::Tell(line) => {
                tell(line);
                continue;
            }
        };
        let gate = gate.clone();
        // Each handshake on its own thread: a peer that sends nothing only holds its thread
        // and its slot, until the handshake's deadline closes it.
        let _ = std::thread::Builder::new()
            .name("handshake".into())
            .spawn(move || {
                let peer = addr.to_string();
                let result = handshake(stream, &peer, &gate);
                drop(slot);
                match result {
                    Ok(mut link) if link.peer == CONTROL_NAME => {
                        // A cluster file, not a scene: a megabyte is plenty.
                        link.set_max_frame(1 << 20);
                        crate::control::serve(link, gate.control.clone())
                    }
                    Ok(link) if link.peer == ASSETS_NAME => {
                        gate.assets.serve(link, &format!("{ASSETS_NAME} {peer}"))
                    }
                    Ok(link) => {
                        if let Ok(mut v) = gate.joined.lock() {
                            v.push(Joined {
                                name: link.peer.clone(),
                                link,
                            });
                        }
                    }
                    Err(e) => gate.refused(refusal_kind(&e), format!("{peer}: {e}")),
                }
            });
    }
}

/// What a refusal is counted as.
fn refusal_kind(e: &ClusterError) -> &'static str {
    match e {
        ClusterError::Wire { source, .. } => source.kind(),
        ClusterError::Timeout { .. } => "handshake not finished in time",
        ClusterError::Closed { .. } | ClusterError::Io { .. } => "closed during the handshake",
        ClusterError::Refused { reason, .. } if reason.starts_with("node name") => {
            "unknown node name"
        }
        ClusterError::Refused { .. } => "another application",
        _ => "other",
    }
}

/// Largest `Join` a node may send.
const JOIN_MAX_FRAME: usize = 256 * 1024;

/// Authenticates a peer within the handshake's deadline; the link comes back sealed, named
/// after it (a node's name, [`CONTROL_NAME`] or [`ASSETS_NAME`]), with no read timeout for nodes and their
/// write timeout set.
fn handshake(stream: TcpStream, peer: &str, gate: &Gate) -> Result<Link, ClusterError> {
    let deadline = Instant::now() + gate.handshake_timeout;
    let mut link = Link::new(stream, peer.to_string(), HANDSHAKE_MAX_FRAME)?;
    link.set_timeout(Some(gate.handshake_timeout))?;
    let nonce = random_nonce().map_err(|e| wire(peer, e))?;
    let mut hs = ServerHandshake::new(gate.key.clone(), &gate.cluster, nonce, gate.max_frame);
    let result = (|| loop {
        let msg = link.recv_by(deadline).map_err(|e| match e {
            ClusterError::Timeout { peer, .. } => ClusterError::Timeout {
                peer,
                what: format!("handshake not finished within {:?}", gate.handshake_timeout),
            },
            e => e,
        })?;
        let step = hs.handle(&msg).map_err(|e| wire(peer, e));
        match step? {
            ServerStep::Challenge(reply) => link.send(&reply)?,
            ServerStep::Accept {
                node,
                max_frame,
                keys,
            } => {
                // From here on both sides hold the session keys: the answer is sealed.
                link.authenticate(keys);
                let service = node == CONTROL_NAME || node == ASSETS_NAME;
                let allowed = service || gate.allowed.lock().is_ok_and(|a| a.contains(&node));
                if !allowed {
                    return Err(ClusterError::Refused {
                        peer: peer.to_string(),
                        reason: format!(
                            "node name '{}' is not in the cluster file",
                            printable(&node)
                        ),
                    });
                }
                if !service {
                    // A key holder's lists of plugins and files: more than a handshake
                    // frame, bounded all the same.
                    link.set_max_frame(JOIN_MAX_FRAME);
                    let join = link.recv_by(deadline)?;
                    gate.identity
                        .check(&join)
                        .map_err(|reason| ClusterError::Refused {
                            peer: peer.to_string(),
                            reason: format!(
                                "node '{}' does not run the master's application: {reason}",
                                printable(&node)
                            ),
                        })?;
                }
                link.send(&Message::Welcome { max_frame })?;
                return Ok(node);
            }
            ServerStep::Refuse { error, keys } => {
                // Sealed below, like every refusal of a peer that proved the key.
                link.authenticate(keys);
                return Err(wire(peer, error));
            }
        }
    })();
    match result {
        Ok(name) => {
            link.set_timeout(Some(gate.write_timeout))?;
            link.stream
                .set_read_timeout(None)
                .map_err(|e| crate::link::io(peer, "cannot clear the timeout", e))?;
            link.peer = name;
            Ok(link)
        }
        Err(e) => {
            // The peer is told why; its own address is for our log only.
            let reason = match &e {
                ClusterError::Refused { reason, .. } => reason.clone(),
                e => e.to_string(),
            };
            let _ = link.send(&Message::Refused { reason: &reason });
            Err(e)
        }
    }
}
