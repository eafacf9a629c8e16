/*!
`lockstep soak --nodes N --minutes M`: a cluster on this machine — the master in this process,
each render node a process (`--renderer none`) — run while a fault injector kills, stops and
restarts random nodes. The master verifies every frame: each node in step reports a hash of
its state with its `SwapReady`, and the master compares it with its own. The run ends with a
report (frames, faults injected, drops, rejoins, mismatches) and fails if any state differed,
a node exited on its own, or a node did not come back.
*/
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use lockstep::app::{ClusterApp, prepare};
use lockstep::cluster::{Master, MasterConfig};
use lockstep::demo::DemoCluster;
use lockstep::roles::{MasterLoop, master_loop};
use lockstep_wire::ClusterKey;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::cluster::{master_config, small_cluster, tempfile_dir};
use super::{ctrl_c, ranged};

/// Arguments of `lockstep soak`.
#[derive(Debug, Args)]
pub struct SoakArgs {
    /// Render nodes (processes without rendering).
    #[arg(long, default_value = "3", value_parser = |s: &str| ranged(s, 1, 32))]
    nodes: u64,
    /// How long to run, in minutes (fractions allowed).
    #[arg(long, default_value = "1", value_parser = minutes)]
    minutes: f64,
    /// Seconds between faults.
    #[arg(long = "fault-every", default_value = "4", value_parser = |s: &str| ranged(s, 1, 3600))]
    fault_every: u64,
    /// Frames per second of the master.
    #[arg(long, default_value = "60", value_parser = |s: &str| ranged(s, 1, 1000))]
    fps: u64,
    /// Seed of the fault injector's choices (the same seed injects the same faults).
    #[arg(long, default_value = "1")]
    seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn minutes(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number of minutes"))?;
    if !(0.05..=10_000.0).contains(&v) {
        return Err(format!(
            "{v} minutes is out of range: expected 0.05 to 10000"
        ));
    }
    Ok(v)
}

/// The faults the injector chooses from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// SIGKILL, then the node is started again (it joins late).
    Kill,
    /// SIGSTOP for three swap deadlines, then SIGCONT: the master drops the hung node, which
    /// rejoins by itself once it runs again.
    Hang,
    /// SIGTERM (the node leaves cleanly), then it is started again.
    Restart,
}

impl Fault {
    const ALL: [Fault; 3] = [Fault::Kill, Fault::Hang, Fault::Restart];

    fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Hang => "hang",
            Fault::Restart => "restart",
        }
    }
}

/// A small deterministic generator (xorshift64*): the soak's choices repeat with the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

/// The node processes, each started again after a kill or restart.
struct Nodes {
    exe: PathBuf,
    config: PathBuf,
    key: String,
    children: Vec<(String, Child)>,
    /// Nodes that exited without being told to, with how.
    unexpected: Vec<String>,
}

impl Nodes {
    fn spawn(&self, name: &str) -> Result<Child> {
        Command::new(&self.exe)
            .args(["node", "--config"])
            .arg(&self.config)
            .args(["--name", name, "--renderer", "none", "--report-state"])
            .args(["--rejoin-timeout", "10"])
            .env("LOCKSTEP_KEY", &self.key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start node '{name}'"))
    }

    fn signal(&self, i: usize, s: Signal) {
        let pid = Pid::from_raw(self.children[i].1.id() as i32);
        let _ = kill(pid, s);
    }

    /// Notes nodes that exited though nothing told them to, and starts them again.
    fn check(&mut self) -> Result<()> {
        for i in 0..self.children.len() {
            if let Some(status) = self.children[i].1.try_wait()? {
                let name = self.children[i].0.clone();
                self.unexpected
                    .push(format!("node '{name}' exited by itself ({status})"));
                self.children[i].1 = self.spawn(&name)?;
            }
        }
        Ok(())
    }

    /// Ends node `i` with `s` and starts it again.
    fn replace(&mut self, i: usize, s: Signal) -> Result<()> {
        self.signal(i, s);
        // A node told to leave finishes its frame; one that does not within 3 s is killed.
        let until = Instant::now() + Duration::from_secs(3);
        while self.children[i].1.try_wait()?.is_none() {
            if Instant::now() > until {
                let _ = self.children[i].1.kill();
                let _ = self.children[i].1.wait();
                self.unexpected
                    .push(format!("node '{}' ignored {s}", self.children[i].0));
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(300));
        let name = self.children[i].0.clone();
        self.children[i].1 = self.spawn(&name)?;
        Ok(())
    }
}

/// What the injector did.
#[derive(Debug, Default)]
struct Injected {
    faults: Vec<(f64, String, &'static str)>,
}

pub fn run(args: SoakArgs) -> Result<()> {
    let dir = tempfile_dir()?;
    let result = soak(&args, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn soak(args: &SoakArgs, dir: &Path) -> Result<()> {
    let n = args.nodes as usize;
    let (cfg_path, config) = small_cluster(dir, "soak", n)?;
    let key = ClusterKey::generate_hex()?;
    let stop = ctrl_c()?;
    let swap_deadline = Duration::from_millis(300);
    let mut app = DemoCluster::default();
    let prepared = prepare(&mut app, &config, None)?;
    let mut master = Master::start(
        MasterConfig {
            swap_deadline,
            load_deadline: Duration::from_secs(10),
            heartbeat: Duration::from_millis(100),
            verify: true,
            identity: prepared.identity,
            ..master_config(&config, &key)?
        },
        prepared.manager,
    )?;
    let mut nodes = Nodes {
        exe: std::env::current_exe().context("cannot find the lockstep executable")?,
        config: cfg_path,
        key,
        children: Vec::new(),
        unexpected: Vec::new(),
    };
    for c in &config.nodes {
        let child = nodes.spawn(&c.name)?;
        nodes.children.push((c.name.clone(), child));
    }
    let nodes = Arc::new(Mutex::new(nodes));
    let duration = Duration::from_secs_f64(args.minutes * 60.0);
    eprintln!(
        "soak: {n} nodes for {:.1} min, a fault every {} s (seed {})",
        args.minutes, args.fault_every, args.seed
    );
    // The injector stops a few faults' time before the end, so that every node is back.
    let injecting = Arc::new(AtomicBool::new(true));
    let injector = {
        let (nodes, injecting, stop) = (nodes.clone(), injecting.clone(), stop.clone());
        let (every, seed) = (Duration::from_secs(args.fault_every), args.seed);
        let hang = swap_deadline * 3;
        std::thread::spawn(move || inject(&nodes, &injecting, &stop, every, hang, seed))
    };
    let ender = {
        let (injecting, stop) = (injecting.clone(), stop.clone());
        let quiet = Duration::from_secs(args.fault_every.max(5)).min(duration / 3);
        std::thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < duration && !stop.load(Ordering::Relaxed) {
                if start.elapsed() + quiet >= duration {
                    injecting.store(false, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            injecting.store(false, Ordering::Relaxed);
            stop.store(true, Ordering::Relaxed);
        })
    };
    let mut scene = prepared.scene;
    let period = Duration::from_secs_f64(1.0 / args.fps as f64);
    let ran = master_loop(
        &mut master,
        &mut scene,
        MasterLoop {
            frames: None,
            fixed_dt: None,
            frame_period: Some(period),
            start_timeout: Duration::from_secs(30),
            wait_for: None,
            record_hashes: false,
            stop: &stop,
            input: Default::default(),
        },
        |frame| app.update(frame),
    );
    stop.store(true, Ordering::Relaxed);
    injecting.store(false, Ordering::Relaxed);
    let injected = injector
        .join()
        .map_err(|_| anyhow::anyhow!("the fault injector panicked"))??;
    let _ = ender.join();
    let in_step = master.in_step();
    master.shutdown("the soak is over");
    let mut nodes = match Arc::try_unwrap(nodes) {
        Ok(m) => m.into_inner().map_err(|_| anyhow::anyhow!("poisoned"))?,
        Err(_) => bail!("the fault injector still holds the nodes"),
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    for (_, c) in &mut nodes.children {
        while c.try_wait()?.is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
    let report = ran?;
    let max_wait = report.swap_waits.iter().max().copied().unwrap_or_default();
    let count = |kind: Fault| {
        injected
            .faults
            .iter()
            .filter(|f| f.2 == kind.name())
            .count()
    };
    let missing: Vec<&String> = config
        .nodes
        .iter()
        .map(|c| &c.name)
        .filter(|name| !in_step.contains(name))
        .collect();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "nodes": n,
                "minutes": args.minutes,
                "frames": report.frames,
                "faults": injected.faults.len(),
                "kills": count(Fault::Kill),
                "hangs": count(Fault::Hang),
                "restarts": count(Fault::Restart),
                "drops": report.dropped.len(),
                "rejoins": report.joined.len(),
                "verified": report.verified,
                "mismatches": report.mismatches.len(),
                "unexpected_exits": nodes.unexpected,
                "in_step_at_end": in_step,
                "max_barrier_wait_ms": max_wait.as_secs_f64() * 1e3,
            }))?
        );
    } else {
        for (at, node, kind) in &injected.faults {
            println!("{at:7.1} s  {kind:<8} node '{node}'");
        }
        println!("soak report");
        println!("  frames             {}", report.frames);
        println!(
            "  faults injected    {} ({} kill, {} hang, {} restart)",
            injected.faults.len(),
            count(Fault::Kill),
            count(Fault::Hang),
            count(Fault::Restart)
        );
        println!("  nodes dropped      {}", report.dropped.len());
        println!("  rejoins            {}", report.joined.len());
        println!("  states verified    {}", report.verified);
        println!("  mismatches         {}", report.mismatches.len());
        println!("  unexpected exits   {}", nodes.unexpected.len());
        println!(
            "  longest barrier    {:.1} ms (swap deadline {} ms)",
            max_wait.as_secs_f64() * 1e3,
            swap_deadline.as_millis()
        );
        println!("  in step at the end {}/{n}", in_step.len());
    }
    if let Some(m) = report.mismatches.first() {
        bail!(
            "{} mismatch(es); the first: node '{}' at frame {}",
            report.mismatches.len(),
            m.node,
            m.frame
        );
    }
    if !nodes.unexpected.is_empty() {
        bail!("{}", nodes.unexpected.join("; "));
    }
    if !missing.is_empty() {
        bail!("nodes {missing:?} were not in step at the end");
    }
    if report.verified == 0 {
        bail!("no node state was verified");
    }
    Ok(())
}

/// Injects a fault every `every` until `injecting` is cleared.
fn inject(
    nodes: &Mutex<Nodes>,
    injecting: &AtomicBool,
    stop: &AtomicBool,
    every: Duration,
    hang: Duration,
    seed: u64,
) -> Result<Injected> {
    let mut rng = Rng(seed.max(1) ^ 0x9e37_79b9_7f4a_7c15);
    let mut injected = Injected::default();
    let start = Instant::now();
    let mut next = start + every;
    let lock = || {
        nodes
            .lock()
            .map_err(|_| anyhow::anyhow!("the node list is poisoned"))
    };
    while injecting.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
        lock()?.check()?;
        if Instant::now() < next {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        next += every;
        let mut nodes = lock()?;
        let i = rng.next(nodes.children.len());
        let fault = Fault::ALL[rng.next(Fault::ALL.len())];
        let name = nodes.children[i].0.clone();
        injected
            .faults
            .push((start.elapsed().as_secs_f64(), name, fault.name()));
        match fault {
            Fault::Kill => nodes.replace(i, Signal::SIGKILL)?,
            Fault::Restart => nodes.replace(i, Signal::SIGTERM)?,
            Fault::Hang => {
                nodes.signal(i, Signal::SIGSTOP);
                std::thread::sleep(hang);
                nodes.signal(i, Signal::SIGCONT);
            }
        }
    }
    Ok(injected)
}
