/*!
`lockstep launch`, `stop` and `status`.

A launch: connect to every host's daemon (all must answer before anything starts), send each
the files it lacks, start the render nodes, then the master, and follow them until every
process has ended (or Ctrl-C, or `lockstep stop`). A process that fails is reported with its
exit status and its last lines; a daemon that goes away is reported with the processes that
were on its host.
*/
use std::collections::VecDeque;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use lockstep_wire::ClusterKey;

use crate::LaunchError;
use crate::launcher::client::{DaemonClient, Event, unexpected};
use crate::launcher::plan::{MASTER, Plan};
use crate::launcher::screen::Screen;
use crate::protocol::{CHUNK, ExitStatus, ProcessInfo, Reply, Request, Stream, hex};
use crate::state::{self, NodeState};

/// Lines of a failed process shown in its report.
const REPORT_LINES: usize = 10;

/// How often the launcher pings its daemons.
const PING_EVERY: Duration = Duration::from_secs(2);

/// How long a request may take (a stop waits for the grace period and KILL).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// After the master ends, how long nodes get to follow before they are stopped.
const NODES_AFTER_MASTER: Duration = Duration::from_secs(15);

/// How a launch ended.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// File bytes sent, per host (in [`Plan::hosts`] order).
    pub sent: Vec<u64>,
    /// Processes that ended with exit code 0.
    pub done: Vec<String>,
    /// Processes that failed, with how.
    pub failed: Vec<(String, String)>,
    /// Hosts whose daemon went away, with why.
    pub lost_hosts: Vec<(String, String)>,
    /// Whether it was stopped (Ctrl-C).
    pub stopped: bool,
}

impl Outcome {
    /// Every process ended well and every daemon stayed.
    pub fn success(&self) -> bool {
        self.failed.is_empty() && self.lost_hosts.is_empty()
    }
}

struct Row {
    name: String,
    host: usize,
    state: NodeState,
    pid: Option<u32>,
    tail: VecDeque<String>,
}

/// Connects to every host of `plan`; any host that cannot be reached or refuses ends the
/// launch before anything starts.
fn connect_all(
    plan: &Plan,
    key: &ClusterKey,
    events: &mpsc::Sender<Event>,
) -> Result<Vec<DaemonClient>, LaunchError> {
    // In parallel: a dead host costs its timeout once, not once per host.
    let attempts: Vec<_> = plan
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let (key, cluster, events, addr) =
                (key.clone(), plan.cluster.clone(), events.clone(), h.addr);
            std::thread::spawn(move || DaemonClient::connect(i, addr, &key, &cluster, events))
        })
        .collect();
    let mut clients = Vec::new();
    for (a, h) in attempts.into_iter().zip(&plan.hosts) {
        let client = a
            .join()
            .map_err(|_| LaunchError::Config("a connecting thread panicked".into()))?
            .map_err(|e| LaunchError::Config(format!("host '{}': {e}", h.host)))?;
        clients.push(client);
    }
    Ok(clients)
}

/// Sends `client` the plan's files it lacks; returns the file bytes sent.
fn sync(
    plan: &Plan,
    client: &mut DaemonClient,
    screen: &Screen,
    host: &str,
) -> Result<u64, LaunchError> {
    let files = plan.files.iter().map(|f| f.entry.clone()).collect();
    let missing = match client.call(
        &Request::Manifest {
            cluster: plan.cluster.clone(),
            files,
        },
        CALL_TIMEOUT,
    )? {
        Reply::Missing(m) => m,
        other => return Err(unexpected(client, &other)),
    };
    let to_send: Vec<_> = missing
        .iter()
        .filter_map(|d| plan.files.iter().find(|f| f.entry.digest == *d))
        .collect();
    let total: u64 = to_send.iter().map(|f| f.entry.size).sum();
    let bar = screen.transfer(host, total);
    let mut sent = 0u64;
    for f in &to_send {
        let mut file = std::fs::File::open(&f.local)
            .map_err(|e| LaunchError::file(&f.local, "cannot read", e))?;
        let mut offset = 0u64;
        loop {
            // Read straight into the buffer the request owns: no copy per chunk.
            let mut bytes = Vec::with_capacity(CHUNK);
            (&mut file)
                .take(CHUNK as u64)
                .read_to_end(&mut bytes)
                .map_err(|e| LaunchError::file(&f.local, "cannot read", e))?;
            if bytes.is_empty() {
                break;
            }
            let n = bytes.len() as u64;
            client.call(
                &Request::Chunk {
                    digest: f.entry.digest,
                    offset,
                    bytes,
                },
                CALL_TIMEOUT,
            )?;
            offset += n;
            sent += n;
            bar.inc(n);
        }
        if offset != f.entry.size {
            return Err(LaunchError::Config(format!(
                "{} changed while it was being sent ({} bytes, {} when hashed as {})",
                f.local.display(),
                offset,
                f.entry.size,
                hex(&f.entry.digest)
            )));
        }
    }
    bar.finish_and_clear();
    match client.call(&Request::Commit, CALL_TIMEOUT)? {
        Reply::Synced { received, .. } if received == sent => {}
        other => return Err(unexpected(client, &other)),
    }
    screen.line(&format!(
        "sync {host}: {} file(s), {} sent, {sent} bytes sent, {} unchanged",
        plan.files.len(),
        to_send.len(),
        plan.files.len() - to_send.len()
    ));
    Ok(sent)
}

/// Runs a launch until every process has ended, or `stop` is set (then stops them all).
pub fn launch(plan: &Plan, key: &ClusterKey, stop: &AtomicBool) -> Result<Outcome, LaunchError> {
    let (events_tx, events) = mpsc::channel();
    let mut clients = connect_all(plan, key, &events_tx)?;
    drop(events_tx);
    let host_name = |i: usize| plan.hosts[i].host.as_str();
    let screen = Screen::new(
        &plan
            .procs
            .iter()
            .map(|p| (p.name.clone(), host_name(p.host).to_string()))
            .collect::<Vec<_>>(),
    );
    screen.line(&format!(
        "launch '{}': {} host(s), {} node(s) and the master",
        plan.cluster,
        plan.hosts.len(),
        plan.procs.len() - 1
    ));
    let mut outcome = Outcome::default();
    for (i, c) in clients.iter_mut().enumerate() {
        outcome.sent.push(sync(plan, c, &screen, host_name(i))?);
    }
    let mut rows: Vec<Row> = plan
        .procs
        .iter()
        .map(|p| Row {
            name: p.name.clone(),
            host: p.host,
            state: NodeState::Starting,
            pid: None,
            tail: VecDeque::new(),
        })
        .collect();
    let mut live = vec![true; clients.len()];
    // Nodes first (file order), the master last: it waits for them at its start barrier.
    for (i, p) in plan.procs.iter().enumerate() {
        let req = Request::Start {
            cluster: plan.cluster.clone(),
            name: p.name.clone(),
            program: p.program.clone(),
            args: p.args.clone(),
            folder: None,
        };
        match clients[p.host].call(&req, CALL_TIMEOUT) {
            Ok(Reply::Started { pid }) => {
                rows[i].pid = Some(pid);
                screen.set(i, NodeState::Starting, &format!("pid {pid}"));
                screen.line(&format!(
                    "[{}] started on {} (pid {pid})",
                    p.name,
                    host_name(p.host)
                ));
            }
            other => {
                let why = match other {
                    Err(e) => e.to_string(),
                    Ok(r) => unexpected(&clients[p.host], &r).to_string(),
                };
                screen.line(&format!("[{}] cannot start: {why}", p.name));
                stop_all(plan, &mut clients, &live, &screen);
                screen.finish();
                return Err(LaunchError::Config(format!(
                    "'{}' on host '{}' did not start: {why}",
                    p.name,
                    host_name(p.host)
                )));
            }
        }
    }
    let mut stopping = false;
    let mut last_ping = Instant::now();
    let mut master_ended: Option<Instant> = None;
    while rows.iter().any(|r| !r.state.is_final()) {
        if stop.load(Ordering::Relaxed) && !stopping {
            stopping = true;
            outcome.stopped = true;
            screen.line("stopping every process…");
            stop_all(plan, &mut clients, &live, &screen);
        }
        if master_ended.is_some_and(|t| t.elapsed() > NODES_AFTER_MASTER) && !stopping {
            stopping = true;
            screen.line("the master has ended but nodes still run: stopping them");
            stop_all(plan, &mut clients, &live, &screen);
        }
        if last_ping.elapsed() >= PING_EVERY {
            last_ping = Instant::now();
            for (c, _) in clients.iter_mut().zip(&live).filter(|(_, l)| **l) {
                let _ = c.send(&Request::Ping);
            }
        }
        let event = match events.recv_timeout(Duration::from_millis(200)) {
            Ok(e) => e,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        match event {
            Event::Reply {
                host,
                reply: Reply::Log { name, stream, line },
            } => {
                let Some(i) = rows.iter().position(|r| r.name == name && r.host == host) else {
                    continue;
                };
                if stream == Stream::Stderr
                    && let Some(s) = state::parse(&line)
                {
                    // Forward only (a master rendering a view of its own announces twice).
                    if s > rows[i].state && !rows[i].state.is_final() {
                        rows[i].state = s;
                        screen.set(
                            i,
                            s,
                            &rows[i].pid.map_or(String::new(), |p| format!("pid {p}")),
                        );
                        screen.line(&format!("[{name}] {}", s.word()));
                    }
                    continue;
                }
                screen.line(&format!("[{name}] {line}"));
                let tail = &mut rows[i].tail;
                if tail.len() == REPORT_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            Event::Reply {
                host,
                reply: Reply::Exited { name, status },
            } => {
                let Some(i) = rows.iter().position(|r| r.name == name && r.host == host) else {
                    continue;
                };
                let row = &mut rows[i];
                if name == MASTER {
                    master_ended = Some(Instant::now());
                }
                if status.success() {
                    row.state = NodeState::Done;
                    screen.set(i, NodeState::Done, "exit code 0");
                    screen.line(&format!("[{name}] done (exit code 0)"));
                    outcome.done.push(name);
                } else {
                    row.state = NodeState::Failed;
                    screen.set(i, NodeState::Failed, &status.to_string());
                    screen.line(&failure_report(row, host_name(host), status));
                    outcome.failed.push((name, status.to_string()));
                }
            }
            Event::Reply { .. } => {}
            Event::Lost { host, why } => {
                if !std::mem::replace(&mut live[host], false) {
                    continue;
                }
                let on_it: Vec<&str> = rows
                    .iter()
                    .filter(|r| r.host == host && !r.state.is_final())
                    .map(|r| r.name.as_str())
                    .collect();
                screen.line(&format!(
                    "daemon on host '{}' ({}) went away: {why}; {}",
                    host_name(host),
                    plan.hosts[host].addr,
                    if on_it.is_empty() {
                        "nothing of the cluster ran there any more".to_string()
                    } else {
                        format!("lost: {}", on_it.join(", "))
                    }
                ));
                for (i, r) in rows.iter_mut().enumerate() {
                    if r.host == host && !r.state.is_final() {
                        r.state = NodeState::Lost;
                        screen.set(i, NodeState::Lost, "daemon gone");
                        outcome
                            .failed
                            .push((r.name.clone(), "its daemon went away".into()));
                    }
                }
                outcome.lost_hosts.push((host_name(host).to_string(), why));
            }
        }
    }
    screen.finish();
    for c in &clients {
        c.close();
    }
    let mut summary = format!("launch '{}' ended:", plan.cluster);
    for r in &rows {
        summary.push_str(&format!(
            "\n  {:<16} {:<16} {}",
            r.name,
            host_name(r.host),
            r.state.word()
        ));
    }
    println!("{summary}");
    Ok(outcome)
}

fn failure_report(row: &Row, host: &str, status: ExitStatus) -> String {
    let mut s = format!("[{}] FAILED on host '{host}': {status}", row.name);
    if row.tail.is_empty() {
        s.push_str(" (it wrote nothing)");
    } else {
        s.push_str("; its last lines:");
        for l in &row.tail {
            s.push_str("\n    ");
            s.push_str(l);
        }
    }
    s
}

fn stop_all(plan: &Plan, clients: &mut [DaemonClient], live: &[bool], screen: &Screen) {
    for (c, host) in clients
        .iter_mut()
        .zip(&plan.hosts)
        .zip(live)
        .filter(|(_, l)| **l)
        .map(|(c, _)| c)
    {
        let req = Request::Stop {
            cluster: plan.cluster.clone(),
            names: Vec::new(),
        };
        if let Err(e) = c.call(&req, CALL_TIMEOUT) {
            screen.line(&format!(
                "cannot stop what runs on host '{}': {e}",
                host.host
            ));
        }
    }
}

/// Hosts whose daemon could not be reached or refused, with why.
pub type Unreachable = Vec<(String, String)>;

/// `lockstep stop`: stops every process of the cluster on every host; returns the hosts that
/// could not be reached, with why.
pub fn stop_cluster(plan: &Plan, key: &ClusterKey) -> Unreachable {
    let mut unreachable = Vec::new();
    for_each_host(plan, key, &mut unreachable, |host, c| {
        let req = Request::Stop {
            cluster: plan.cluster.clone(),
            names: Vec::new(),
        };
        match c.call(&req, CALL_TIMEOUT)? {
            Reply::Stopped(names) if names.is_empty() => println!("{host}: nothing was running"),
            Reply::Stopped(names) => println!("{host}: stopped {}", names.join(", ")),
            other => return Err(unexpected(c, &other)),
        }
        Ok(())
    });
    unreachable
}

/// `lockstep status`: what each host's daemon runs (and ran) of the cluster.
pub fn status(plan: &Plan, key: &ClusterKey) -> (Vec<(String, ProcessInfo)>, Unreachable) {
    let mut rows = Vec::new();
    let mut unreachable = Vec::new();
    for_each_host(plan, key, &mut unreachable, |host, c| {
        match c.call(&Request::Status, CALL_TIMEOUT)? {
            Reply::Status(list) => rows.extend(
                list.into_iter()
                    .filter(|p| p.cluster == plan.cluster)
                    .map(|p| (host.to_string(), p)),
            ),
            other => return Err(unexpected(c, &other)),
        }
        Ok(())
    });
    (rows, unreachable)
}

fn for_each_host(
    plan: &Plan,
    key: &ClusterKey,
    unreachable: &mut Unreachable,
    mut each: impl FnMut(&str, &mut DaemonClient) -> Result<(), LaunchError>,
) {
    let (tx, _events) = mpsc::channel();
    for (i, h) in plan.hosts.iter().enumerate() {
        let result =
            DaemonClient::connect(i, h.addr, key, &plan.cluster, tx.clone()).and_then(|mut c| {
                let r = each(&h.host, &mut c);
                c.close();
                r
            });
        if let Err(e) = result {
            unreachable.push((h.host.clone(), e.to_string()));
        }
    }
}
