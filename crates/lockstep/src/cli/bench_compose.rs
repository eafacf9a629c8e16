/*!
`lockstep bench compose`: one heavy view drawn by its display node alone, then with 1, 2, …
helpers (sort-first), in one run; frame rate, speed-up, and what the strips cost.

To stand in for separate PCs on one machine, each node process is pinned to a core of its
own (`taskset`) and lavapipe draws on one thread (`LP_NUM_THREADS=1`); with more processes
than cores, some share one, and the run says so.
*/
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;

use super::cluster::{LocalRun, run_local, tempfile_dir};
use super::ranged;

/// Arguments of `lockstep bench compose`.
#[derive(Debug, Args)]
pub struct BenchComposeArgs {
    /// Helper counts to run (comma-separated); 0 is the display node alone.
    #[arg(long, value_delimiter = ',', default_value = "0,1,2,3")]
    helpers: Vec<u32>,
    /// Frames per run.
    #[arg(long, default_value = "90", value_parser = |s: &str| ranged(s, 20, 100_000))]
    frames: u64,
    /// The display node's view, WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x720")]
    size: String,
    /// Triangles of the generated scene (spheres across the view).
    #[arg(long, default_value = "1000000", value_parser = |s: &str| ranged(s, 1_000, 20_000_000))]
    triangles: u64,
    /// Show this glTF model instead of the generated scene.
    #[arg(long)]
    scene: Option<PathBuf>,
    /// Helpers send their strips LZ4-compressed (`strips = "lz4"`).
    #[arg(long)]
    lz4: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// What one run measured.
#[derive(Debug, Clone, serde::Serialize)]
struct Row {
    helpers: u32,
    fps: f64,
    speedup: f64,
    /// Median ms the display node waited for strips after drawing its own part.
    strip_wait_ms: f64,
    /// Median ms it took to write the strips in (upload).
    upload_ms: f64,
    /// Median ms a helper took from a request to its strip sent (draw, read back, send).
    helper_ms: f64,
    /// Strips that came, and that the display node drew in a helper's stead.
    strips: u64,
    missed: u64,
    /// Waiting for and writing strips, in frames of this run.
    added_latency_frames: f64,
}

pub fn run_bench_compose(args: BenchComposeArgs) -> Result<()> {
    let (w, h) = args
        .size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .filter(|(w, h)| (16..=8192).contains(w) && (16..=8192).contains(h))
        .with_context(|| {
            format!(
                "--size {}: expected WIDTHxHEIGHT, each 16 to 8192",
                args.size
            )
        })?;
    if args.helpers.iter().any(|n| *n > 8) {
        bail!("--helpers: at most 8 helpers per viewport");
    }
    let dir = tempfile_dir()?.join("compose");
    std::fs::create_dir_all(&dir)?;
    let scene = match &args.scene {
        Some(s) => std::fs::canonicalize(s)
            .with_context(|| format!("--scene {}: cannot find it", s.display()))?,
        None => heavy_model(&dir, args.triangles)?,
    };
    let exe = std::env::current_exe().context("cannot find the lockstep executable")?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let key = lockstep_wire::ClusterKey::generate_hex()?;
    let most = args.helpers.iter().copied().max().unwrap_or(0) as usize;
    if !args.json {
        println!(
            "lockstep bench compose: {w}x{h}, {} frames per run, strips {}; each node process on a core of its own (taskset), lavapipe on one thread (LP_NUM_THREADS=1){}",
            args.frames,
            if args.lz4 {
                "LZ4-compressed"
            } else {
                "raw RGBA8"
            },
            if most + 1 > cores {
                format!(
                    "; {} processes share {cores} cores, so runs with more than {} helper(s) share cores",
                    most + 1,
                    cores.saturating_sub(1)
                )
            } else {
                String::new()
            }
        );
    }
    let mut rows: Vec<Row> = Vec::new();
    for &n in &args.helpers {
        let cfg = cluster_file(&dir, w, h, n, args.lz4)?;
        let stats = dir.join(format!("wall-{n}.json"));
        let frames = args.frames.to_string();
        let scene_arg = scene.to_string_lossy().to_string();
        let cfg_arg = cfg.to_string_lossy().to_string();
        let mut runs: Vec<(String, usize, Vec<String>)> = vec![(
            "master".into(),
            0,
            vec![
                "master".into(),
                "--config".into(),
                cfg_arg.clone(),
                "--frames".into(),
                frames.clone(),
                "--fixed-dt".into(),
                format!("{}", 1.0 / 60.0),
                "--scene".into(),
                scene_arg.clone(),
            ],
        )];
        let node = |name: &str| -> Vec<String> {
            vec![
                "node".into(),
                "--config".into(),
                cfg_arg.clone(),
                "--name".into(),
                name.into(),
                "--offscreen".into(),
                "--scene".into(),
                scene_arg.clone(),
            ]
        };
        let mut wall = node("wall");
        wall.extend(["--stats-out".into(), stats.to_string_lossy().to_string()]);
        runs.push(("node 'wall'".into(), 0, wall));
        for i in 1..=n as usize {
            runs.push((format!("node 'h{i}'"), i % cores, node(&format!("h{i}"))));
        }
        let runs = runs
            .into_iter()
            .map(|(who, core, args)| LocalRun {
                who,
                args,
                core: Some(core),
            })
            .collect();
        // One lavapipe thread per process: one core each, as one PC each.
        let (_, errs) = run_local(&exe, &key, runs, &[("LP_NUM_THREADS", "1")])?;
        let text = std::fs::read_to_string(&stats)
            .with_context(|| format!("no figures from the display node ({n} helpers)"))?;
        let v: serde_json::Value = serde_json::from_str(&text)?;
        let fps = v["steady_fps"]
            .as_f64()
            .context("the display node ran too few frames for a steady rate")?;
        let summary = errs
            .iter()
            .find(|l| l.contains("node 'wall' sort-first:"))
            .cloned()
            .unwrap_or_default();
        let helper_ms: Vec<f64> = errs
            .iter()
            .filter(|l| l.contains("sort-first:") && !l.contains("node 'wall'"))
            .filter_map(|l| number_before(l, " ms", "sent median"))
            .collect();
        let strip_wait_ms =
            number_before(&summary, " ms", "waited for strips median").unwrap_or(0.0);
        let upload_ms = number_before(&summary, " ms", "wrote them in median").unwrap_or(0.0);
        let base = rows.first().map_or(fps, |r| r.fps);
        rows.push(Row {
            helpers: n,
            fps,
            speedup: fps / base,
            strip_wait_ms: if n == 0 { 0.0 } else { strip_wait_ms },
            upload_ms: if n == 0 { 0.0 } else { upload_ms },
            helper_ms: if helper_ms.is_empty() {
                0.0
            } else {
                helper_ms.iter().sum::<f64>() / helper_ms.len() as f64
            },
            strips: count_before(&summary, " strips from helpers"),
            missed: count_before(&summary, " drawn in a helper's stead"),
            added_latency_frames: if n == 0 {
                0.0
            } else {
                (strip_wait_ms + upload_ms) * fps / 1000.0
            },
        });
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "helpers      fps  speed-up   wait for strips ms   upload ms   helper draw+readback+send ms   strips  drawn instead   added latency (frames)"
    );
    for r in &rows {
        let _ = writeln!(
            out,
            "{:>7} {:>8.2} {:>8.2}x {:>20.3} {:>11.3} {:>30.3} {:>8} {:>14} {:>24.2}",
            r.helpers,
            r.fps,
            r.speedup,
            r.strip_wait_ms,
            r.upload_ms,
            r.helper_ms,
            r.strips,
            r.missed,
            r.added_latency_frames
        );
    }
    print!("{out}");
    Ok(())
}

/// The number written right before `unit` after `label` in `line`.
fn number_before(line: &str, unit: &str, label: &str) -> Option<f64> {
    let rest = &line[line.find(label)? + label.len()..];
    rest[..rest.find(unit)?].trim().parse().ok()
}

/// The count written right before `what` in `line` (0 if absent).
fn count_before(line: &str, what: &str) -> u64 {
    line.find(what)
        .and_then(|i| line[..i].split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A cluster file in `dir`: display node `wall` (a `w` × `h` view of one screen) with
/// `helpers` helpers `h1`, … (each with a small window of its own, on a screen behind the
/// viewer where the scene is not: a helper's own wall costs it nothing here), on free
/// loopback ports.
fn cluster_file(dir: &Path, w: u32, h: u32, helpers: u32, lz4: bool) -> Result<PathBuf> {
    let held: Vec<TcpListener> = (0..helpers + 2)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()?;
    let port = |i: usize| held[i].local_addr().map(|a| a.port());
    let list: Vec<String> = (1..=helpers).map(|i| format!("\"h{i}\"")).collect();
    // The screen has the view's aspect: 1.8 m tall, 2 m in front of the head.
    let half = 0.9 * w as f32 / h as f32;
    let mut text = format!(
        "name = \"compose\"\n[master]\nhost = \"127.0.0.1\"\nport = {}\n[head]\nposition = [0.0, 1.2, 0.0]\n[[screens]]\nname = \"wall\"\nlower_left = [{:.4}, 0.3, -2.0]\nlower_right = [{half:.4}, 0.3, -2.0]\nupper_left = [{:.4}, 2.1, -2.0]\n[[screens]]\nname = \"back\"\nlower_left = [{half:.4}, 0.3, 2.0]\nlower_right = [{:.4}, 0.3, 2.0]\nupper_left = [{half:.4}, 2.1, 2.0]\n",
        port(0)?,
        -half,
        -half,
        -half
    );
    text += &format!(
        "[[nodes]]\nname = \"wall\"\nhost = \"127.0.0.1\"\nport = {}\n[[nodes.windows]]\nname = \"main\"\nsize = [{w}, {h}]\n[[nodes.windows.viewports]]\nname = \"view\"\nscreen = \"wall\"\n{}",
        port(1)?,
        if helpers > 0 {
            let strips = if lz4 { "strips = \"lz4\"\n" } else { "" };
            format!("helpers = [{}]\n{strips}", list.join(", "))
        } else {
            String::new()
        }
    );
    for i in 1..=helpers as usize {
        text += &format!(
            "[[nodes]]\nname = \"h{i}\"\nhost = \"127.0.0.1\"\nport = {}\n[[nodes.windows]]\nname = \"main\"\nsize = [16, 16]\n[[nodes.windows.viewports]]\nname = \"own\"\nscreen = \"back\"\n",
            port(i + 1)?
        );
    }
    drop(held);
    let path = dir.join(format!("compose-{helpers}.toml"));
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// A glTF scene of about `triangles` triangles: lit spheres in a grid across the view of
/// [`cluster_file`]'s screen, written to `dir`.
fn heavy_model(dir: &Path, triangles: u64) -> Result<PathBuf> {
    // A UV sphere of `seg` segments and `seg / 2` rings has 2 · seg · rings triangles.
    let seg: u32 = 48;
    let rings = seg / 2;
    let per = u64::from(2 * seg * rings);
    let count = triangles.div_ceil(per).max(1);
    let mut bin: Vec<u8> = Vec::new();
    for r in 0..=rings {
        let v = std::f32::consts::PI * r as f32 / rings as f32;
        for s in 0..=seg {
            let u = std::f32::consts::TAU * s as f32 / seg as f32;
            let n = [v.sin() * u.cos(), v.cos(), v.sin() * u.sin()];
            for c in n.iter().chain(n.iter()) {
                bin.extend_from_slice(&c.to_le_bytes());
            }
        }
    }
    let vertices = (rings + 1) * (seg + 1);
    let vertex_bytes = bin.len();
    let mut indices = 0u32;
    for r in 0..rings {
        for s in 0..seg {
            let a = r * (seg + 1) + s;
            let b = a + seg + 1;
            for i in [a, b, a + 1, a + 1, b, b + 1] {
                bin.extend_from_slice(&i.to_le_bytes());
                indices += 1;
            }
        }
    }
    let index_bytes = bin.len() - vertex_bytes;
    let side = (count as f64).sqrt().ceil() as u64;
    let mut nodes = Vec::new();
    for i in 0..count {
        let (gx, gy) = (i % side, i / side);
        let x = -4.0 + 8.0 * (gx as f64 + 0.5) / side as f64;
        let y = -1.0 + 4.4 * (gy as f64 + 0.5) / side as f64;
        nodes.push(format!(
            "{{\"mesh\":0,\"translation\":[{x:.4},{y:.4},-5.0],\"scale\":[{s:.4},{s:.4},{s:.4}]}}",
            s = 3.0 / side as f64
        ));
    }
    let roots: Vec<String> = (0..count).map(|i| i.to_string()).collect();
    let json = format!(
        "{{\"asset\":{{\"version\":\"2.0\"}},\"scene\":0,\"scenes\":[{{\"nodes\":[{}]}}],\"nodes\":[{}],\
         \"meshes\":[{{\"primitives\":[{{\"attributes\":{{\"POSITION\":0,\"NORMAL\":1}},\"indices\":2}}]}}],\
         \"buffers\":[{{\"uri\":\"heavy.bin\",\"byteLength\":{}}}],\
         \"bufferViews\":[{{\"buffer\":0,\"byteOffset\":0,\"byteLength\":{vertex_bytes},\"byteStride\":24}},\
         {{\"buffer\":0,\"byteOffset\":{vertex_bytes},\"byteLength\":{index_bytes}}}],\
         \"accessors\":[{{\"bufferView\":0,\"byteOffset\":0,\"componentType\":5126,\"count\":{vertices},\"type\":\"VEC3\",\"min\":[-1,-1,-1],\"max\":[1,1,1]}},\
         {{\"bufferView\":0,\"byteOffset\":12,\"componentType\":5126,\"count\":{vertices},\"type\":\"VEC3\"}},\
         {{\"bufferView\":1,\"byteOffset\":0,\"componentType\":5125,\"count\":{indices},\"type\":\"SCALAR\"}}]}}",
        roots.join(","),
        nodes.join(","),
        bin.len()
    );
    let bin_path = dir.join("heavy.bin");
    std::fs::File::create(&bin_path)
        .and_then(|mut f| f.write_all(&bin))
        .with_context(|| format!("cannot write {}", bin_path.display()))?;
    let path = dir.join("heavy.gltf");
    std::fs::write(&path, json).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}
