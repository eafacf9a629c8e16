//! Whole clusters as separate processes on loopback: failures of real processes, and a node's
//! picture against a single process's.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{Proc, cave, p, signal};

#[test]
fn a_node_killed_mid_run_is_dropped_and_the_others_keep_presenting_identical_frames() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cave(dir.path());
    let hashes = |who: &str| dir.path().join(format!("{who}.hashes"));
    let master = Proc::start(&[
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
    let nodes: Vec<(&str, Proc)> = ["left", "front", "right", "floor"]
        .into_iter()
        .map(|n| {
            (
                n,
                Proc::start(&[
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
    // Killed once it has presented a frame: mid-run, whatever the machine's load.
    nodes[2]
        .1
        .wait_for("lockstep-state: running", Duration::from_secs(60));
    signal(nodes[2].1.id(), "-9");
    let (status, mtext) = master.finish();
    assert!(status.success(), "{mtext}");
    assert!(mtext.contains("master: 600 frames"), "{mtext}");
    assert!(mtext.contains("node 'right' dropped at frame"), "{mtext}");
    assert!(mtext.contains("1 node(s) dropped"), "{mtext}");
    let want = std::fs::read_to_string(hashes("master")).unwrap();
    assert_eq!(want.lines().count(), 600);
    for (name, node) in nodes {
        let (status, out) = node.finish();
        if name == "right" {
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&status),
                Some(9)
            );
            continue;
        }
        assert!(status.success(), "{name}: {out}");
        assert_eq!(
            std::fs::read_to_string(hashes(name)).unwrap(),
            want,
            "node {name}"
        );
    }
}

#[test]
fn every_node_notices_at_once_that_a_killed_master_closed_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cave(dir.path());
    let master = Proc::start(&["master", "--config", p(&cfg), "--fps", "100"]);
    let nodes: Vec<Proc> = ["left", "front", "right", "floor"]
        .into_iter()
        .map(|n| {
            Proc::start(&[
                "node",
                "--config",
                p(&cfg),
                "--name",
                n,
                "--renderer",
                "none",
                "--rejoin-timeout",
                "0",
            ])
        })
        .collect();
    for n in &nodes {
        n.wait_for("lockstep-state: running", Duration::from_secs(60));
    }
    signal(master.id(), "-9");
    let killed = Instant::now();
    for n in nodes {
        let (status, out) = n.finish_within(Duration::from_secs(30));
        assert_eq!(status.code(), Some(2), "{out}");
        assert!(out.contains("lost the master"), "{out}");
        // It saw the connection end (a closed socket is noticed at once), not 2 s of silence.
        assert!(
            out.contains("closed the connection") || out.contains("reset by peer"),
            "{out}"
        );
        assert!(!out.contains("sent nothing for"), "{out}");
        assert!(!out.contains("rejoining"), "{out}");
    }
    eprintln!(
        "the four nodes ended {:?} after the master was killed",
        killed.elapsed()
    );
    let (status, _) = master.finish();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
}

#[test]
fn a_nodes_picture_equals_a_single_process_render_of_its_view_and_frame() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cave(dir.path());
    let cluster_out = dir.path().join("cluster");
    // The master renders the left wall itself.
    let master = Proc::start(&[
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
    let front = Proc::start(&[
        "node",
        "--config",
        p(&cfg),
        "--name",
        "front",
        "--offscreen",
        "--out",
        p(&cluster_out),
    ]);
    let others: Vec<Proc> = ["right", "floor"]
        .into_iter()
        .map(|n| {
            Proc::start(&[
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
    let (status, mtext) = master.finish();
    assert!(status.success(), "{mtext}");
    let (status, ftext) = front.finish();
    assert!(status.success(), "{ftext}");
    for o in others {
        let (status, out) = o.finish();
        assert!(status.success(), "{out}");
    }
    // The last frame the cluster showed was frame 29, at 29/60 s, with the rig swayed.
    for (node, wall) in [("front", "front-main-wall"), ("left", "left-main-wall")] {
        let single_out = dir.path().join(format!("single-{node}"));
        let o = Command::new(support::BIN)
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
        assert!(o.status.success(), "{}", support::text(&o));
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
    assert!(mtext.contains("node left: 30 frames"), "{mtext}");
}
