//! The `lockstep` binary end to end: real processes, asserting on exit codes, error texts,
//! PNG pixels and JSON.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{Proc, lockstep, signal, stderr};

/// Asserts a failed run: exit code 2, the expected text on stderr, and no panic.
fn assert_refused(args: &[&str], expected: &[&str]) {
    let o = lockstep(args);
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{args:?} must exit 2; stderr: {err}"
    );
    for e in expected {
        assert!(err.contains(e), "{args:?}: stderr lacks '{e}': {err}");
    }
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
}

fn load(path: &Path) -> image::RgbaImage {
    image::open(path).unwrap().to_rgba8()
}

#[test]
fn render_writes_the_demo_at_the_requested_size_and_names_the_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo.png");
    let o = lockstep(&[
        "render",
        "--size",
        "320x180",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("adapter: ") && err.contains("backend Vulkan"),
        "{err}"
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("320x180, frame 0"), "{stdout}");
    let img = load(&out);
    assert_eq!(img.dimensions(), (320, 180));
    // A real scene, not a cleared target: many distinct colours, and the sky above the back
    // wall shows the demo's background colour.
    let distinct: std::collections::HashSet<_> = img.pixels().map(|p| p.0).collect();
    assert!(distinct.len() > 500, "only {} colours", distinct.len());
    assert_eq!(img.get_pixel(160, 2).0, [18, 22, 34, 255]);
}

#[test]
fn two_processes_render_the_same_frame_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.png");
    let b = dir.path().join("b.png");
    for p in [&a, &b] {
        let o = lockstep(&[
            "render",
            "--size",
            "160x90",
            "--frames",
            "1",
            "--out",
            p.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(load(&a).into_raw(), load(&b).into_raw());
}

#[test]
fn frames_are_numbered_animated_and_frame_zero_matches_a_single_render() {
    let dir = tempfile::tempdir().unwrap();
    let seq = dir.path().join("seq.png");
    let one = dir.path().join("one.png");
    let o = lockstep(&[
        "render",
        "--size",
        "160x90",
        "--frames",
        "3",
        "--out",
        seq.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = lockstep(&["render", "--size", "160x90", "--out", one.to_str().unwrap()]);
    assert!(o.status.success());
    let frames: Vec<_> = (0..3)
        .map(|i| load(&dir.path().join(format!("seq-{i:04}.png"))).into_raw())
        .collect();
    assert!(!seq.exists(), "a sequence writes numbered files only");
    assert_eq!(frames[0], load(&one).into_raw());
    assert_ne!(frames[0], frames[1], "the demo animates");
    assert_ne!(frames[1], frames[2]);
}

#[test]
fn eye_look_at_and_fov_move_the_camera() {
    let dir = tempfile::tempdir().unwrap();
    let render = |name: &str, extra: &[&str]| {
        let p = dir.path().join(name);
        let mut args = vec!["render", "--size", "160x90", "--out", p.to_str().unwrap()];
        args.extend_from_slice(extra);
        let o = lockstep(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        load(&p).into_raw()
    };
    let base = render("base.png", &[]);
    // The default eye and target, given explicitly, change nothing.
    assert_eq!(
        base,
        render("same.png", &["--eye", "0,1.7,4.5", "--look-at", "0,1.1,-1"])
    );
    assert_ne!(base, render("eye.png", &["--eye", "-2,1,3"]));
    assert_ne!(base, render("fov.png", &["--fov", "90"]));
    // Looking straight down must not produce a degenerate camera (all background).
    let down = render("down.png", &["--eye", "0,8,0", "--look-at", "0,0,0"]);
    let bg = [18u8, 22, 34, 255];
    assert!(down.chunks(4).filter(|p| *p != bg).count() > 1000);
}

#[test]
fn a_gltf_file_renders_framed_by_the_camera() {
    let dir = tempfile::tempdir().unwrap();
    // A red unlit triangle pair (a quad) far from the origin: framing must find it.
    let gltf = r#"{
      "asset": {"version": "2.0"},
      "extensionsUsed": ["KHR_materials_unlit"],
      "scenes": [{"nodes": [0]}],
      "nodes": [{"name": "far quad", "mesh": 0, "translation": [40, 10, -30]}],
      "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "material": 0}]}],
      "materials": [{"pbrMetallicRoughness": {"baseColorFactor": [1, 0, 0, 1]},
                     "extensions": {"KHR_materials_unlit": {}}}],
      "accessors": [{"bufferView": 0, "componentType": 5126, "count": 6, "type": "VEC3",
                     "min": [-1, -1, 0], "max": [1, 1, 0]}],
      "bufferViews": [{"buffer": 0, "byteLength": 72}],
      "buffers": [{"byteLength": 72, "uri": "quad.bin"}]
    }"#;
    let quad: [f32; 18] = [
        -1., -1., 0., 1., -1., 0., 1., 1., 0., -1., -1., 0., 1., 1., 0., -1., 1., 0.,
    ];
    std::fs::write(
        dir.path().join("quad.bin"),
        quad.iter()
            .flat_map(|f| f.to_le_bytes())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let model = dir.path().join("quad.gltf");
    std::fs::write(&model, gltf).unwrap();
    let out = dir.path().join("model.png");
    let o = lockstep(&[
        "render",
        "--scene",
        model.to_str().unwrap(),
        "--size",
        "200x100",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let img = load(&out);
    assert_eq!(
        img.get_pixel(100, 50).0,
        [255, 0, 0, 255],
        "the model is centred"
    );
    assert_eq!(
        img.get_pixel(2, 2).0,
        [18, 22, 34, 255],
        "and does not fill the frame"
    );
}

#[test]
fn bench_render_reports_json_with_both_modes() {
    let o = lockstep(&[
        "bench",
        "render",
        "--json",
        "--frames",
        "3",
        "--size",
        "64x64",
        "--instances",
        "10",
        "--triangles",
        "2000",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
    assert_eq!(v["instances"], 10);
    assert_eq!(v["width"], 64);
    let per = v["triangles_per_instance"].as_u64().unwrap();
    assert_eq!(v["triangles"].as_u64().unwrap(), per * 10);
    assert!(
        (150..=260).contains(&per),
        "about 2000 / 10 per instance: {per}"
    );
    let modes: Vec<&str> = v["modes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mode"].as_str().unwrap())
        .collect();
    assert_eq!(modes, ["no_readback", "readback"]);
    for m in v["modes"].as_array().unwrap() {
        assert_eq!(m["count"], 3);
        assert!(m["fps"].as_f64().unwrap() > 0.0);
        assert!(m["p95_ms"].as_f64().unwrap() >= m["median_ms"].as_f64().unwrap());
    }
    assert!(v["readback_cost_ratio"].as_f64().unwrap() > 0.0);
}

#[test]
fn bad_arguments_are_refused_with_exit_code_2() {
    assert_refused(
        &["render", "--size", "0x10", "--out", "x.png"],
        &["--size", "'0x10': width and height must be at least 1"],
    );
    assert_refused(
        &["render", "--size", "100000x10", "--out", "x.png"],
        &["largest supported side is 16384"],
    );
    assert_refused(
        &["render", "--size", "big", "--out", "x.png"],
        &["'big' is not WIDTHxHEIGHT"],
    );
    assert_refused(
        &["render", "--backend", "metal", "--out", "x.png"],
        &["unknown backend 'metal'"],
    );
    assert_refused(
        &["render", "--fov", "180", "--out", "x.png"],
        &["--fov", "strictly between 0 and 180"],
    );
    assert_refused(
        &["render", "--eye", "1,2", "--out", "x.png"],
        &["--eye", "'1,2' is not X,Y,Z"],
    );
    assert_refused(
        &["render", "--frames", "0", "--out", "x.png"],
        &["--frames", "expected 1 to 100000"],
    );
    assert_refused(
        &[
            "render",
            "--eye",
            "1,1,1",
            "--look-at",
            "1,1,1",
            "--out",
            "x.png",
        ],
        &["--eye and --look-at are the same point"],
    );
    assert_refused(&["render"], &["--out"]);
    assert_refused(
        &["bench", "render", "--instances", "50", "--triangles", "10"],
        &["--triangles 10 is less than --instances 50"],
    );
}

#[test]
fn bad_model_files_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.png");
    let missing = dir.path().join("missing.glb");
    assert_refused(
        &[
            "render",
            "--scene",
            missing.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &[&format!(
            "error: {}: cannot read file: No such file or directory",
            missing.display()
        )],
    );
    let corrupt = dir.path().join("corrupt.glb");
    std::fs::write(&corrupt, b"glTF\x02\x00\x00\x00\xff\x00\x00\x00garbage").unwrap();
    assert_refused(
        &[
            "render",
            "--scene",
            corrupt.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &[&format!("{}: not a valid glTF 2.0 file", corrupt.display())],
    );
    let points = dir.path().join("points.gltf");
    std::fs::write(&points, r#"{"asset":{"version":"2.0"},"scenes":[{"nodes":[0]}],"nodes":[{"mesh":0}],
      "meshes":[{"primitives":[{"attributes":{"POSITION":0},"mode":0}]}],
      "accessors":[{"bufferView":0,"componentType":5126,"count":1,"type":"VEC3","min":[0,0,0],"max":[0,0,0]}],
      "bufferViews":[{"buffer":0,"byteLength":12}],
      "buffers":[{"byteLength":12,"uri":"data:application/octet-stream;base64,AAAAAAAAAAAAAAAA"}]}"#).unwrap();
    assert_refused(
        &[
            "render",
            "--scene",
            points.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &["unsupported glTF feature: primitive 0 of mesh 0 is drawn as Points"],
    );
    assert!(!out.exists(), "no image is written after an error");
}

#[test]
fn an_unwritable_output_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let out = blocker.join("sub").join("o.png");
    assert_refused(
        &["render", "--size", "32x32", "--out", out.to_str().unwrap()],
        &[&format!("cannot write image {}", out.display())],
    );
}

#[test]
fn run_offscreen_writes_statistics_and_captures_for_the_chosen_model() {
    let dir = tempfile::tempdir().unwrap();
    let stats = dir.path().join("stats.json");
    let caps = dir.path().join("caps");
    let o = lockstep(&[
        "run",
        "--offscreen",
        "--frames",
        "12",
        "--size",
        "96x54",
        "--threading-model",
        "Cull/Draw",
        "--stats",
        "--stats-out",
        stats.to_str().unwrap(),
        "--capture-every",
        "5",
        "--out",
        caps.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("ran 12 frames"), "{stdout}");
    assert!(
        stdout.contains("App@main Cull@Cull Draw@Draw"),
        "rolling table: {stdout}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    assert_eq!(v["threading_model"], "Cull/Draw");
    let frames = v["per_frame"].as_array().unwrap();
    assert_eq!(frames.len(), 12);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f["frame"], i as u64);
        assert_eq!(
            (f["cull"]["thread"].as_str(), f["draw"]["thread"].as_str()),
            (Some("Cull"), Some("Draw"))
        );
        assert!(f["draw"]["busy_ms"].as_f64().unwrap() > 0.0);
    }
    let threads: Vec<&str> = v["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["thread"].as_str().unwrap())
        .collect();
    assert_eq!(threads, ["main", "Cull", "Draw"]);
    let mut names: Vec<String> = std::fs::read_dir(&caps)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["frame-000000.png", "frame-000005.png", "frame-000010.png"]
    );
    assert_eq!(load(&caps.join("frame-000005.png")).dimensions(), (96, 54));
}

#[test]
fn run_refuses_malformed_threading_models_and_a_window_without_display() {
    assert_refused(
        &["run", "--offscreen", "--threading-model", "a/b/c"],
        &["--threading-model", "has 2 '/': expected at most one"],
    );
    assert_refused(
        &["run", "--offscreen", "--threading-model", " /Draw"],
        &["Cull thread name is only whitespace"],
    );
    let o = Command::new(support::BIN)
        .args(["run", "--window", "--frames", "1"])
        .env_remove("DISPLAY")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--window needs a display: DISPLAY is not set"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn ctrl_c_ends_a_run_cleanly() {
    let run = Proc::start(&[
        "run",
        "--offscreen",
        "--size",
        "64x36",
        "--threading-model",
        "Cull/Draw",
        "--stats",
    ]);
    // Frames run once the first line of per-stage statistics is out.
    run.wait_for("App@", Duration::from_secs(60));
    signal(run.id(), "-INT");
    let (status, out) = run.finish();
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(
        out.contains("frames in") && out.contains("threading model 'Cull/Draw'"),
        "{out}"
    );
}

#[test]
fn bench_pipeline_reports_every_model_with_speedup_and_latency() {
    let o = lockstep(&[
        "bench",
        "pipeline",
        "--json",
        "--frames",
        "6",
        "--size",
        "64x36",
        "--app-ms",
        "2",
        "--cull-nodes",
        "100",
        "--triangles",
        "500",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["app_ms"], 2.0);
    assert_eq!(v["app_ms_calibrated"], false);
    let models: Vec<&str> = v["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["threading_model"].as_str().unwrap())
        .collect();
    assert_eq!(models, ["", "/Draw", "Cull", "Cull/Draw"]);
    let m = v["models"].as_array().unwrap();
    assert_eq!(m[0]["speedup"], 1.0);
    assert_eq!(m[0]["added_latency_frames"], 0.0);
    assert_eq!(
        m.iter()
            .map(|x| x["threads"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 2, 3]
    );
    for x in m {
        assert!(
            x["fps"].as_f64().unwrap() > 0.0 && x["app_ms"].as_f64().unwrap() >= 1.9,
            "{x}"
        );
    }
}

#[test]
fn demo_runs_a_local_cave_as_processes_and_every_wall_draws_the_masters_scene() {
    let dir = tempfile::tempdir().unwrap();
    let o = lockstep(&[
        "demo",
        "--frames",
        "20",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("master: 20 frames"), "{out}");
    for wall in ["left", "front", "right", "floor"] {
        assert!(out.contains(&format!("node {wall}: 20 frames")), "{out}");
        assert_eq!(
            load(&dir.path().join(format!("{wall}.png"))).dimensions(),
            (512, 512)
        );
        // The node's per-frame scene hashes are the master's.
        let node = std::fs::read_to_string(dir.path().join(format!("{wall}.hashes"))).unwrap();
        let master = std::fs::read_to_string(dir.path().join("master.hashes")).unwrap();
        assert_eq!(node, master, "{wall}");
        assert_eq!(master.lines().count(), 20);
    }
    assert!(
        out.contains("all 4 nodes drew the same scene as the master in all 20 frames"),
        "{out}"
    );
    let cave = load(&dir.path().join("cave.png"));
    assert_eq!(cave.dimensions(), (1536, 1024));
    // Across each seam (left|front at x = 512, front|right at x = 1024) the picture goes on:
    // the edges met going down the last column of one wall (the ring's cubes, the room's
    // wall tops, the floor line) are met in the first column of the next, at the same rows.
    for seam in [512, 1024] {
        let a = edges(&cave, seam - 1);
        let b = edges(&cave, seam);
        assert!(
            a.len() >= 5 && b.len() >= 5,
            "seam at x = {seam}: a wall is blank or nearly ({a:?} / {b:?})"
        );
        for (one, other) in [(&a, &b), (&b, &a)] {
            for e in &one[..5] {
                assert!(
                    other.iter().any(|o| o.abs_diff(*e) <= 2),
                    "seam at x = {seam}: the edge at row {e} does not continue ({a:?} / {b:?})"
                );
            }
        }
    }
}

/// Rows (from the top, in the upper 512 rows of the unfolded CAVE) where column `x` changes
/// colour sharply.
fn edges(img: &image::RgbaImage, x: u32) -> Vec<u32> {
    (1..512)
        .filter(|&y| {
            let (a, b) = (img.get_pixel(x, y - 1).0, img.get_pixel(x, y).0);
            (0..3).map(|c| a[c].abs_diff(b[c]) as u32).sum::<u32>() > 40
        })
        .collect()
}

#[test]
fn a_node_without_a_key_or_with_a_wrong_name_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "name = \"c\"\nkey_file = \"missing.key\"\n[master]\nhost = \"127.0.0.1\"\nport = 9\n",
    )
    .unwrap();
    let o =
        support::lockstep_without_key(&["node", "--config", cfg.to_str().unwrap(), "--name", "x"]);
    assert_eq!(o.status.code(), Some(2));
    // Named with the cluster file and the line of its key_file.
    assert!(
        stderr(&o).contains(&format!("{}:2:12: cluster key: cannot read", cfg.display()))
            && stderr(&o).contains("missing.key"),
        "{}",
        stderr(&o)
    );
    let o = Command::new(support::BIN)
        .args(["node", "--config", cfg.to_str().unwrap(), "--name", "x"])
        .env("LOCKSTEP_KEY", "0123456789abcdef0123")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no node named 'x'"), "{}", stderr(&o));
    let key = dir.path().join("k");
    let o = lockstep(&["key", "new", key.to_str().unwrap()]);
    assert!(o.status.success());
    assert_eq!(std::fs::read_to_string(&key).unwrap().trim().len(), 64);
    assert_refused(
        &["key", "new", key.to_str().unwrap()],
        &["must not exist yet"],
    );
}

#[test]
fn bench_sync_scales_over_node_counts_and_transports_side_by_side() {
    let o = lockstep(&[
        "bench",
        "sync",
        "--nodes",
        "1,3",
        "--transport",
        "tcp,multicast",
        "--frames",
        "50",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["benchmark"], "sync-scale");
    let rows = v["rows"].as_array().unwrap();
    let shape: Vec<(u64, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["nodes"].as_u64().unwrap(),
                r["transport"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [(1, "tcp"), (1, "multicast"), (3, "tcp"), (3, "multicast")]
    );
    for r in rows {
        let n = r["nodes"].as_u64().unwrap();
        for side in ["lockstep", "master_cpu_per_frame", "bare_barrier"] {
            assert_eq!(r[side]["count"], 50, "{side}: {r}");
        }
        // Every node presented every frame the master swapped.
        let frames = r["frames_swapped"].as_u64().unwrap();
        assert!(frames >= 100, "{r}");
        assert_eq!(r["nodes_presented"].as_u64().unwrap(), n * frames, "{r}");
        // The master's thread spent some CPU on each frame, and less than its period.
        let cpu = r["master_cpu_per_frame"]["median_ms"].as_f64().unwrap();
        assert!(cpu > 0.0, "{r}");
        if n > 1 {
            assert_eq!(r["skew"]["count"], r["frames_swapped"], "{r}");
        } else {
            assert!(r["skew"].is_null(), "one node has no skew: {r}");
        }
        match r["transport"].as_str() {
            // Two units a frame, each once for every node.
            Some("multicast") => {
                let units = r["multicast"]["units"].as_u64().unwrap();
                assert!(units >= 2 * frames - 2, "{r}");
            }
            _ => assert!(r["multicast"].is_null(), "{r}"),
        }
    }
    assert_refused(
        &["bench", "sync", "--nodes", "2,3", "--moving", "10"],
        &["--moving measures one cluster"],
    );
    assert_refused(
        &["bench", "sync", "--transport", "udp"],
        &["invalid value 'udp' for '--transport"],
    );
}

#[test]
fn bench_sync_compares_lockstep_with_a_bare_barrier_in_one_run() {
    let o = lockstep(&[
        "bench", "sync", "--nodes", "2", "--frames", "50", "--moving", "40", "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["nodes"], 2);
    // --moving: what moves is what is sent, whatever the scene's size.
    let rows: Vec<(u64, u64, u64)> = v["moving"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["replication"]["count"], 200, "{r}");
            let n = |k: &str| r[k].as_u64().unwrap();
            (n("moved"), n("scene_nodes"), n("bytes"))
        })
        .collect();
    let shapes: Vec<(u64, u64)> = rows.iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(shapes, [(20, 160), (40, 160), (80, 160), (40, 640)]);
    assert!(rows[0].2 < rows[1].2 && rows[1].2 < rows[2].2, "{rows:?}");
    assert_eq!(rows[1].2, rows[3].2, "{rows:?}");
    for side in ["lockstep", "lockstep_verified", "bare_barrier", "update"] {
        assert_eq!(v[side]["count"], 50, "{side}: {v}");
    }
    // Both clusters ran their frames through the barrier with both nodes in every one (a
    // block of 100 per turn, warm-up included), and with --verify both nodes' state of every
    // frame equalled the master's.
    for (swapped, presented) in [
        ("frames_swapped", "nodes_presented"),
        ("verified_frames_swapped", "verified_nodes_presented"),
    ] {
        let frames = v[swapped].as_u64().unwrap();
        assert!(frames >= 100 && frames.is_multiple_of(100), "{v}");
        assert_eq!(v[presented].as_u64().unwrap(), 2 * frames, "{v}");
    }
    // The present skew: one spread per frame both nodes presented, that is every frame the
    // plain cluster swapped.
    assert_eq!(v["skew"]["count"], v["frames_swapped"], "{v}");
    assert!(v["skew"]["max_ms"].as_f64().unwrap() >= v["skew"]["min_ms"].as_f64().unwrap());
    let verified = v["verified_frames_swapped"].as_u64().unwrap();
    assert_eq!(v["states_verified"].as_u64().unwrap(), 2 * verified, "{v}");
    assert_eq!(v["mismatches"], 0, "{v}");
    // The digest was timed on the same scenes, incrementally and from scratch.
    assert_eq!(v["digest"]["count"], v["digest_from_scratch"]["count"]);
    assert!(v["digest"]["count"].as_u64().unwrap() >= 50, "{v}");
    // The table says the same, with the digest's cost on the update line.
    let o = lockstep(&["bench", "sync", "--nodes", "1", "--frames", "20"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    for line in [
        "lockstep with --verify",
        "ratio with --verify",
        "the state digest --verify computes each frame, median",
        "0 mismatches",
    ] {
        assert!(out.contains(line), "{line:?} missing: {out}");
    }
    // One node has no skew to show.
    assert!(!out.contains("present skew"), "{out}");
}

#[test]
fn bench_cluster_compares_a_cluster_node_with_the_same_node_alone() {
    let o = lockstep(&[
        "bench", "cluster", "--nodes", "front", "--frames", "25", "--rounds", "1", "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(v["nodes"][0]["node"], "front");
    // Both sides ran what they claim: the node rendered 25 frames alone, with no barrier,
    // and 25 in the cluster, each one through the swap barrier.
    assert_eq!(
        v["nodes"][0]["runs"],
        serde_json::json!([{
            "frames_alone": 25,
            "frames_in_cluster": 25,
            "swap_barriers_in_cluster": 25,
        }]),
        "{v}"
    );
    assert!(v["alone_fps"].as_f64().unwrap() > 0.0 && v["cluster_fps"].as_f64().unwrap() > 0.0);
    assert_eq!(v["round_ratios"].as_array().unwrap().len(), 1);
    assert!(v["skew"].is_null(), "one node has no present skew: {v}");
    assert_eq!(v["transport"], "tcp");
    // By multicast: two nodes, every frame through the barrier, a skew for each frame.
    let o = lockstep(&[
        "bench",
        "cluster",
        "--nodes",
        "front,left",
        "--frames",
        "25",
        "--rounds",
        "1",
        "--transport",
        "multicast",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["transport"], "multicast");
    for node in v["nodes"].as_array().unwrap() {
        assert_eq!(node["runs"][0]["swap_barriers_in_cluster"], 25, "{v}");
    }
    assert_eq!(v["skew"]["count"], 25, "{v}");
    assert_refused(
        &["bench", "cluster", "--nodes", "front,attic"],
        &["left, front, right and floor", "attic"],
    );
    let cave = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/cave.toml");
    assert_refused(
        &["node", "--config", cave, "--name", "front", "--frames", "5"],
        &["--alone"],
    );
}

#[test]
fn bench_compose_runs_the_view_alone_and_with_a_helper_whose_strips_arrive() {
    let o = lockstep(&[
        "bench",
        "compose",
        "--helpers",
        "0,1",
        "--frames",
        "300",
        "--size",
        "96x64",
        "--triangles",
        "2000",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    let helpers: Vec<u64> = rows
        .iter()
        .map(|r| r["helpers"].as_u64().unwrap())
        .collect();
    assert_eq!(helpers, [0, 1]);
    assert_eq!(rows[0]["speedup"], 1.0);
    assert_eq!(rows[0]["strips"], 0);
    for r in rows {
        assert!(r["fps"].as_f64().unwrap() > 0.0, "{r}");
    }
    // The helper drew strips of the 300 frames (it connects after the start, and a tiny
    // scene runs at hundreds of frames a second).
    let strips = rows[1]["strips"].as_u64().unwrap();
    let missed = rows[1]["missed"].as_u64().unwrap();
    assert!(strips >= 10 && strips + missed <= 300, "{}", rows[1]);
    assert!(rows[1]["helper_ms"].as_f64().unwrap() > 0.0, "{}", rows[1]);
    // The same with LZ4 strips.
    let o = lockstep(&[
        "bench",
        "compose",
        "--helpers",
        "1",
        "--frames",
        "300",
        "--size",
        "96x64",
        "--triangles",
        "2000",
        "--lz4",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(rows[0]["strips"].as_u64().unwrap() >= 10, "{rows}");
    assert_refused(
        &["bench", "compose", "--size", "10x10"],
        &["--size 10x10: expected WIDTHxHEIGHT, each 16 to 8192"],
    );
    assert_refused(
        &["bench", "compose", "--helpers", "0,9"],
        &["--helpers: at most 8 helpers per viewport"],
    );
}
