/*!
What the commands that run a cluster on this machine share (`demo`, the benchmarks, `soak`):
a small cluster file, a master for it with a given key, a scratch folder. (`lockstep master`
and `lockstep node` are [`lockstep::app`]'s roles with the built-in demo.)
*/
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use lockstep::app::resolve;
use lockstep::cluster::MasterConfig;
use lockstep::display::ClusterConfig;
use lockstep_wire::ClusterKey;

/// The master of `config` with the key given as text (a benchmark's or soak's fresh key),
/// listening where the file says, with the library's defaults otherwise.
pub(super) fn master_config(config: &ClusterConfig, key: &str) -> Result<MasterConfig> {
    Ok(MasterConfig::for_cluster(
        config,
        ClusterKey::new(key.as_bytes().to_vec())?,
        resolve(&config.master)?,
    ))
}

/// A cluster file on loopback with `n` nodes `n0`, `n1`, … (one small window each on one
/// screen) and free ports, written to `dir`: for benchmarks and soak runs of many node
/// processes on one machine.
pub(super) fn small_cluster(dir: &Path, name: &str, n: usize) -> Result<(PathBuf, ClusterConfig)> {
    small_cluster_over(dir, name, n, false)
}

/// The same, sending frame data by multicast (to a free port of the default group) when
/// `multicast` is set.
pub(super) fn small_cluster_over(
    dir: &Path,
    name: &str,
    n: usize,
    multicast: bool,
) -> Result<(PathBuf, ClusterConfig)> {
    let transport = if multicast {
        "transport = \"multicast\"\n"
    } else {
        ""
    };
    // Held until the file is written, so that no two ports are the same.
    let mut held = Vec::new();
    let mut port = || -> Result<u16> {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        held.push(l);
        Ok(port)
    };
    let mut text = format!(
        "{transport}name = \"{name}\"\n[master]\nhost = \"127.0.0.1\"\nport = {}\n[[screens]]\nname = \"s\"\nlower_left = [-1.0, 0.0, -2.0]\nlower_right = [1.0, 0.0, -2.0]\nupper_left = [-1.0, 2.0, -2.0]\n",
        port()?
    );
    for i in 0..n {
        text += &format!(
            "[[nodes]]\nname = \"n{i}\"\nhost = \"127.0.0.1\"\nport = {}\n[[nodes.windows]]\nname = \"w\"\nsize = [64, 64]\n[[nodes.windows.viewports]]\nname = \"v\"\nscreen = \"s\"\n",
            port()?
        );
    }
    drop(held);
    if multicast {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        text += &format!("[multicast]\nport = {port}\n");
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

pub(super) fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The sample CAVE written to `dir`, on free local ports, with a fresh key; with `only`,
/// just those of its nodes.
pub(super) fn local_cave(
    dir: &Path,
    only: Option<&[String]>,
) -> Result<(PathBuf, ClusterConfig, String)> {
    local_cave_over(dir, only, false)
}

/// The same, frame data by multicast (to a free port of the default group) if `multicast`.
pub(super) fn local_cave_over(
    dir: &Path,
    only: Option<&[String]>,
    multicast: bool,
) -> Result<(PathBuf, ClusterConfig, String)> {
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
    if multicast {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        text = format!("transport = \"multicast\"\n{text}\n[multicast]\nport = {port}\n");
    }
    let cfg_path = dir.join("cave.toml");
    std::fs::write(&cfg_path, &text)
        .with_context(|| format!("cannot write {}", cfg_path.display()))?;
    let config = ClusterConfig::load(&cfg_path)?;
    Ok((cfg_path, config, ClusterKey::generate_hex()?))
}

/// `--scene MODEL` for every process of a local run, by the same (absolute) path, as each
/// host would have it; nothing for the demo.
pub(super) fn scene_args(model: Option<&Path>) -> Result<Vec<String>> {
    let Some(model) = model else {
        return Ok(Vec::new());
    };
    let model =
        std::path::absolute(model).with_context(|| format!("cannot find {}", model.display()))?;
    Ok(vec!["--scene".into(), model.to_string_lossy().into_owned()])
}

/// Owned command-line arguments.
pub(super) fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Runs `lockstep` processes side by side to the end, each named for errors; all must exit
/// 0. Returns their standard output lines, process by process.
pub(super) fn run_all(
    exe: &Path,
    key: &str,
    runs: Vec<(String, Vec<String>)>,
) -> Result<Vec<String>> {
    let runs = runs
        .into_iter()
        .map(|(who, args)| LocalRun {
            who,
            args,
            core: None,
        })
        .collect();
    run_local(exe, key, runs, &[]).map(|(out, _)| out)
}

/// One `lockstep` process of a local run.
pub(super) struct LocalRun {
    /// Who it is, for errors.
    pub who: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// The core it is pinned to (`taskset`), if any.
    pub core: Option<usize>,
}

/// Runs `runs` side by side to the end with `env` set too; all must exit 0. Returns their
/// standard output and standard error lines, process by process.
pub(super) fn run_local(
    exe: &Path,
    key: &str,
    runs: Vec<LocalRun>,
    env: &[(&str, &str)],
) -> Result<(Vec<String>, Vec<String>)> {
    let mut children = Vec::new();
    for r in runs {
        let mut cmd = match r.core {
            Some(core) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(core.to_string()).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        let child = cmd
            .args(&r.args)
            .env("LOCKSTEP_KEY", key)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| {
                let pin = if r.core.is_some() {
                    "taskset (util-linux) "
                } else {
                    ""
                };
                format!(
                    "cannot start {}: {pin}{} {}",
                    r.who,
                    exe.display(),
                    r.args.join(" ")
                )
            })?;
        children.push((r.who, child));
    }
    let mut failed = Vec::new();
    let (mut out, mut errs) = (Vec::new(), Vec::new());
    for (who, child) in children {
        let o = child.wait_with_output()?;
        out.extend(
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_string),
        );
        let err = String::from_utf8_lossy(&o.stderr);
        errs.extend(err.lines().map(str::to_string));
        if !o.status.success() {
            let mut tail: Vec<&str> = err.lines().rev().take(5).collect();
            tail.reverse();
            failed.push(format!(
                "{who} exited with {}: {}",
                o.status,
                tail.join(" | ")
            ));
        }
    }
    if !failed.is_empty() {
        bail!("\n  {}", failed.join("\n  "));
    }
    Ok((out, errs))
}
