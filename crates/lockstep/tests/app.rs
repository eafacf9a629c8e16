//! A user's own cluster application (`examples/cluster_app.rs`) on the local CAVE: its shared
//! counter is the frame number on every node in every frame (a late joiner's first frame
//! too), on headless nodes and on a rendering one; and a node running another application is
//! refused, with the difference named at both ends.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{Proc, cave, headless, p};

const LIMIT: Duration = Duration::from_secs(120);

/// An example, which `cargo test` builds beside the binary under test.
fn example(name: &str) -> PathBuf {
    let bin = PathBuf::from(support::BIN);
    let app = bin.parent().unwrap().join("examples").join(name);
    assert!(
        app.is_file(),
        "{} is missing: `cargo test --workspace` builds it (or `cargo build --example {name}`)",
        app.display()
    );
    app
}

fn cluster_app() -> PathBuf {
    example("cluster_app")
}

/// `APP master` of `cfg` at 60 frames a second, once the nodes `wait_for` have joined, until
/// stopped.
fn paced_master(app: &Path, cfg: &Path, wait_for: &str, env: &[(&str, &str)]) -> Proc {
    let args = [
        "master",
        "--config",
        p(cfg),
        "--fps",
        "60",
        "--wait-for",
        wait_for,
    ];
    Proc::start_program(app, &args, env)
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
    let master = paced_master(&app, &cfg, "front,left,floor", &[]);
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
    // Once the late joiner has run 60 frames of its own, the master stops the cluster.
    let joined = support::wait_until("the late joiner's first frame", LIMIT, || {
        traced("right", &right.output_so_far()).first().map(|e| e.0)
    });
    right.wait_for(&format!("right frame {} counter", joined + 60), LIMIT);
    support::signal(master.id(), "-INT");
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
    // Every node saw every frame from its first on, once, in order: those there from the
    // start from frame 0, the late joiner from a frame past 60, with the counter already.
    for (name, frames) in &seen {
        let first = frames[0].0;
        let last = frames.last().unwrap().0;
        let got: Vec<u64> = frames.iter().map(|(f, _)| *f).collect();
        assert_eq!(got, (first..=last).collect::<Vec<_>>(), "{name}");
        match *name {
            "right" => assert!(first > 60 && last >= first + 60, "{name}: {first}..{last}"),
            _ => assert!(first == 0 && last >= joined + 60, "{name}: {first}..{last}"),
        }
    }
    eprintln!("the right wall joined at frame {joined}");
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
    let difference = "the node runs application 'demo', the master 'cluster_app'; plugin id 3 is 'events' (events hello=alloc::string::String) on the master but 'events' (events) on the node; the node lacks plugin 'counter' (id 100, lockstep_cluster::plugins::shared::Shared<u64>)";
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

#[test]
fn a_panic_in_the_masters_update_ends_the_cluster_with_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cave(dir.path());
    let app = example("failing_app");
    let fail = [("FAILING_APP_MASTER_PANIC_AT", "30")];
    let args = ["--config", p(&cfg)];
    let master = Proc::start_program(
        &app,
        &[&["master"][..], &args, &["--wait-for", "front,left"]].concat(),
        &fail,
    );
    let nodes: Vec<(&str, Proc)> = ["front", "left"]
        .into_iter()
        .map(|n| {
            let a = [&["node"][..], &args, &["--name", n, "--renderer", "none"]].concat();
            (n, Proc::start_program(&app, &a, &fail))
        })
        .collect();
    let (status, out) = master.finish_within(LIMIT);
    assert_eq!(status.code(), Some(2), "{out}");
    let why = "the application's update of frame 30: panicked: the master's update gave up";
    assert!(out.contains(&format!("error: {why}")), "{out}");
    // Told why, whether the news came between frames or at a swap: an ordinary end.
    for (name, node) in nodes {
        let (status, out) = node.finish_within(LIMIT);
        assert_eq!(status.code(), Some(0), "{out}");
        let told = format!("node '{name}': the master shut down: the master stopped: {why}");
        assert!(out.contains(&told), "{out}");
    }
}

#[test]
fn a_panic_in_a_nodes_hook_ends_that_node_and_the_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cave(dir.path());
    let app = example("failing_app");
    let fail = [("FAILING_APP_NODE_PANIC", "left:20")];
    let args = ["--config", p(&cfg)];
    let master = Proc::start_program(
        &app,
        &[
            &["master"][..],
            &args,
            &["--wait-for", "front,left", "--frames", "90", "--fps", "60"],
        ]
        .concat(),
        &fail,
    );
    let node = |n: &str| {
        let a = [&["node"][..], &args, &["--name", n, "--renderer", "none"]].concat();
        Proc::start_program(&app, &a, &fail)
    };
    let (front, left) = (node("front"), node("left"));
    let (status, out) = left.finish_within(LIMIT);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(
        out.contains("node 'left': the application's node hook in frame 20: panicked: the node's hook gave up"),
        "{out}"
    );
    let (status, out) = front.finish_within(LIMIT);
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(out.contains("node front: 90 frames"), "{out}");
    let (status, out) = master.finish_within(LIMIT);
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(
        out.contains("master: 90 frames") && out.contains("node 'left' dropped at frame"),
        "{out}"
    );
}

/// `(frame, text)` per event a process traced, from its output.
fn events_seen(who: &str, out: &str) -> Vec<(u64, String)> {
    out.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(who)?.strip_prefix(" frame ")?;
            let (frame, text) = rest.split_once(" event hello: ")?;
            Some((frame.parse().ok()?, text.to_string()))
        })
        .collect()
}

#[test]
fn events_from_nodes_and_from_ctl_reach_every_process_in_the_same_frame_and_order() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cave(dir.path());
    let app = cluster_app();
    let trace = [("CLUSTER_APP_TRACE", "1")];
    let master = paced_master(&app, &cfg, "front,left,right", &trace);
    let nodes: Vec<(&str, Proc)> = ["front", "left", "right"]
        .into_iter()
        .map(|n| {
            let args = [
                "node",
                "--config",
                p(&cfg),
                "--name",
                n,
                "--renderer",
                "none",
            ];
            (n, Proc::start_program(&app, &args, &trace))
        })
        .collect();
    nodes[0].1.wait_for("front frame 60 counter 60", LIMIT);
    let ctl = |name: &str, json: &str| support::run(&["ctl", p(&cfg), "event", name, json]);
    let sent = ctl("hello", r#""from ctl""#);
    assert!(sent.status.success(), "{}", support::text(&sent));
    let said = support::text(&sent);
    let at: u64 = said
        .trim()
        .strip_prefix("cluster 'cave': event 'hello' is delivered in frame ")
        .and_then(|f| f.parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    // Unknown names and values of the wrong type are refused, naming what was wrong.
    let unknown = ctl("bye", "1");
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        support::text(&unknown)
            .contains("the master refused the event: no event 'bye' is declared (declared: hello)"),
        "{}",
        support::text(&unknown)
    );
    let wrong = ctl("hello", "[1, 2");
    assert_eq!(wrong.status.code(), Some(2));
    assert!(
        support::text(&wrong).contains("event 'hello': not a alloc::string::String in JSON: "),
        "{}",
        support::text(&wrong)
    );
    // Every process has seen ctl's event (and so every earlier one): the run may end.
    master.wait_for(&format!("master frame {at} event hello: from ctl"), LIMIT);
    for (name, node) in &nodes {
        node.wait_for(&format!("{name} frame {at} event hello: from ctl"), LIMIT);
    }
    support::signal(master.id(), "-INT");
    let mut seen = BTreeMap::new();
    for (name, node) in nodes {
        let (status, out) = node.finish_within(LIMIT);
        assert_eq!(status.code(), Some(0), "{out}");
        seen.insert(name, events_seen(name, &out));
    }
    let (status, out) = master.finish_within(LIMIT);
    assert_eq!(status.code(), Some(0), "{out}");
    let on_master = events_seen("master", &out);
    // Every node's hello and ctl's, each once, ctl's in the frame it was told.
    let mut texts: Vec<&str> = on_master.iter().map(|(_, t)| t.as_str()).collect();
    texts.sort();
    assert_eq!(texts, ["from ctl", "from front", "from left", "from right"]);
    assert!(
        on_master.contains(&(at, "from ctl".to_string())),
        "{on_master:?}"
    );
    for (name, events) in &seen {
        assert_eq!(events, &on_master, "{name}");
    }
    eprintln!("events, frame by frame: {on_master:?}");
}
