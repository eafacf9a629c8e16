/*!
`lockstep key`, `lockstep demo` and `bench cluster`: running a cluster on this machine. (`lockstep
master` and `lockstep node` are [`lockstep::app`]'s roles with the built-in demo.)
*/
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use lockstep::app::resolve;
use lockstep::cluster::MasterConfig;
use lockstep::display::ClusterConfig;
use lockstep_wire::ClusterKey;

use super::ranged;

/// The master of `config` with the key given as text (a benchmark's or soak's fresh key),
/// listening where the file says, with the library's defaults otherwise.
pub(super) fn master_config(config: &ClusterConfig, key: &str) -> Result<MasterConfig> {
    Ok(MasterConfig::for_cluster(
        config,
        ClusterKey::new(key.as_bytes().to_vec())?,
        resolve(&config.master)?,
    ))
}

/// `lockstep key` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Write a new random cluster key (64 hex digits) to FILE, readable by its owner only.
    New {
        /// The key file to create (refused if it exists).
        file: PathBuf,
    },
}

pub fn run_key(cmd: KeyCommand) -> Result<()> {
    let KeyCommand::New { file } = cmd;
    let hex = ClusterKey::generate_hex()?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(&file)
        .with_context(|| format!("cannot create {} (it must not exist yet)", file.display()))?;
    writeln!(f, "{hex}")?;
    println!(
        "wrote a new cluster key to {}; copy it to every host of the cluster",
        file.display()
    );
    Ok(())
}

/// Arguments of `lockstep demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Frames to run.
    #[arg(long, default_value = "120", value_parser = |s: &str| ranged(s, 1, 1 << 30))]
    frames: u64,
    /// Open a window per wall instead of rendering offscreen.
    #[arg(long)]
    window: bool,
    /// Folder for each wall's last frame and the unfolded CAVE picture.
    #[arg(long)]
    out: PathBuf,
    /// Show this glTF model (`lockstep view`) instead of the demo.
    #[arg(long)]
    scene: Option<PathBuf>,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The sample CAVE written to `dir`, on free local ports, with a fresh key; with `only`,
/// just those of its nodes.
fn local_cave(dir: &Path, only: Option<&[String]>) -> Result<(PathBuf, ClusterConfig, String)> {
    let mut text = include_str!("../../../../configs/cave.toml").to_string();
    for port in 7400..=7404 {
        text = text.replace(
            &format!("port = {port}\n"),
            &format!("port = {}\n", free_port()?),
        );
    }
    if let Some(only) = only {
        let mut doc: toml::Table = text.parse().context("the sample CAVE file")?;
        let Some(toml::Value::Array(nodes)) = doc.get_mut("nodes") else {
            bail!("the sample CAVE file has no nodes");
        };
        nodes.retain(|n| {
            n.get("name")
                .and_then(|v| v.as_str())
                .is_some_and(|name| only.iter().any(|o| o == name))
        });
        if nodes.len() != only.len() {
            bail!("the demo CAVE's nodes are left, front, right and floor; asked for {only:?}");
        }
        text = toml::to_string(&doc).context("the sample CAVE file")?;
    }
    let cfg_path = dir.join("cave.toml");
    std::fs::write(&cfg_path, &text)
        .with_context(|| format!("cannot write {}", cfg_path.display()))?;
    let config = ClusterConfig::load(&cfg_path)?;
    Ok((cfg_path, config, ClusterKey::generate_hex()?))
}

pub fn run_demo(args: DemoArgs) -> Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let (cfg_path, config, key) = local_cave(&args.out, None)?;
    let exe = std::env::current_exe().context("cannot find the lockstep executable")?;
    let cfg = cfg_path.to_string_lossy().to_string();
    let hash_file = |who: &str| {
        args.out
            .join(format!("{who}.hashes"))
            .to_string_lossy()
            .to_string()
    };
    let master = strings(&[
        "master",
        "--config",
        &cfg,
        "--frames",
        &args.frames.to_string(),
        "--fixed-dt",
        &format!("{}", 1.0 / 60.0),
        "--hash-out",
        &hash_file("master"),
    ]);
    let scene = scene_args(args.scene.as_deref())?;
    let mut master = master;
    master.extend(scene.iter().cloned());
    let mut runs = vec![("master".to_string(), master)];
    for n in &config.nodes {
        let mut a = strings(&[
            "node",
            "--config",
            &cfg,
            "--name",
            &n.name,
            "--hash-out",
            &hash_file(&n.name),
        ]);
        if !args.window {
            a.extend(strings(&[
                "--offscreen",
                "--out",
                &args.out.to_string_lossy(),
            ]));
        }
        a.extend(scene.iter().cloned());
        runs.push((n.name.clone(), a));
    }
    eprintln!(
        "starting a master and {} nodes of cluster '{}' on this machine",
        config.nodes.len(),
        config.name
    );
    let lines = run_all(&exe, &key, runs).context("the demo cluster failed")?;
    for l in &lines {
        println!("{l}");
    }
    // Every node drew the scene the master sent, frame by frame.
    let read = |who: &str| {
        std::fs::read_to_string(hash_file(who)).with_context(|| format!("no hashes from {who}"))
    };
    let master = read("master")?;
    for n in &config.nodes {
        if read(&n.name)? != master {
            bail!(
                "node '{}' drew other scenes than the master sent (see {})",
                n.name,
                hash_file(&n.name)
            );
        }
    }
    println!(
        "all {} nodes drew the same scene as the master in all {} frames",
        config.nodes.len(),
        args.frames
    );
    if !args.window {
        let path = args.out.join("cave.png");
        unfold(&args.out, &path)?;
        println!(
            "wrote {} (the walls unfolded) and each wall's last frame in {}",
            path.display(),
            args.out.display()
        );
    }
    Ok(())
}

/// `--scene MODEL` for every process of a local run, by the same (absolute) path, as each
/// host would have it; nothing for the demo.
fn scene_args(model: Option<&Path>) -> Result<Vec<String>> {
    let Some(model) = model else {
        return Ok(Vec::new());
    };
    let model =
        std::path::absolute(model).with_context(|| format!("cannot find {}", model.display()))?;
    Ok(vec!["--scene".into(), model.to_string_lossy().into_owned()])
}

/// Lays the CAVE's walls out as seen unfolded: left, front, right in a row, the floor below
/// the front wall.
fn unfold(dir: &Path, out: &Path) -> Result<()> {
    let load = |n: &str| -> Result<image::RgbaImage> {
        Ok(image::open(dir.join(format!("{n}.png")))
            .with_context(|| format!("no image from node '{n}'"))?
            .to_rgba8())
    };
    let (left, front, right, floor) = (
        load("left")?,
        load("front")?,
        load("right")?,
        load("floor")?,
    );
    let (w, h) = front.dimensions();
    let mut img = image::RgbaImage::from_pixel(3 * w, 2 * h, image::Rgba([0, 0, 0, 255]));
    image::imageops::overlay(&mut img, &left, 0, 0);
    image::imageops::overlay(&mut img, &front, w as i64, 0);
    image::imageops::overlay(&mut img, &right, 2 * w as i64, 0);
    image::imageops::overlay(&mut img, &floor, w as i64, h as i64);
    img.save(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}

/// Arguments of `lockstep bench cluster`.
#[derive(Debug, Args)]
pub struct BenchClusterArgs {
    /// Frames per run.
    #[arg(long, default_value = "150", value_parser = |s: &str| ranged(s, 20, 1_000_000))]
    frames: u64,
    /// Only these nodes of the demo CAVE (comma-separated), e.g. `front` for one render node
    /// and the master, as on a real cluster with one node per machine.
    #[arg(long, value_delimiter = ',')]
    nodes: Option<Vec<String>>,
    /// Rounds; each runs the nodes alone, then as a cluster.
    #[arg(long, default_value = "2", value_parser = |s: &str| ranged(s, 1, 100))]
    rounds: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Show this glTF model (`lockstep view`) instead of the demo, on both sides.
    #[arg(long)]
    scene: Option<PathBuf>,
}

/// Runs `lockstep` processes side by side to the end, each named for errors; all must exit
/// 0. Returns their standard output lines, process by process.
fn run_all(exe: &Path, key: &str, runs: Vec<(String, Vec<String>)>) -> Result<Vec<String>> {
    let mut children = Vec::new();
    for (who, a) in runs {
        let child = Command::new(exe)
            .args(&a)
            .env("LOCKSTEP_KEY", key)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {who}: {} {}", exe.display(), a.join(" ")))?;
        children.push((who, child));
    }
    let mut failed = Vec::new();
    let mut lines = Vec::new();
    for (who, child) in children {
        let out = child.wait_with_output()?;
        lines.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string),
        );
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let mut tail: Vec<&str> = err.lines().rev().take(5).collect();
            tail.reverse();
            failed.push(format!(
                "{who} exited with {}: {}",
                out.status,
                tail.join(" | ")
            ));
        }
    }
    if !failed.is_empty() {
        bail!("\n  {}", failed.join("\n  "));
    }
    Ok(lines)
}

/// Owned command-line arguments.
fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

pub fn run_bench_cluster(args: BenchClusterArgs) -> Result<()> {
    let dir = tempfile_dir()?;
    let (cfg_path, config, key) = local_cave(&dir, args.nodes.as_deref())?;
    let exe = std::env::current_exe().context("cannot find the lockstep executable")?;
    let cfg = cfg_path.to_string_lossy().to_string();
    let names: Vec<String> = config.nodes.iter().map(|n| n.name.clone()).collect();
    let stats_file = |who: &str, alone: bool| {
        dir.join(format!(
            "{who}-{}.json",
            if alone { "alone" } else { "cluster" }
        ))
    };
    // A node's steady frame rate, frames presented, and swap barriers waited at.
    let read_stats = |who: &str, alone: bool| -> Result<(f64, u64, u64)> {
        let path = stats_file(who, alone);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("no figures from node '{who}'"))?;
        let v: serde_json::Value = serde_json::from_str(&text)?;
        let fps = v["steady_fps"]
            .as_f64()
            .with_context(|| format!("node '{who}' ran too few frames for a steady rate"))?;
        let frames = v["frames"].as_u64().unwrap_or(0);
        let swaps = v["swap_wait"]["count"].as_u64().unwrap_or(0);
        Ok((fps, frames, swaps))
    };
    let frames = args.frames.to_string();
    let p = |path: &Path| path.to_string_lossy().to_string();
    let scene = scene_args(args.scene.as_deref())?;
    // Per node: steady fps alone and in the cluster, averaged over the rounds; and each
    // round's ratio of the totals (their median resists a round disturbed by the machine).
    let mut alone = vec![0.0; names.len()];
    let mut cluster = vec![0.0; names.len()];
    let mut round_ratios = Vec::new();
    // Per node and round: (frames alone, frames in the cluster, barriers in the cluster).
    let mut runs: Vec<Vec<serde_json::Value>> = vec![Vec::new(); names.len()];
    for round in 0..args.rounds {
        // Alone: every node at once (they share this machine's CPU as the cluster's do).
        let alone_runs: Vec<(String, Vec<String>)> = names
            .iter()
            .map(|n| {
                let mut a = strings(&[
                    "node",
                    "--config",
                    &cfg,
                    "--name",
                    n,
                    "--offscreen",
                    "--alone",
                    "--frames",
                    &frames,
                ]);
                a.extend(["--stats-out".into(), p(&stats_file(n, true))]);
                a.extend(scene.iter().cloned());
                (format!("node '{n}' alone"), a)
            })
            .collect();
        let mut master = strings(&[
            "master",
            "--config",
            &cfg,
            "--frames",
            &frames,
            "--fixed-dt",
            &format!("{}", 1.0 / 60.0),
        ]);
        master.extend(scene.iter().cloned());
        let mut cluster_runs = vec![("master".to_string(), master)];
        for n in &names {
            let mut a = strings(&[
                "node",
                "--config",
                &cfg,
                "--name",
                n,
                "--offscreen",
                "--stats-out",
                &p(&stats_file(n, false)),
            ]);
            a.extend(scene.iter().cloned());
            cluster_runs.push((format!("node '{n}'"), a));
        }
        // Every other round the cluster goes first, so that drift in the machine's speed
        // does not favour one side.
        let mut order = [
            (alone_runs, "the nodes running alone"),
            (cluster_runs, "the cluster"),
        ];
        if round % 2 == 1 {
            order.reverse();
        }
        for (runs, what) in order {
            run_all(&exe, &key, runs).with_context(|| format!("{what} failed"))?;
        }
        let (mut a, mut c) = (0.0, 0.0);
        for (i, n) in names.iter().enumerate() {
            let ((fa, frames_alone, _), (fc, frames_cluster, swaps)) =
                (read_stats(n, true)?, read_stats(n, false)?);
            runs[i].push(serde_json::json!({
                "frames_alone": frames_alone,
                "frames_in_cluster": frames_cluster,
                "swap_barriers_in_cluster": swaps,
            }));
            alone[i] += fa / args.rounds as f64;
            cluster[i] += fc / args.rounds as f64;
            a += fa;
            c += fc;
        }
        round_ratios.push(c / a);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let (a, c): (f64, f64) = (alone.iter().sum(), cluster.iter().sum());
    let ratio = c / a;
    round_ratios.sort_by(f64::total_cmp);
    let median_ratio = round_ratios[round_ratios.len() / 2];
    if args.json {
        let nodes: Vec<serde_json::Value> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                serde_json::json!({"node": n, "alone_fps": alone[i], "cluster_fps": cluster[i], "ratio": cluster[i] / alone[i], "runs": runs[i]})
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "benchmark": "cluster",
                "scene": args.scene.as_ref().map_or("demo".into(), |m| m.display().to_string()),
                "frames": args.frames,
                "rounds": args.rounds,
                "nodes": nodes,
                "alone_fps": a,
                "cluster_fps": c,
                "ratio": ratio,
                "round_ratios": round_ratios,
                "median_round_ratio": median_ratio,
            }))?
        );
        return Ok(());
    }
    println!(
        "lockstep bench cluster: {} on the demo CAVE ({} nodes, offscreen), {} frames x {} rounds; steady fps after the first 10 frames",
        args.scene
            .as_ref()
            .map_or("the demo".into(), |m| m.display().to_string()),
        names.len(),
        args.frames,
        args.rounds
    );
    println!(
        "{:<10} {:>12} {:>12} {:>8}",
        "node", "alone fps", "cluster fps", "ratio"
    );
    for (i, n) in names.iter().enumerate() {
        println!(
            "{:<10} {:>12.1} {:>12.1} {:>7.3}x",
            n,
            alone[i],
            cluster[i],
            cluster[i] / alone[i]
        );
    }
    println!("{:<10} {:>12.1} {:>12.1} {:>7.3}x", "all", a, c, ratio);
    println!(
        "round by round: {} (median {median_ratio:.3}x)",
        round_ratios
            .iter()
            .map(|r| format!("{r:.3}x"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(())
}

/// A cluster file on loopback with `n` nodes `n0`, `n1`, … (one small window each on one
/// screen) and free ports, written to `dir`: for benchmarks and soak runs of many node
/// processes on one machine.
pub(super) fn small_cluster(dir: &Path, name: &str, n: usize) -> Result<(PathBuf, ClusterConfig)> {
    let mut text = format!(
        "name = \"{name}\"\n[master]\nhost = \"127.0.0.1\"\nport = {}\n[[screens]]\nname = \"s\"\nlower_left = [-1.0, 0.0, -2.0]\nlower_right = [1.0, 0.0, -2.0]\nupper_left = [-1.0, 2.0, -2.0]\n",
        free_port()?
    );
    for i in 0..n {
        text += &format!(
            "[[nodes]]\nname = \"n{i}\"\nhost = \"127.0.0.1\"\nport = {}\n[[nodes.windows]]\nname = \"w\"\nsize = [64, 64]\n[[nodes.windows.viewports]]\nname = \"v\"\nscreen = \"s\"\n",
            free_port()?
        );
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    let config = ClusterConfig::load(&path)?;
    Ok((path, config))
}

/// A private temporary folder for the benchmark's cluster file.
pub(super) fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("lockstep-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
