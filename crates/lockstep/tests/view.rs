//! `lockstep view` and `lockstep demo --scene`: a glTF model the test writes, on every wall of
//! the local CAVE exactly as `lockstep render --config` draws that wall, and a node whose copy
//! of the model differs by one byte refused with both digests.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use lockstep::launch::daemon::store::digest_file;
use support::{Proc, cave, lockstep, p, text};

const LIMIT: Duration = Duration::from_secs(120);

/// A red 1.2 m panel 1.2 m in front of the viewer, facing them: `room.gltf` and its buffer
/// `room.bin` in `dir`. Returns the model's path.
fn write_model(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let quad: [f32; 18] = [
        -1., -1., 0., 1., -1., 0., 1., 1., 0., -1., -1., 0., 1., 1., 0., -1., 1., 0.,
    ];
    let bin: Vec<u8> = quad.iter().flat_map(|f| f.to_le_bytes()).collect();
    std::fs::write(dir.join("room.bin"), bin).unwrap();
    let gltf = r#"{
      "asset": {"version": "2.0"},
      "scenes": [{"nodes": [0]}],
      "nodes": [{"name": "panel", "mesh": 0, "translation": [0, 1.5, -1.2], "scale": [0.6, 0.6, 0.6]}],
      "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "material": 0}]}],
      "materials": [{"pbrMetallicRoughness": {"baseColorFactor": [0.9, 0.2, 0.1, 1]}}],
      "accessors": [{"bufferView": 0, "componentType": 5126, "count": 6, "type": "VEC3",
                     "min": [-1, -1, 0], "max": [1, 1, 0]}],
      "bufferViews": [{"buffer": 0, "byteLength": 72}],
      "buffers": [{"byteLength": 72, "uri": "room.bin"}]
    }"#;
    let path = dir.join("room.gltf");
    std::fs::write(&path, gltf).unwrap();
    path
}

fn pixels(path: &Path) -> image::RgbaImage {
    image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgba8()
}

#[test]
fn every_wall_shows_the_model_as_render_draws_that_wall() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(&dir.path().join("model"));
    let out = dir.path().join("out");
    let frames = 12;
    let demo = lockstep(&[
        "demo",
        "--scene",
        p(&model),
        "--frames",
        &frames.to_string(),
        "--out",
        p(&out),
    ]);
    assert!(demo.status.success(), "{}", text(&demo));
    assert!(
        text(&demo).contains("all 4 nodes drew the same scene as the master in all 12 frames"),
        "{}",
        text(&demo)
    );
    let single = dir.path().join("single");
    for wall in ["left", "front", "right", "floor"] {
        let o = lockstep(&[
            "render",
            "--config",
            p(&out.join("cave.toml")),
            "--node",
            wall,
            "--scene",
            p(&model),
            "--frame",
            &(frames - 1).to_string(),
            "--out",
            p(&single),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        let (cluster, alone) = (
            pixels(&out.join(format!("{wall}.png"))),
            pixels(&single.join(format!("{wall}-main-wall.png"))),
        );
        assert_eq!(cluster.dimensions(), alone.dimensions(), "{wall}");
        assert!(cluster.as_raw() == alone.as_raw(), "{wall}: pixels differ");
    }
    // The front wall shows the red panel (the model was loaded, not an empty room).
    let front = pixels(&out.join("front.png"));
    let red = front
        .pixels()
        .filter(|px| px[0] > 150 && px[1] < 120 && px[2] < 120)
        .count();
    assert!(red > 10_000, "{red} red pixels on the front wall");
}

#[test]
fn a_node_whose_model_differs_by_one_byte_is_refused_with_both_digests() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cave(dir.path());
    // The master's copy and the node's, each in its own folder, as on two hosts.
    let (here, there) = (dir.path().join("master"), dir.path().join("node"));
    write_model(&here);
    write_model(&there);
    let mut bin = std::fs::read(there.join("room.bin")).unwrap();
    bin[71] ^= 1;
    std::fs::write(there.join("room.bin"), &bin).unwrap();
    let hex = |path: &Path| -> String {
        let (d, _) = digest_file(path).unwrap();
        d.iter().map(|b| format!("{b:02x}")).collect()
    };
    let master = Proc::start_in(
        &here,
        &[
            "view",
            "room.gltf",
            "--config",
            p(&cfg),
            "--wait-for",
            "front",
        ],
    );
    let node = Proc::start_in(
        &there,
        &[
            "view",
            "room.gltf",
            "--config",
            p(&cfg),
            "--name",
            "front",
            "--renderer",
            "none",
            "--rejoin-timeout",
            "0",
        ],
    );
    let (status, out) = node.finish_within(LIMIT);
    let why = format!(
        "room.bin differs: the master's has SHA-256 {}, the node's {}",
        hex(&here.join("room.bin")),
        hex(&there.join("room.bin"))
    );
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains(&why), "{out}");
    master.wait_for(&why, LIMIT);
    support::signal(master.id(), "-INT");
    let _ = master.finish_within(LIMIT);
}
