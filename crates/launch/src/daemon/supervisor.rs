/*!
The daemon's processes: it starts them (each in its own process group, with piped output), passes
their lines and exit statuses to the launcher that started them, and stops them with TERM, then
KILL once the grace period is over.

Children are forked by one long-lived thread: Linux's parent-death signal (set in each child,
so it gets TERM if the daemon itself dies) fires when the *thread* that forked it ends, not only
the process.
*/
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::protocol::{ExitStatus, MAX_LOG_LINE, ProcessInfo, Program, Reply, Stream};

/// Most ended processes remembered for `status`.
const HISTORY: usize = 256;

/// Lines of each process kept for its crash report.
pub const TAIL_LINES: usize = 20;

/// Environment variable through which a started process gets the cluster key, so the key
/// never travels over the network nor sits in a command line.
pub const KEY_ENV: &str = "LOCKSTEP_KEY";

struct Proc {
    info: ProcessInfo,
    /// The connection that started it; `None` once that launcher is gone.
    owner: Option<(u64, Sender<Reply>)>,
    tail: VecDeque<String>,
}

#[derive(Default)]
struct Table {
    procs: Vec<Proc>,
}

/// A request to fork, served by the spawner thread.
struct SpawnJob {
    command: Command,
    done: Sender<std::io::Result<Child>>,
}

/// Every process this daemon started.
#[derive(Clone)]
pub struct Supervisor {
    table: Arc<(Mutex<Table>, Condvar)>,
    spawner: Sender<SpawnJob>,
    grace: Duration,
}

/// What to start.
pub struct Launch {
    /// Cluster.
    pub cluster: String,
    /// Process name.
    pub name: String,
    /// What it is (for `status`).
    pub program: Program,
    /// The command, ready but for the supervisor's settings.
    pub command: Command,
    /// Owning connection's id and its event channel.
    pub owner: (u64, Sender<Reply>),
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Supervisor {
    /// A supervisor whose stops wait `grace` between TERM and KILL.
    pub fn new(grace: Duration) -> std::io::Result<Supervisor> {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("spawner".into())
            .spawn(move || {
                for mut job in rx {
                    let _ = job.done.send(job.command.spawn());
                }
            })?;
        Ok(Supervisor {
            table: Arc::new((Mutex::new(Table::default()), Condvar::new())),
            spawner: tx,
            grace,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panicked reader thread must not take the daemon down with it.
        self.table.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `cluster` has a running process named `name`.
    pub fn is_running(&self, cluster: &str, name: &str) -> bool {
        self.lock()
            .procs
            .iter()
            .any(|p| p.info.cluster == cluster && p.info.name == name && p.info.exit.is_none())
    }

    /// Starts a process; returns its pid.
    pub fn start(&self, mut l: Launch) -> Result<u32, String> {
        l.command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: between fork and exec only async-signal-safe calls are allowed; prctl is
        // one. If the daemon dies, its children are told to stop instead of being orphaned.
        unsafe {
            l.command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)
            });
        }
        let (done, rx) = mpsc::channel();
        self.spawner
            .send(SpawnJob {
                command: l.command,
                done,
            })
            .map_err(|_| "the spawner thread is gone".to_string())?;
        let mut child = rx
            .recv()
            .map_err(|_| "the spawner thread is gone".to_string())?
            .map_err(|e| format!("cannot start {}: {e}", l.program))?;
        let pid = child.id();
        let info = ProcessInfo {
            cluster: l.cluster,
            name: l.name.clone(),
            program: l.program,
            pid,
            started_unix: unix_now(),
            exit: None,
            ended_unix: None,
        };
        {
            let mut t = self.lock();
            if t.procs.len() >= HISTORY {
                if let Some(i) = t.procs.iter().position(|p| p.info.exit.is_some()) {
                    t.procs.remove(i);
                }
            }
            t.procs.push(Proc {
                info,
                owner: Some(l.owner),
                tail: VecDeque::new(),
            });
        }
        let readers = [
            child
                .stdout
                .take()
                .map(|s| self.reader(pid, Stream::Stdout, s)),
            child
                .stderr
                .take()
                .map(|s| self.reader(pid, Stream::Stderr, s)),
        ];
        let me = self.clone();
        std::thread::Builder::new()
            .name(format!("wait {pid}"))
            .spawn(move || me.wait(pid, child, readers))
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        tracing::info!("started {} (pid {pid})", l.name);
        Ok(pid)
    }

    fn reader(
        &self,
        pid: u32,
        stream: Stream,
        out: impl Read + Send + 'static,
    ) -> std::thread::JoinHandle<()> {
        let me = self.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(out);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                // Bounded: a line without an end cannot fill the daemon's memory.
                match r
                    .by_ref()
                    .take(MAX_LOG_LINE as u64)
                    .read_until(b'\n', &mut buf)
                {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let cut = buf.last() != Some(&b'\n');
                while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    buf.pop();
                }
                let mut line = String::from_utf8_lossy(&buf).into_owned();
                if cut && buf.len() >= MAX_LOG_LINE {
                    line.push_str(" […]");
                }
                me.log(pid, stream, line);
            }
        })
    }

    fn log(&self, pid: u32, stream: Stream, line: String) {
        let mut t = self.lock();
        let Some(p) = t.procs.iter_mut().rev().find(|p| p.info.pid == pid) else {
            return;
        };
        if p.tail.len() == TAIL_LINES {
            p.tail.pop_front();
        }
        p.tail.push_back(line.clone());
        if let Some((_, tx)) = &p.owner {
            let _ = tx.send(Reply::Log {
                name: p.info.name.clone(),
                stream,
                line,
            });
        }
    }

    fn wait(&self, pid: u32, mut child: Child, readers: [Option<std::thread::JoinHandle<()>>; 2]) {
        let status = match child.wait() {
            Ok(s) => match (s.code(), s.signal()) {
                (Some(c), _) => ExitStatus::Code(c),
                (None, Some(sig)) => ExitStatus::Signal(sig),
                (None, None) => ExitStatus::Code(-1),
            },
            Err(_) => ExitStatus::Code(-1),
        };
        // Its last lines go out before its exit.
        for r in readers.into_iter().flatten() {
            let _ = r.join();
        }
        let mut t = self.lock();
        if let Some(p) = t.procs.iter_mut().rev().find(|p| p.info.pid == pid) {
            p.info.exit = Some(status);
            p.info.ended_unix = Some(unix_now());
            tracing::info!("{} (pid {pid}) ended: {status}", p.info.name);
            if let Some((_, tx)) = &p.owner {
                let _ = tx.send(Reply::Exited {
                    name: p.info.name.clone(),
                    status,
                });
            }
        }
        drop(t);
        self.table.1.notify_all();
    }

    /// Everything started, oldest first.
    pub fn status(&self) -> Vec<ProcessInfo> {
        self.lock().procs.iter().map(|p| p.info.clone()).collect()
    }

    /// Stops the running processes that `pick` selects: TERM to each process group, KILL to
    /// those still there after the grace period. Returns their names once they have ended.
    pub fn stop(&self, pick: impl Fn(&ProcessInfo, Option<u64>) -> bool) -> Vec<String> {
        let running = |t: &Table| -> Vec<(u32, String)> {
            t.procs
                .iter()
                .filter(|p| p.info.exit.is_none() && pick(&p.info, p.owner.as_ref().map(|o| o.0)))
                .map(|p| (p.info.pid, p.info.name.clone()))
                .collect()
        };
        let targets = running(&self.lock());
        let signal_all = |sig: Signal, which: &[(u32, String)]| {
            for (pid, _) in which {
                // The group is the process's own (process_group(0)): its children go too.
                let _ = killpg(Pid::from_raw(*pid as i32), sig);
            }
        };
        signal_all(Signal::SIGTERM, &targets);
        let still = |t: &Table| {
            targets
                .iter()
                .filter(|(pid, _)| {
                    t.procs
                        .iter()
                        .any(|p| p.info.pid == *pid && p.info.exit.is_none())
                })
                .cloned()
                .collect::<Vec<_>>()
        };
        for (sig, wait) in [
            (None, self.grace),
            (Some(Signal::SIGKILL), Duration::from_secs(5)),
        ] {
            let left = still(&self.lock());
            if left.is_empty() {
                break;
            }
            if let Some(sig) = sig {
                tracing::warn!("{} ignored TERM for {:?}: KILL", names(&left), self.grace);
                signal_all(sig, &left);
            }
            let until = Instant::now() + wait;
            let mut t = self.lock();
            while !still(&t).is_empty() {
                let now = Instant::now();
                if now >= until {
                    break;
                }
                t = self
                    .table
                    .1
                    .wait_timeout(t, until - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        targets.into_iter().map(|(_, n)| n).collect()
    }

    /// Forgets connection `conn` as the owner of its processes (its launcher went away).
    pub fn disown(&self, conn: u64) {
        for p in self.lock().procs.iter_mut() {
            if p.owner.as_ref().is_some_and(|o| o.0 == conn) {
                p.owner = None;
            }
        }
    }
}

fn names(list: &[(u32, String)]) -> String {
    list.iter()
        .map(|(_, n)| n.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
