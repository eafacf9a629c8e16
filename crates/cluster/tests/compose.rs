//! Sort-first strips over real sockets on loopback: a display node asks its helpers for
//! strips every frame and takes back exactly what it asked for; helpers that die, send the
//! wrong thing or do not belong are left out, and the display node draws their strips.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lockstep_cluster::compose::{Helped, StripClient, StripExchange};
use lockstep_wire::ClusterKey;

fn key() -> ClusterKey {
    ClusterKey::new(vec![9; 32]).expect("a key")
}

/// The display node's one helped view: 300 × 100 at (10, 20) of its window, two helpers.
fn exchange(deadline: Duration) -> StripExchange {
    exchange_with(deadline, lockstep_wire::STRIP_RGBA8)
}

/// The same, its strips sent in `codec`.
fn exchange_with(deadline: Duration, codec: u8) -> StripExchange {
    StripExchange::listen(
        "127.0.0.1:0".parse().unwrap(),
        key(),
        "wall",
        vec![Helped {
            view: 0,
            rect: [10, 20, 300, 100],
            helpers: vec!["h1".into(), "h2".into()],
            codec,
        }],
        deadline,
    )
    .expect("listening")
}

fn helper(name: &str, key: ClusterKey, cluster: &str, at: SocketAddr) -> StripClient {
    StripClient::new(name, key, cluster, vec![("wall".into(), at)]).expect("a helper")
}

/// Pixels that say which frame and rectangle they are for.
fn pattern(frame: u64, rect: [u32; 4]) -> Vec<u8> {
    let n = (rect[2] * rect[3]) as usize;
    (0..n)
        .flat_map(|i| [frame as u8, rect[0] as u8, (i % 251) as u8, 255])
        .collect()
}

/// Runs frames 0, 1, … until the display node counts `n` helpers connected and a frame
/// took all their strips; returns the next frame's number (frames count up by one, as a
/// cluster's do: a helper waits only for a display node that asked for the frame before).
fn wait_connected(x: &mut StripExchange, helpers: &mut [&mut StripClient], n: usize) -> u64 {
    let until = Instant::now() + Duration::from_secs(10);
    let mut f = 0;
    loop {
        assert!(Instant::now() < until, "helpers did not connect");
        let (_, arrived, missing) = frame(x, helpers, f);
        f += 1;
        if x.connected().count() >= n && arrived.len() == n && missing.is_empty() {
            return f;
        }
    }
}

/// What the display node drew itself, took (with whether the pixels were as sent) and had to
/// draw for a helper, in one frame.
type Drawn = (Vec<[u32; 4]>, Vec<([u32; 4], bool)>, Vec<[u32; 4]>);

/// One frame: the display node asks, each helper in `helpers` answers its jobs with the
/// pattern; returns what the display node drew itself and what it took.
fn frame(x: &mut StripExchange, helpers: &mut [&mut StripClient], f: u64) -> Drawn {
    let own: Vec<[u32; 4]> = x.begin_frame(f).into_iter().map(|(_, r)| r).collect();
    for h in helpers.iter_mut() {
        let jobs = h.jobs(f, Duration::from_millis(500)).to_vec();
        for j in jobs {
            h.send(&j, &pattern(f, j.rect), 100);
        }
        let _ = h.ready();
    }
    let (arrived, missing) = x.gather();
    let arrived = arrived
        .iter()
        .map(|a| (a.rect, a.pixels == pattern(f, a.rect)))
        .collect();
    let missing = missing.into_iter().map(|(_, r)| r).collect();
    x.end_frame(Duration::from_millis(1), Duration::ZERO);
    (own, arrived, missing)
}

/// Every pixel of the view is covered once by what was drawn or taken.
fn covers_once(parts: &[[u32; 4]]) {
    let mut seen = vec![0u8; 300];
    for [x, y, w, h] in parts {
        assert_eq!((*y, *h), (20, 100), "full-height columns: {parts:?}");
        for c in *x..x + w {
            seen[(c - 10) as usize] += 1;
        }
    }
    assert!(seen.iter().all(|s| *s == 1), "not covered once: {parts:?}");
}

#[test]
fn helpers_send_the_strips_asked_for_and_the_view_is_covered_every_frame() {
    let mut x = exchange(Duration::from_secs(2));
    let at = x.local_addr();
    let mut h1 = helper("h1", key(), "wall", at);
    let mut h2 = helper("h2", key(), "wall", at);
    let b = wait_connected(&mut x, &mut [&mut h1, &mut h2], 2);
    for f in b..b + 30 {
        let (own, arrived, missing) = frame(&mut x, &mut [&mut h1, &mut h2], f);
        assert_eq!(missing, Vec::<[u32; 4]>::new(), "frame {f}");
        assert_eq!(arrived.len(), 2, "frame {f}: {arrived:?}");
        assert!(
            arrived.iter().all(|(_, ok)| *ok),
            "frame {f}: pixels as sent"
        );
        let mut all = own.clone();
        all.extend(arrived.iter().map(|(r, _)| *r));
        covers_once(&all);
    }
}

#[test]
fn a_helper_that_dies_is_missed_once_then_left_out_and_the_view_never_has_a_hole() {
    let mut x = exchange(Duration::from_millis(300));
    let at = x.local_addr();
    let mut h1 = helper("h1", key(), "wall", at);
    let mut h2 = helper("h2", key(), "wall", at);
    let b = wait_connected(&mut x, &mut [&mut h1, &mut h2], 2);
    let (_, arrived, _) = frame(&mut x, &mut [&mut h1, &mut h2], b);
    assert_eq!(arrived.len(), 2);
    // h2 takes its request for the next frame and dies without answering.
    let own: Vec<[u32; 4]> = x.begin_frame(b + 1).into_iter().map(|(_, r)| r).collect();
    let j1 = h1.jobs(b + 1, Duration::from_secs(2)).to_vec();
    let _ = h2.jobs(b + 1, Duration::from_secs(2));
    drop(h2);
    for j in &j1 {
        h1.send(j, &pattern(b + 1, j.rect), 100);
    }
    let (arrived, missing) = x.gather();
    let arrived: Vec<[u32; 4]> = arrived.iter().map(|a| a.rect).collect();
    let missing: Vec<[u32; 4]> = missing.into_iter().map(|(_, r)| r).collect();
    assert_eq!(
        missing.len(),
        1,
        "h2's strip is the display node's: {missing:?}"
    );
    let mut all = own;
    all.extend(arrived);
    all.extend(missing);
    covers_once(&all);
    assert_eq!(
        x.end_frame(Duration::from_millis(1), Duration::ZERO),
        ["h2"]
    );
    // From the next frame, two parts: the display node's and h1's.
    for f in b + 2..b + 6 {
        let (own, arrived, missing) = frame(&mut x, &mut [&mut h1], f);
        assert!(missing.is_empty(), "frame {f}: {missing:?}");
        assert_eq!(arrived.len(), 1, "frame {f}");
        let mut all = own;
        all.extend(arrived.iter().map(|(r, _)| *r));
        covers_once(&all);
    }
}

#[test]
fn a_stranger_another_cluster_or_a_wrong_key_never_gets_a_request() {
    let mut x = exchange(Duration::from_millis(200));
    let at = x.local_addr();
    let mut stranger = helper("h3", key(), "wall", at);
    let mut other_cluster = helper("h1", key(), "dome", at);
    let mut wrong_key = helper("h2", ClusterKey::new(vec![8; 32]).unwrap(), "wall", at);
    let mut h1 = helper("h1", key(), "wall", at);
    let b = wait_connected(&mut x, &mut [&mut h1], 1);
    // Time for the others' handshakes to be refused, several times over.
    let until = Instant::now() + Duration::from_millis(600);
    let mut f = b;
    while Instant::now() < until {
        let (_, arrived, _) = frame(&mut x, &mut [&mut h1], f);
        assert_eq!(arrived.len(), 1);
        f += 1;
    }
    assert_eq!(x.connected().collect::<Vec<_>>(), ["h1"]);
    for c in [&mut stranger, &mut other_cluster, &mut wrong_key] {
        assert!(!c.is_connected(0));
        assert!(c.jobs(f, Duration::from_millis(10)).is_empty());
    }
}

#[test]
fn a_strip_of_the_wrong_size_or_frame_is_refused_and_drawn_by_the_display_node() {
    let mut x = exchange(Duration::from_millis(200));
    let at = x.local_addr();
    let mut h1 = helper("h1", key(), "wall", at);
    let mut h2 = helper("h2", key(), "wall", at);
    let b = wait_connected(&mut x, &mut [&mut h1, &mut h2], 2);
    x.begin_frame(b);
    let j1 = h1.jobs(b, Duration::from_secs(2))[0];
    let j2 = h2.jobs(b, Duration::from_secs(2))[0];
    // h1: one pixel short; h2: its strip labelled with another frame.
    let mut short = pattern(b, j1.rect);
    short.truncate(short.len() - 4);
    h1.send(&j1, &short, 100);
    let stale = lockstep_cluster::compose::StripJob { frame: b - 1, ..j2 };
    h2.send(&stale, &pattern(b - 1, j2.rect), 100);
    let (arrived, missing) = x.gather();
    assert!(arrived.is_empty(), "nothing wrong is taken");
    let missing: Vec<[u32; 4]> = missing.into_iter().map(|(_, r)| r).collect();
    assert_eq!(missing, [j1.rect, j2.rect]);
}

#[test]
fn lz4_strips_arrive_as_drawn_and_one_that_inflates_to_the_wrong_size_is_refused() {
    let mut x = exchange_with(Duration::from_millis(300), lockstep_wire::STRIP_LZ4);
    let at = x.local_addr();
    let mut h1 = helper("h1", key(), "wall", at);
    let mut h2 = helper("h2", key(), "wall", at);
    let b = wait_connected(&mut x, &mut [&mut h1, &mut h2], 2);
    for f in b..b + 10 {
        let (own, arrived, missing) = frame(&mut x, &mut [&mut h1, &mut h2], f);
        assert!(missing.is_empty(), "frame {f}: {missing:?}");
        assert_eq!(arrived.len(), 2, "frame {f}");
        assert!(
            arrived.iter().all(|(_, ok)| *ok),
            "frame {f}: inflated as drawn"
        );
        let mut all = own;
        all.extend(arrived.iter().map(|(r, _)| *r));
        covers_once(&all);
    }
    // h2 compresses a strip one row short: the display node inflates it to the wrong size,
    // refuses it, drops h2 and draws that strip itself.
    let f = b + 10;
    x.begin_frame(f);
    let j1 = h1.jobs(f, Duration::from_secs(2))[0];
    let j2 = h2.jobs(f, Duration::from_secs(2))[0];
    assert_eq!(j2.codec, lockstep_wire::STRIP_LZ4);
    h1.send(&j1, &pattern(f, j1.rect), 100);
    let mut short = pattern(f, j2.rect);
    short.truncate(short.len() - (j2.rect[2] * 4) as usize);
    h2.send(&j2, &short, 100);
    let (arrived, missing) = x.gather();
    assert_eq!(arrived.len(), 1);
    let missing: Vec<[u32; 4]> = missing.into_iter().map(|(_, r)| r).collect();
    assert_eq!(missing, [j2.rect]);
    assert_eq!(
        x.end_frame(Duration::from_millis(1), Duration::ZERO),
        ["h2"]
    );
    assert_eq!(x.connected().collect::<Vec<_>>(), ["h1"]);
}
