/*!
`lockstep bench cluster`: each node alone, then as a cluster, side by side in one run.
*/
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;

use super::cluster::{local_cave_over, run_all, scene_args, strings, tempfile_dir};
use super::ranged;

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
    /// How frame data reaches the nodes: tcp, or multicast (to the default group).
    #[arg(long, default_value = "tcp", value_parser = ["tcp", "multicast"])]
    transport: String,
}

pub fn run_bench_cluster(args: BenchClusterArgs) -> Result<()> {
    let dir = tempfile_dir()?;
    let multicast = args.transport == "multicast";
    let (cfg_path, config, key) = local_cave_over(&dir, args.nodes.as_deref(), multicast)?;
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
    // Every round's present skew, frame by frame.
    let mut skew = Vec::new();
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
        let presents = names
            .iter()
            .map(|n| presents(&stats_file(n, false)))
            .collect::<Result<Vec<_>>>()?;
        skew.extend(lockstep::stats::present_skew(&presents));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let (a, c): (f64, f64) = (alone.iter().sum(), cluster.iter().sum());
    let ratio = c / a;
    round_ratios.sort_by(f64::total_cmp);
    let median_ratio = round_ratios[round_ratios.len() / 2];
    let skew = lockstep::stats::Summary::of(&skew);
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
                "transport": args.transport,
                "nodes": nodes,
                "alone_fps": a,
                "cluster_fps": c,
                "ratio": ratio,
                "round_ratios": round_ratios,
                "median_round_ratio": median_ratio,
                "skew": skew,
            }))?
        );
        return Ok(());
    }
    println!(
        "lockstep bench cluster: {} on the demo CAVE ({} nodes, offscreen, frame data by {}), {} frames x {} rounds; steady fps after the first 10 frames",
        args.scene
            .as_ref()
            .map_or("the demo".into(), |m| m.display().to_string()),
        names.len(),
        args.transport,
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
    if let Some(k) = skew {
        println!(
            "present skew (latest minus earliest node, per frame all presented): median {:.1} µs, p99 {:.1} µs over {} frames",
            k.median_ms * 1e3,
            k.p99_ms * 1e3,
            k.count
        );
    }
    Ok(())
}

/// The present times a node listed in its `--stats-out` file: (master frame, monotonic ns).
pub(super) fn presents(path: &Path) -> Result<Vec<(u64, u64)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let list = v["presents"]
        .as_array()
        .with_context(|| format!("{} lists no presents", path.display()))?;
    list.iter()
        .map(|e| match (e[0].as_u64(), e[1].as_u64()) {
            (Some(f), Some(t)) => Ok((f, t)),
            _ => bail!("{}: a present that is not [frame, ns]: {e}", path.display()),
        })
        .collect()
}
