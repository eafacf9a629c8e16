//! `lockstep daemon` and `lockstep launch`: refusals on loopback, and a whole cluster on three
//! hosts made of network namespaces (veth pairs on one bridge), with a node and a daemon
//! killed mid-run.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use lockstep::launch::launcher::client::DaemonClient;
use lockstep::launch::protocol::{FileEntry, Program, Request};
use lockstep_wire::ClusterKey;

mod support;

use support::{BIN, Hosts, free_port, text, wait_until, write_model};

const KEY: &str = "launch-test-key-0123456789abcdef";

/// A cluster file: the master on `master_host`, one 64×48 node per (name, host).
fn cluster_file(
    dir: &Path,
    master_host: &str,
    daemon_port: u16,
    nodes: &[(&str, &str)],
) -> PathBuf {
    let mut t = format!(
        "name = \"trio\"\nkey_file = \"trio.key\"\n[master]\nhost = \"{master_host}\"\nport = {}\n\
         [launch]\ndaemon_port = {daemon_port}\nfiles = [\"assets/a.bin\"]\n\
         [[screens]]\nname = \"front\"\nlower_left = [-1.5, 0.0, -1.5]\n\
         lower_right = [1.5, 0.0, -1.5]\nupper_left = [-1.5, 3.0, -1.5]\n",
        free_port()
    );
    for (name, host) in nodes {
        t.push_str(&format!(
            "[[nodes]]\nname = \"{name}\"\nhost = \"{host}\"\nport = {}\n[[nodes.windows]]\n\
             name = \"main\"\nsize = [64, 48]\n[[nodes.windows.viewports]]\nname = \"wall\"\n\
             screen = \"front\"\n",
            free_port()
        ));
    }
    std::fs::write(dir.join("trio.key"), KEY).unwrap();
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::write(dir.join("assets/a.bin"), vec![7u8; 300_000]).unwrap();
    let path = dir.join("trio.toml");
    std::fs::write(&path, t).unwrap();
    path
}

/// A running `lockstep daemon`, its log in a file; killed when dropped.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Starts a daemon (inside network namespace `netns`, if given) and waits until it
    /// listens.
    fn start(netns: Option<&str>, listen: &str, dir: &Path, tag: &str, extra: &[&str]) -> Daemon {
        Daemon::start_with_env(netns, listen, dir, tag, extra, &[])
    }

    /// As [`Daemon::start`], with `env` in the daemon's (and so its processes') environment.
    fn start_with_env(
        netns: Option<&str>,
        listen: &str,
        dir: &Path,
        tag: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        let log = dir.join(format!("daemon-{tag}.log"));
        let state = dir.join(format!("state-{tag}"));
        let key = dir.join("trio.key");
        let mut args: Vec<String> = Vec::new();
        if let Some(ns) = netns {
            args.extend(["netns", "exec", ns, BIN].map(String::from));
        }
        args.extend(["daemon", "--listen", listen, "--cluster", "trio"].map(String::from));
        args.extend(["--key".into(), key.display().to_string()]);
        args.extend(["--state-dir".into(), state.display().to_string()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let program = if netns.is_some() { "/usr/sbin/ip" } else { BIN };
        let program = if netns.is_some() && !Path::new(program).exists() {
            "/sbin/ip"
        } else {
            program
        };
        let child = Command::new(program)
            .args(&args)
            .env_remove("LOCKSTEP_KEY")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let d = Daemon { child, log };
        d.wait_for("listening on", Duration::from_secs(20));
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for(&self, text: &str, limit: Duration) {
        let what = format!("the daemon logging {text:?} (in {})", self.log.display());
        wait_until(&what, limit, || self.log().contains(text).then_some(()));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lockstep(args: &[&str], key: Option<&str>) -> Output {
    let mut c = Command::new(BIN);
    c.args(args).stdin(Stdio::null());
    match key {
        Some(k) => c.env("LOCKSTEP_KEY", k),
        None => c.env_remove("LOCKSTEP_KEY"),
    };
    c.output().unwrap()
}

/// Processes whose working folder lies under `dir` (what the daemons started there).
fn processes_in(dir: &Path) -> Vec<String> {
    let dir = dir.canonicalize().unwrap();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cwd) = std::fs::read_link(e.path().join("cwd"))
            && cwd.starts_with(&dir)
        {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            found.push(String::from_utf8_lossy(&cmd).replace('\0', " "));
        }
    }
    found
}

fn wait_until_gone(dir: &Path) {
    let what = format!("every process under {} gone", dir.display());
    wait_until(&what, Duration::from_secs(15), || {
        processes_in(dir).is_empty().then_some(())
    });
}

#[test]
fn a_wrong_key_a_program_outside_the_allow_list_and_a_disallowed_role_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let file = cluster_file(dir.path(), "127.0.0.1", port, &[("a", "127.0.0.1")]);
    let listen = format!("127.0.0.1:{port}");
    let daemon = Daemon::start(None, &listen, dir.path(), "one", &[]);

    // A launcher with the wrong key: refused, with the reason on both sides.
    let out = lockstep(
        &["launch", file.to_str().unwrap(), "--frames", "3"],
        Some("not-the-key-0123456789"),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "host '127.0.0.1': daemon {listen}: authentication failed"
        )),
        "{}",
        text(&out)
    );
    daemon.wait_for("authentication failed", Duration::from_secs(5));

    // Bytes that are no handshake get a reason back before the daemon closes.
    let mut http = std::net::TcpStream::connect(&listen).unwrap();
    http.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // Only the first four bytes (a length, to a lockstep peer): nothing is left unread when
    // the daemon closes, which would reset the connection and lose the answer.
    std::io::Write::write_all(&mut http, b"GET ").unwrap();
    let mut answer = Vec::new();
    http.read_to_end(&mut answer).unwrap();
    let mut d = lockstep_wire::Decoder::new(lockstep_wire::HANDSHAKE_MAX_FRAME);
    d.push(&answer);
    match d.next_message() {
        Ok(Some(lockstep_wire::Message::Refused { reason })) => {
            assert!(reason.starts_with("frame of 542393671 bytes"), "{reason}")
        }
        other => panic!("not a refusal: {other:?}"),
    }

    // With the key, another cluster's name is refused naming both (sealed: only a key holder
    // learns this cluster's name).
    let key = ClusterKey::new(KEY).unwrap();
    let (tx, _events) = std::sync::mpsc::channel();
    let err = DaemonClient::connect(0, listen.parse().unwrap(), &key, "other", tx.clone())
        .err()
        .expect("another cluster's launcher was let in")
        .to_string();
    assert!(
        err.contains("cluster 'other' is not the cluster served here ('trio')"),
        "{err}"
    );

    // With the key, but asking for a shell, another role, or a folder outside the workspace.
    let mut c = DaemonClient::connect(0, listen.parse().unwrap(), &key, "trio", tx).unwrap();
    let marker = dir.path().join("shell-ran");
    let start = |program: Program, args: Vec<String>, folder: Option<String>| Request::Start {
        cluster: "trio".into(),
        name: "x".into(),
        program,
        args,
        folder,
    };
    let limit = Duration::from_secs(10);
    // A link in the workspace that points out of it.
    let workspace = dir.path().join("state-one/clusters/trio");
    std::fs::create_dir_all(&workspace).unwrap();
    std::os::unix::fs::symlink("/etc", workspace.join("etc")).unwrap();
    let node = |extra: &[&str]| {
        let mut args = vec!["--config".to_string(), "trio.toml".into()];
        args.extend(["--name", "a"].map(String::from));
        args.extend(extra.iter().map(|s| s.to_string()));
        start(Program::Lockstep("node".into()), args, None)
    };
    let refusals = [
        (
            node(&["--hash-out", "/tmp/x"]),
            "--hash-out '/tmp/x' is outside the cluster's workspace",
        ),
        (
            start(
                Program::Lockstep("master".into()),
                vec!["--config".into(), "/etc/passwd".into()],
                None,
            ),
            "--config '/etc/passwd' is outside the cluster's workspace (it resolves to /etc/passwd)",
        ),
        (
            node(&["--views-out=etc/cron.d/lockstep"]),
            "--views-out 'etc/cron.d/lockstep' is outside the cluster's workspace (it resolves to /etc/cron.d/lockstep)",
        ),
        (
            start(
                Program::Path("/bin/sh".into()),
                vec!["-c".into(), format!("touch {}", marker.display())],
                None,
            ),
            "program '/bin/sh' is not allowed here (allowed: lockstep node, lockstep master)",
        ),
        (
            start(Program::Lockstep("daemon".into()), vec![], None),
            "program 'lockstep daemon' is not allowed here",
        ),
        (
            start(Program::Lockstep("node".into()), vec![], Some("/".into())),
            "working folder '/' is not allowed here",
        ),
        (
            Request::Manifest {
                cluster: "trio".into(),
                files: vec![FileEntry {
                    path: "../../etc/x".into(),
                    digest: [0; 32],
                    size: 1,
                }],
            },
            "'..'",
        ),
    ];
    for (req, reason) in refusals {
        let e = c.call(&req, limit).unwrap_err().to_string();
        assert!(e.contains(reason), "{e}");
        daemon.wait_for(reason, Duration::from_secs(5));
    }
    // Nothing was started: the daemon runs no process, and the shell left no mark.
    match c.call(&Request::Status, limit).unwrap() {
        lockstep::launch::protocol::Reply::Status(procs) => {
            assert!(procs.is_empty(), "the daemon started {procs:?}")
        }
        other => panic!("not a status: {other:?}"),
    }
    assert!(!marker.exists(), "the shell ran");
    c.close();
    drop(daemon);

    // A daemon that may only start nodes: the launch fails at the master, says why, and the
    // node it had started is stopped.
    let conf = dir.path().join("daemon.toml");
    std::fs::write(&conf, "roles = [\"node\"]\ngrace_ms = 500\n").unwrap();
    let daemon = Daemon::start(
        None,
        &listen,
        dir.path(),
        "three",
        &["--config", conf.to_str().unwrap()],
    );
    let out = lockstep(
        &[
            "launch",
            file.to_str().unwrap(),
            "--frames",
            "3",
            "--no-render",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("'master' on host '127.0.0.1' did not start")
            && text(&out)
                .contains("program 'lockstep master' is not allowed here (allowed: lockstep node)"),
        "{}",
        text(&out)
    );
    daemon.wait_for(
        "program 'lockstep master' is not allowed",
        Duration::from_secs(5),
    );
    let status = lockstep(&["status", file.to_str().unwrap()], None);
    let s = text(&status);
    assert!(
        s.lines().any(|l| l.contains(" a ") && l.contains("ended")) && !s.contains("running"),
        "{s}"
    );
    wait_until_gone(dir.path());
}

/// Reads a growing file until `text` appears in it.
fn wait_in_file(path: &Path, text: &str, limit: Duration) -> String {
    let what = format!("{text:?} in {}", path.display());
    wait_until(&what, limit, || {
        let s = std::fs::read_to_string(path).unwrap_or_default();
        s.contains(text).then_some(s)
    })
}

fn hashes(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_cluster_on_three_namespace_hosts_runs_stops_and_reports_what_was_killed() {
    let hosts = match Hosts::new(3) {
        Ok(h) => h,
        Err(why) => {
            assert!(
                std::env::var_os("LOCKSTEP_REQUIRE_NETNS").is_none(),
                "network namespaces are required here (LOCKSTEP_REQUIRE_NETNS) but: {why}"
            );
            eprintln!("SKIPPED: three namespace hosts need root and iproute2: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let port = 7399;
    let nodes = [
        ("a", hosts.addr(0)),
        ("b", hosts.addr(1)),
        ("c", hosts.addr(2)),
    ];
    let node_refs: Vec<(&str, &str)> = nodes.iter().map(|(n, h)| (*n, h.as_str())).collect();
    let file = cluster_file(dir.path(), &hosts.addr(0), port, &node_refs);
    let file_arg = file.to_str().unwrap();
    let mut daemons: Vec<Option<Daemon>> = (0..3)
        .map(|i| {
            Some(Daemon::start(
                Some(&hosts.names[i]),
                &format!("{}:{port}", hosts.addr(i)),
                dir.path(),
                &format!("h{}", i + 1),
                &[],
            ))
        })
        .collect();

    // 1. A 3-node cluster renders 20 frames and ends cleanly; every node drew what the master
    // sent, frame by frame.
    let out = lockstep(
        &[
            "launch",
            file_arg,
            "--frames",
            "20",
            "--offscreen",
            "--hashes",
        ],
        None,
    );
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    for i in 0..3 {
        // The cluster file and the 300 000-byte asset went to every host.
        assert!(
            log.contains(&format!("sync {}: 2 file(s), 2 sent, ", hosts.addr(i))),
            "{log}"
        );
    }
    for name in ["a", "b", "c", "master"] {
        assert!(
            log.contains(&format!("[{name}] done (exit code 0)")),
            "{log}"
        );
        assert!(log.contains(&format!("[{name}] running")), "{log}");
    }
    let master = hashes(&dir.path().join("state-h1/clusters/trio/hash-master.txt"));
    assert_eq!(master.len(), 20);
    for (i, (name, _)) in nodes.iter().enumerate() {
        let ws = dir.path().join(format!("state-h{}/clusters/trio", i + 1));
        assert_eq!(
            hashes(&ws.join(format!("hash-{name}.txt"))),
            master,
            "node {name}"
        );
        assert_eq!(
            std::fs::read(ws.join("assets/a.bin")).unwrap(),
            vec![7u8; 300_000]
        );
    }
    wait_until_gone(dir.path());

    // 2. Nothing changed: the second launch sends no file bytes to any host.
    let out = lockstep(&["launch", file_arg, "--frames", "5", "--no-render"], None);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    for (i, d) in daemons.iter().enumerate() {
        assert!(
            log.contains(&format!(
                "sync {}: 2 file(s), 0 sent, 0 bytes sent, 2 unchanged",
                hosts.addr(i)
            )),
            "{log}"
        );
        // The daemon counts too: nothing arrived.
        d.as_ref()
            .unwrap()
            .wait_for("ready, 0 bytes received", Duration::from_secs(5));
    }
    wait_until_gone(dir.path());

    // 3. A run without end: node b is killed, then host 3's daemon; `lockstep stop` ends the
    // rest.
    let out_path = dir.path().join("launch.out");
    let mut launcher = Command::new(BIN)
        .args(["launch", file_arg, "--no-render", "--fps", "30"])
        .env_remove("LOCKSTEP_KEY")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for name in ["a", "b", "c", "master"] {
        wait_in_file(
            &out_path,
            &format!("[{name}] running"),
            Duration::from_secs(30),
        );
    }
    let status = text(&lockstep(&["status", file_arg], None));
    let pid_of = |name: &str| -> String {
        let line = status
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name) && l.contains("running"))
            .unwrap_or_else(|| panic!("no running {name} in:\n{status}"));
        line.split_whitespace().nth(4).unwrap().to_string()
    };
    assert!(status.contains(&hosts.addr(1)), "{status}");
    let b = pid_of("b");
    assert!(
        Command::new("kill")
            .args(["-9", &b])
            .status()
            .unwrap()
            .success()
    );
    wait_in_file(
        &out_path,
        &format!(
            "[b] FAILED on host '{}': killed by signal 9 (SIGKILL); its last lines:\n    node 'b' joined cluster 'trio'",
            hosts.addr(1)
        ),
        Duration::from_secs(10),
    );
    // The master drops b and goes on.
    wait_in_file(&out_path, "dropped", Duration::from_secs(10));
    drop(daemons[2].take());
    wait_in_file(
        &out_path,
        &format!(
            "daemon on host '{}' ({}:{port}) went away",
            hosts.addr(2),
            hosts.addr(2)
        ),
        Duration::from_secs(10),
    );
    let stop = lockstep(&["stop", file_arg], None);
    let stop_log = text(&stop);
    // Host 3 has no daemon any more: `stop` says so, and stops the rest.
    assert_eq!(stop.status.code(), Some(2), "{stop_log}");
    assert!(
        stop_log.contains(&format!("{}: stopped a, master", hosts.addr(0))),
        "{stop_log}"
    );
    assert!(
        stop_log.contains(&format!("host '{}'", hosts.addr(2))),
        "{stop_log}"
    );
    let code = wait_until("the launcher's end", Duration::from_secs(20), || {
        launcher.try_wait().unwrap().map(|s| s.code())
    });
    let mut err = String::new();
    launcher
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let out = std::fs::read_to_string(&out_path).unwrap();
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(
        out.contains("[a] done (exit code 0)") && out.contains("[master] done (exit code 0)"),
        "{out}"
    );
    assert!(
        err.contains("'b' killed by signal 9 (SIGKILL)")
            && err.contains("'c' its daemon went away")
            && err.contains(&format!("host '{}' lost its daemon", hosts.addr(2))),
        "{err}"
    );
    // Node c went with its daemon (parent-death signal); nothing the daemons started is left.
    wait_until_gone(dir.path());
    drop(daemons);
}

#[test]
fn ctrl_c_stops_the_cluster_and_a_vanished_launcher_takes_its_processes_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let file = cluster_file(
        dir.path(),
        "127.0.0.1",
        port,
        &[("a", "127.0.0.1"), ("b", "127.0.0.1")],
    );
    let _daemon = Daemon::start(None, &format!("127.0.0.1:{port}"), dir.path(), "one", &[]);
    let out_path = dir.path().join("launch.out");
    let start = || {
        Command::new(BIN)
            .args([
                "launch",
                file.to_str().unwrap(),
                "--no-render",
                "--fps",
                "30",
            ])
            .env_remove("LOCKSTEP_KEY")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(dir.path().join("launch.err")).unwrap())
            .spawn()
            .unwrap()
    };
    // Ctrl-C: every process finishes its frame and leaves; the launch counts as a success.
    let mut launcher = start();
    wait_in_file(&out_path, "[master] running", Duration::from_secs(30));
    let pid = launcher.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let code = launcher.wait().unwrap().code();
    let out = std::fs::read_to_string(&out_path).unwrap();
    assert_eq!(code, Some(0), "{out}");
    for name in ["a", "b", "master"] {
        assert!(
            out.contains(&format!("[{name}] done (exit code 0)")),
            "{out}"
        );
    }
    wait_until_gone(dir.path());

    // The launcher is killed outright: its daemon stops what it started.
    let mut launcher = start();
    wait_in_file(&out_path, "[b] running", Duration::from_secs(30));
    assert_eq!(processes_in(dir.path()).len(), 3);
    launcher.kill().unwrap();
    launcher.wait().unwrap();
    wait_until_gone(dir.path());
}

#[test]
fn a_launch_runs_the_clusters_own_application_through_the_programs_list() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let file = cluster_file(dir.path(), "127.0.0.1", port, &[("a", "127.0.0.1")]);
    let app = PathBuf::from(BIN)
        .parent()
        .unwrap()
        .join("examples/cluster_app")
        .canonicalize()
        .expect("the cluster_app example is built with the tests");
    let with_program = std::fs::read_to_string(&file).unwrap().replace(
        "[launch]\n",
        &format!("[launch]\nprogram = \"{}\"\n", app.display()),
    );
    std::fs::write(&file, with_program).unwrap();
    let listen = format!("127.0.0.1:{port}");
    let conf = dir.path().join("daemon.toml");
    std::fs::write(
        &conf,
        format!("programs = [\"{}\"]\ngrace_ms = 500\n", app.display()),
    )
    .unwrap();
    // Traced, the application says so in every frame (the demo would not).
    let daemon = Daemon::start_with_env(
        None,
        &listen,
        dir.path(),
        "app",
        &["--config", conf.to_str().unwrap()],
        &[("CLUSTER_APP_TRACE", "1")],
    );
    let out = lockstep(
        &[
            "launch",
            file.to_str().unwrap(),
            "--frames",
            "30",
            "--no-render",
        ],
        None,
    );
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("master: 30 frames"), "{said}");
    assert!(said.contains("node a: 30 frames"), "{said}");
    assert!(said.contains("[a] a frame 29 counter 29"), "{said}");
    drop(daemon);
    wait_until_gone(dir.path());
}

#[test]
fn a_launch_ships_the_scene_with_the_files_it_names_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let file = cluster_file(dir.path(), "127.0.0.1", port, &[("a", "127.0.0.1")]);
    // room.gltf names room.bin, which `files` does not list.
    write_model(&dir.path().join("models"));
    let with_scene = std::fs::read_to_string(&file)
        .unwrap()
        .replace("[launch]\n", "[launch]\nscene = \"models/room.gltf\"\n");
    std::fs::write(&file, with_scene).unwrap();
    let daemon = Daemon::start(None, &format!("127.0.0.1:{port}"), dir.path(), "scene", &[]);
    let out = lockstep(
        &[
            "launch",
            file.to_str().unwrap(),
            "--frames",
            "10",
            "--no-render",
        ],
        None,
    );
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    // The cluster file, assets/a.bin, the model and its buffer.
    assert!(said.contains("4 file(s), 4 sent"), "{said}");
    assert!(said.contains("master: 10 frames"), "{said}");
    assert!(said.contains("node a: 10 frames"), "{said}");
    drop(daemon);
    wait_until_gone(dir.path());
}
