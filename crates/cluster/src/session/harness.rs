/*!
A master's session and N nodes in memory, over a simulated network and clock (the shape of
quinn's `Pair`): the protocol tested in milliseconds, without sockets or sleeps.

The master is the real [`MasterSession`] with the real datagram layer (`Fragmenter`,
`NakBudget`); each node takes its frame data through the real [`NodeStream`] — frames as
authenticated datagrams to a group that loses, duplicates and reorders them, requests for
the missing ones on the node's connection. A connection is reliable and in order, with a
latency and jitter. The nodes here are small: they apply a frame (a chain of hashes stands
for the scene), draw it for a set time, report `SwapReady` with their state, and present a
frame when its release comes, recording when.
*/
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use lockstep_wire::datagram::{Fragmenter, MulticastKey, Nak, NakBudget};
use lockstep_wire::{ClusterKey, Message, NodeStats};

use super::NodeId;
use super::master::{Dest, Event, Limits, MasterSession, Payload, Standing};
use super::node::{self, NodeStream};

const MS: Duration = Duration::from_millis(1);

/// A node's stream from the group ends after this long without a sign from the master.
const NODE_SILENCE: Duration = Duration::from_secs(1);

/// How the cluster and its network behave.
#[derive(Debug, Clone)]
pub struct Setup {
    pub nodes: usize,
    pub multicast: bool,
    /// Share of datagrams lost, and of datagrams delivered twice.
    pub loss: f64,
    pub duplicate: f64,
    /// One-way latency, and up to this much more at random (datagrams overtake each other;
    /// a connection keeps its order).
    pub latency: Duration,
    pub jitter: Duration,
    /// How long a node draws a frame, and its first (loading the scene).
    pub draw: Duration,
    pub load: Duration,
    /// The master begins a frame this often (at most: a barrier may take longer).
    pub period: Duration,
    pub limits: Limits,
    /// Datagrams of at most this many bytes.
    pub mtu: usize,
    pub seed: u64,
    /// Nodes not connected at the start (they join later, with [`Cluster::connect`]).
    pub absent: Vec<usize>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            nodes: 3,
            multicast: false,
            loss: 0.0,
            duplicate: 0.0,
            latency: Duration::from_micros(50),
            jitter: Duration::from_micros(200),
            draw: 2 * MS,
            load: 20 * MS,
            period: Duration::from_micros(16_667),
            limits: Limits {
                swap_deadline: 100 * MS,
                load_deadline: 2000 * MS,
                heartbeat: 50 * MS,
                silence: 200 * MS,
            },
            mtu: 600,
            seed: 1,
            absent: Vec::new(),
        }
    }
}

/// What a connection carries down to a node.
#[derive(Debug, Clone)]
enum Down {
    JoinGroup { session: u64, first: u64 },
    Unit(Vec<u8>),
    Heartbeat,
    Units { through: u64 },
}

/// What a node sends up its connection.
#[derive(Debug, Clone)]
enum Up {
    Ready { frame: u64, stats: NodeStats },
    Alive,
    Nak(Nak),
    Closed,
}

#[derive(Debug, Clone)]
enum Packet {
    Down(Down),
    Datagram(Vec<u8>),
    Up(Up),
}

/// Where a packet goes: a node (by its place in [`Cluster::nodes`]) or the master, from a
/// node's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum To {
    Node(usize),
    Master(NodeId),
}

/// The simulated network: packets in flight by arrival time.
struct Net {
    rng: u64,
    queue: BTreeMap<(Instant, u64), (To, Packet)>,
    seq: u64,
    /// Each connection's last arrival, per direction: what is sent later arrives later.
    last: HashMap<(To, bool), Instant>,
    datagrams: u64,
    lost: u64,
}

impl Net {
    fn random(&mut self) -> f64 {
        // xorshift64*: a fixed seed, the same run every time.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn delay(&mut self, s: &Setup) -> Duration {
        s.latency + s.jitter.mul_f64(self.random())
    }

    fn push(&mut self, at: Instant, to: To, p: Packet) {
        self.seq += 1;
        self.queue.insert((at, self.seq), (to, p));
    }

    /// On a connection: reliable and in order.
    fn stream(&mut self, s: &Setup, now: Instant, to: To, p: Packet) {
        let mut at = now + self.delay(s);
        let key = (to, matches!(p, Packet::Up(_)));
        if let Some(last) = self.last.get(&key) {
            at = at.max(*last);
        }
        self.last.insert(key, at);
        self.push(at, to, p);
    }

    /// A datagram to one node: maybe lost, maybe twice, in any order.
    fn datagram(&mut self, s: &Setup, now: Instant, node: usize, bytes: &[u8]) {
        self.datagrams += 1;
        if self.random() < s.loss {
            self.lost += 1;
            return;
        }
        let copies = if self.random() < s.duplicate { 2 } else { 1 };
        for _ in 0..copies {
            let at = now + self.delay(s);
            self.push(at, To::Node(node), Packet::Datagram(bytes.to_vec()));
        }
    }
}

/// A unit's kind, its first byte.
const FRAME: u8 = 0;
const SNAPSHOT: u8 = 1;
const RELEASE: u8 = 2;

fn unit(kind: u8, frame: u64, payload: &[u8]) -> Vec<u8> {
    let mut u = vec![kind];
    u.extend_from_slice(&frame.to_le_bytes());
    u.extend_from_slice(payload);
    u
}

/// Frame `frame`'s data: bytes of its own, of a length that varies (one to several
/// datagrams).
fn frame_data(frame: u64) -> Vec<u8> {
    let len = 40 + (frame.wrapping_mul(7919) % 2400) as usize;
    (0..len)
        .map(|i| (frame.wrapping_mul(31).wrapping_add(i as u64) % 251) as u8)
        .collect()
}

/// The state after applying `data` to `state` (FNV-1a over both).
fn apply(state: u64, data: &[u8]) -> u64 {
    let mut h = state ^ 0xcbf2_9ce4_8422_2325;
    for b in data {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// A frame a node presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Presented {
    pub frame: u64,
    pub at: Instant,
    pub state: u64,
}

/// One simulated node.
pub struct SimNode {
    pub name: String,
    /// Its connection in the session, while it has one.
    pub id: Option<NodeId>,
    /// Its stream from the group, once told to join it.
    group: Option<NodeStream>,
    /// Units received, in order, with when they came: applied one after the other.
    inbox: VecDeque<(Instant, Vec<u8>)>,
    state: u64,
    /// The frame being drawn, and when it is done.
    drawing: Option<(u64, Instant)>,
    /// The frame it reported ready, and when: a release that came after presents it.
    waiting: Option<(u64, Instant)>,
    frames: u64,
    pub presented: Vec<Presented>,
    /// From this frame on it sends nothing (a hung or unplugged node).
    pub freeze_at: Option<u64>,
    frozen: bool,
    /// It answers no heartbeat.
    pub deaf: bool,
    /// Why its stream from the group ended (a unit lost beyond repair, the master silent).
    pub ended: Option<node::Event>,
}

/// The master, its session and nodes, the network between them, and the clock.
pub struct Cluster {
    pub setup: Setup,
    pub now: Instant,
    pub session: MasterSession,
    pub nodes: Vec<SimNode>,
    net: Net,
    key: MulticastKey,
    fragmenter: Fragmenter,
    next_unit: u64,
    budgets: HashMap<NodeId, NakBudget>,
    next_id: NodeId,
    /// The master's state after each frame, and when each frame was released.
    pub states: BTreeMap<u64, u64>,
    pub released: BTreeMap<u64, Instant>,
    state: u64,
    pub events: Vec<(Instant, Event)>,
    /// Per frame: the nodes whose answers the barrier took.
    pub answered: BTreeMap<u64, Vec<NodeId>>,
    /// Every `SwapReady` the master received: (frame, node).
    heard_ready: std::collections::HashSet<(u64, NodeId)>,
    /// When each frame was begun.
    pub begun: BTreeMap<u64, Instant>,
    pub next_frame: u64,
}

impl Cluster {
    /// A cluster of `setup.nodes` nodes, every one connected (not yet in a frame).
    pub fn new(setup: Setup) -> Cluster {
        let now = Instant::now();
        let names: Vec<String> = (0..setup.nodes).map(|i| format!("n{i}")).collect();
        let key = ClusterKey::new(vec![7; 32]).expect("a 32-byte key");
        let key = MulticastKey::derive(&key, "sim", 42);
        let session = MasterSession::new(setup.limits, names.clone(), setup.multicast, now);
        let mut c = Cluster {
            now,
            session,
            nodes: Vec::new(),
            net: Net {
                rng: setup.seed.max(1),
                queue: BTreeMap::new(),
                seq: 0,
                last: HashMap::new(),
                datagrams: 0,
                lost: 0,
            },
            fragmenter: Fragmenter::new(key.clone(), setup.mtu, 8),
            key,
            next_unit: 0,
            budgets: HashMap::new(),
            next_id: 0,
            states: BTreeMap::new(),
            released: BTreeMap::new(),
            state: 0,
            events: Vec::new(),
            answered: BTreeMap::new(),
            heard_ready: Default::default(),
            begun: BTreeMap::new(),
            next_frame: 0,
            setup,
        };
        for name in names {
            c.nodes.push(SimNode {
                name,
                id: None,
                group: None,
                inbox: VecDeque::new(),
                state: 0,
                drawing: None,
                waiting: None,
                frames: 0,
                presented: Vec::new(),
                freeze_at: None,
                frozen: false,
                deaf: false,
                ended: None,
            });
            if !c.setup.absent.contains(&(c.nodes.len() - 1)) {
                c.connect(c.nodes.len() - 1);
            }
        }
        c
    }

    /// Node `i` (re)connects: a new connection in the session, a fresh pipeline.
    pub fn connect(&mut self, i: usize) {
        let id = self.next_id;
        self.next_id += 1;
        let n = &mut self.nodes[i];
        n.id = Some(id);
        n.group = None;
        n.ended = None;
        n.inbox.clear();
        n.drawing = None;
        n.waiting = None;
        n.frames = 0;
        n.frozen = false;
        self.session.handle_joined(id, &n.name);
        self.flush();
    }

    /// The place of the node on connection `id`.
    fn node_of(&self, id: NodeId) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == Some(id))
    }

    /// One frame, as the master's loop runs it alone (`Master::swap`): begun and sent, its
    /// barrier, its release; then the rest of the frame period passes.
    pub fn run_frame(&mut self) {
        let frame = self.next_frame;
        self.next_frame += 1;
        let start = self.now;
        self.begun.insert(frame, start);
        self.session.begin_frame(frame, self.now);
        let data = frame_data(frame);
        self.state = apply(self.state, &data);
        self.states.insert(frame, self.state);
        self.session.send_frame(frame, self.now);
        self.flush();
        self.session.begin_barrier(frame, self.now);
        while !self.session.barrier_done() {
            let until = self.session.poll_timeout().unwrap_or(self.now);
            if self.run_until(until, true) {
                break;
            }
            self.session.handle_timeout(self.now);
            self.flush();
        }
        // What the peeked nodes sent has been handed over as it came.
        let answered = self.session.end_barrier(self.now);
        for (id, stats) in &answered {
            assert_eq!(
                stats.state,
                Some(self.state),
                "node {id} reported another state at frame {frame}"
            );
        }
        self.answered
            .insert(frame, answered.iter().map(|(id, _)| *id).collect());
        // The swap lock itself: no node that presents this frame with the others is
        // released before the master has its answer.
        for p in self.session.presenting(frame) {
            assert!(
                self.heard_ready.contains(&(frame, p.id)),
                "frame {frame} released before '{}' was ready",
                p.name
            );
        }
        self.released.insert(frame, self.now);
        self.session.release(frame);
        self.flush();
        let next = (start + self.setup.period).max(self.now);
        self.idle_until(next);
    }

    /// Time passes between frames: heartbeats and their answers.
    pub fn idle_until(&mut self, until: Instant) {
        loop {
            let due = self.session.poll_timeout().unwrap_or(until).min(until);
            self.run_until(due, false);
            self.session.handle_timeout(self.now);
            self.flush();
            if self.now >= until {
                return;
            }
        }
    }

    /// Delivers every packet and runs every node's timer due until `until`, in time order;
    /// the clock ends at `until` — or (`barrier`), as soon as the barrier under way waits
    /// for nobody, which it tells.
    fn run_until(&mut self, until: Instant, barrier: bool) -> bool {
        loop {
            let packet = self.net.queue.first_key_value().map(|(k, _)| k.0);
            let timer = self.nodes.iter().filter_map(node_timeout).min();
            let next = match (packet, timer) {
                (Some(p), Some(t)) => p.min(t),
                (p, t) => match p.or(t) {
                    Some(x) => x,
                    None => break,
                },
            };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            if packet == Some(next)
                && let Some((_, (to, p))) = self.net.queue.pop_first()
            {
                self.deliver(to, p);
                if let To::Node(i) = to {
                    self.node_turn(i);
                }
            }
            let now = self.now;
            for i in 0..self.nodes.len() {
                if node_timeout(&self.nodes[i]).is_some_and(|t| t <= now) {
                    self.node_turn(i);
                }
            }
            self.flush();
            if barrier && self.session.barrier_done() {
                return true;
            }
        }
        self.now = self.now.max(until);
        false
    }

    fn deliver(&mut self, to: To, p: Packet) {
        match (to, p) {
            (To::Master(id), Packet::Up(up)) => self.master_hears(id, up),
            (To::Node(i), Packet::Down(d)) => self.node_hears(i, d),
            (To::Node(i), Packet::Datagram(bytes)) => {
                let now = self.now;
                if let Some(g) = &mut self.nodes[i].group {
                    // Refused ones are counted by the stream and repaired.
                    let _ = g.handle_datagram(&bytes, now);
                }
            }
            _ => {}
        }
    }

    fn master_hears(&mut self, id: NodeId, up: Up) {
        if self.session.peer(id).is_none() {
            return;
        }
        match up {
            Up::Ready { frame, stats } => {
                self.heard_ready.insert((frame, id));
                self.session.handle_ready(id, frame, stats);
            }
            Up::Alive => self.session.handle_alive(id),
            Up::Closed => self
                .session
                .handle_failure(id, "closed the connection".into()),
            Up::Nak(nak) => {
                self.session.handle_alive(id);
                let budget = self
                    .budgets
                    .entry(id)
                    .or_insert_with(|| NakBudget::new(10_000.0, 1024));
                let Some(datagrams) = self.fragmenter.answer(&nak, budget, self.now) else {
                    self.session
                        .handle_failure(id, format!("asked for unit {} no longer kept", nak.frame));
                    return;
                };
                let datagrams: Vec<Vec<u8>> = datagrams.into_iter().map(<[u8]>::to_vec).collect();
                for d in datagrams {
                    self.send_group(&d);
                }
            }
        }
    }

    /// One datagram to every node on the group.
    fn send_group(&mut self, d: &[u8]) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].group.is_some() {
                self.net.datagram(&self.setup, self.now, i, d);
            }
        }
    }

    fn node_hears(&mut self, i: usize, d: Down) {
        let now = self.now;
        let n = &mut self.nodes[i];
        let Some(id) = n.id else { return };
        match d {
            Down::JoinGroup { session, first } => {
                assert_eq!(session, self.key.session());
                let key = self.key.clone();
                n.group = Some(NodeStream::new(key, 1 << 20, first, NODE_SILENCE, now));
            }
            Down::Unit(u) => {
                // The only unit on the connection of a node on the group is its first frame.
                if let Some(g) = &mut n.group {
                    g.first_frame_done();
                }
                n.inbox.push_back((now, u));
            }
            Down::Heartbeat => {
                if let Some(g) = &mut n.group {
                    let ok = g.handle_message(&Message::Heartbeat { seq: 0 }, now);
                    assert_eq!(ok, Ok(true));
                }
                if !n.deaf {
                    self.net
                        .stream(&self.setup, now, To::Master(id), Packet::Up(Up::Alive));
                }
            }
            Down::Units { through } => {
                if let Some(g) = &mut n.group {
                    g.handle_units(through, now);
                }
            }
        }
    }

    /// A node's own work at `now`: requests for missing datagrams, whole units taken in,
    /// then each unit in order — a frame drawn and reported ready, a release presenting it.
    fn node_turn(&mut self, i: usize) {
        let now = self.now;
        let n = &mut self.nodes[i];
        let Some(id) = n.id else { return };
        if let Some(g) = &mut n.group {
            g.handle_timeout(now);
            while let Some(nak) = g.poll_transmit(now) {
                if !n.frozen {
                    self.net
                        .stream(&self.setup, now, To::Master(id), Packet::Up(Up::Nak(nak)));
                }
            }
            while let Some(e) = g.poll_event() {
                match e {
                    node::Event::Unit(u) => n.inbox.push_back((now, u)),
                    node::Event::Refused(_) => {}
                    ended => n.ended = Some(ended),
                }
            }
        }
        loop {
            if let Some((frame, done)) = n.drawing {
                if now < done || n.frozen {
                    return;
                }
                n.drawing = None;
                if n.freeze_at.is_some_and(|f| frame >= f) {
                    n.frozen = true;
                    return;
                }
                n.waiting = Some((frame, now));
                let stats = NodeStats {
                    state: Some(n.state),
                    ..NodeStats::default()
                };
                let up = Packet::Up(Up::Ready { frame, stats });
                self.net.stream(&self.setup, now, To::Master(id), up);
            }
            let Some((came, u)) = n.inbox.pop_front() else {
                return;
            };
            node_unit(n, came, &u, now, &self.setup);
        }
    }

    /// Sends what the session asks for; records what it says happened, and lets a node that
    /// was told it is out of the session go (a restarting node closes its connection).
    fn flush(&mut self) {
        loop {
            if let Some(t) = self.session.poll_transmit() {
                self.send(t.to, t.what);
                continue;
            }
            let Some(e) = self.session.poll_event() else {
                return;
            };
            if let Event::Dropped { node, .. } | Event::Left { node } = &e
                && let Some(i) = self.node_of(*node)
            {
                self.nodes[i].id = None;
                self.nodes[i].group = None;
            }
            self.events.push((self.now, e));
        }
    }

    fn send(&mut self, to: Dest, what: Payload) {
        let now = self.now;
        let bytes = match what {
            Payload::Frame { frame } => unit(FRAME, frame, &frame_data(frame)),
            Payload::Snapshot { frame } => unit(SNAPSHOT, frame, &self.state.to_le_bytes()),
            Payload::Release { frame } => unit(RELEASE, frame, &[]),
            Payload::JoinGroup | Payload::Heartbeat { .. } | Payload::Units => Vec::new(),
        };
        match to {
            Dest::Group => {
                let u = self.next_unit;
                self.next_unit += 1;
                let datagrams = self
                    .fragmenter
                    .fragment(u, &bytes)
                    .expect("a unit fits")
                    .to_vec();
                for d in datagrams {
                    self.send_group(&d);
                }
            }
            Dest::Node(id) => {
                let Some(i) = self.node_of(id) else { return };
                let down = match what {
                    Payload::JoinGroup => Down::JoinGroup {
                        session: self.key.session(),
                        first: self.next_unit,
                    },
                    Payload::Heartbeat { .. } => Down::Heartbeat,
                    Payload::Units => Down::Units {
                        through: self.next_unit.saturating_sub(1),
                    },
                    _ => Down::Unit(bytes),
                };
                self.net
                    .stream(&self.setup, now, To::Node(i), Packet::Down(down));
            }
        }
    }

    /// Node `i` closes its connection (it restarts, or is unplugged).
    pub fn close(&mut self, i: usize) {
        if let Some(id) = self.nodes[i].id.take() {
            self.nodes[i].group = None;
            self.net.stream(
                &self.setup,
                self.now,
                To::Master(id),
                Packet::Up(Up::Closed),
            );
        }
    }

    /// The frames node `i` presented.
    pub fn frames_of(&self, i: usize) -> Vec<u64> {
        self.nodes[i].presented.iter().map(|p| p.frame).collect()
    }

    /// The names of the nodes dropped, with why.
    pub fn dropped(&self) -> Vec<(String, String)> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Dropped { name, why, .. } => Some((name.clone(), why.clone())),
                _ => None,
            })
            .collect()
    }

    /// The frame from which node `name` was last in step, if it got in step.
    pub fn in_step_from(&self, name: &str) -> Option<u64> {
        self.events.iter().rev().find_map(|(_, e)| match e {
            Event::InStep { name: n, from, .. } if n == name => Some(*from),
            _ => None,
        })
    }

    /// Datagrams sent to nodes, and lost on the way.
    pub fn datagrams(&self) -> (u64, u64) {
        (self.net.datagrams, self.net.lost)
    }

    /// Standing of node `name` in the session.
    pub fn standing(&self, name: &str) -> Option<Standing> {
        self.session
            .peers()
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.standing)
    }
}

fn node_timeout(n: &SimNode) -> Option<Instant> {
    let draw = n.drawing.filter(|_| !n.frozen).map(|(_, t)| t);
    let nak = n.group.as_ref().and_then(NodeStream::poll_timeout);
    match (draw, nak) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A node applies one unit that came at `came`: a frame or snapshot is drawn, a release
/// that came after its `SwapReady` presents the frame it waits for (one that came before
/// is of a frame it was behind on).
fn node_unit(n: &mut SimNode, came: Instant, u: &[u8], now: Instant, setup: &Setup) {
    let (kind, rest) = u.split_first().expect("a unit has a kind");
    let frame = u64::from_le_bytes(rest[..8].try_into().expect("a unit has a frame"));
    let payload = &rest[8..];
    match *kind {
        FRAME | SNAPSHOT => {
            n.state = if *kind == SNAPSHOT {
                u64::from_le_bytes(payload.try_into().expect("a snapshot is a state"))
            } else {
                assert_eq!(
                    payload,
                    frame_data(frame),
                    "{}: frame {frame} whole",
                    n.name
                );
                apply(n.state, payload)
            };
            let draw = if n.frames == 0 {
                setup.load
            } else {
                setup.draw
            };
            n.frames += 1;
            n.waiting = None;
            n.drawing = Some((frame, now + draw));
        }
        RELEASE => {
            if let Some((f, since)) = n.waiting
                && f == frame
            {
                n.waiting = None;
                if came >= since {
                    n.presented.push(Presented {
                        frame,
                        at: now,
                        state: n.state,
                    });
                }
            }
        }
        other => panic!("unit of kind {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every node presented every frame in `frames`, each with the master's state, none
    /// before its release.
    fn every_frame_everywhere(
        c: &Cluster,
        nodes: impl Iterator<Item = usize>,
        frames: std::ops::Range<u64>,
    ) {
        for i in nodes {
            let n = &c.nodes[i];
            let shown: Vec<u64> = n
                .presented
                .iter()
                .map(|p| p.frame)
                .filter(|f| frames.contains(f))
                .collect();
            assert_eq!(
                shown,
                frames.clone().collect::<Vec<_>>(),
                "{} presented every frame",
                n.name
            );
            for p in n.presented.iter().filter(|p| frames.contains(&p.frame)) {
                assert_eq!(
                    p.state, c.states[&p.frame],
                    "{} frame {} state",
                    n.name, p.frame
                );
                assert!(
                    p.at >= c.released[&p.frame],
                    "{} presented {} before its release",
                    n.name,
                    p.frame
                );
            }
        }
    }

    #[test]
    fn with_5_percent_loss_and_reordering_1000_frames_reach_16_nodes_whole_and_in_step() {
        let mut c = Cluster::new(Setup {
            nodes: 16,
            multicast: true,
            loss: 0.05,
            duplicate: 0.02,
            jitter: 2 * MS,
            seed: 17,
            ..Setup::default()
        });
        for _ in 0..1000 {
            c.run_frame();
        }
        // The last release has nothing after it to show a node that lost it: the next
        // heartbeat names the last unit sent, and the node asks for it.
        let t = c.now;
        c.idle_until(t + 100 * MS);
        assert_eq!(c.dropped(), []);
        every_frame_everywhere(&c, 0..16, 0..1000);
        let (sent, lost) = c.datagrams();
        assert!(lost * 100 > sent * 4, "about 5 % lost: {lost} of {sent}");
        // Every barrier took all 16 answers.
        assert!(c.answered.values().all(|a| a.len() == 16));
        for n in &c.nodes {
            assert_eq!(n.ended, None, "{}: its stream ended", n.name);
            let stats = n.group.as_ref().expect("on the group").stats();
            assert!(
                stats.naks > 0 && stats.duplicates > 0,
                "{}: {stats:?}",
                n.name
            );
        }
    }

    #[test]
    fn over_connections_alone_every_frame_reaches_every_node() {
        let mut c = Cluster::new(Setup {
            nodes: 16,
            ..Setup::default()
        });
        for _ in 0..200 {
            c.run_frame();
        }
        assert_eq!(c.dropped(), []);
        every_frame_everywhere(&c, 0..16, 0..200);
        assert_eq!(c.datagrams(), (0, 0));
    }

    #[test]
    fn the_start_barrier_waits_for_a_slow_load_within_the_load_deadline() {
        let mut c = Cluster::new(Setup {
            load: 700 * MS,
            multicast: true,
            ..Setup::default()
        });
        let t0 = c.now;
        c.run_frame();
        // Longer than the swap deadline (100 ms), within the load deadline.
        let first = c.released[&0] - t0;
        assert!(first >= 700 * MS && first < 800 * MS, "{first:?}");
        for _ in 1..10 {
            c.run_frame();
        }
        assert_eq!(c.dropped(), []);
        every_frame_everywhere(&c, 0..3, 0..10);
    }

    #[test]
    fn a_node_that_stops_answering_is_dropped_at_the_deadline_and_the_others_go_on() {
        let mut c = Cluster::new(Setup {
            nodes: 4,
            multicast: true,
            ..Setup::default()
        });
        c.nodes[2].freeze_at = Some(10);
        for _ in 0..30 {
            c.run_frame();
        }
        assert_eq!(
            c.dropped(),
            [(
                "n2".to_string(),
                "missed the swap deadline of 100ms at frame 10".to_string()
            )]
        );
        // Frame 10 was released at the deadline, not before; the next ones at the pace.
        let waited = c.released[&10] - c.begun[&10];
        assert!(waited >= 99 * MS && waited < 105 * MS, "{waited:?}");
        assert!(c.released[&12] - c.released[&11] < 20 * MS);
        every_frame_everywhere(&c, [0, 1, 3].into_iter(), 0..30);
        assert_eq!(c.frames_of(2), (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn a_late_joiner_catches_up_without_stalling_anyone_then_presents_with_the_others() {
        let mut c = Cluster::new(Setup {
            nodes: 3,
            multicast: true,
            load: 300 * MS,
            loss: 0.02,
            absent: vec![2],
            ..Setup::default()
        });
        for _ in 0..20 {
            c.run_frame();
        }
        assert_eq!(c.dropped(), []);
        c.connect(2);
        let before = c.now;
        for _ in 20..60 {
            c.run_frame();
        }
        assert_eq!(c.dropped(), []);
        // Its snapshot at frame 20, then 300 ms of loading: no barrier waited for it.
        let stalls = (21..40)
            .map(|f| c.released[&f] - c.released[&(f - 1)])
            .max();
        assert!(stalls.unwrap() < 25 * MS, "{stalls:?}");
        let from = c.in_step_from("n2").expect("in step");
        let loaded = (before + 300 * MS, c.released[&from]);
        assert!(loaded.1 >= loaded.0, "in step only once loaded");
        assert!(from > 20 && from < 60, "{from}");
        every_frame_everywhere(&c, 0..2, 0..60);
        every_frame_everywhere(&c, 2..3, from..60);
        // Nothing before its snapshot, and nothing while it loaded.
        let first = c.nodes[2].presented.first().expect("presented");
        assert!(first.frame >= 20 && first.at >= loaded.0, "{first:?}");
    }

    #[test]
    fn a_restarted_node_gets_the_switch_frame_leaves_quietly_and_comes_back() {
        let mut c = Cluster::new(Setup {
            nodes: 3,
            multicast: true,
            ..Setup::default()
        });
        for _ in 0..10 {
            c.run_frame();
        }
        c.session.restart_with_next_frame(vec!["n1".into()]);
        c.run_frame();
        assert!(matches!(c.standing("n1"), Some(Standing::Leaving { .. })));
        // Its pipeline restarts: the connection closes, and it connects again.
        c.close(1);
        for _ in 11..14 {
            c.run_frame();
        }
        assert_eq!(c.standing("n1"), None, "let go once its connection closed");
        assert!(
            c.events
                .iter()
                .any(|(_, e)| matches!(e, Event::Left { .. }))
        );
        c.connect(1);
        for _ in 14..40 {
            c.run_frame();
        }
        assert_eq!(c.dropped(), [], "leaving to restart is no failure");
        let from = c.in_step_from("n1").expect("in step again");
        every_frame_everywhere(&c, [0, 2].into_iter(), 0..40);
        every_frame_everywhere(&c, 1..2, from..40);
        // Up to the switch frame, then nothing while away.
        assert!(c.frames_of(1).iter().all(|f| *f <= 10 || *f >= from));
    }

    #[test]
    fn between_frames_a_node_silent_to_heartbeats_is_dropped_after_the_silence_limit() {
        let mut c = Cluster::new(Setup {
            nodes: 3,
            ..Setup::default()
        });
        for _ in 0..5 {
            c.run_frame();
        }
        c.nodes[1].deaf = true;
        let t = c.now;
        c.idle_until(t + 2000 * MS);
        let dropped: Vec<&(Instant, Event)> = c
            .events
            .iter()
            .filter(|(_, e)| matches!(e, Event::Dropped { .. }))
            .collect();
        assert_eq!(dropped.len(), 1, "{dropped:?}");
        let (at, Event::Dropped { name, why, .. }) = dropped[0] else {
            unreachable!()
        };
        assert_eq!(name, "n1");
        assert!(why.starts_with("answered no heartbeat for "), "{why}");
        // The first unanswered heartbeat, then the limit (200 ms), then the next check.
        let after = *at - t;
        assert!(after > 200 * MS && after <= 310 * MS, "{after:?}");
        for _ in 5..10 {
            c.run_frame();
        }
        every_frame_everywhere(&c, [0, 2].into_iter(), 0..10);
    }

    #[test]
    fn a_node_catching_up_too_long_is_dropped_at_the_load_deadline() {
        let mut c = Cluster::new(Setup {
            nodes: 2,
            absent: vec![1],
            ..Setup::default()
        });
        for _ in 0..3 {
            c.run_frame();
        }
        c.connect(1);
        c.nodes[1].freeze_at = Some(0);
        let joined = c.now;
        while c.dropped().is_empty() && c.now - joined < 5000 * MS {
            c.run_frame();
        }
        let (at, _) = c
            .events
            .iter()
            .find(|(_, e)| matches!(e, Event::Dropped { .. }))
            .expect("dropped");
        assert_eq!(
            c.dropped(),
            [(
                "n1".to_string(),
                "did not catch up with the cluster within 2s".to_string()
            )]
        );
        let after = *at - joined;
        assert!(after > 2000 * MS && after < 2050 * MS, "{after:?}");
    }
}
