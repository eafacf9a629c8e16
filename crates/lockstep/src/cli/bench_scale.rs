/*!
`lockstep bench sync --nodes 1,4,16,64 --transport tcp,multicast`: how the cluster scales.

For each N, one lockstep cluster per transport (the master in this process running the
demo's update, N node processes with `--renderer none`) and a bare TCP barrier of N peer
processes take turns in blocks of frames, each alone on the machine during its block. Per N
and transport it prints the master's loop period, the CPU time its thread spent per frame,
and the present skew (the spread of one frame's presents over the nodes, on the clock every
process of the machine shares), beside the bare barrier at the same N.
*/
use std::net::TcpListener;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use lockstep::stats::Summary;
use lockstep_wire::ClusterKey;

use super::bench_sync::{Cluster, Processes, accept_all, bare_block};
use super::cluster::tempfile_dir;

/// One transport at one N.
struct Row {
    nodes: usize,
    transport: String,
    period: Summary,
    cpu: Summary,
    skew: Option<Summary>,
    bare: Summary,
    frames_swapped: u64,
    nodes_presented: usize,
    multicast: Option<lockstep::cluster::MulticastStats>,
}

/// Runs every N in turn (all its sides at once) and prints the table (or JSON).
pub fn run(ns: &[u64], transports: &[String], frames: u64, json: bool) -> Result<()> {
    let mut rows = Vec::new();
    for &n in ns {
        rows.extend(at(n as usize, transports, frames as usize)?);
    }
    if json {
        let rows: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "nodes": r.nodes,
                    "transport": r.transport,
                    "lockstep": r.period,
                    "master_cpu_per_frame": r.cpu,
                    "skew": r.skew,
                    "bare_barrier": r.bare,
                    "median_ratio": r.period.median_ms / r.bare.median_ms,
                    "p99_ratio": r.period.p99_ms / r.bare.p99_ms,
                    "frames_swapped": r.frames_swapped,
                    "nodes_presented": r.nodes_presented,
                    "multicast": r.multicast.map(|m| serde_json::json!({
                        "units": m.units,
                        "datagrams": m.datagrams,
                        "resent": m.resent,
                        "withheld": m.withheld,
                        "send_errors": m.send_errors,
                    })),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "benchmark": "sync-scale",
                "frames": frames,
                "rows": rows,
            }))?
        );
        return Ok(());
    }
    println!(
        "lockstep bench sync: {frames} frames per side, node processes with --renderer none, every process on this machine"
    );
    println!(
        "{:>5} {:<10} {:>17} {:>17} {:>17} {:>17} {:>7}",
        "nodes",
        "transport",
        "period ms",
        "master CPU µs",
        "present skew µs",
        "bare TCP ms",
        "ratio"
    );
    println!(
        "{:>5} {:<10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
        "", "", "median", "p99", "median", "p99", "median", "p99", "median", "p99", "median"
    );
    for r in &rows {
        let (skew_median, skew_p99) = r.skew.as_ref().map_or((f64::NAN, f64::NAN), |k| {
            (k.median_ms * 1e3, k.p99_ms * 1e3)
        });
        println!(
            "{:>5} {:<10} {:>8.3} {:>8.3} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.3} {:>8.3} {:>6.2}x",
            r.nodes,
            r.transport,
            r.period.median_ms,
            r.period.p99_ms,
            r.cpu.median_ms * 1e3,
            r.cpu.p99_ms * 1e3,
            skew_median,
            skew_p99,
            r.bare.median_ms,
            r.bare.p99_ms,
            r.period.median_ms / r.bare.median_ms
        );
    }
    for r in rows.iter().filter(|r| r.multicast.is_some()) {
        if let Some(m) = r.multicast {
            println!(
                "multicast at {} nodes: {} units in {} datagrams, {} sent again for nodes that asked, {} withheld, {} send errors",
                r.nodes, m.units, m.datagrams, m.resent, m.withheld, m.send_errors
            );
        }
    }
    Ok(())
}

/// Every side at `n` nodes.
fn at(n: usize, transports: &[String], frames: usize) -> Result<Vec<Row>> {
    let dir = tempfile_dir()?.join(format!("scale-{n}"));
    std::fs::create_dir_all(&dir)?;
    let key = ClusterKey::generate_hex()?;
    let mut children = Processes(Vec::new());
    let mut clusters = Vec::new();
    for t in transports {
        let name = format!("scale-{t}");
        let (cluster, cfg) = Cluster::start(&dir, &name, n, &key, false, t == "multicast")?;
        for i in 0..n {
            let node = format!("n{i}");
            let stats = dir.join(format!("{t}-{node}-presents.json"));
            let stats = stats.to_string_lossy();
            children.spawn(
                &dir,
                &key,
                format!("{t} node {node}"),
                &[
                    "node",
                    "--config",
                    &cfg,
                    "--name",
                    &node,
                    "--renderer",
                    "none",
                    "--stats-out",
                    &stats,
                ],
            )?;
        }
        clusters.push((t.clone(), cluster));
    }
    let bare = TcpListener::bind("127.0.0.1:0")?;
    let bare_addr = bare.local_addr()?.to_string();
    for i in 0..n {
        children.spawn(&dir, &key, format!("peer {i}"), &["bench-peer", &bare_addr])?;
    }
    let limit = Duration::from_secs(60);
    let mut peers = accept_all(&bare, n, limit)?;
    // Every cluster's start barrier in turns, each keeping its joined nodes alive (a node
    // leaves a master silent for two seconds) while the others wait for theirs.
    let start = Instant::now();
    while let Some((t, c)) = clusters
        .iter_mut()
        .find(|(_, c)| c.master.node_names().len() < n)
    {
        if start.elapsed() > limit {
            bail!(
                "the {t} cluster: {} of its {n} nodes joined within {limit:?}",
                c.master.node_names().len()
            );
        }
        // Not all joined yet: an error here is only the short wait running out.
        let _ = c.master.wait_for_nodes(Duration::from_millis(200));
        for (_, other) in &mut clusters {
            other.master.idle(Duration::ZERO)?;
        }
    }
    let mut barrier = Vec::new();
    let mut rounds = 0u64;
    while clusters.iter().any(|(_, c)| c.periods.len() < frames) || barrier.len() < frames {
        for (_, c) in &mut clusters {
            c.block()?;
        }
        bare_block(&mut peers, &mut barrier, &mut rounds)?;
    }
    let stats: Vec<_> = clusters
        .iter()
        .map(|(_, c)| c.master.multicast_stats())
        .collect();
    let mut ended = Vec::new();
    for (t, c) in clusters {
        let Cluster {
            master,
            mut periods,
            mut cpu,
            swapped,
            presented,
            ..
        } = c;
        master.shutdown("benchmark over");
        periods.truncate(frames);
        cpu.truncate(frames);
        ended.push((t, periods, cpu, swapped, presented));
    }
    drop(peers);
    children.finish()?;
    barrier.truncate(frames);
    let of = |v: &[Duration], what: &str| Summary::of(v).with_context(|| format!("no {what}"));
    let bare = of(&barrier, "rounds")?;
    let mut rows = Vec::new();
    for ((t, periods, cpu, swapped, presented), multicast) in ended.into_iter().zip(stats) {
        let presents = (0..n)
            .map(|i| super::bench_cluster::presents(&dir.join(format!("{t}-n{i}-presents.json"))))
            .collect::<Result<Vec<_>>>()?;
        // Every node presented every frame: otherwise the figures would hide a lost node.
        if presented as u64 != n as u64 * swapped {
            bail!(
                "{t} at {n} nodes: {presented} presents over {swapped} frames; some node fell out of step"
            );
        }
        rows.push(Row {
            nodes: n,
            transport: t,
            period: of(&periods, "frames")?,
            cpu: of(&cpu, "frames")?,
            skew: Summary::of(&lockstep::stats::present_skew(&presents)),
            bare,
            frames_swapped: swapped,
            nodes_presented: presented,
            multicast,
        });
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(rows)
}
