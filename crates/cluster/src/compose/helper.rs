/*!
A helper's driver of sort-first: one thread per display node it helps dials that node (its
`host:port` in the cluster file), authenticates with the cluster key, and reads its strip
requests; dialled again while the helper runs if the connection ends. The Draw side
([`StripClient`]) takes each frame's requests and sends back the strips it drew.
*/
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use lockstep_wire::{ClusterKey, HANDSHAKE_MAX_FRAME, Message, STRIP_LZ4, STRIP_RGBA8};

use crate::ClusterError;
use crate::link::{Link, client_handshake};

/// How long one attempt to reach a display node may take, and the pause between attempts.
const DIAL_TIMEOUT: Duration = Duration::from_secs(2);
const REDIAL: Duration = Duration::from_millis(250);

/// Largest request a display node sends.
const REQUEST_MAX_FRAME: usize = 4096;

/// How long a strip may take to write before the display node counts as gone.
const WRITE_TIMEOUT: Duration = Duration::from_millis(500);

/// A strip a display node asked this helper for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StripJob {
    /// The display node's place in [`StripClient::new`]'s list.
    pub display: usize,
    /// The frame.
    pub frame: u64,
    /// The view's place among the display node's views.
    pub view: u16,
    /// The strip in the display node's window pixels.
    pub rect: [u32; 4],
    /// How to send it: `STRIP_RGBA8` or `STRIP_LZ4`.
    pub codec: u8,
    /// When the request came.
    pub since: Instant,
}

enum Event {
    Connected(usize, Box<Link>),
    Request(StripJob),
    Gone(usize, String),
}

/// The Draw side of a helper: requests in, strips out.
pub struct StripClient {
    names: Vec<String>,
    events: Receiver<Event>,
    writers: Vec<Option<Link>>,
    /// Whether each connected display node was told this helper takes requests.
    announced: Vec<bool>,
    /// The newest frame each display node sent a request for: a display node that asked
    /// for the frame before is drawing, so its request for this one is waited for.
    asked: Vec<Option<u64>>,
    /// Requests for frames not drawn yet.
    pending: Vec<StripJob>,
    /// This frame's, handed out.
    jobs: Vec<StripJob>,
    /// A compressed strip (kept for reuse).
    packed: Vec<u8>,
    stop: Arc<AtomicBool>,
}

impl StripClient {
    /// Starts dialling each of `displays` (name and address) as helper `name` of `cluster`.
    pub fn new(
        name: &str,
        key: ClusterKey,
        cluster: &str,
        displays: Vec<(String, SocketAddr)>,
    ) -> Result<StripClient, ClusterError> {
        let (tx, events) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let mut names = Vec::new();
        for (i, (display, addr)) in displays.into_iter().enumerate() {
            names.push(display.clone());
            let dialer = Dialer {
                index: i,
                display,
                addr,
                name: name.to_string(),
                cluster: cluster.to_string(),
                key: key.clone(),
                events: tx.clone(),
                stop: stop.clone(),
            };
            std::thread::Builder::new()
                .name("strip-dialer".into())
                .spawn(move || dialer.run())
                .map_err(|e| ClusterError::Internal(format!("cannot start a strip dialer: {e}")))?;
        }
        Ok(StripClient {
            writers: (0..names.len()).map(|_| None).collect(),
            announced: vec![false; names.len()],
            asked: vec![None; names.len()],
            names,
            events,
            pending: Vec::new(),
            jobs: Vec::new(),
            packed: Vec::new(),
            stop,
        })
    }

    /// The display nodes, in the order jobs name them.
    pub fn displays(&self) -> &[String] {
        &self.names
    }

    /// Whether display node `i` is connected, and was told this helper takes requests.
    pub fn is_connected(&self, i: usize) -> bool {
        self.writers.get(i).is_some_and(Option::is_some) && self.announced[i]
    }

    /// This helper's Draw side takes requests from now on: each display node connected
    /// since the last call is told so (`StripReady`) and may ask from its next frame. Called
    /// once a frame is drawn, so that the first strips asked for do not wait for a cold
    /// pipeline.
    /// Returns the display nodes told now.
    pub fn ready(&mut self) -> Vec<usize> {
        let mut told = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            self.take(e);
        }
        for i in 0..self.names.len() {
            let Some(link) = self.writers[i].as_mut().filter(|_| !self.announced[i]) else {
                continue;
            };
            match link.send(&Message::StripReady) {
                Ok(()) => {
                    self.announced[i] = true;
                    told.push(i);
                }
                Err(e) => {
                    tracing::warn!("display node '{}': {e}", self.names[i]);
                    let _ = link.stream.shutdown(std::net::Shutdown::Both);
                    self.writers[i] = None;
                }
            }
        }
        told
    }

    /// The strips to draw for frame `frame`: each connected display node's request, waited
    /// for up to `wait` (a display node asks as it begins the frame, as this helper does; a
    /// request with nothing to draw is not handed out). Requests for older frames are
    /// dropped.
    pub fn jobs(&mut self, frame: u64, wait: Duration) -> &[StripJob] {
        let until = Instant::now() + wait;
        loop {
            while let Ok(e) = self.events.try_recv() {
                self.take(e);
            }
            self.pending.retain(|j| j.frame >= frame);
            // Waited for: display nodes that asked for the frame before (they are drawing
            // at the cluster's pace) and not yet for this one.
            let waiting = (0..self.names.len())
                .any(|i| self.is_connected(i) && self.asked[i].is_some_and(|a| a + 1 == frame));
            let now = Instant::now();
            if !waiting || now >= until {
                break;
            }
            match self.events.recv_timeout(until - now) {
                Ok(e) => self.take(e),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        // This frame's requests with something to draw; the rest wait for their frames.
        self.jobs.clear();
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].frame == frame {
                let j = self.pending.swap_remove(i);
                if j.rect[2] > 0 && j.rect[3] > 0 {
                    self.jobs.push(j);
                }
            } else {
                i += 1;
            }
        }
        self.jobs.sort_by_key(|j| j.display);
        &self.jobs
    }

    /// Sends the strip `job` asked for: `pixels` RGBA8 sRGB rows, `render_us` from the
    /// request to the read-back. A display node that cannot take it is dropped (and dialled
    /// again).
    pub fn send(&mut self, job: &StripJob, pixels: &[u8], render_us: u32) {
        let Some(Some(link)) = self.writers.get_mut(job.display) else {
            return;
        };
        let (codec, pixels) = if job.codec == STRIP_LZ4 {
            self.packed
                .resize(lz4_flex::block::get_maximum_output_size(pixels.len()), 0);
            match lz4_flex::block::compress_into(pixels, &mut self.packed) {
                Ok(n) => (STRIP_LZ4, &self.packed[..n]),
                Err(e) => {
                    tracing::warn!("cannot compress a strip ({e}): sent as it is");
                    (STRIP_RGBA8, pixels)
                }
            }
        } else {
            (STRIP_RGBA8, pixels)
        };
        let msg = Message::Strip {
            frame: job.frame,
            viewport: job.view,
            rect: job.rect,
            render_us,
            codec,
            pixels,
        };
        if let Err(e) = link.send(&msg) {
            tracing::warn!("display node '{}': {e}", self.names[job.display]);
            let _ = link.stream.shutdown(std::net::Shutdown::Both);
            self.writers[job.display] = None;
            self.announced[job.display] = false;
        }
    }

    fn take(&mut self, e: Event) {
        match e {
            Event::Connected(i, link) => {
                if let Some(old) = self.writers[i].replace(*link) {
                    let _ = old.stream.shutdown(std::net::Shutdown::Both);
                }
                self.announced[i] = false;
                self.asked[i] = None;
            }
            Event::Request(j) => {
                let newest = self.asked[j.display].map_or(j.frame, |a| a.max(j.frame));
                self.asked[j.display] = Some(newest);
                // One request per display node, frame and view: a second replaces the first.
                self.pending.retain(|p| {
                    !(p.display == j.display && p.frame == j.frame && p.view == j.view)
                });
                self.pending.push(j);
            }
            Event::Gone(i, why) => {
                self.announced[i] = false;
                self.asked[i] = None;
                if self.writers[i].take().is_some() {
                    tracing::warn!("display node '{}' is gone: {why}", self.names[i]);
                }
                self.pending.retain(|p| p.display != i);
            }
        }
    }
}

impl Drop for StripClient {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for l in self.writers.iter().flatten() {
            let _ = l.stream.shutdown(std::net::Shutdown::Both);
        }
        // Connections not yet taken in, too: their readers end with them.
        while let Ok(e) = self.events.try_recv() {
            if let Event::Connected(_, l) = e {
                let _ = l.stream.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

/// One display node's connection, dialled and read on its own thread.
struct Dialer {
    index: usize,
    display: String,
    addr: SocketAddr,
    name: String,
    cluster: String,
    key: ClusterKey,
    events: Sender<Event>,
    stop: Arc<AtomicBool>,
}

impl Dialer {
    fn run(self) {
        while !self.stop.load(Ordering::Relaxed) {
            let why = match self.dial() {
                Ok(link) => self.read(link),
                Err(e) => e.to_string(),
            };
            tracing::debug!("display node '{}': {why}", self.display);
            if self.events.send(Event::Gone(self.index, why)).is_err() {
                return;
            }
            std::thread::sleep(REDIAL);
        }
    }

    fn dial(&self) -> Result<Link, ClusterError> {
        let peer = format!("display node '{}' at {}", self.display, self.addr);
        let stream = TcpStream::connect_timeout(&self.addr, DIAL_TIMEOUT)
            .map_err(|e| crate::link::io(&peer, "cannot connect", e))?;
        let mut link = Link::new(stream, peer, HANDSHAKE_MAX_FRAME)?;
        link.set_timeout(Some(DIAL_TIMEOUT))?;
        let deadline = Instant::now() + DIAL_TIMEOUT;
        client_handshake(
            &mut link,
            &self.key,
            &self.cluster,
            &self.name,
            deadline,
            None,
        )?;
        link.set_max_frame(REQUEST_MAX_FRAME);
        link.set_timeout(None)?;
        Ok(link)
    }

    /// Reads requests until the connection ends; returns why it did.
    fn read(&self, mut link: Link) -> String {
        let writer = match link.split_writer() {
            Ok(w) => w,
            Err(e) => return e.to_string(),
        };
        // The socket's: a read timeout would end the reader while no frame is drawn.
        if let Err(e) = writer.stream.set_write_timeout(Some(WRITE_TIMEOUT)) {
            return e.to_string();
        }
        if self
            .events
            .send(Event::Connected(self.index, Box::new(writer)))
            .is_err()
        {
            return "the helper stopped".into();
        }
        loop {
            let m = match link.recv() {
                Ok(m) => m,
                Err(e) => return e.to_string(),
            };
            let Message::StripRequest {
                frame,
                viewport,
                rect,
                codec,
            } = m
            else {
                return format!("it sent {} on the strip connection", m.kind());
            };
            let job = StripJob {
                display: self.index,
                frame,
                view: viewport,
                rect,
                codec,
                since: Instant::now(),
            };
            if self.events.send(Event::Request(job)).is_err() {
                return "the helper stopped".into();
            }
        }
    }
}
