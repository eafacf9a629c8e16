//! Head tracking through VRPN, recorded and replayed: a scripted tracker (`lockstep vrpn
//! serve`, Z up, as many are) moves the head; every wall's projection in every frame is the
//! one the recorded head pose of that frame gives — the pose latched with the swap before it
//! (late latching), else the frame's own; replayed without the tracker, the session shows the
//! same projections and pictures, and two replays give byte-identical pictures frame by frame.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lockstep::display::{ClusterConfig, HeadPose};
use lockstep::input::InputEvent;
use lockstep::input::record::Recording;
use lockstep::scene::glam::{Quat, Vec3};
use support::{Proc, cave, free_port, p, per_frame};

const LIMIT: Duration = Duration::from_secs(120);
const NODES: [&str; 2] = ["front", "left"];

/// The cave of `dir`, its head moved by VRPN tracker `Tracker0@127.0.0.1:port` (Z up),
/// latched or not.
fn tracked_cave(dir: &Path, port: u16, latch: bool) -> PathBuf {
    let cfg = cave(dir);
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "[head]",
        &format!("[head]\ntracker = \"tracker\"\nsensor = 0\nlatch = {latch}"),
    ) + &format!(
        "\n[[input]]\nname = \"tracker\"\ndevice = \"vrpn\"\naddress = \"Tracker0@127.0.0.1:{port}\"\naxes = [\"x\", \"z\", \"-y\"]\n"
    );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// A scripted VRPN tracker at 200 reports a second, Z up, in metres: its head walks 10 m a
/// second to the right and 5 back (the tracker's −y), for far longer than a run takes on a
/// busy machine. Returns it, serving, and its port.
fn walking_tracker(dir: &Path) -> (Proc, u16) {
    vrpn_serve(dir, "walk.path", "0 0 0 1.7\n100 1000 -500 1.7\n", 200)
}

/// `lockstep vrpn serve` playing `script` (written to `dir/file`) at `rate` reports a second
/// on a free loopback port. Returns it, serving, and its port.
fn vrpn_serve(dir: &Path, file: &str, script: &str, rate: u32) -> (Proc, u16) {
    let port = free_port();
    let path = dir.join(file);
    std::fs::write(&path, script).unwrap();
    let listen = format!("127.0.0.1:{port}");
    let rate = rate.to_string();
    let server = Proc::start(&[
        "vrpn",
        "serve",
        p(&path),
        "--listen",
        &listen,
        "--rate",
        &rate,
    ]);
    server.wait_for("serving VRPN tracker Tracker0@", LIMIT);
    (server, port)
}

/// Runs the master of `cfg` for `frames` frames (at 30 a second if `paced`, else as fast
/// as the nodes go, with `extra` flags) and the nodes, each with `node_extra(name)`; each
/// must exit 0. Returns every process's output, by name (`master` and the nodes').
fn run(
    cfg: &Path,
    (frames, paced): (u32, bool),
    extra: &[&str],
    node_extra: impl Fn(&str) -> Vec<String>,
) -> BTreeMap<&'static str, String> {
    let frames = frames.to_string();
    let mut args = vec!["master", "--config", p(cfg), "--frames", &frames];
    if paced {
        args.extend(["--fps", "30"]);
    }
    args.extend([
        // The demo moves by the frame's clock: a fixed step makes it the same every run.
        "--fixed-dt",
        "0.0333",
        "--wait-for",
        "front,left",
    ]);
    args.extend_from_slice(extra);
    let master = Proc::start(&args);
    let nodes: Vec<Proc> = NODES
        .iter()
        .map(|n| {
            let extra = node_extra(n);
            let mut args = vec!["node", "--config", p(cfg), "--name", n];
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

#[test]
fn a_tracked_head_moves_every_walls_projection_and_a_replay_repeats_it_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (tracker, port) = walking_tracker(dir.path());
    let cfg = tracked_cave(dir.path(), port, true);
    let out = |what: &str, n: &str| dir.path().join(format!("{what}-{n}.txt"));
    let rec = dir.path().join("walk.input");
    let frames = 60;
    // One wall renders (its Draw projects each frame again from the latched pose), the other
    // only takes part in the protocol.
    run(&cfg, (frames, false), &["--record", p(&rec)], |n| {
        let mut args: Vec<String> = vec!["--views-out".into(), p(&out("live", n)).into()];
        if n == "front" {
            args.extend(["--offscreen".into(), "--image-hashes".into()]);
            args.push(p(&out("live-images", n)).into());
        } else {
            args.extend(["--renderer".into(), "none".into()]);
        }
        args
    });
    drop(tracker);
    let file = ClusterConfig::load(&cfg).unwrap();
    let recording = Recording::read(&rec, Some("cave")).unwrap();
    let heads = frame_heads(&file, &recording, frames);
    let latched: BTreeMap<u64, HeadPose> = recording
        .latched
        .iter()
        .map(|(f, pose)| (*f, head_of(pose)))
        .collect();
    let positions: Vec<Vec3> = heads.values().map(|h| h.position).collect();
    // Remapped from Z up: at head height, moving right and back, never left or forward.
    assert!(
        positions.iter().all(|p| (p.y - 1.7).abs() < 1e-4),
        "{positions:?}"
    );
    assert!(
        positions
            .windows(2)
            .all(|w| w[1].x >= w[0].x && w[1].z >= w[0].z),
        "{positions:?}"
    );
    let moved = positions.last().unwrap().x - positions[0].x;
    assert!(moved > 0.2, "the head moved {moved} m: {positions:?}");
    // Latched with the swap before it, a frame's pose is read after the next frame began:
    // never older than the frame's own, and newer in most frames (a frame takes longer than
    // the tracker's 5 ms between reports).
    assert!(
        latched.len() >= frames as usize / 2,
        "{} of {frames} frames latched",
        latched.len()
    );
    let newer = latched
        .iter()
        .filter(|(f, h)| {
            assert!(
                h.position.x >= heads[f].position.x,
                "frame {f}: {h:?} {:?}",
                heads[f]
            );
            h.position.x > heads[f].position.x
        })
        .count();
    assert!(
        newer * 2 >= latched.len(),
        "{newer} of {} latched poses newer than their frame's own",
        latched.len()
    );
    for n in NODES {
        let views = per_frame(&out("live", n));
        assert_eq!(views.len(), frames as usize, "{n}");
        for (f, digest) in &views {
            let head = latched.get(f).unwrap_or(&heads[f]);
            let want = lockstep::node_views::views_digest(&file, n, head).unwrap();
            assert_eq!(digest, &format!("{want:016x}"), "node {n}, frame {f}");
        }
    }
    // Replayed, paced, with no tracker at all: the same projections (the recording's latched
    // poses latched again), the live session's pictures, and twice the same pictures.
    for run_no in 0..2 {
        let tag = format!("replay{run_no}");
        let tag = tag.as_str();
        run(&cfg, (frames, true), &["--replay", p(&rec)], |n| {
            vec![
                "--offscreen".into(),
                "--views-out".into(),
                p(&out(&format!("{tag}-views"), n)).into(),
                "--image-hashes".into(),
                p(&out(&format!("{tag}-images"), n)).into(),
            ]
        });
        for n in NODES {
            assert_eq!(
                per_frame(&out(&format!("{tag}-views"), n)),
                per_frame(&out("live", n)),
                "node {n}: the replay's projections"
            );
        }
    }
    assert_eq!(
        per_frame(&out("replay0-images", "front")),
        per_frame(&out("live-images", "front")),
        "front: the replay's pictures are the live session's"
    );
    for n in NODES {
        let (a, b) = (
            per_frame(&out("replay0-images", n)),
            per_frame(&out("replay1-images", n)),
        );
        assert_eq!(a.len(), frames as usize, "{n}");
        assert_eq!(a, b, "node {n}: two replays' pictures");
        // The pictures change as the head moves: not one image repeated.
        let distinct: std::collections::BTreeSet<&String> = a.values().collect();
        assert!(
            distinct.len() > 5,
            "node {n}: {} distinct pictures",
            distinct.len()
        );
    }
}

#[test]
fn unlatched_every_frame_is_projected_from_its_own_pose() {
    let dir = tempfile::tempdir().unwrap();
    let (tracker, port) = walking_tracker(dir.path());
    let cfg = tracked_cave(dir.path(), port, false);
    let out = |n: &str| dir.path().join(format!("views-{n}.txt"));
    let rec = dir.path().join("walk.input");
    let frames = 40;
    // Unpaced and unlatched, the master samples the head after the oldest frame's barrier.
    run(&cfg, (frames, false), &["--record", p(&rec)], |n| {
        vec![
            "--renderer".into(),
            "none".into(),
            "--views-out".into(),
            p(&out(n)).into(),
        ]
    });
    drop(tracker);
    let file = ClusterConfig::load(&cfg).unwrap();
    let recording = Recording::read(&rec, Some("cave")).unwrap();
    assert!(recording.latched.is_empty(), "{:?}", recording.latched);
    let heads = frame_heads(&file, &recording, frames);
    let moved = heads[&(frames as u64 - 1)].position.x - heads[&0].position.x;
    assert!(moved > 0.0, "the head did not move: {heads:?}");
    for n in NODES {
        let views = per_frame(&out(n));
        assert_eq!(views.len(), frames as usize, "{n}");
        for (f, digest) in &views {
            let want = lockstep::node_views::views_digest(&file, n, &heads[f]).unwrap();
            assert_eq!(digest, &format!("{want:016x}"), "node {n}, frame {f}");
        }
    }
}

/// A recorded tracker pose as the head's.
fn head_of(pose: &lockstep::input::Pose) -> HeadPose {
    let (position, rotation): (Vec3, Quat) = pose.to_glam();
    HeadPose { position, rotation }
}

/// The head of each of the first `frames` frames, as `recording`'s tracker events move it
/// from where `file` puts it.
fn frame_heads(
    file: &ClusterConfig,
    recording: &Recording,
    frames: u32,
) -> BTreeMap<u64, HeadPose> {
    let mut head = file.head;
    let mut heads = BTreeMap::new();
    let mut recorded = recording.frames.iter().peekable();
    for f in 0..frames as u64 {
        while let Some((_, events)) = recorded.next_if(|(rf, _)| *rf <= f) {
            for e in events {
                if let InputEvent::Tracker {
                    device,
                    sensor: 0,
                    pose,
                } = e
                    && device == "tracker"
                {
                    head = head_of(pose);
                }
            }
        }
        heads.insert(f, head);
    }
    heads
}

/// `(frame, event)` of every input event `who` traced (`--trace-input`), of the lines that
/// begin `WHO input frame` (`read`: `WHO input read at frame`).
fn traced(out: &str, who: &str, read: bool) -> Vec<(u64, String)> {
    let prefix = if read {
        format!("{who} input read at frame ")
    } else {
        format!("{who} input frame ")
    };
    out.lines()
        .filter_map(|l| {
            let (f, e) = l.strip_prefix(&prefix)?.split_once(": ")?;
            Some((f.parse().ok()?, e.to_string()))
        })
        .collect()
}

#[test]
fn a_gamepad_and_a_wand_on_a_node_are_seen_by_every_process_in_the_frame_after_they_were_read() {
    let dir = tempfile::tempdir().unwrap();
    // Down at 2 s and held: whenever the node connects, it reads each press once.
    let (_wand, port) = vrpn_serve(
        dir.path(),
        "wand.path",
        "0 0 1 -0.5\n2 button 0 down\n",
        100,
    );
    let cfg = cave(dir.path());
    // The gamepad is simulated: a script of its pad's steps, beside the cluster file.
    std::fs::write(
        dir.path().join("pads.txt"),
        "0 connect Test Pad\n1.5 axis LeftStickX 0.25\n2 button South down\n",
    )
    .unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap()
        + &format!(
            "\n[[input]]\nname = \"wand\"\ndevice = \"vrpn\"\naddress = \"Tracker0@127.0.0.1:{port}\"\nhost = \"left\"\n[[input]]\nname = \"pads\"\ndevice = \"gamepad\"\nscript = \"pads.txt\"\nhost = \"left\"\n"
        );
    std::fs::write(&cfg, text).unwrap();
    let outs = run(&cfg, (150, true), &["--trace-input"], |_| {
        ["--renderer", "none", "--trace-input"]
            .map(String::from)
            .into()
    });
    for press in [
        r#"Pad { device: "pads", pad: 0, event: Button { button: "South", down: true } }"#,
        r#"Button { device: "wand", button: 0, down: true }"#,
    ] {
        let read: Vec<u64> = traced(&outs["left"], "left", true)
            .into_iter()
            .filter(|(_, e)| e == press)
            .map(|(f, _)| f)
            .collect();
        assert_eq!(
            read.len(),
            1,
            "left read {press} once: {read:?}\n{}",
            outs["left"]
        );
        for (who, out) in &outs {
            let seen: Vec<u64> = traced(out, who, false)
                .into_iter()
                .filter(|(_, e)| e == press)
                .map(|(f, _)| f)
                .collect();
            assert_eq!(seen, [read[0] + 1], "{who}, {press}: {out}");
        }
    }
    // The pad's connection and stick, and the wand's pose, reached every process too (the
    // pose as the cluster file's space has it).
    for seen in [
        r#"Pad { device: "pads", pad: 0, event: Connected("Test Pad") }"#,
        r#"Pad { device: "pads", pad: 0, event: Axis { axis: "LeftStickX", value: 0.25 } }"#,
        r#"Tracker { device: "wand", sensor: 0, pose: Pose { position: [0.0, 1.0, -0.5]"#,
    ] {
        for (who, out) in &outs {
            assert!(
                traced(out, who, false)
                    .iter()
                    .any(|(_, e)| e.starts_with(seen)),
                "{who} never saw {seen}: {out}"
            );
        }
    }
}

#[test]
fn config_show_prints_the_head_a_tracker_report_makes() {
    let dir = tempfile::tempdir().unwrap();
    // A Z-up tracker in millimetres whose origin is 1 m behind the cave's centre.
    let cfg = cave(dir.path());
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[head]", "[head]\ntracker = \"art\"")
        + "\n[[input]]\nname = \"art\"\ndevice = \"vrpn\"\naddress = \"DTrack@10.0.0.9\"\naxes = [\"x\", \"z\", \"-y\"]\nscale = 0.001\nposition = [0.0, 0.0, 1.0]\n";
    std::fs::write(&cfg, text).unwrap();
    // 0.5 m ahead of the tracker's origin (its +y), 1.7 m up, turned 45° left about its z.
    let out = support::lockstep(&[
        "config",
        "show",
        p(&cfg),
        "--node",
        "front",
        "--tracker-report",
        "100 500 1700 0 0 0.38268343 0.92387953",
    ]);
    let said = support::text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.starts_with("head: tracker 'art' sensor 0 reports (100.000, 500.000, 1700.000) → position (0.100, 1.700, 0.500), heading 45.0°, pitch 0.0°, roll 0.0°\n"),
        "{said}"
    );
    // The views are seen from there.
    assert!(said.contains("mono eye at (0.100, 1.700, 0.500)"), "{said}");
    let bad = support::lockstep(&[
        "config",
        "show",
        p(&cfg),
        "--node",
        "front",
        "--tracker-report",
        "1 2",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        support::text(&bad).contains("--tracker-report '1 2' is not X Y Z [QX QY QZ QW]"),
        "{}",
        support::text(&bad)
    );
}

#[test]
fn a_gamepad_script_that_is_wrong_stops_its_node_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cave(dir.path());
    std::fs::write(
        dir.path().join("pads.txt"),
        "0 connect\nsoon button South down\n",
    )
    .unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap()
        + "\n[[input]]\nname = \"pads\"\ndevice = \"gamepad\"\nscript = \"pads.txt\"\nhost = \"left\"\n";
    std::fs::write(&cfg, text).unwrap();
    let out = support::run(&[
        "node",
        "--config",
        p(&cfg),
        "--name",
        "left",
        "--renderer",
        "none",
    ]);
    let said = support::text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("input 'pads'")
            && said.contains("pads.txt line 2: 'soon' is not a time in seconds"),
        "{said}"
    );
}
