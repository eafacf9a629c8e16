//! Whole clusters as separate processes on loopback: failures of real processes, and a node's
//! picture against a single process's.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

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
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn kill9(child: &Child) {
    assert!(
        Command::new("kill")
            .args(["-9", &child.id().to_string()])
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

#[test]
fn a_node_killed_mid_run_is_dropped_and_the_others_keep_presenting_identical_frames() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cave(dir.path());
    let hashes = |who: &str| dir.path().join(format!("{who}.hashes"));
    let master = start(&[
        "master",
        "--config",
        p(&cfg),
        "--frames",
        "600",
        "--fps",
        "200",
        "--fixed-dt",
        "0.0166",
        "--hash-out",
        p(&hashes("master")),
    ]);
    let nodes: Vec<(&str, Child)> = ["left", "front", "right", "floor"]
        .into_iter()
        .map(|n| {
            (
                n,
                start(&[
                    "node",
                    "--config",
                    p(&cfg),
                    "--name",
                    n,
                    "--renderer",
                    "none",
                    "--hash-out",
                    p(&hashes(n)),
                ]),
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    kill9(&nodes[2].1);
    let m = master.wait_with_output().unwrap();
    let mtext = text(&m);
    assert!(m.status.success(), "{mtext}");
    assert!(mtext.contains("master: 600 frames"), "{mtext}");
    assert!(mtext.contains("node 'right' dropped at frame"), "{mtext}");
    assert!(mtext.contains("1 node(s) dropped"), "{mtext}");
    let want = std::fs::read_to_string(hashes("master")).unwrap();
    assert_eq!(want.lines().count(), 600);
    for (name, child) in nodes {
        let o = child.wait_with_output().unwrap();
        if name == "right" {
            continue;
        }
        assert!(o.status.success(), "{name}: {}", text(&o));
        assert_eq!(
            std::fs::read_to_string(hashes(name)).unwrap(),
            want,
            "node {name}"
        );
    }
}

#[test]
fn every_node_exits_within_two_seconds_of_the_master_being_killed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cave(dir.path());
    let master = start(&["master", "--config", p(&cfg), "--fps", "100"]);
    let nodes: Vec<Child> = ["left", "front", "right", "floor"]
        .into_iter()
        .map(|n| {
            start(&[
                "node",
                "--config",
                p(&cfg),
                "--name",
                n,
                "--renderer",
                "none",
            ])
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    kill9(&master);
    let killed = Instant::now();
    for mut n in nodes {
        let status = loop {
            if let Some(s) = n.try_wait().unwrap() {
                break s;
            }
            assert!(
                killed.elapsed() < Duration::from_secs(2),
                "a node was still running 2 s after the master died"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let o = n.wait_with_output().unwrap();
        assert_eq!(status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains("lost the master"), "{}", text(&o));
    }
    let _ = master.wait_with_output();
}

#[test]
fn a_nodes_picture_equals_a_single_process_render_of_its_view_and_frame() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cave(dir.path());
    let cluster_out = dir.path().join("cluster");
    // The master renders the left wall itself.
    let master = start(&[
        "master",
        "--config",
        p(&cfg),
        "--frames",
        "30",
        "--fixed-dt",
        &format!("{}", 1.0 / 60.0),
        "--render",
        "left",
        "--offscreen",
        "--out",
        p(&cluster_out),
    ]);
    let front = start(&[
        "node",
        "--config",
        p(&cfg),
        "--name",
        "front",
        "--offscreen",
        "--out",
        p(&cluster_out),
    ]);
    let others: Vec<Child> = ["right", "floor"]
        .into_iter()
        .map(|n| {
            start(&[
                "node",
                "--config",
                p(&cfg),
                "--name",
                n,
                "--renderer",
                "none",
            ])
        })
        .collect();
    let m = master.wait_with_output().unwrap();
    assert!(m.status.success(), "{}", text(&m));
    let f = front.wait_with_output().unwrap();
    assert!(f.status.success(), "{}", text(&f));
    for o in others {
        o.wait_with_output().unwrap();
    }
    // The last frame the cluster showed was frame 29, at 29/60 s, with the rig swayed.
    for (node, wall) in [("front", "front-main-wall"), ("left", "left-main-wall")] {
        let single_out = dir.path().join(format!("single-{node}"));
        let o = Command::new(env!("CARGO_BIN_EXE_lockstep"))
            .args([
                "render",
                "--config",
                p(&cfg),
                "--node",
                node,
                "--frame",
                "29",
                "--out",
                p(&single_out),
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        let a = image::open(cluster_out.join(format!("{node}.png")))
            .unwrap()
            .to_rgba8();
        let b = image::open(single_out.join(format!("{wall}.png")))
            .unwrap()
            .to_rgba8();
        assert_eq!(a.dimensions(), b.dimensions());
        assert!(
            a.as_raw() == b.as_raw(),
            "{node}: the cluster's frame 29 differs from a single render of it"
        );
    }
    // The master reports its own view among the nodes of the barrier.
    assert!(text(&m).contains("node left: 30 frames"), "{}", text(&m));
}
