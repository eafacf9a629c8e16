/*!
The daemon's network side: one thread per launcher connection. Each connection authenticates
with the cluster key, then sends [`Request`]s; replies and the events of the processes it
started go back through one writer thread, in order.
*/
use std::net::{SocketAddr, TcpListener};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::time::Duration;

use lockstep_wire::admission::{AcceptBackoff, Gatekeeper, Incoming, Slot};

use crate::LaunchError;
use crate::conn;
use crate::daemon::config::DaemonConfig;
use crate::daemon::confine::check_role_args;
use crate::daemon::store::{Store, Sync};
use crate::daemon::supervisor::{KEY_ENV, Launch, Supervisor};
use crate::protocol::{Program, Reply, Request, check_name};
use crate::state::LAUNCHED_ENV;

/// Time a peer has to finish the whole handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Most arguments of one process, and longest argument.
const MAX_ARGS: usize = 256;
const MAX_ARG_LEN: usize = 4096;

/// A running daemon.
pub struct Daemon {
    config: Arc<DaemonConfig>,
    listener: TcpListener,
    store: Store,
    supervisor: Supervisor,
    next_conn: AtomicU64,
    closing: AtomicBool,
    /// Handshake slots and refusals.
    gatekeeper: Arc<Gatekeeper>,
}

impl Daemon {
    /// Binds the listening socket and opens the store.
    pub fn bind(config: DaemonConfig) -> Result<Daemon, LaunchError> {
        let listener = TcpListener::bind(config.listen)
            .map_err(|e| LaunchError::io(&format!("listen {}", config.listen), "cannot bind", e))?;
        let store = Store::open(&config.state_dir, config.quota).map_err(LaunchError::Config)?;
        let supervisor = Supervisor::new(config.grace)
            .map_err(|e| LaunchError::Config(format!("cannot start a thread: {e}")))?;
        Ok(Daemon {
            config: Arc::new(config),
            listener,
            store,
            supervisor,
            next_conn: AtomicU64::new(1),
            closing: AtomicBool::new(false),
            gatekeeper: Gatekeeper::for_listener(),
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves launchers until `stop` is set; then stops every process it started.
    pub fn serve(self, stop: &AtomicBool) -> Result<(), LaunchError> {
        let me = Arc::new(self);
        me.listener
            .set_nonblocking(false)
            .map_err(|e| LaunchError::io("listener", "cannot configure", e))?;
        let accepting = {
            let me = me.clone();
            std::thread::Builder::new()
                .name("accept".into())
                .spawn(move || me.accept_loop())
                .map_err(|e| LaunchError::Config(format!("cannot start a thread: {e}")))?
        };
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            tell(me.gatekeeper.summary());
        }
        tracing::info!("stopping: ending every process this daemon started");
        let stopped = me.supervisor.stop(|_, _| true);
        if !stopped.is_empty() {
            tracing::info!("stopped {}", stopped.join(", "));
        }
        // Wake the accept loop so its thread ends (with no descriptor to spare, too).
        me.closing.store(true, Ordering::Relaxed);
        lockstep_wire::admission::stop_accepting(&me.listener);
        let _ = accepting.join();
        Ok(())
    }

    /// Accepts launchers until the daemon closes: a handshake thread each, while there is
    /// room; accept failures (no descriptors left) back off.
    fn accept_loop(self: Arc<Self>) {
        let mut backoff = AcceptBackoff::default();
        loop {
            let incoming = self.gatekeeper.accept(&self.listener, &mut backoff);
            if self.closing.load(Ordering::Relaxed) {
                break;
            }
            let (stream, slot) = match incoming {
                Incoming::Admitted { stream, slot, .. } => (stream, slot),
                Incoming::Tell(line) => {
                    tell(line);
                    continue;
                }
            };
            let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
            let me = self.clone();
            let _ = std::thread::Builder::new()
                .name(format!("launcher {id}"))
                .spawn(move || me.session(id, stream, slot));
        }
    }

    fn session(&self, id: u64, stream: std::net::TcpStream, slot: Slot) {
        let peer = stream
            .peer_addr()
            .map_or_else(|_| "?".into(), |a| a.to_string());
        let accepted = conn::accept(
            stream,
            &self.config.key,
            &self.config.cluster,
            HANDSHAKE_TIMEOUT,
        );
        drop(slot);
        let (mut conn, who) = match accepted {
            Ok(c) => c,
            Err(e) => {
                tell(
                    self.gatekeeper
                        .refused(e.refusal_kind(), format!("refused {e}")),
                );
                return;
            }
        };
        tracing::info!("launcher {who} connected from {peer}");
        let (tx, rx) = mpsc::channel::<Reply>();
        let writer = match conn.split_writer() {
            Ok(mut w) => std::thread::spawn(move || {
                for reply in rx {
                    if w.send(&reply).is_err() {
                        break;
                    }
                }
                w.shutdown();
            }),
            Err(e) => {
                tracing::warn!("{e}");
                return;
            }
        };
        let _ = conn.set_timeout(Some(self.config.launcher_timeout));
        // The launcher's sync in progress: session state, touched by this thread only.
        let mut sync = None::<Sync>;
        let end = loop {
            let req: Request = match conn.recv() {
                Ok(r) => r,
                Err(e) => break e,
            };
            let reply = self.handle(id, &who, req, &mut sync, &tx);
            if let Reply::Refused(reason) = &reply {
                tracing::warn!(
                    "refused a request of launcher {who}: {}",
                    lockstep_wire::printable(reason)
                );
            }
            if tx.send(reply).is_err() {
                break LaunchError::Closed(conn.peer.clone());
            }
        };
        tracing::info!("launcher {who} gone: {end}");
        if self.config.stop_on_disconnect {
            let stopped = self.supervisor.stop(|_, owner| owner == Some(id));
            if !stopped.is_empty() {
                tracing::info!("stopped what it started: {}", stopped.join(", "));
            }
        }
        self.supervisor.disown(id);
        drop(tx);
        conn.shutdown();
        let _ = writer.join();
    }

    fn handle(
        &self,
        id: u64,
        who: &str,
        req: Request,
        sync: &mut Option<Sync>,
        events: &Sender<Reply>,
    ) -> Reply {
        match req {
            Request::Ping => Reply::Pong,
            Request::Status => Reply::Status(self.supervisor.status()),
            Request::Manifest { cluster, files } => {
                if let Err(r) = self.same_cluster(&cluster) {
                    return Reply::Refused(r);
                }
                match self.store.begin(&cluster, files) {
                    Ok((s, missing)) => {
                        *sync = Some(s);
                        Reply::Missing(missing)
                    }
                    Err(e) => Reply::Refused(format!("manifest: {e}")),
                }
            }
            Request::Chunk {
                digest,
                offset,
                bytes,
            } => match sync.as_mut() {
                None => Reply::Refused("a chunk before any manifest".into()),
                Some(s) => match self.store.chunk(s, digest, offset, &bytes) {
                    Ok(()) => Reply::Ok,
                    Err(e) => Reply::Refused(e),
                },
            },
            Request::Commit => match sync.take() {
                None => Reply::Refused("commit before any manifest".into()),
                Some(s) => match self.store.commit(&s) {
                    Ok(ws) => {
                        tracing::info!(
                            "launcher {who}: workspace {} ready, {} bytes received",
                            ws.display(),
                            s.received
                        );
                        Reply::Synced {
                            workspace: ws.display().to_string(),
                            received: s.received,
                        }
                    }
                    Err(e) => Reply::Refused(e),
                },
            },
            Request::Start {
                cluster,
                name,
                program,
                args,
                folder,
            } => match self.start(id, cluster, name, program, args, folder, events) {
                Ok(pid) => Reply::Started { pid },
                Err(e) => Reply::Refused(e),
            },
            Request::Stop { cluster, names } => {
                if let Err(r) = self.same_cluster(&cluster) {
                    return Reply::Refused(r);
                }
                let stopped = self.supervisor.stop(|p, _| {
                    p.cluster == cluster && (names.is_empty() || names.contains(&p.name))
                });
                tracing::info!("launcher {who} stopped: {}", stopped.join(", "));
                Reply::Stopped(stopped)
            }
        }
    }

    fn same_cluster(&self, cluster: &str) -> Result<(), String> {
        if cluster == self.config.cluster {
            Ok(())
        } else {
            Err(format!(
                "this daemon serves cluster '{}', not '{cluster}'",
                self.config.cluster
            ))
        }
    }

    /// Checks a start request against the allow-lists and starts it.
    #[allow(clippy::too_many_arguments)]
    fn start(
        &self,
        id: u64,
        cluster: String,
        name: String,
        program: Program,
        args: Vec<String>,
        folder: Option<String>,
        events: &Sender<Reply>,
    ) -> Result<u32, String> {
        self.same_cluster(&cluster)?;
        check_name("process", &name)?;
        let (exe, first) = match &program {
            Program::Lockstep(role) => {
                if !self.config.roles.contains(role) {
                    return Err(format!(
                        "program '{program}' is not allowed here (allowed: {})",
                        self.allowed()
                    ));
                }
                (self.config.lockstep_exe.clone(), Some(role.clone()))
            }
            Program::Path(p) => {
                let path = PathBuf::from(p);
                let canonical = path.canonicalize().ok();
                if canonical
                    .as_ref()
                    .is_none_or(|c| !path.is_absolute() || !self.config.programs.contains(c))
                {
                    return Err(format!(
                        "program '{p}' is not allowed here (allowed: {})",
                        self.allowed()
                    ));
                }
                (path, None)
            }
        };
        if args.len() > MAX_ARGS
            || args
                .iter()
                .any(|a| a.len() > MAX_ARG_LEN || a.contains('\0'))
        {
            return Err(format!(
                "at most {MAX_ARGS} arguments of {MAX_ARG_LEN} bytes each, without NUL"
            ));
        }
        let workspace = self.store.workspace(&cluster)?;
        let dir = match folder {
            None => {
                std::fs::create_dir_all(&workspace)
                    .map_err(|e| format!("cannot create {}: {e}", workspace.display()))?;
                workspace
            }
            Some(f) => {
                let c = PathBuf::from(&f)
                    .canonicalize()
                    .map_err(|e| format!("working folder '{f}': {e}"))?;
                if !c.starts_with(&workspace)
                    && !self.config.folders.iter().any(|a| c.starts_with(a))
                {
                    return Err(format!(
                        "working folder '{f}' is not allowed here (allowed: the cluster's workspace{})",
                        self.config
                            .folders
                            .iter()
                            .map(|f| format!(", {}", f.display()))
                            .collect::<String>()
                    ));
                }
                c
            }
        };
        if first.is_some() {
            // A built-in role: its paths stay inside what the daemon serves.
            let mut roots = vec![workspace_root(&self.store, &cluster)?];
            roots.extend(self.config.folders.iter().cloned());
            check_role_args(&args, &dir, &roots)?;
        }
        if self.supervisor.is_running(&cluster, &name) {
            return Err(format!(
                "'{name}' of cluster '{cluster}' is already running"
            ));
        }
        let mut command = Command::new(&exe);
        command
            .args(first.iter().chain(&args))
            .current_dir(&dir)
            .env(KEY_ENV, std::ffi::OsStr::from_bytes(&self.config.key_text))
            .env(LAUNCHED_ENV, "1");
        self.supervisor.start(Launch {
            cluster,
            name,
            program,
            command,
            owner: (id, events.clone()),
        })
    }

    fn allowed(&self) -> String {
        self.config
            .roles
            .iter()
            .map(|r| format!("lockstep {r}"))
            .chain(self.config.programs.iter().map(|p| p.display().to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The cluster's workspace, created and canonical (paths are compared after symlinks).
fn workspace_root(store: &Store, cluster: &str) -> Result<PathBuf, String> {
    let ws = store.workspace(cluster)?;
    std::fs::create_dir_all(&ws).map_err(|e| format!("cannot create {}: {e}", ws.display()))?;
    ws.canonicalize()
        .map_err(|e| format!("{}: {e}", ws.display()))
}

/// Logs a line the gatekeeper says is due.
fn tell(line: Option<String>) {
    if let Some(line) = line {
        tracing::warn!("{line}");
    }
}
