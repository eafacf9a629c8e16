//! `lockstep view` and `lockstep demo --scene`: a glTF model the test writes, on every wall of
//! the local CAVE exactly as `lockstep render --config` draws that wall, and a node whose copy
//! of the model differs by one byte refused with both digests.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use lockstep::launch::daemon::store::digest_file;
use support::{Proc, cave, lockstep, p, text, write_model};

const LIMIT: Duration = Duration::from_secs(120);

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

/// `[assets] send = true`: a node without the model and a node whose copy differs by one
/// byte are each sent the master's, show the master's scene in every frame, and keep their
/// own copies as they were; at the next start the copy in the cache serves, and nothing is
/// sent again.
#[test]
fn a_node_whose_model_is_missing_or_differs_is_sent_the_masters_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cave(dir.path());
    let text_of = std::fs::read_to_string(&cfg).unwrap() + "\n[assets]\nsend = true\n";
    std::fs::write(&cfg, &text_of).unwrap();
    // In a folder below the working directory, as a show keeps its models.
    let here = dir.path().join("master");
    write_model(&here.join("models"));
    // Each node in its own folder with its own copy of the cluster file, as on two hosts.
    let folder = |name: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("cave.toml"), &text_of).unwrap();
        d
    };
    let (bare, other) = (folder("front"), folder("left"));
    write_model(&other.join("models"));
    let mut bin = std::fs::read(other.join("models/room.bin")).unwrap();
    bin[71] ^= 1;
    std::fs::write(other.join("models/room.bin"), &bin).unwrap();
    let hashes = |who: &str, run: u32| dir.path().join(format!("{who}-{run}.hashes"));
    let run = |n: u32, nodes: &[(&str, &Path)]| -> (String, Vec<String>) {
        let names: Vec<&str> = nodes.iter().map(|(n, _)| *n).collect();
        let master = Proc::start_in(
            &here,
            &[
                "view",
                "models/room.gltf",
                "--config",
                p(&cfg),
                "--wait-for",
                &names.join(","),
                "--frames",
                "20",
                "--hash-out",
                p(&hashes("master", n)),
            ],
        );
        let procs: Vec<Proc> = nodes
            .iter()
            .map(|(name, d)| {
                Proc::start_in(
                    d,
                    &[
                        "view",
                        "models/room.gltf",
                        "--config",
                        p(&d.join("cave.toml")),
                        "--name",
                        name,
                        "--renderer",
                        "none",
                        "--hash-out",
                        p(&hashes(name, n)),
                    ],
                )
            })
            .collect();
        let outs: Vec<String> = procs
            .into_iter()
            .zip(nodes)
            .map(|(proc, (name, _))| {
                let (status, out) = proc.finish_within(LIMIT);
                assert_eq!(status.code(), Some(0), "{name}: {out}");
                out
            })
            .collect();
        let (status, out) = master.finish_within(LIMIT);
        assert_eq!(status.code(), Some(0), "{out}");
        let want = std::fs::read_to_string(hashes("master", n)).unwrap();
        assert_eq!(want.lines().count(), 20, "{want}");
        for (name, _) in nodes {
            let got = std::fs::read_to_string(hashes(name, n)).unwrap();
            assert_eq!(got, want, "node {name}, run {n}");
        }
        (out, outs)
    };
    let (master, outs) = run(1, &[("front", &bare), ("left", &other)]);
    let fetched =
        |out: &str, file: &str| out.contains(&format!("fetched models/{file} from the master"));
    // The node without the model is sent both files; the other only the buffer that
    // differs, its own room.gltf being the master's.
    assert!(
        fetched(&outs[0], "room.gltf") && fetched(&outs[0], "room.bin"),
        "{}",
        outs[0]
    );
    assert!(
        !fetched(&outs[1], "room.gltf") && fetched(&outs[1], "room.bin"),
        "{}",
        outs[1]
    );
    assert!(
        master.contains("sent models/room.bin (72 bytes)"),
        "{master}"
    );
    // The node's own copy is left as it was; the master's is in the cache.
    assert_eq!(std::fs::read(other.join("models/room.bin")).unwrap(), bin);
    assert!(!bare.join("models").exists());
    let cached: Vec<PathBuf> = std::fs::read_dir(other.join(".lockstep-assets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|d| d.join("room.bin").exists())
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    for file in ["room.gltf", "room.bin"] {
        assert_eq!(
            std::fs::read(cached[0].join(file)).unwrap(),
            std::fs::read(here.join("models").join(file)).unwrap(),
            "{file}"
        );
    }
    // Started again, the node finds the master's copy in its cache.
    let (master, outs) = run(2, &[("left", &other)]);
    assert!(!outs[0].contains("fetched"), "{}", outs[0]);
    assert!(!master.contains("sent room"), "{master}");
}
