//! Frame data over a simulated lossy multicast network, with a simulated clock: 1,000 frames
//! reach 16 nodes through 5 % loss, duplicates, reordering and forged datagrams; every node
//! gets every frame whole, in order, exactly once, repaired by requests for what was lost.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use lockstep_wire::ClusterKey;
use lockstep_wire::datagram::{
    Assembled, ETHERNET_DATAGRAM, Fragmenter, MulticastKey, Nak, NakBudget, Reassembler,
};

/// A small deterministic generator (xorshift64*), so that a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        (self.next() % 1_000_000) as f64 / 1e6 < p
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What travels, and to whom.
enum Packet {
    /// A datagram to node `to`.
    Datagram { to: usize, bytes: Vec<u8> },
    /// A request from node `from` to the master (over its TCP connection: never lost).
    Nak { from: usize, nak: Nak },
    /// The master tells node `to` that frame `frame` was sent (over TCP: never lost).
    Sent { to: usize, frame: u64 },
}

/// The simulated network: packets by delivery time (µs), then by when they were sent.
#[derive(Default)]
struct Net {
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    packets: HashMap<u64, Packet>,
    seq: u64,
    /// Copies altered in transit.
    forged: u64,
}

impl Net {
    fn send(&mut self, at: u64, p: Packet) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.packets.insert(self.seq, p);
    }

    /// To every node: each copy lost 5 %, duplicated 2 %, delayed 0–2 ms (so reordered), and
    /// 0.5 % of copies altered in transit.
    fn multicast(&mut self, rng: &mut Rng, now: u64, bytes: &[u8]) {
        for to in 0..NODES {
            if rng.chance(0.05) {
                continue;
            }
            let copies = if rng.chance(0.02) { 2 } else { 1 };
            for _ in 0..copies {
                let mut b = bytes.to_vec();
                if rng.chance(0.005) {
                    let i = rng.below(b.len() as u64) as usize;
                    b[i] ^= 1 << rng.below(8);
                    self.forged += 1;
                }
                self.send(now + rng.below(2000), Packet::Datagram { to, bytes: b });
            }
        }
    }

    /// The next packet due by `now`, with its time.
    fn due(&mut self, now: u64) -> Option<(u64, Packet)> {
        let Reverse((at, id)) = *self.queue.peek()?;
        if at > now {
            return None;
        }
        self.queue.pop();
        Some((at, self.packets.remove(&id)?))
    }
}

const NODES: usize = 16;
const FRAMES: u64 = 1000;

fn key(session: u64) -> MulticastKey {
    let k = ClusterKey::new(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap();
    MulticastKey::derive(&k, "wall", session)
}

/// A frame's bytes: its size and content follow from its number.
fn frame_bytes(frame: u64) -> Vec<u8> {
    let len = 200 + (frame * 7919 % 8_000) as usize;
    (0..len)
        .map(|i| (i as u64 ^ frame.wrapping_mul(31)) as u8)
        .collect()
}

#[test]
fn a_thousand_frames_reach_sixteen_nodes_through_loss_reordering_and_forgeries() {
    let t0 = Instant::now();
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut master = Fragmenter::new(key(42), ETHERNET_DATAGRAM, 8);
    let mut budgets: Vec<NakBudget> = (0..NODES).map(|_| NakBudget::new(200_000.0, 256)).collect();
    let mut nodes: Vec<Reassembler> = (0..NODES)
        .map(|_| Reassembler::new(key(42), 1 << 20, 0))
        .collect();
    let mut got: Vec<Vec<u64>> = vec![Vec::new(); NODES];
    let mut net = Net::default();
    let mut now = 0u64;
    let mut next_frame = 0u64;
    let mut resent = 0u64;
    let deadline = 60_000_000; // a minute of simulated time at most
    while got.iter().any(|g| g.len() < FRAMES as usize) {
        assert!(
            now < deadline,
            "frames stopped arriving: {:?}",
            got.iter().map(Vec::len).collect::<Vec<_>>()
        );
        // The master sends a frame every millisecond, two ahead of the swap barrier at most
        // (pipelined two deep: frame F+2 waits until every node has frame F).
        let barrier = got.iter().all(|g| g.len() as u64 + 2 >= next_frame);
        if next_frame < FRAMES && now >= next_frame * 1000 && barrier {
            let datagrams: Vec<Vec<u8>> = master
                .fragment(next_frame, &frame_bytes(next_frame))
                .unwrap()
                .to_vec();
            for d in &datagrams {
                net.multicast(&mut rng, now, d);
            }
            // The nodes hear of it over their connections too (as with the swap release).
            for to in 0..NODES {
                net.send(
                    now + 200,
                    Packet::Sent {
                        to,
                        frame: next_frame,
                    },
                );
            }
            next_frame += 1;
        }
        // Everything due by now.
        while let Some((at, packet)) = net.due(now) {
            let at_instant = t0 + Duration::from_micros(at);
            match packet {
                Packet::Datagram { to, bytes } => {
                    // Refused ones are counted; the frame is repaired as if it were lost.
                    let _ = nodes[to].accept(&bytes, at_instant);
                    while let Some(a) = nodes[to].poll_frame() {
                        let Assembled::Frame(f, b) = a else {
                            panic!("node {to}: {a:?}");
                        };
                        assert_eq!(b, frame_bytes(f), "node {to}, frame {f}");
                        got[to].push(f);
                    }
                }
                Packet::Sent { to, frame } => nodes[to].expect(frame, at_instant),
                Packet::Nak { from, nak } => {
                    if let Some(again) = master.answer(&nak, &mut budgets[from], at_instant) {
                        let again: Vec<Vec<u8>> = again.into_iter().map(<[u8]>::to_vec).collect();
                        resent += again.len() as u64;
                        for d in &again {
                            net.multicast(&mut rng, at, d);
                        }
                    }
                }
            }
        }
        let instant = t0 + Duration::from_micros(now);
        for (i, n) in nodes.iter_mut().enumerate() {
            while let Some(nak) = n.poll_nak(instant) {
                net.send(now + 100, Packet::Nak { from: i, nak });
            }
        }
        now += 100;
    }
    let want: Vec<u64> = (0..FRAMES).collect();
    let mut rejected = 0;
    for (i, g) in got.iter().enumerate() {
        assert_eq!(g, &want, "node {i}: every frame, in order, once");
        let s = nodes[i].stats;
        assert_eq!(s.abandoned, 0, "node {i}: {s:?}");
        assert!(s.naks > 0 && s.duplicates > 0, "node {i}: {s:?}");
        rejected += s.rejected;
    }
    // Every altered copy was refused (a flipped bit could only pass by forging the tag).
    assert_eq!(rejected, net.forged, "altered copies refused");
    assert!(
        net.forged > 0 && resent > 0,
        "forged {}, resent {resent}",
        net.forged
    );
}
