//! A user's own cluster application (`examples/cluster_app.rs`) on the local CAVE: its shared
//! counter is the frame number on every node in every frame (a late joiner's first frame
//! too), on headless nodes and on a rendering one; and a node running another application is
//! refused, with the difference named at both ends.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use support::{Proc, cave, headless, p};

const LIMIT: Duration = Duration::from_secs(120);

/// The example, which `cargo test` builds beside the binary under test.
fn cluster_app() -> PathBuf {
    let bin = PathBuf::from(support::BIN);
    let app = bin.parent().unwrap().join("examples/cluster_app");
    assert!(
        app.is_file(),
        "{} is missing: `cargo test --workspace` builds it (or `cargo build --example cluster_app`)",
        app.display()
    );
    app
}

/// `(frame, counter)` per frame a node traced, from its output.
fn traced(node: &str, out: &str) -> Vec<(u64, u64)> {
    out.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(node)?.strip_prefix(" frame ")?;
            let (frame, counter) = rest.split_once(" counter ")?;
            Some((frame.parse().ok()?, counter.parse().ok()?))
        })
        .collect()
}

#[test]
fn the_shared_counter_is_the_frame_number_on_every_node_in_every_frame() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cave(dir.path());
    let app = cluster_app();
    let trace = [("CLUSTER_APP_TRACE", "1")];
    let master = Proc::start_program(
        &app,
        &[
            "master",
            "--config",
            p(&cfg),
            "--frames",
            "240",
            "--fps",
            "60",
            "--wait-for",
            "front,left,floor",
        ],
        &[],
    );
    let node = |name: &str, extra: &[&str]| {
        let mut args = vec!["node", "--config", p(&cfg), "--name", name];
        args.extend_from_slice(extra);
        Proc::start_program(&app, &args, &trace)
    };
    let front = node("front", &["--renderer", "none"]);
    let left = node("left", &["--renderer", "none"]);
    // One node renders (lavapipe), so the hook runs in the pipeline's App stage too.
    let floor = node("floor", &["--offscreen"]);
    // The right wall joins once the others are well under way.
    front.wait_for("front frame 60 counter 60", LIMIT);
    let right = node("right", &["--renderer", "none"]);
    let mut seen = BTreeMap::new();
    for (name, proc) in [
        ("front", front),
        ("left", left),
        ("floor", floor),
        ("right", right),
    ] {
        let (status, out) = proc.finish_within(LIMIT);
        assert_eq!(status.code(), Some(0), "{name}: {out}");
        seen.insert(name, traced(name, &out));
    }
    let (status, out) = master.finish_within(LIMIT);
    assert_eq!(status.code(), Some(0), "{out}");
    for (name, frames) in &seen {
        let wrong: Vec<_> = frames.iter().filter(|(f, c)| f != c).collect();
        assert!(wrong.is_empty(), "{name}: counter ≠ frame in {wrong:?}");
    }
    // The nodes there from the start saw every frame, once, in order.
    let all: Vec<u64> = (0..240).collect();
    for name in ["front", "left", "floor"] {
        let frames: Vec<u64> = seen[name].iter().map(|(f, _)| *f).collect();
        assert_eq!(frames, all, "{name}");
    }
    // The late joiner's first frame already had the counter, and it ran to the end.
    let right = &seen["right"];
    assert!(right[0].0 > 60, "{right:?}");
    assert_eq!(right.last().map(|e| e.0), Some(239));
    eprintln!("the right wall joined at frame {}", right[0].0);
}

#[test]
fn a_node_running_another_application_is_refused_with_the_difference_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cave(dir.path());
    let master = Proc::start_program(
        &cluster_app(),
        &[
            "master",
            "--config",
            p(&cfg),
            "--wait-for",
            "front",
            "--start-timeout",
            "30",
        ],
        &[],
    );
    // `lockstep node` runs the built-in demo, not the master's application.
    let demo = headless(&cfg, "front", &["--rejoin-timeout", "0"]);
    let (status, out) = demo.finish_within(LIMIT);
    let difference = "the node runs application 'demo', the master 'cluster_app'; the node lacks plugin 'counter' (id 100, lockstep_cluster::plugins::shared::Shared<u64>)";
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(
        out.contains(&format!(
            "refused by peer: node 'front' does not run the master's application: {difference}"
        )),
        "{out}"
    );
    master.wait_for(difference, LIMIT);
    support::signal(master.id(), "-INT");
    let (status, out) = master.finish_within(LIMIT);
    // Stopped before any node joined: the start barrier's error.
    assert_eq!(status.code(), Some(2), "{out}");
}
