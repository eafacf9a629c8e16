/*!
The asset connection: a node whose copy of a file the application loads at setup is missing
or differs from the master's asks the master for its copy, when the cluster file allows it
(`[assets] send = true`). It authenticates like a node, under the reserved name
[`ASSETS_NAME`], on a connection of its own: a large model never travels over a frame
connection, and a node that has a file (in its folder or in its cache) is not sent it again.

The master sends only files its own setup loaded, named as it loaded them, never another
path; each on its handshake's thread, away from the frame loop.
*/
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lockstep_wire::{ASSET_CHUNK, ClusterKey, Message, printable};

use crate::link::{Link, io};
use crate::node::{NodeConfig, dial};
use crate::{AppIdentity, ClusterError};

/// The name an asset connection gives in the handshake.
pub const ASSETS_NAME: &str = "@assets";

/// How long an asset connection may wait for the next request or chunk.
const IDLE_LIMIT: Duration = Duration::from_secs(60);
/// Largest request the master reads on an asset connection.
const REQUEST_MAX_FRAME: usize = 16 * 1024;

/// Master: serves one authenticated asset connection until it closes. `files` are what the
/// master's setup loaded; `allowed` is the cluster file's `[assets] send`, as of now.
pub(crate) fn serve(mut link: Link, files: Arc<AppIdentity>, allowed: Arc<AtomicBool>) {
    link.set_max_frame(REQUEST_MAX_FRAME);
    if link.set_timeout(Some(IDLE_LIMIT)).is_err() {
        return;
    }
    let peer = link.peer.clone();
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
        let result = if allowed.load(Ordering::Relaxed) {
            answer(&mut link, &files, &path, send, &mut buf)
        } else {
            Err(Refusal(Some(
                "the cluster file does not let the master send files: set `send = true` under `[assets]`"
                    .into(),
            )))
        };
        match result {
            Ok(sent) => {
                if sent > 0 {
                    tracing::info!("sent {path} ({sent} bytes) to {peer}");
                }
            }
            Err(Refusal(Some(reason))) => {
                if link.send(&Message::Refused { reason: &reason }).is_err() {
                    return;
                }
            }
            Err(Refusal(None)) => return,
        }
    }
}

/// Why a request gets `Refused`; none when a failed send broke the connection.
struct Refusal(Option<String>);

/// Answers one request: the file's digest and size, then (`send`) its bytes. Returns the
/// bytes sent.
fn answer(
    link: &mut Link,
    files: &AppIdentity,
    path: &str,
    send: bool,
    buf: &mut [u8],
) -> Result<u64, Refusal> {
    let Some((_, digest)) = files.assets.iter().find(|(p, _)| p == path) else {
        let told = crate::join::MAX_DIFFERENCES_TOLD;
        let mut loaded: Vec<&str> = files
            .assets
            .iter()
            .take(told)
            .map(|(p, _)| p.as_str())
            .collect();
        let more = files.assets.len().saturating_sub(told).to_string() + " more";
        if files.assets.len() > told {
            loaded.push(&more);
        }
        return Err(Refusal(Some(format!(
            "the master's application loaded no file '{}' (it loaded: {})",
            printable(path),
            if loaded.is_empty() {
                "none".to_string()
            } else {
                loaded.join(", ")
            }
        ))));
    };
    let cannot = |e: std::io::Error| Refusal(Some(format!("the master cannot read {path}: {e}")));
    let mut file = std::fs::File::open(path).map_err(cannot)?;
    let size = file.metadata().map_err(cannot)?.len();
    let info = Message::AssetInfo {
        digest: *digest,
        size,
    };
    // A peer that stops reading has broken the connection: it only ends this thread.
    let gone = |_| Refusal(None);
    link.send(&info).map_err(gone)?;
    if !send {
        return Ok(0);
    }
    let mut sent = 0;
    while sent < size {
        let want = (size - sent).min(buf.len() as u64) as usize;
        // The file shrank under us: the node sees too few bytes and says so.
        let n = file.read(&mut buf[..want]).map_err(cannot)?;
        if n == 0 {
            break;
        }
        link.send(&Message::AssetChunk { bytes: &buf[..n] })
            .map_err(gone)?;
        sent += n as u64;
    }
    Ok(sent)
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

fn unexpected(peer: &str, m: Message<'_>) -> ClusterError {
    match m {
        Message::Refused { reason } => ClusterError::Refused {
            peer: peer.to_string(),
            reason: printable(reason).to_string(),
        },
        other => ClusterError::Protocol {
            peer: peer.to_string(),
            what: format!("it answered with an unexpected {} message", other.kind()),
        },
    }
}
