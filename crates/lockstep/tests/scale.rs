//! 64 headless nodes, frame data by multicast: on loopback, and on four hosts made of network
//! namespaces joined by a bridge. Every node presents every frame with the master's scene.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{Hosts, Proc, free_port, headless_under, p};

/// Nodes in each test.
const NODES: usize = 64;

/// A cluster file of `NODES` nodes, node `i` on `host_of(i)`, the master on `master`, frame
/// data by multicast to a free port.
fn cluster_file(dir: &Path, master: &str, host_of: impl Fn(usize) -> String) -> PathBuf {
    let group_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut text = format!(
        "transport = \"multicast\"\nname = \"scale\"\n[master]\nhost = \"{master}\"\nport = {}\n[multicast]\nport = {group_port}\n[[screens]]\nname = \"s\"\nlower_left = [-1.0, 0.0, -2.0]\nlower_right = [1.0, 0.0, -2.0]\nupper_left = [-1.0, 2.0, -2.0]\n",
        free_port()
    );
    for i in 0..NODES {
        text += &format!(
            "[[nodes]]\nname = \"n{i}\"\nhost = \"{}\"\nport = {}\n[[nodes.windows]]\nname = \"w\"\nsize = [64, 64]\n[[nodes.windows.viewports]]\nname = \"v\"\nscreen = \"s\"\n",
            host_of(i),
            7600 + i
        );
    }
    let path = dir.join("scale.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs the master for `frames` frames at 60 fps with `--verify` and every node (node `i`
/// under `wrapper(i)`); every node must present every frame with the master's scene.
fn run_all(dir: &Path, cfg: &Path, frames: u64, wrapper: impl Fn(usize) -> Vec<String>) {
    let hashes = |who: &str| dir.join(format!("{who}.hashes"));
    let frames_arg = frames.to_string();
    let master = Proc::start(&[
        "master",
        "--config",
        p(cfg),
        "--frames",
        &frames_arg,
        "--fps",
        "60",
        "--fixed-dt",
        "0.0166",
        "--verify",
        "--hash-out",
        p(&hashes("master")),
    ]);
    let nodes: Vec<(String, Proc)> = (0..NODES)
        .map(|i| {
            let name = format!("n{i}");
            let w = wrapper(i);
            let w: Vec<&str> = w.iter().map(String::as_str).collect();
            let out = hashes(&name);
            let node = headless_under(&w, cfg, &name, &["--report-state", "--hash-out", p(&out)]);
            (name, node)
        })
        .collect();
    let (status, mtext) = master.finish_within(Duration::from_secs(300));
    // The barrier's figures, for whoever reads the test's output.
    eprintln!("{mtext}");
    assert!(status.success(), "{mtext}");
    assert!(
        mtext.contains(&format!("master: {frames} frames")),
        "{mtext}"
    );
    assert!(
        mtext.contains(&format!(
            "master: verified {} node states, 0 mismatch(es)",
            NODES as u64 * frames
        )),
        "{mtext}"
    );
    assert!(
        mtext.contains("0 node(s) dropped, 0 joined late"),
        "{mtext}"
    );
    let want = std::fs::read_to_string(hashes("master")).unwrap();
    assert_eq!(want.lines().count() as u64, frames);
    for (name, node) in nodes {
        let (status, out) = node.finish_within(Duration::from_secs(60));
        assert!(status.success(), "{name}: {out}");
        assert_eq!(
            std::fs::read_to_string(hashes(&name)).unwrap(),
            want,
            "node {name} presented other frames or scenes than the master"
        );
    }
}

#[test]
fn sixty_four_nodes_on_loopback_present_every_frame_sent_by_multicast() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cluster_file(dir.path(), "127.0.0.1", |_| "127.0.0.1".into());
    run_all(dir.path(), &cfg, 600, |_| Vec::new());
}

#[test]
fn sixty_four_nodes_on_four_namespace_hosts_run_thirty_seconds_in_step_over_multicast() {
    let hosts = match Hosts::new(4) {
        Ok(h) => h,
        Err(why) => {
            assert!(
                std::env::var_os("LOCKSTEP_REQUIRE_NETNS").is_none(),
                "network namespaces are required here (LOCKSTEP_REQUIRE_NETNS) but: {why}"
            );
            eprintln!("SKIPPED: four namespace hosts need root and iproute2: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = cluster_file(dir.path(), &hosts.bridge_addr(), |i| hosts.addr(i % 4));
    run_all(dir.path(), &cfg, 1800, |i| {
        ["ip", "netns", "exec", &hosts.names[i % 4]]
            .map(String::from)
            .into()
    });
}
