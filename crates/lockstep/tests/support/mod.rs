//! What the binary's integration tests share: the executable and the test key, free ports,
//! the sample CAVE on free ports, processes and their output, and waiting for an event with a
//! deadline (never a sleep and then a count: the suite must pass on a busy machine).
//!
//! Each test file is its own crate and uses only part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The `lockstep` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_lockstep");

/// The cluster key the tests' processes get in `LOCKSTEP_KEY`.
pub const KEY: &str = "test-key-0123456789abcdef";

/// A TCP port free on loopback right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The sample CAVE (`lockstep config example cave`) on free ports, written into `dir`.
pub fn cave(dir: &Path) -> PathBuf {
    let out = lockstep(&["config", "example", "cave"]);
    assert!(out.status.success(), "{}", text(&out));
    let mut text = String::from_utf8(out.stdout).unwrap();
    // Held until all five are chosen, so that they differ.
    let held: Vec<TcpListener> = (0..5)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    for (port, l) in (7400..=7404).zip(&held) {
        text = text.replace(
            &format!("port = {port}\n"),
            &format!("port = {}\n", l.local_addr().unwrap().port()),
        );
    }
    let path = dir.join("cave.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The path as a `&str` argument.
pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Runs `lockstep ARGS` to the end, with the environment as it is.
pub fn lockstep(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run lockstep")
}

/// Runs `lockstep ARGS` to the end with no `LOCKSTEP_KEY`, so that only key files count.
pub fn lockstep_without_key(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("LOCKSTEP_KEY")
        .output()
        .expect("run lockstep")
}

/// Runs `lockstep ARGS` to the end with the test key.
pub fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("LOCKSTEP_KEY", KEY)
        .stdin(Stdio::null())
        .output()
        .expect("run lockstep")
}

/// Standard output and standard error, one after the other.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Standard error.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Sends `sig` (e.g. `-STOP`) to process `pid`.
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid} failed");
}

/// Polls `probe` until it gives a value; fails the test with `what` after `limit`.
pub fn wait_until<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Everything a process wrote so far, and whether both of its streams ended.
#[derive(Default)]
struct Log {
    text: String,
    closed: usize,
}

/// A running `lockstep` process whose output is collected as it comes, so a test can wait for
/// a line (a node joined, a frame ran) instead of sleeping.
/// `lockstep node --renderer none` (run by `wrapper`, if any) as node `name` of `cfg`.
pub fn headless_under(wrapper: &[&str], cfg: &Path, name: &str, extra: &[&str]) -> Proc {
    let mut a = vec![
        "node",
        "--config",
        p(cfg),
        "--name",
        name,
        "--renderer",
        "none",
    ];
    a.extend_from_slice(extra);
    Proc::start_under(wrapper, &a)
}

/// `lockstep node --renderer none` as node `name` of `cfg`.
pub fn headless(cfg: &Path, name: &str, extra: &[&str]) -> Proc {
    headless_under(&[], cfg, name, extra)
}

pub struct Proc {
    pub child: Child,
    log: Arc<(Mutex<Log>, Condvar)>,
    readers: Vec<JoinHandle<()>>,
}

impl Proc {
    /// Starts `lockstep ARGS` with the test key. It prints its `lockstep-state: ready` and
    /// `running` lines as under a daemon, so tests can wait for them.
    pub fn start(args: &[&str]) -> Proc {
        Proc::start_under(&[], args)
    }

    /// As [`Proc::start`], run by `wrapper` (e.g. `prlimit --nofile=40`): `WRAPPER lockstep
    /// ARGS`.
    pub fn start_under(wrapper: &[&str], args: &[&str]) -> Proc {
        let command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        Proc::spawn(command, args)
    }

    /// As [`Proc::start`], in the working folder `cwd`.
    pub fn start_in(cwd: &Path, args: &[&str]) -> Proc {
        let mut command = Command::new(BIN);
        command.current_dir(cwd);
        Proc::spawn(command, args)
    }

    /// Starts another program (an application built on lockstep) the same way, with `env`
    /// added to its environment.
    pub fn start_program(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut command = Command::new(program);
        command.envs(env.iter().copied());
        Proc::spawn(command, args)
    }

    fn spawn(mut command: Command, args: &[&str]) -> Proc {
        let mut child = command
            .args(args)
            .env("LOCKSTEP_KEY", KEY)
            .env("LOCKSTEP_LAUNCHED", "1")
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lockstep");
        let log = Arc::new((Mutex::new(Log::default()), Condvar::new()));
        let out: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
        let readers = [out, err]
            .into_iter()
            .map(|stream| {
                let log = log.clone();
                std::thread::spawn(move || {
                    // Bytes, not UTF-8 lines: a stray byte must not stop the draining (the
                    // process would block on a full pipe).
                    let mut lines = BufReader::new(stream);
                    let mut line = Vec::new();
                    while lines.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                        log.0
                            .lock()
                            .unwrap()
                            .text
                            .push_str(&String::from_utf8_lossy(&line));
                        log.1.notify_all();
                        line.clear();
                    }
                    log.0.lock().unwrap().closed += 1;
                    log.1.notify_all();
                })
            })
            .collect();
        Proc {
            child,
            log,
            readers,
        }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// What it wrote so far.
    pub fn output_so_far(&self) -> String {
        self.log.0.lock().unwrap().text.clone()
    }

    /// Waits until its output contains `needle`; fails the test after `limit` or if the
    /// process ends first.
    pub fn wait_for(&self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut log = self.log.0.lock().unwrap();
        let failure = loop {
            if log.text.contains(needle) {
                return;
            }
            if log.closed == 2 {
                break format!("the process ended before writing {needle:?}");
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break format!("{needle:?} not written within {limit:?}");
            }
            log = self.log.1.wait_timeout(log, left).unwrap().0;
        };
        // Not while holding the lock: the readers would find it poisoned.
        let text = log.text.clone();
        drop(log);
        panic!("{failure}:\n{text}");
    }

    /// Waits (up to `limit`) for the process to end; its exit status and all its output.
    pub fn finish_within(mut self, limit: Duration) -> (ExitStatus, String) {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "the process did not end within {limit:?}:\n{}",
                    self.output_so_far()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        for r in self.readers.drain(..) {
            r.join().unwrap();
        }
        (status, self.output_so_far())
    }

    /// Waits for the process to end (a test's own deadline: two minutes).
    pub fn finish(self) -> (ExitStatus, String) {
        self.finish_within(Duration::from_secs(120))
    }
}

impl Drop for Proc {
    /// A test that fails half-way leaves no process behind.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A red 1.2 m panel 1.2 m in front of the viewer, facing them: `room.gltf` and its buffer
/// `room.bin` in `dir`. Returns the model's path.
pub fn write_model(dir: &Path) -> PathBuf {
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

/// The `frame hash` lines of a `--hash-out`, `--views-out` or `--image-hashes` file, by frame.
pub fn per_frame(path: &Path) -> std::collections::BTreeMap<u64, String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| {
            let (f, h) = l.split_once(' ').unwrap();
            (f.parse().unwrap(), h.to_string())
        })
        .collect()
}

/// Hosts made of network namespaces on one bridge (whose address, `.1`, the test's own
/// namespace has); removed when dropped.
pub struct Hosts {
    pub names: Vec<String>,
    bridge: String,
    subnet: String,
}

impl Hosts {
    /// `count` hosts; `Err` (with the reason) where namespaces cannot be made.
    pub fn new(count: usize) -> Result<Hosts, String> {
        if !nix_is_root() {
            return Err("not root".into());
        }
        let id = std::process::id() % 10_000;
        let subnet = format!("10.{}.{}", 100 + id % 100, id / 100 % 250);
        let h = Hosts {
            names: (1..=count).map(|i| format!("lst{id}h{i}")).collect(),
            bridge: format!("lst{id}br"),
            subnet,
        };
        let ip = |args: &[&str]| -> Result<(), String> {
            let out = Command::new("ip")
                .args(args)
                .output()
                .map_err(|e| format!("ip: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "ip {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        };
        ip(&["link", "add", &h.bridge, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("{}.1/24", h.subnet),
            "dev",
            &h.bridge,
        ])?;
        ip(&["link", "set", &h.bridge, "up"])?;
        for (i, ns) in h.names.iter().enumerate() {
            let (outer, inner) = (format!("lst{id}v{i}"), format!("lst{id}p{i}"));
            ip(&["netns", "add", ns])?;
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ])?;
            ip(&["link", "set", &inner, "netns", ns])?;
            ip(&["link", "set", &outer, "master", &h.bridge, "up"])?;
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/24", h.addr(i)),
                "dev",
                &inner,
            ])?;
            ip(&["-n", ns, "link", "set", &inner, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(h)
    }

    /// Host `i`'s address.
    pub fn addr(&self, i: usize) -> String {
        format!("{}.{}", self.subnet, 11 + i)
    }

    /// The bridge's address: the test's own namespace on the hosts' network.
    pub fn bridge_addr(&self) -> String {
        format!("{}.1", self.subnet)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
    }
}

/// Whether the tests run as root (namespaces need it).
pub fn nix_is_root() -> bool {
    // The real uid, from /proc (no libc needed in the test).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}
