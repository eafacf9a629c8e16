//! The VRPN client against the scripted VRPN server, over loopback: poses arrive, the newest
//! per sensor is kept however fast the tracker reports, a server that comes back is followed
//! again, and buttons come as their state at connection, then as changes.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lockstep_input::vrpn::server::{Path, Server};
use lockstep_input::vrpn::{Address, Device};

const LIMIT: Duration = Duration::from_secs(20);

fn walk() -> Path {
    // 1 m along x in 10 s, head height.
    Path::parse("0 0 1.7 0\n10 1 1.7 0\n", "walk").unwrap()
}

fn address(server: &Server) -> Address {
    format!("Tracker0@127.0.0.1:{}", server.local_addr().port())
        .parse()
        .unwrap()
}

/// Takes from `device` until `probe` says what it got is enough, within [`LIMIT`].
fn until<T>(
    device: &Device,
    what: &str,
    mut probe: impl FnMut(&lockstep_input::vrpn::Reports) -> Option<T>,
) -> T {
    let end = Instant::now() + LIMIT;
    loop {
        let r = device.take();
        if let Some(v) = probe(&r) {
            return v;
        }
        assert!(Instant::now() < end, "no {what} within {LIMIT:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn poses_of_a_scripted_path_arrive_newest_first_and_in_order() {
    let server = Server::start("127.0.0.1:0".parse().unwrap(), "Tracker0", walk(), 1000.0).unwrap();
    let device = Device::start(address(&server), "head").unwrap();
    let watch = device.watch(0);
    let mut xs = Vec::new();
    let mut received = 0;
    while xs.len() < 20 {
        let x = until(&device, "pose", |r| {
            received += r.received;
            r.poses.get(&0).map(|p| p.position[0])
        });
        // What late latching reads: never older than what was taken, and still there after.
        let newest = watch.newest().expect("a pose was taken").position[0];
        assert!(newest >= x, "watched {newest}, taken {x}");
        xs.push(x);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        device.watch(5).newest().is_none(),
        "sensor 5 never reported"
    );
    // A 1 kHz tracker taken every ~20 ms: many reports, one pose per take (the newest).
    assert!(received > 100, "{received} reports");
    assert!(xs.windows(2).all(|w| w[0] <= w[1]), "{xs:?}");
    assert!(xs.iter().all(|x| (0.0..=1.0).contains(x)), "{xs:?}");
    assert!(xs[19] > xs[0], "{xs:?}");
    assert!(device.connected());
}

#[test]
fn a_server_that_comes_back_is_followed_again() {
    let server = Server::start("127.0.0.1:0".parse().unwrap(), "Tracker0", walk(), 200.0).unwrap();
    let addr: SocketAddr = server.local_addr();
    let device = Device::start(address(&server), "head").unwrap();
    until(&device, "first pose", |r| r.poses.get(&0).copied());
    drop(server);
    until(&device, "the loss to be noticed", |_| {
        (!device.connected()).then_some(())
    });
    // The old poses stay taken; nothing new arrives while the server is away.
    assert!(device.take().poses.is_empty());
    // (How soon is `bench input`'s to measure: a test on a busy machine cannot.)
    let _server = Server::start(addr, "Tracker0", walk(), 200.0).unwrap();
    until(&device, "a pose from the new server", |r| {
        r.poses.get(&0).copied()
    });
    assert!(device.connected());
}

#[test]
fn buttons_come_as_their_state_at_connection_then_as_changes() {
    // Button 1 is down before anyone connects; button 0 goes down and up later.
    let path = Path::parse(
        "0 0 1.7 0\n0 button 1 down\n0.3 button 0 down\n0.5 button 0 up\n",
        "b",
    )
    .unwrap();
    let server = Server::start("127.0.0.1:0".parse().unwrap(), "Tracker0", path, 200.0).unwrap();
    let device = Device::start(address(&server), "wand").unwrap();
    let mut seen = Vec::new();
    until(&device, "button 0 to go up", |r| {
        seen.extend(r.buttons.iter().copied());
        let down = seen.iter().position(|b| *b == (0, true));
        down.filter(|i| seen[i + 1..].contains(&(0, false)))
            .map(|_| ())
    });
    // The states first (0 up, 1 down), then 0 down, then 0 up.
    assert_eq!(
        seen,
        [(0, false), (1, true), (0, true), (0, false)],
        "{seen:?}"
    );
}

/// The first 4000 bytes a stock VRPN 07.38 server (a `vrpn_Tracker` named `Tracker0`
/// walking 1 mm a report along x at 1.7 m, built from vrpn/vrpn) sent lockstep's client
/// after its cookie: not what lockstep's own encoder writes.
const CAPTURED: &[u8] = include_bytes!("data/vrpn-07.38-tracker.bin");

#[test]
fn a_stock_vrpn_servers_bytes_give_its_poses() {
    let now = Instant::now();
    let mut s = lockstep_input::vrpn::Session::new("Tracker0", now);
    let mut out = Vec::new();
    s.receive(CAPTURED, now, &mut out).unwrap();
    let xs: Vec<f64> = out
        .iter()
        .map(|r| match r {
            lockstep_input::vrpn::session::Received::Report(
                _,
                lockstep_input::vrpn::Report::Pose {
                    sensor: 0,
                    position,
                    rotation,
                },
            ) => {
                assert_eq!(position[1], 1.7);
                assert_eq!(*rotation, [0.0, 0.0, 0.0, 1.0]);
                position[0]
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(xs.len() >= 10, "{} poses", xs.len());
    for w in xs.windows(2) {
        assert!((w[1] - w[0] - 0.001).abs() < 1e-9, "{xs:?}");
    }
}
