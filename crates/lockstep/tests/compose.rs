//! Sort-first on the CLI: the CAVE's front wall drawn by its node with two helpers (the left
//! and right walls' nodes, which draw their own walls too) is, frame by frame, the same
//! bytes as the front wall drawn by its node alone; a helper that leaves mid-run leaves no
//! hole, and is out of the split from then on.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{Proc, cave, p, per_frame};

const LIMIT: Duration = Duration::from_secs(180);
const NODES: [&str; 4] = ["left", "front", "right", "floor"];

/// The cave of `dir`, its front wall helped by `helpers`.
fn helped_cave(dir: &Path, helpers: &[&str]) -> PathBuf {
    let cfg = cave(dir);
    if !helpers.is_empty() {
        let list: Vec<String> = helpers.iter().map(|h| format!("\"{h}\"")).collect();
        let text = std::fs::read_to_string(&cfg).unwrap().replacen(
            "screen = \"front\"\n",
            &format!("screen = \"front\"\n    helpers = [{}]\n", list.join(", ")),
            1,
        );
        std::fs::write(&cfg, text).unwrap();
    }
    cfg
}

/// Runs the master of `cfg` for `frames` frames on a fixed clock and every node offscreen,
/// the front wall's pictures hashed into `images`; returns each process's output by name.
fn run(cfg: &Path, frames: u32, images: &Path) -> BTreeMap<&'static str, String> {
    run_with(cfg, frames, images, |_| Vec::new())
}

/// The same, each node with `extra(name)` flags too.
fn run_with(
    cfg: &Path,
    frames: u32,
    images: &Path,
    extra: impl Fn(&str) -> Vec<String>,
) -> BTreeMap<&'static str, String> {
    let frames = frames.to_string();
    let master = Proc::start(&[
        "master",
        "--config",
        p(cfg),
        "--frames",
        &frames,
        "--fixed-dt",
        "0.0333",
        // Paced, so that helpers that connect after the start still draw most frames.
        "--fps",
        "30",
    ]);
    let nodes: Vec<Proc> = NODES
        .iter()
        .map(|n| {
            let mut args = vec!["node", "--config", p(cfg), "--name", n, "--offscreen"];
            if *n == "front" {
                args.extend(["--image-hashes", p(images)]);
            }
            let extra = extra(n);
            args.extend(extra.iter().map(String::as_str));
            Proc::start(&args)
        })
        .collect();
    let mut outs = BTreeMap::new();
    for (n, node) in NODES.iter().zip(nodes) {
        let (status, out) = node.finish_within(LIMIT);
        assert_eq!(status.code(), Some(0), "{n}: {out}");
        outs.insert(*n, out);
    }
    let (status, out) = master.finish_within(LIMIT);
    assert_eq!(status.code(), Some(0), "{out}");
    outs.insert("master", out);
    outs
}

/// The number after `what` in the display node's sort-first summary line.
fn count(out: &str, what: &str) -> u64 {
    let line = out
        .lines()
        .find(|l| l.contains("sort-first:"))
        .unwrap_or_else(|| panic!("no sort-first summary in: {out}"));
    line.split(what)
        .next()
        .and_then(|before| before.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no '{what}' in: {line}"))
}

/// The front wall drawn by its node alone for `frames` frames, its pictures' hashes in the
/// first path returned; then where the helped run's go, and the cave helped by the left and
/// right nodes.
fn drawn_alone(dir: &Path, frames: u32) -> (PathBuf, PathBuf, PathBuf) {
    let (alone_dir, helped_dir) = (dir.join("alone"), dir.join("helped"));
    std::fs::create_dir_all(&alone_dir).unwrap();
    std::fs::create_dir_all(&helped_dir).unwrap();
    let alone = alone_dir.join("images.txt");
    run(&helped_cave(&alone_dir, &[]), frames, &alone);
    let cfg = helped_cave(&helped_dir, &["left", "right"]);
    (alone, helped_dir.join("images.txt"), cfg)
}

#[test]
fn the_front_wall_drawn_with_two_helpers_is_byte_identical_to_it_drawn_alone() {
    let dir = tempfile::tempdir().unwrap();
    let frames = 60;
    let (alone, helped, cfg) = drawn_alone(dir.path(), frames);
    let outs = run(&cfg, frames, &helped);
    let (a, h) = (per_frame(&alone), per_frame(&helped));
    assert_eq!(a.len(), frames as usize);
    // The demo moves every frame: the pictures differ from frame to frame.
    let distinct: std::collections::BTreeSet<&String> = a.values().collect();
    assert!(distinct.len() > frames as usize / 2, "the scene moves");
    assert_eq!(
        a, h,
        "the helped front wall differs from the one drawn alone"
    );
    // And the helpers did draw: of the 2 × 60 strips, many came from them (on a busy
    // machine a helper may miss one, and sit out a while).
    let front = &outs["front"];
    let from_helpers = count(front, "strips from helpers");
    assert!(from_helpers >= u64::from(frames) / 2, "{front}");
    for helper in ["left", "right"] {
        let served = count(&outs[helper], "strips drawn for others");
        assert!(
            served >= u64::from(frames) / 2,
            "{helper}: {}",
            outs[helper]
        );
    }
}

#[test]
fn a_helper_killed_mid_run_leaves_no_hole_and_is_out_of_the_split_from_then_on() {
    let dir = tempfile::tempdir().unwrap();
    let frames = 80;
    let (alone, helped, cfg) = drawn_alone(dir.path(), frames);
    // Paced, so that the run goes on well after the kill.
    let master = Proc::start(&[
        "master",
        "--config",
        p(&cfg),
        "--frames",
        &frames.to_string(),
        "--fixed-dt",
        "0.0333",
        "--fps",
        "20",
    ]);
    let start = |n: &str| {
        let mut args = vec!["node", "--config", p(&cfg), "--name", n, "--offscreen"];
        if n == "front" {
            args.extend(["--image-hashes", p(&helped)]);
        }
        Proc::start(&args)
    };
    let others: Vec<(&str, Proc)> = ["left", "front", "floor"]
        .into_iter()
        .map(|n| (n, start(n)))
        .collect();
    let right = start("right");
    // Killed as soon as it helps: its connections die with it, mid-frame or between.
    right.wait_for("node 'right' helps display node 'front'", LIMIT);
    support::signal(right.id(), "-KILL");
    let _ = right.finish_within(LIMIT);
    let mut outs = BTreeMap::new();
    for (n, node) in others {
        let (status, out) = node.finish_within(LIMIT);
        assert_eq!(status.code(), Some(0), "{n}: {out}");
        outs.insert(n, out);
    }
    let (status, out) = master.finish_within(LIMIT);
    assert_eq!(status.code(), Some(0), "{out}");
    let (a, h) = (per_frame(&alone), per_frame(&helped));
    assert_eq!(
        h.len(),
        frames as usize,
        "the front wall presented every frame"
    );
    assert_eq!(
        a, h,
        "a frame of the helped front wall differs: a hole or a stale strip"
    );
    let front = &outs["front"];
    // Left helped nearly all along; right, killed early, a few frames at most.
    let from_helpers = count(front, "strips from helpers");
    assert!(
        (u64::from(frames) / 2..=u64::from(frames) + 10).contains(&from_helpers),
        "{front}"
    );
    // At most its last request is drawn in its stead: then it is out of the split.
    let stead = count(front, "drawn in a helper's stead");
    assert!(stead <= 1, "{front}");
}
