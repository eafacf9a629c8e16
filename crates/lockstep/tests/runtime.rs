//! A running cluster changing under load: late joins, reconfiguration, hung nodes, and a
//! soak with faults — real processes on loopback.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use lockstep::display::ClusterConfig;
use support::{Proc, cave, free_port, headless, p, per_frame, run, signal, text, wait_until};

/// Long enough for any event of these tests on a loaded machine; only a broken cluster
/// waits this long.
const LIMIT: Duration = Duration::from_secs(60);

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
    // A pace a GPU node on lavapipe keeps even on a loaded machine.
    let master = Proc::start(&[
        "master",
        "--config",
        p(&cfg),
        "--fps",
        "15",
        "--wait-for",
        "left,front,floor",
        "--hash-out",
        p(&h("master")),
    ]);
    let others: Vec<(&str, Proc)> = ["left", "front", "floor"]
        .into_iter()
        .map(|n| (n, headless(&cfg, n, &["--hash-out", p(&h(n))])))
        .collect();
    // It says whom it waits for, and frames run: whoever connects now joins late.
    master.wait_for(
        "waiting for 3 of its 4 node(s) (left, front, floor); the others may join later",
        LIMIT,
    );
    master.wait_for("lockstep-state: running", LIMIT);
    // The late joiner renders (lavapipe): loading its scene takes frames.
    let joiner = Proc::start(&[
        "node",
        "--config",
        p(&cfg),
        "--name",
        "right",
        "--offscreen",
        "--hash-out",
        p(&h("right")),
    ]);
    // It presented a frame; 30 more, and the master stops (Ctrl-C). On a loaded machine it
    // may not draw at the cluster's pace at first: then it is dropped at the load deadline
    // and tries again, and that is right too.
    joiner.wait_for("lockstep-state: running", 2 * LIMIT);
    let first = wait_until("the joiner in step", 2 * LIMIT, || {
        let s = status(&cfg);
        let r = node_state(&s, "right");
        (r["state"] == "in step").then(|| r["frame"].as_u64().unwrap())
    });
    wait_until("30 frames more", LIMIT, || {
        (node_state(&status(&cfg), "right")["frame"]
            .as_u64()
            .unwrap()
            > first + 30)
            .then_some(())
    });
    signal(master.id(), "-INT");
    let (status, mtext) = master.finish();
    assert!(status.success(), "{mtext}");
    assert!(
        mtext.contains("joined late") && !mtext.contains(" 0 joined late"),
        "{mtext}"
    );
    // Nobody waited for the joiner: the others were never dropped, and the joiner only
    // for not catching up.
    for drop in mtext.lines().filter(|l| l.contains(" dropped at frame ")) {
        assert!(
            drop.starts_with("node 'right' dropped") && drop.contains("did not catch up"),
            "{mtext}"
        );
    }
    let (status, jtext) = joiner.finish();
    assert!(status.success(), "{jtext}");
    let master_frames = per_frame(&h("master"));
    let joined = per_frame(&h("right"));
    let (&first, first_hash) = joined.iter().next().expect("the joiner presented no frame");
    assert!(first > 0, "the joiner's first frame is {first}");
    assert_eq!(first_hash, &master_frames[&first], "joiner's first frame");
    for (name, node) in others {
        let (status, out) = node.finish();
        assert!(status.success(), "{name}: {out}");
        let theirs = per_frame(&h(name));
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
    let master = Proc::start(&["master", "--config", p(&cfg), "--fps", "30"]);
    let names = ["left", "front", "right", "floor"];
    let nodes: Vec<(&str, Proc)> = names
        .into_iter()
        .map(|n| (n, headless(&cfg, n, &["--views-out", p(&v(n))])))
        .collect();
    for (_, n) in &nodes {
        n.wait_for("lockstep-state: running", LIMIT);
    }

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
    // Every node that stays goes 10 frames past the switch; then the master stops (Ctrl-C).
    wait_until("10 frames past the switch", LIMIT, || {
        let s = status(&cfg);
        ["left", "front", "right"]
            .iter()
            .all(|n| node_state(&s, n)["frame"].as_u64().unwrap() > switch + 10)
            .then_some(())
    });
    signal(master.id(), "-INT");
    let (status, mtext) = master.finish();
    assert!(status.success(), "{mtext}");
    assert!(
        mtext.contains(&format!("new cluster file in force from frame {switch}")),
        "{mtext}"
    );
    let total: u64 = mtext
        .split("master: ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no frame count in {mtext}"));
    let old = ClusterConfig::load(&cfg).unwrap();
    let new = ClusterConfig::load(&good).unwrap();
    for (name, node) in nodes {
        let (status, out) = node.finish();
        assert!(status.success(), "{name}: {out}");
        let seen = per_frame(&v(name));
        let digest = |c: &ClusterConfig| {
            format!(
                "{:016x}",
                lockstep::node_views::views_digest(c, name, &c.head).unwrap()
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
                out.contains("removed from the cluster by the reconfiguration"),
                "{out}"
            );
            assert_eq!(
                seen.keys().last(),
                Some(&(switch - 1)),
                "floor left at the switch"
            );
        } else {
            assert_ne!(digest(&old), digest(&new), "node {name}: the head moved");
            assert_eq!(
                seen.keys().copied().collect::<Vec<_>>(),
                (0..total).collect::<Vec<_>>(),
                "node {name} presented every frame"
            );
        }
    }
}

#[test]
fn a_stopped_node_is_dropped_while_the_others_go_on_and_rejoins_when_continued() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cave(dir.path());
    let master = Proc::start(&[
        "master",
        "--config",
        p(&cfg),
        "--fps",
        "60",
        "--deadline-ms",
        "1000",
    ]);
    let nodes: Vec<(&str, Proc)> = ["left", "front", "right", "floor"]
        .into_iter()
        .map(|n| (n, headless(&cfg, n, &["--rejoin-timeout", "5"])))
        .collect();
    let frame_of =
        |s: &serde_json::Value, name: &str| node_state(s, name)["frame"].as_u64().unwrap();
    let before = wait_until("every node in step", LIMIT, || {
        let s = status(&cfg);
        ["left", "front", "right", "floor"]
            .iter()
            .all(|n| node_state(&s, n)["state"] == "in step")
            .then_some(s)
    });
    signal(nodes[2].1.id(), "-STOP");
    let during = wait_until("right dropped for its deadline", LIMIT, || {
        let s = status(&cfg);
        node_state(&s, "right")["state"]
            .as_str()
            .unwrap()
            .contains("missed the swap deadline of 1s")
            .then_some(s)
    });
    // The others keep presenting while right stays stopped: 20 frames and more go by.
    let later = wait_until("left 20 frames further", LIMIT, || {
        let s = status(&cfg);
        (frame_of(&s, "left") > frame_of(&during, "left") + 20).then_some(s)
    });
    assert_eq!(node_state(&later, "left")["state"], "in step", "{later}");
    assert_ne!(node_state(&later, "right")["state"], "in step", "{later}");
    signal(nodes[2].1.id(), "-CONT");
    let back = wait_until("right in step again", LIMIT, || {
        let s = status(&cfg);
        (node_state(&s, "right")["state"] == "in step").then_some(s)
    });
    // Under load a node catching up may be dropped once more and rejoin again.
    assert!(
        node_state(&back, "right")["joins"].as_u64().unwrap() >= 2,
        "{back}"
    );
    assert!(
        frame_of(&back, "right") > frame_of(&before, "right"),
        "{back}"
    );
    signal(master.id(), "-INT");
    let (status, mtext) = master.finish();
    assert!(status.success(), "{mtext}");
    assert!(mtext.contains("node 'right' dropped at frame"), "{mtext}");
    assert!(mtext.contains("node 'right' in step from frame"), "{mtext}");
    for (name, node) in nodes {
        let (status, out) = node.finish();
        assert!(status.success(), "{name}: {out}");
        if name == "right" {
            assert!(out.contains("; rejoining"), "{out}");
        }
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
    assert_eq!(r["unexpected_exits"], serde_json::json!([]), "{said}");
    // The injector works on the clock: a fault every 4 s of the minute, but the last few.
    let faults = r["faults"].as_u64().unwrap();
    assert!(faults >= 10, "{said}");
    assert_eq!(
        faults,
        r["kills"].as_u64().unwrap()
            + r["hangs"].as_u64().unwrap()
            + r["restarts"].as_u64().unwrap(),
        "{said}"
    );
    // Each fault takes a node out and it comes back (two faults may hit one node that is
    // still on its way back); all are in step at the end.
    assert!(r["rejoins"].as_u64().unwrap() * 2 >= faults, "{said}");
    assert_eq!(r["in_step_at_end"].as_array().unwrap().len(), 3, "{said}");
    // Verification ran on most frames of most nodes, whatever the machine's speed: a node is
    // out for a fraction of each 4 s.
    let frames = r["frames"].as_u64().unwrap();
    assert!(frames > 0, "{said}");
    assert!(
        r["verified"].as_u64().unwrap() * 2 >= frames * 3,
        "fewer than half the states verified: {said}"
    );
}

#[test]
fn a_node_that_cannot_load_the_new_cluster_file_ends_once_with_the_reason() {
    // The master's folder has the asset the new file lists; the folder "left" and "right"
    // run from lacks it, as a host the file was not copied to would.
    let dir = tempfile::tempdir().unwrap();
    let cfg = cave(dir.path());
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let their_cfg = elsewhere.join("cave.toml");
    std::fs::copy(&cfg, &their_cfg).unwrap();
    let master = Proc::start(&["master", "--config", p(&cfg), "--fps", "10"]);
    let mut nodes: Vec<(&str, Proc)> = ["front", "floor"]
        .into_iter()
        .map(|n| (n, headless(&cfg, n, &[])))
        .collect();
    // One of each node loop: the direct one (no renderer) and the threaded GPU pipeline.
    nodes.push(("left", headless(&their_cfg, "left", &[])));
    nodes.push((
        "right",
        Proc::start(&[
            "node",
            "--config",
            p(&their_cfg),
            "--name",
            "right",
            "--offscreen",
        ]),
    ));
    for (_, n) in &nodes {
        n.wait_for("lockstep-state: running", LIMIT);
    }
    std::fs::create_dir(dir.path().join("assets")).unwrap();
    std::fs::write(dir.path().join("assets/room.bin"), b"the room").unwrap();
    let new = dir.path().join("new.toml");
    let old = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &new,
        format!("{old}\n[launch]\nfiles = [\"assets/room.bin\"]\n"),
    )
    .unwrap();
    let o = run(&["ctl", p(&cfg), "reconfigure", p(&new)]);
    assert!(o.status.success(), "{}", text(&o));
    let line = old.lines().count() + 3;
    for (name, node) in nodes.drain(2..) {
        let (status, out) = node.finish();
        assert_eq!(status.code(), Some(2), "{name}: {out}");
        let reason = format!(
            "{}:{line}:10: launch file 'assets/room.bin' is not on this host: {}: No such file or directory",
            their_cfg.display(),
            elsewhere.join("assets/room.bin").display()
        );
        assert!(out.contains(&reason), "{name}: {out}");
        assert!(
            out.contains("the master's new cluster file does not load here"),
            "{name}: {out}"
        );
        // Once, and never a rejoin: the file would not load the next time either.
        assert_eq!(
            out.matches("does not load here").count(),
            1,
            "{name}: {out}"
        );
        assert!(!out.contains("rejoining"), "{name}: {out}");
    }
    // The nodes that could load it go on with it; the master reports the two that left.
    let status = wait_until("left and right gone", LIMIT, || {
        let s = status(&cfg);
        ["left", "right"]
            .iter()
            .all(|n| node_state(&s, n)["state"] != "in step")
            .then_some(s)
    });
    assert_eq!(node_state(&status, "front")["state"], "in step", "{status}");
    assert_eq!(node_state(&status, "floor")["state"], "in step", "{status}");
    signal(master.id(), "-INT");
    let (status, mtext) = master.finish();
    assert!(status.success(), "{mtext}");
    assert!(
        mtext.contains("new cluster file in force from frame"),
        "{mtext}"
    );
    assert!(mtext.contains("node 'left' dropped at frame"), "{mtext}");
    assert!(mtext.contains("node 'right' dropped at frame"), "{mtext}");
    for (name, node) in nodes {
        let (status, out) = node.finish();
        assert!(status.success(), "{name}: {out}");
    }
}
