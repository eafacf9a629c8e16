/*!
The display node's driver of sort-first: it listens for its helpers on its own address
(the node's `host:port` in the cluster file), authenticates them with the cluster key —
only nodes its viewports name as helpers get in — and reads their strips on one thread per
helper, into buffers handed back for reuse; the Draw side ([`StripExchange`]) asks for each
frame's strips, waits for them until the deadline and takes what came, checked by the
sans-IO [`StripRound`].
*/
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lockstep_wire::handshake::ServerStep;
use lockstep_wire::{
    ClusterKey, HANDSHAKE_MAX_FRAME, Message, STRIP_LZ4, STRIP_RGBA8, ServerHandshake, printable,
    random_nonce,
};

use super::round::{Helped, Request, StripRound, rgba_len};
use crate::ClusterError;
use crate::link::{Link, io, wire};

/// How long a helper has for its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a request may take to write to a helper before the helper counts as gone.
const WRITE_TIMEOUT: Duration = Duration::from_millis(200);

/// What the display node's threads tell its Draw side.
/// Each names the connection (numbered as accepted): what an old connection of a helper says
/// after a new one came is ignored.
enum Arrival {
    Connected(String, u64, Box<Link>),
    Ready(String, u64),
    Strip {
        helper: String,
        conn: u64,
        frame: u64,
        view: u16,
        rect: [u32; 4],
        pixels: Vec<u8>,
    },
    Gone(String, u64, String),
}

/// Handshakes in progress at most (each on a thread of its own, before the peer proved the
/// key): more connections are closed at once.
const MAX_HANDSHAKES: usize = 16;

/// A strip that came, to composite.
#[derive(Debug)]
pub struct Arrived {
    /// The view it belongs to.
    pub view: u16,
    /// Where it goes, in window pixels.
    pub rect: [u32; 4],
    /// RGBA8 sRGB, rows top to bottom.
    pub pixels: Vec<u8>,
}

/// The Draw side of the display node's sort-first: requests out, strips in.
pub struct StripExchange {
    round: StripRound,
    arrivals: Receiver<Arrival>,
    /// Buffers of composited strips, back to the reader threads.
    recycle: Sender<Vec<u8>>,
    /// Each connected helper's sending half.
    writers: Vec<(String, u64, Link)>,
    requests: Vec<Request>,
    /// The strips of the frame under way that came and were taken.
    arrived: Vec<Arrived>,
    local: SocketAddr,
    /// Tells the accept thread to end (it is woken by a connection of our own), so the
    /// address is free again once this is dropped.
    stop: Arc<std::sync::atomic::AtomicBool>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl StripExchange {
    /// Listens on `listen` for the helpers of `helped` (the display node's views that have
    /// some), authenticated with `key` as members of `cluster`; each strip is due within
    /// `deadline` of its request.
    pub fn listen(
        listen: SocketAddr,
        key: ClusterKey,
        cluster: &str,
        helped: Vec<Helped>,
        deadline: Duration,
    ) -> Result<StripExchange, ClusterError> {
        let listener = TcpListener::bind(listen)
            .map_err(|e| io(&format!("strip listener {listen}"), "cannot listen", e))?;
        let local = listener
            .local_addr()
            .map_err(|e| io(&format!("strip listener {listen}"), "no local address", e))?;
        let mut allowed: Vec<String> = helped.iter().flat_map(|h| h.helpers.clone()).collect();
        allowed.sort();
        allowed.dedup();
        // The largest strip: a whole helped viewport, plus the message's own fields (LZ4's
        // worst case is a little larger than its input).
        let max_pixels = helped.iter().map(|h| rgba_len(h.rect)).max().unwrap_or(0);
        let max_frame = max_pixels + max_pixels / 128 + 1024;
        let (tx, arrivals) = channel();
        let (recycle, pool) = channel::<Vec<u8>>();
        let pool = Arc::new(Mutex::new(pool));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let accept = Accept {
            key,
            cluster: cluster.to_string(),
            allowed,
            max_frame,
            arrivals: tx,
            pool,
            stop: stop.clone(),
            max_pixels,
        };
        let accept = std::thread::Builder::new()
            .name("strip-accept".into())
            .spawn(move || accept.run(listener))
            .map_err(|e| ClusterError::Internal(format!("cannot start the strip listener: {e}")))?;
        Ok(StripExchange {
            round: StripRound::new(helped, deadline),
            arrivals,
            recycle,
            writers: Vec::new(),
            requests: Vec::new(),
            arrived: Vec::new(),
            local,
            stop,
            accept: Some(accept),
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The helpers connected now.
    pub fn connected(&self) -> impl Iterator<Item = &str> {
        self.writers.iter().map(|(n, _, _)| n.as_str())
    }

    /// Begins frame `frame`: helpers that connected or left since are taken into account,
    /// and each connected helper is asked for its strip. Returns the strips this node draws
    /// itself, with their views.
    pub fn begin_frame(&mut self, frame: u64) -> Vec<(u16, [u32; 4])> {
        let mut own = Vec::new();
        self.begin_frame_into(frame, &mut own);
        own
    }

    /// [`StripExchange::begin_frame`] into `own`, reusing its allocation (Draw's every frame).
    pub fn begin_frame_into(&mut self, frame: u64, own: &mut Vec<(u16, [u32; 4])>) {
        while let Ok(a) = self.arrivals.try_recv() {
            self.take(a, None);
        }
        self.give_back();
        let now = Instant::now();
        self.round.begin_frame(frame, now, &mut self.requests);
        // Written to without waiting; a helper that cannot take its request is dropped.
        let mut failed = Vec::new();
        for r in &self.requests {
            let Some((_, _, link)) = self.writers.iter_mut().find(|(n, _, _)| *n == r.helper)
            else {
                continue;
            };
            let msg = Message::StripRequest {
                frame: r.frame,
                viewport: r.view,
                rect: r.rect,
                codec: r.codec,
            };
            if let Err(e) = link.send(&msg) {
                failed.push((r.helper.clone(), e.to_string()));
            }
        }
        for (helper, why) in failed {
            self.lose(&helper, &why);
        }
        own.clear();
        own.extend(self.round.own());
    }

    /// Waits for the frame's strips until they all came or the deadline passed; returns the
    /// strips that came (to composite) and those this node must draw itself (missed).
    pub fn gather(&mut self) -> (&mut [Arrived], Vec<(u16, [u32; 4])>) {
        while !self.round.is_done() {
            let Some(due) = self.round.poll_timeout() else {
                break;
            };
            let now = Instant::now();
            if now >= due {
                self.round.handle_timeout(now);
                break;
            }
            match self.arrivals.recv_timeout(due - now) {
                Ok(a) => self.take(a, Some(Instant::now())),
                Err(RecvTimeoutError::Timeout) => self.round.handle_timeout(Instant::now()),
                Err(RecvTimeoutError::Disconnected) => {
                    self.round.handle_timeout(due);
                    break;
                }
            }
        }
        (&mut self.arrived, self.round.missing().collect())
    }

    /// Ends the frame: what each part took goes to the load balancer. Returns the helpers
    /// that missed their strip (they are out of the split until they connect again).
    pub fn end_frame(&mut self, own: Duration, composite: Duration) -> Vec<String> {
        let missed = self.round.end_frame(own, composite);
        for h in &missed {
            tracing::warn!("helper '{h}' missed its strip: this node draws it from now on");
        }
        missed
    }

    fn take(&mut self, a: Arrival, now: Option<Instant>) {
        match a {
            Arrival::Connected(name, conn, link) => {
                // A helper that connects again: its old connection is closed.
                if self.writers.iter().any(|(n, _, _)| *n == name) {
                    self.lose(&name, "it connected again");
                }
                self.writers.push((name, conn, *link));
            }
            Arrival::Ready(name, conn) => {
                // Asked from the next frame on: its Draw side is there to answer.
                if self.current(&name, conn) {
                    tracing::info!("helper '{name}' connected for its strips");
                    self.round.handle_connected(&name);
                }
            }
            Arrival::Gone(name, conn, why) => {
                if self.current(&name, conn) {
                    self.lose(&name, &why);
                }
            }
            Arrival::Strip {
                helper,
                conn,
                frame,
                view,
                rect,
                pixels,
            } => {
                if !self.current(&helper, conn) {
                    let _ = self.recycle.send(pixels);
                    return;
                }
                let now = now.unwrap_or_else(Instant::now);
                match self
                    .round
                    .handle_strip(&helper, frame, view, rect, pixels.len(), now)
                {
                    Ok(()) => self.arrived.push(Arrived { view, rect, pixels }),
                    Err(e) => {
                        tracing::debug!("strip refused: {e}");
                        let _ = self.recycle.send(pixels);
                    }
                }
            }
        }
    }

    /// Whether `conn` is helper `name`'s connection now.
    fn current(&self, name: &str, conn: u64) -> bool {
        self.writers.iter().any(|(n, c, _)| n == name && *c == conn)
    }

    /// Helper `helper` is out: its connection is closed (its reader ends with it).
    fn lose(&mut self, helper: &str, why: &str) {
        for (_, _, l) in self.writers.iter().filter(|(n, _, _)| n == helper) {
            tracing::warn!("helper '{helper}' is gone: {why}");
            let _ = l.stream.shutdown(std::net::Shutdown::Both);
        }
        self.writers.retain(|(n, _, _)| n != helper);
        self.round.handle_disconnected(helper);
    }

    /// The last frame's strips' buffers go back to the readers.
    fn give_back(&mut self) {
        for a in self.arrived.drain(..) {
            let _ = self.recycle.send(a.pixels);
        }
    }
}

impl Drop for StripExchange {
    /// Closes every helper's connection and the listener (its thread is woken and joined,
    /// so a next session can listen on the same address).
    fn drop(&mut self) {
        for (_, _, l) in &self.writers {
            let _ = l.stream.shutdown(std::net::Shutdown::Both);
        }
        // Connections not yet taken in, too: their readers end with them.
        while let Ok(a) = self.arrivals.try_recv() {
            if let Arrival::Connected(_, _, l) = a {
                let _ = l.stream.shutdown(std::net::Shutdown::Both);
            }
        }
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = TcpStream::connect_timeout(&self.local, Duration::from_millis(200));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// The accept thread's state.
struct Accept {
    key: ClusterKey,
    cluster: String,
    allowed: Vec<String>,
    max_frame: usize,
    arrivals: Sender<Arrival>,
    pool: Arc<Mutex<Receiver<Vec<u8>>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// The largest helped viewport's pixels, in bytes.
    max_pixels: usize,
}

impl Accept {
    fn run(self, listener: TcpListener) {
        let handshakes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut next_conn = 0u64;
        for stream in listener.incoming() {
            if self.stop.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            let stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!("strip listener: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            let peer = stream
                .peer_addr()
                .map_or_else(|_| "a helper".to_string(), |a| format!("helper at {a}"));
            let (key, cluster, allowed) =
                (self.key.clone(), self.cluster.clone(), self.allowed.clone());
            let (max_frame, arrivals, pool) =
                (self.max_frame, self.arrivals.clone(), self.pool.clone());
            let max_pixels = self.max_pixels;
            use std::sync::atomic::Ordering::Relaxed;
            if handshakes.fetch_add(1, Relaxed) >= MAX_HANDSHAKES {
                handshakes.fetch_sub(1, Relaxed);
                tracing::warn!("{peer}: refused: {MAX_HANDSHAKES} handshakes in progress");
                continue;
            }
            next_conn += 1;
            let (conn, busy) = (next_conn, handshakes.clone());
            let spawned = std::thread::Builder::new()
                .name("strip-reader".into())
                .spawn(move || {
                    let admitted = admit(stream, &peer, &key, &cluster, &allowed, max_frame);
                    busy.fetch_sub(1, Relaxed);
                    let link = match admitted {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::warn!("{peer}: refused: {e}");
                            return;
                        }
                    };
                    read_strips(link, conn, max_pixels, &arrivals, &pool);
                });
            if let Err(e) = spawned {
                tracing::warn!("cannot start a strip reader: {e}");
            }
        }
    }
}

/// Authenticates a helper within [`HANDSHAKE_TIMEOUT`]; only `allowed` names get in.
fn admit(
    stream: TcpStream,
    peer: &str,
    key: &ClusterKey,
    cluster: &str,
    allowed: &[String],
    max_frame: usize,
) -> Result<Link, ClusterError> {
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let mut link = Link::new(stream, peer.to_string(), HANDSHAKE_MAX_FRAME)?;
    link.set_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let nonce = random_nonce().map_err(|e| wire(peer, e))?;
    let announced = u32::try_from(max_frame).unwrap_or(u32::MAX);
    let mut hs = ServerHandshake::new(key.clone(), cluster, nonce, announced);
    loop {
        let msg = link.recv_by(deadline)?;
        match hs.handle(&msg).map_err(|e| wire(peer, e))? {
            ServerStep::Challenge(reply) => link.send(&reply)?,
            ServerStep::Accept {
                node,
                keys,
                max_frame: announced,
            } => {
                link.authenticate(keys);
                if !allowed.contains(&node) {
                    let reason = format!(
                        "'{}' is not a helper of this node's viewports",
                        printable(&node)
                    );
                    let _ = link.send(&Message::Refused { reason: &reason });
                    return Err(ClusterError::Refused {
                        peer: peer.to_string(),
                        reason,
                    });
                }
                link.send(&Message::Welcome {
                    max_frame: announced,
                })?;
                link.set_max_frame(max_frame);
                link.stream
                    .set_read_timeout(None)
                    .map_err(|e| io(peer, "cannot clear the timeout", e))?;
                link.peer = node;
                return Ok(link);
            }
            ServerStep::Refuse { error, keys } => {
                link.authenticate(keys);
                let reason = error.to_string();
                let _ = link.send(&Message::Refused { reason: &reason });
                return Err(wire(peer, error));
            }
        }
    }
}

/// Reads one helper's strips until its connection ends; tells the Draw side.
fn read_strips(
    mut link: Link,
    conn: u64,
    max_pixels: usize,
    arrivals: &Sender<Arrival>,
    pool: &Mutex<Receiver<Vec<u8>>>,
) {
    let name = link.peer.clone();
    let writer = match link.split_writer() {
        Ok(w) => w,
        Err(e) => {
            let _ = arrivals.send(Arrival::Gone(name, conn, e.to_string()));
            return;
        }
    };
    // The socket's: a read timeout would end the reader between frames.
    if writer
        .stream
        .set_write_timeout(Some(WRITE_TIMEOUT))
        .is_err()
        || arrivals
            .send(Arrival::Connected(name.clone(), conn, Box::new(writer)))
            .is_err()
    {
        return;
    }
    let why = loop {
        let m = match link.recv() {
            Ok(m) => m,
            Err(e) => break e.to_string(),
        };
        let (frame, viewport, rect, codec, pixels) = match m {
            Message::Strip {
                frame,
                viewport,
                rect,
                codec,
                pixels,
                ..
            } => (frame, viewport, rect, codec, pixels),
            Message::StripReady => {
                if arrivals.send(Arrival::Ready(name.clone(), conn)).is_err() {
                    return;
                }
                continue;
            }
            other => break format!("it sent {} on its strip connection", other.kind()),
        };
        let mut buf = pool
            .lock()
            .ok()
            .and_then(|p| p.try_recv().ok())
            .unwrap_or_default();
        buf.clear();
        match codec {
            STRIP_RGBA8 => buf.extend_from_slice(pixels),
            STRIP_LZ4 => {
                // Never more than the strip it names, and never more than a whole helped
                // viewport: the size is known before a byte is inflated.
                let want = rgba_len(rect);
                if want > max_pixels {
                    break format!(
                        "it sent a compressed strip of {rect:?}, larger than any view it helps with"
                    );
                }
                buf.resize(want, 0);
                match lz4_flex::block::decompress_into(pixels, &mut buf) {
                    Ok(n) if n == want => {}
                    Ok(n) => {
                        break format!(
                            "its compressed strip of {rect:?} holds {n} bytes, not {want}"
                        );
                    }
                    Err(e) => break format!("its compressed strip of {rect:?} is corrupt: {e}"),
                }
            }
            other => {
                break format!("it sent a strip in codec {other}, which this node does not read");
            }
        }
        let strip = Arrival::Strip {
            helper: name.clone(),
            conn,
            frame,
            view: viewport,
            rect,
            pixels: buf,
        };
        if arrivals.send(strip).is_err() {
            return;
        }
    };
    let _ = arrivals.send(Arrival::Gone(name, conn, why));
}
