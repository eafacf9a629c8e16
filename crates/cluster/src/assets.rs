/*!
The asset connection: a node whose copy of a file the application loads at setup is missing
or differs from the master's asks the master for its copy, when the cluster file allows it
(`[assets] send = true`). It authenticates like a node, under the reserved name
[`ASSETS_NAME`], on a connection of its own: a large model never travels over a frame
connection, and a node that has a file (in its folder or in its cache) is not sent it again.

The master tells the digest of any file its own setup loaded, named as it loaded them, and
sends one only while the file still holds those bytes — never another path; each connection
on its handshake's thread, away from the frame loop, a few sending at once.
*/
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

use lockstep_wire::{ASSET_CHUNK, ClusterKey, Message, printable};

use crate::link::{Link, io, unexpected};
use crate::node::{NodeConfig, dial};
use crate::{AppIdentity, ClusterError};

/// The name an asset connection gives in the handshake.
pub const ASSETS_NAME: &str = "@assets";

/// How long an asset connection may wait for the next request or chunk.
const IDLE_LIMIT: Duration = Duration::from_secs(60);
/// Largest request the master reads on an asset connection.
const REQUEST_MAX_FRAME: usize = 16 * 1024;
/// Most asset connections the master keeps open at once; more are refused.
const MAX_CONNECTIONS: usize = 32;
/// Most files the master sends at once: a node started mid-show takes a share of the
/// master's network, the others wait their turn.
const MAX_SENDING: usize = 2;

/// The master's side of asset connections: what it may send, and how many it serves.
pub(crate) struct AssetServer {
    /// What the master's setup loaded.
    files: Arc<AppIdentity>,
    /// The cluster file's `[assets] send`, as of now.
    allowed: AtomicBool,
    open: AtomicUsize,
    sending: Mutex<usize>,
    freed: Condvar,
}

impl AssetServer {
    pub fn new(files: Arc<AppIdentity>, allowed: bool) -> Self {
        AssetServer {
            files,
            allowed: AtomicBool::new(allowed),
            open: AtomicUsize::new(0),
            sending: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    /// A reconfiguration changed `[assets] send`.
    pub fn allow(&self, send: bool) {
        self.allowed.store(send, Ordering::Relaxed);
    }

    /// Serves one authenticated asset connection (from `peer`) until it closes.
    pub fn serve(&self, mut link: Link, peer: &str) {
        let open = self.open.fetch_add(1, Ordering::AcqRel);
        let _open = Open(&self.open);
        if open >= MAX_CONNECTIONS {
            let reason = format!("the master serves {MAX_CONNECTIONS} asset connections already");
            let _ = link.send(&Message::Refused { reason: &reason });
            return;
        }
        link.set_max_frame(REQUEST_MAX_FRAME);
        if link.set_timeout(Some(IDLE_LIMIT)).is_err() {
            return;
        }
        let mut buf = vec![0; ASSET_CHUNK];
        loop {
            let (path, send) = match link.recv() {
                Ok(Message::AssetRequest { path, send }) => (path.to_string(), send),
                Ok(other) => {
                    let reason = format!("an asset connection cannot send {}", other.kind());
                    let _ = link.send(&Message::Refused { reason: &reason });
                    return;
                }
                Err(_) => return,
            };
            match self.answer(&mut link, &path, send, &mut buf) {
                Ok(0) => {}
                Ok(sent) => tracing::info!("sent {path} ({sent} bytes) to {peer}"),
                Err(Refusal(Some(reason))) => {
                    tracing::warn!("asset connection {peer}: {reason}");
                    if link.send(&Message::Refused { reason: &reason }).is_err() {
                        return;
                    }
                }
                Err(Refusal(None)) => return,
            }
        }
    }

    /// Answers one request: the file's digest and size, then (`send`) its bytes, once they
    /// are checked to be what setup loaded. Returns the bytes sent.
    fn answer(
        &self,
        link: &mut Link,
        path: &str,
        send: bool,
        buf: &mut [u8],
    ) -> Result<u64, Refusal> {
        let files = &self.files.assets;
        let Some((_, digest)) = files.iter().find(|(p, _)| p == path) else {
            let told = crate::join::MAX_DIFFERENCES_TOLD;
            let mut loaded: Vec<&str> = files.iter().take(told).map(|(p, _)| p.as_str()).collect();
            let more = files.len().saturating_sub(told).to_string() + " more";
            if files.len() > told {
                loaded.push(&more);
            }
            return Err(refusal(format!(
                "the master's application loaded no file '{}' (it loaded: {})",
                printable(path),
                if loaded.is_empty() {
                    "none".to_string()
                } else {
                    loaded.join(", ")
                }
            )));
        };
        let cannot = |e: std::io::Error| refusal(format!("the master cannot read {path}: {e}"));
        let mut file = std::fs::File::open(path).map_err(cannot)?;
        let size = file.metadata().map_err(cannot)?.len();
        // A peer that stops reading has broken the connection: it only ends this thread.
        let gone = |_| Refusal(None);
        let info = Message::AssetInfo {
            digest: *digest,
            size,
        };
        if !send {
            link.send(&info).map_err(gone)?;
            return Ok(0);
        }
        if !self.allowed.load(Ordering::Relaxed) {
            return Err(refusal(
                "the cluster file does not let the master send files: set `send = true` under `[assets]`",
            ));
        }
        let _turn = self.turn()?;
        // What the path holds now must be what setup loaded: the bytes are read through the
        // handle that is then sent, so nothing else can be sent in their place unnoticed.
        let mut hasher = Sha256::new();
        loop {
            let n = file.read(buf).map_err(cannot)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let now: [u8; 32] = hasher.finalize().into();
        if now != *digest {
            return Err(refusal(format!(
                "the master's {path} changed after its setup loaded it: restart the master to send the file it holds now"
            )));
        }
        file.seek(SeekFrom::Start(0)).map_err(cannot)?;
        link.send(&info).map_err(gone)?;
        let mut sent = 0;
        while sent < size {
            let want = (size - sent).min(buf.len() as u64) as usize;
            let n = file.read(&mut buf[..want]).map_err(cannot)?;
            if n == 0 {
                return Err(refusal(format!(
                    "the master's {path} shrank while it was sent"
                )));
            }
            link.send(&Message::AssetChunk { bytes: &buf[..n] })
                .map_err(gone)?;
            sent += n as u64;
        }
        Ok(sent)
    }

    /// Waits for a turn to send (at most [`MAX_SENDING`] at once).
    fn turn(&self) -> Result<Turn<'_>, Refusal> {
        let busy = || refusal("the master is busy sending files to other nodes: ask again");
        let sending = self.sending.lock().map_err(|_| busy())?;
        let (mut sending, waited) = self
            .freed
            .wait_timeout_while(sending, IDLE_LIMIT / 2, |n| *n >= MAX_SENDING)
            .map_err(|_| busy())?;
        if waited.timed_out() {
            return Err(busy());
        }
        *sending += 1;
        Ok(Turn(self))
    }
}

/// An open asset connection, counted until it closes.
struct Open<'a>(&'a AtomicUsize);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A turn to send, given back (and the next waiter woken) when dropped.
struct Turn<'a>(&'a AssetServer);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if let Ok(mut n) = self.0.sending.lock() {
            *n -= 1;
        }
        self.0.freed.notify_one();
    }
}

/// Why a request gets `Refused`; none when a failed send broke the connection.
struct Refusal(Option<String>);

fn refusal(reason: impl Into<String>) -> Refusal {
    Refusal(Some(reason.into()))
}

/// A file as the master has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssetInfo {
    /// SHA-256 of the master's copy, as its setup loaded it.
    pub digest: [u8; 32],
    /// Its size now, in bytes.
    pub size: u64,
}

/// A node's asset connection to the master.
pub struct AssetClient {
    link: Link,
}

impl AssetClient {
    /// Connects to the master of cluster `cluster` at `master` within `timeout`, with `key`.
    pub fn connect(
        cluster: &str,
        key: ClusterKey,
        master: SocketAddr,
        timeout: Duration,
    ) -> Result<AssetClient, ClusterError> {
        let config = NodeConfig::new(cluster, key, ASSETS_NAME, master)
            .connect_timeout(timeout)
            .master_timeout(IDLE_LIMIT);
        Ok(AssetClient {
            link: dial(&config)?,
        })
    }

    /// The digest and size of the master's copy of `path` (named as the master's setup
    /// loaded it).
    pub fn info(&mut self, path: &str) -> Result<AssetInfo, ClusterError> {
        self.link
            .send(&Message::AssetRequest { path, send: false })?;
        self.recv_info()
    }

    /// Writes the master's copy of `path` to `out`, refusing one larger than `max_bytes`;
    /// returns its digest and size as the master announced them (the caller checks the
    /// bytes against the digest). After an error the connection is of no further use.
    pub fn fetch(
        &mut self,
        path: &str,
        max_bytes: u64,
        out: &mut impl Write,
    ) -> Result<AssetInfo, ClusterError> {
        self.link
            .send(&Message::AssetRequest { path, send: true })?;
        let info = self.recv_info()?;
        if info.size > max_bytes {
            return Err(ClusterError::Refused {
                peer: self.link.peer.clone(),
                reason: format!(
                    "the master's {path} takes {} bytes, over the cluster file's limit of {max_bytes} (`[assets] max_file_mb`)",
                    info.size
                ),
            });
        }
        let peer = self.link.peer.clone();
        let mut got = 0;
        while got < info.size {
            let n = match self.link.recv()? {
                Message::AssetChunk { bytes } => {
                    if got + bytes.len() as u64 > info.size {
                        return Err(short(&peer, path, "more bytes than it announced"));
                    }
                    out.write_all(bytes)
                        .map_err(|e| io(path, "cannot write the file the master sent", e))?;
                    bytes.len()
                }
                other => return Err(unexpected(&peer, other)),
            };
            if n == 0 {
                return Err(short(&peer, path, "an empty chunk"));
            }
            got += n as u64;
        }
        Ok(info)
    }

    fn recv_info(&mut self) -> Result<AssetInfo, ClusterError> {
        let peer = self.link.peer.clone();
        match self.link.recv()? {
            Message::AssetInfo { digest, size } => Ok(AssetInfo { digest, size }),
            other => Err(unexpected(&peer, other)),
        }
    }
}

fn short(peer: &str, path: &str, what: &str) -> ClusterError {
    ClusterError::Protocol {
        peer: peer.to_string(),
        what: format!("it sent {what} for {path}"),
    }
}
