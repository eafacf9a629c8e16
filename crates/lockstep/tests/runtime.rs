//! A running cluster changing under load: late joins, reconfiguration, hung nodes, and a
//! soak with faults — real processes on loopback.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use lockstep::display::ClusterConfig;

const KEY: &str = "test-key-0123456789abcdef";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The sample CAVE on free ports, written into `dir`.
fn cave(dir: &Path) -> PathBuf {
    let out = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["config", "example", "cave"])
        .output()
        .unwrap();
    let mut text = String::from_utf8(out.stdout).unwrap();
    for port in 7400..=7404 {
        text = text.replace(
            &format!("port = {port}\n"),
            &format!("port = {}\n", free_port()),
        );
    }
    let path = dir.join("cave.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn start(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(args)
        .env("LOCKSTEP_KEY", KEY)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(args)
        .env("LOCKSTEP_KEY", KEY)
        .output()
        .unwrap()
}

fn signal(child: &Child, sig: &str) {
    assert!(
        Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// "frame hex" lines.
fn frames(path: &Path) -> BTreeMap<u64, String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| {
            let (f, h) = l.split_once(' ').unwrap();
            (f.parse().unwrap(), h.to_string())
        })
        .collect()
}

fn headless(cfg: &Path, name: &str, extra: &[&str]) -> Child {
    let mut a = vec![
        "node",
        "--config",
        p(cfg),
        "--name",
        name,
        "--renderer",
        "none",
    ];
    a.extend_from_slice(extra);
    start(&a)
}

/// `lockstep ctl status --json` of the cluster.
fn status(cfg: &Path) -> serde_json::Value {
    let o = run(&["ctl", p(cfg), "status", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn node_state<'a>(s: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    s["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap()
}

#[test]
fn a_late_joiner_presents_first_a_frame_whose_state_equals_everyone_elses() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cave(dir.path());
    let h = |who: &str| dir.path().join(format!("{who}.hashes"));
    let master = start(&[
        "master",
        "--config",
        p(&cfg),
        "--frames",
        "150",
        "--fps",
        "30",
        "--wait-for",
        "left,front,floor",
        "--hash-out",
        p(&h("master")),
    ]);
    let others: Vec<(&str, Child)> = ["left", "front", "floor"]
        .into_iter()
        .map(|n| (n, headless(&cfg, n, &["--hash-out", p(&h(n))])))
        .collect();
    std::thread::sleep(Duration::from_millis(1200));
    // The late joiner renders (lavapipe): loading its scene takes frames.
    let joiner = start(&[
        "node",
        "--config",
        p(&cfg),
        "--name",
        "right",
        "--offscreen",
        "--hash-out",
        p(&h("right")),
    ]);
    let m = master.wait_with_output().unwrap();
    let mtext = text(&m);
    assert!(m.status.success(), "{mtext}");
    assert!(
        mtext.contains("0 node(s) dropped, 1 joined late"),
        "{mtext}"
    );
    let j = joiner.wait_with_output().unwrap();
    assert!(j.status.success(), "{}", text(&j));
    let master_frames = frames(&h("master"));
    let joined = frames(&h("right"));
    let (&first, first_hash) = joined.iter().next().expect("the joiner presented no frame");
    assert!(first > 0, "the joiner's first frame is {first}");
    assert_eq!(first_hash, &master_frames[&first], "joiner's first frame");
    for (name, child) in others {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{name}: {}", text(&o));
        let theirs = frames(&h(name));
        // The others never waited for the joiner to load: they presented every frame.
        assert_eq!(theirs, master_frames, "node {name}");
        assert_eq!(&theirs[&first], first_hash, "node {name} at frame {first}");
    }
    // From its first frame on, the joiner presented every frame, each like the master's.
    let expected: BTreeMap<u64, String> = master_frames
        .range(first..)
        .map(|(f, h)| (*f, h.clone()))
        .collect();
    assert_eq!(joined, expected);
}

#[test]
fn a_reconfiguration_switches_every_node_at_one_frame_and_an_invalid_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cave(dir.path());
    let text_of = std::fs::read_to_string(&cfg).unwrap();
    let v = |who: &str| dir.path().join(format!("{who}.views"));
    let master = start(&[
        "master",
        "--config",
        p(&cfg),
        "--fps",
        "30",
        "--frames",
        "180",
    ]);
    let names = ["left", "front", "right", "floor"];
    let nodes: Vec<(&str, Child)> = names
        .into_iter()
        .map(|n| (n, headless(&cfg, n, &["--views-out", p(&v(n))])))
        .collect();
    std::thread::sleep(Duration::from_millis(1200));

    // Wrong as a whole: a new cluster name and a moved master, reported together.
    let bad = dir.path().join("bad.toml");
    let master_port = text_of
        .split("[master]")
        .nth(1)
        .and_then(|m| m.split("port = ").nth(1))
        .and_then(|p| p.split_whitespace().next())
        .unwrap()
        .to_string();
    std::fs::write(
        &bad,
        text_of
            .replacen("name = \"cave\"", "name = \"other\"", 1)
            .replacen(
                &format!("port = {master_port}"),
                &format!("port = {}", free_port()),
                1,
            ),
    )
    .unwrap();
    let o = run(&["ctl", p(&cfg), "reconfigure", p(&bad)]);
    let said = text(&o);
    assert_eq!(o.status.code(), Some(2), "{said}");
    assert!(said.contains("nothing changed"), "{said}");
    assert!(
        said.contains("cluster name changes from 'cave' to 'other'"),
        "{said}"
    );
    assert!(said.contains("the master moves from"), "{said}");
    // A file that does not even load is refused here, with its line.
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, text_of.replacen("[master]", "[master\n", 1)).unwrap();
    let o = run(&["ctl", p(&cfg), "reconfigure", p(&broken)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("broken.toml:"), "{}", text(&o));

    // Right: the head moves and the floor node is removed.
    let good = dir.path().join("good.toml");
    let moved = text_of.replacen("[0.0, 1.7, 0.0]", "[0.3, 1.5, -0.2]", 1);
    assert_ne!(moved, text_of, "the sample's head position changed");
    let floor_start = moved
        .find("[[nodes]]\nname = \"floor\"")
        .unwrap_or_else(|| {
            panic!("no floor node block in:\n{moved}");
        });
    // The floor is the sample's last node: everything from its table on goes.
    let floor_end = moved[floor_start + 9..]
        .find("\n[[nodes]]")
        .map_or(moved.len(), |i| floor_start + 9 + i);
    let good_text = format!("{}{}", &moved[..floor_start], &moved[floor_end..]);
    std::fs::write(&good, &good_text).unwrap();
    let o = run(&["ctl", p(&cfg), "reconfigure", p(&good)]);
    let said = text(&o);
    assert!(o.status.success(), "{said}");
    let switch: u64 = said
        .split("at frame ")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no switch frame in {said:?}"));
    assert!(said.contains("removes floor"), "{said}");

    let m = master.wait_with_output().unwrap();
    let mtext = text(&m);
    assert!(m.status.success(), "{mtext}");
    assert!(
        mtext.contains(&format!("new cluster file in force from frame {switch}")),
        "{mtext}"
    );
    let old = ClusterConfig::load(&cfg).unwrap();
    let new = ClusterConfig::load(&good).unwrap();
    for (name, child) in nodes {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{name}: {}", text(&o));
        let seen = frames(&v(name));
        let digest = |c: &ClusterConfig| {
            format!(
                "{:016x}",
                lockstep::roles::views_digest(c, name, &c.head).unwrap()
            )
        };
        for (frame, d) in &seen {
            if *frame < switch {
                assert_eq!(
                    d,
                    &digest(&old),
                    "node {name}, frame {frame} (switch {switch})"
                );
            } else {
                assert_eq!(
                    d,
                    &digest(&new),
                    "node {name}, frame {frame} (switch {switch})"
                );
            }
        }
        if name == "floor" {
            assert!(
                text(&o).contains("removed from the cluster by the reconfiguration"),
                "{}",
                text(&o)
            );
            assert_eq!(
                seen.keys().last(),
                Some(&(switch - 1)),
                "floor left at the switch"
            );
        } else {
            assert_ne!(digest(&old), digest(&new), "node {name}: the head moved");
            assert_eq!(seen.len(), 180, "node {name}");
        }
    }
}

#[test]
fn a_stopped_node_is_dropped_while_the_others_go_on_and_rejoins_when_continued() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cave(dir.path());
    let master = start(&[
        "master",
        "--config",
        p(&cfg),
        "--fps",
        "60",
        "--deadline-ms",
        "300",
    ]);
    let nodes: Vec<(&str, Child)> = ["left", "front", "right", "floor"]
        .into_iter()
        .map(|n| (n, headless(&cfg, n, &["--rejoin-timeout", "5"])))
        .collect();
    std::thread::sleep(Duration::from_millis(1000));
    let before = status(&cfg);
    assert_eq!(node_state(&before, "right")["state"], "in step", "{before}");
    signal(&nodes[2].1, "-STOP");
    std::thread::sleep(Duration::from_millis(1000));
    let during = status(&cfg);
    let right = node_state(&during, "right");
    assert!(
        right["state"]
            .as_str()
            .unwrap()
            .contains("missed the swap deadline of 300ms"),
        "{during}"
    );
    // The others kept presenting: at 60 fps, a second is far more than 20 frames.
    let left = (
        node_state(&before, "left")["frame"].as_u64().unwrap(),
        node_state(&during, "left")["frame"].as_u64().unwrap(),
    );
    assert!(
        left.1 > left.0 + 20,
        "left went from frame {} to {}",
        left.0,
        left.1
    );
    assert_eq!(node_state(&during, "left")["state"], "in step");
    signal(&nodes[2].1, "-CONT");
    let since = Instant::now();
    let back = loop {
        let s = status(&cfg);
        let r = node_state(&s, "right");
        if r["state"] == "in step" {
            break s;
        }
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "right did not rejoin: {s}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(node_state(&back, "right")["joins"], 2, "{back}");
    signal(&master, "-INT");
    let m = master.wait_with_output().unwrap();
    let mtext = text(&m);
    assert!(m.status.success(), "{mtext}");
    assert!(mtext.contains("node 'right' dropped at frame"), "{mtext}");
    assert!(mtext.contains("node 'right' in step from frame"), "{mtext}");
    for (name, child) in nodes {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{name}: {}", text(&o));
    }
}

#[test]
fn a_one_minute_soak_with_a_fault_every_four_seconds_shows_no_mismatch() {
    let o = run(&[
        "soak",
        "--nodes",
        "3",
        "--minutes",
        "1",
        "--fault-every",
        "4",
        "--json",
    ]);
    let said = text(&o);
    assert!(o.status.success(), "{said}");
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["mismatches"], 0, "{said}");
    assert!(r["faults"].as_u64().unwrap() >= 10, "{said}");
    assert!(r["rejoins"].as_u64().unwrap() >= 8, "{said}");
    assert!(r["verified"].as_u64().unwrap() > 3 * 1000, "{said}");
    assert!(r["frames"].as_u64().unwrap() > 50 * 60, "{said}");
    assert_eq!(r["in_step_at_end"].as_array().unwrap().len(), 3, "{said}");
}
