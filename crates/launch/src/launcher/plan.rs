/*!
What a launch does, worked out from the cluster file before anything is contacted: the hosts
(one daemon each), the files every host needs, and the processes to start where.
*/
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use lockstep_display::ClusterConfig;

use crate::LaunchError;
use crate::daemon::store::digest_file;
use crate::protocol::{FileEntry, Program};

/// How the processes are started.
#[derive(Debug, Clone, Default)]
pub struct LaunchOptions {
    /// The master stops after this many frames (default: until stopped).
    pub frames: Option<u64>,
    /// The master runs at most this many frames per second.
    pub fps: Option<u64>,
    /// Nodes render offscreen even where the file asks for windows.
    pub offscreen: bool,
    /// Nodes draw nothing (`--renderer none`): protocol only.
    pub no_render: bool,
    /// Every process writes `hash-NAME.txt` in its workspace (frame and scene hash per line).
    pub hashes: bool,
    /// Overrides the file's `launch.daemon_port`.
    pub daemon_port: Option<u16>,
}

/// One host: its daemon.
#[derive(Debug, Clone)]
pub struct HostPlan {
    /// The host as the cluster file names it.
    pub host: String,
    /// Its daemon's address.
    pub addr: SocketAddr,
}

/// One process.
#[derive(Debug, Clone)]
pub struct ProcPlan {
    /// Node name, or `master`.
    pub name: String,
    /// Index into [`Plan::hosts`].
    pub host: usize,
    /// What runs.
    pub program: Program,
    /// Its arguments.
    pub args: Vec<String>,
}

/// A local file to ship.
#[derive(Debug, Clone)]
pub struct LocalFile {
    /// Where it is here.
    pub local: PathBuf,
    /// Its name, digest and size.
    pub entry: FileEntry,
}

/// Everything a launch does.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Cluster name.
    pub cluster: String,
    /// Hosts in order of first appearance (nodes in file order, then the master's).
    pub hosts: Vec<HostPlan>,
    /// Files every host gets.
    pub files: Vec<LocalFile>,
    /// Render nodes in file order, then the master (it starts last).
    pub procs: Vec<ProcPlan>,
}

/// The master's process name.
pub const MASTER: &str = "master";

impl Plan {
    /// Works out the launch of `config`; hashes the files it ships.
    pub fn new(config: &ClusterConfig, opts: &LaunchOptions) -> Result<Plan, LaunchError> {
        let file = &config.path;
        let name_of = |p: &Path| {
            p.file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string)
                .ok_or_else(|| LaunchError::Config(format!("{}: not a file name", p.display())))
        };
        let cluster_file = name_of(file)?;
        let base = file.parent().unwrap_or(Path::new(""));
        let port = opts.daemon_port.unwrap_or(config.launch.daemon_port);
        let mut hosts: Vec<HostPlan> = Vec::new();
        let mut host_index = |host: &str| -> Result<usize, LaunchError> {
            if let Some(i) = hosts.iter().position(|h| h.host == host) {
                return Ok(i);
            }
            let addr = (host, port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| {
                    LaunchError::Config(format!(
                        "{}: host '{host}' does not resolve to an address",
                        file.display()
                    ))
                })?;
            hosts.push(HostPlan {
                host: host.to_string(),
                addr,
            });
            Ok(hosts.len() - 1)
        };
        // The application: `lockstep` (its demo, or its viewer with the scene), or the
        // program the cluster file names, started with the role as its first argument.
        let program = |role: &str| match &config.launch.program {
            Some(path) => (Program::Path(path.clone()), vec![role.to_string()]),
            None => (Program::Lockstep(role.into()), Vec::new()),
        };
        let scene: Vec<String> = match &config.launch.scene {
            Some(scene) => vec!["--scene".into(), scene.clone()],
            None => Vec::new(),
        };
        let mut procs = Vec::new();
        for n in &config.nodes {
            if n.name == MASTER {
                return Err(LaunchError::Config(format!(
                    "{}: node 'master' cannot be launched: that is the master's process name",
                    file.display()
                )));
            }
            let (program, mut args) = program("node");
            args.extend([
                "--config".to_string(),
                cluster_file.clone(),
                "--name".into(),
                n.name.clone(),
            ]);
            args.extend(scene.iter().cloned());
            if opts.offscreen {
                args.push("--offscreen".into());
            }
            if opts.no_render {
                args.extend(["--renderer".into(), "none".into()]);
            }
            if opts.hashes {
                args.extend(["--hash-out".into(), format!("hash-{}.txt", n.name)]);
            }
            procs.push(ProcPlan {
                name: n.name.clone(),
                host: host_index(&n.endpoint.host)?,
                program,
                args,
            });
        }
        let (program, mut args) = program("master");
        args.extend(["--config".to_string(), cluster_file.clone()]);
        args.extend(scene.iter().cloned());
        if let Some(f) = opts.frames {
            args.extend(["--frames".into(), f.to_string()]);
        }
        if let Some(f) = opts.fps {
            args.extend(["--fps".into(), f.to_string()]);
        }
        if opts.hashes {
            args.extend(["--hash-out".into(), format!("hash-{MASTER}.txt")]);
        }
        procs.push(ProcPlan {
            name: MASTER.into(),
            host: host_index(&config.master.host)?,
            program,
            args,
        });
        let mut plan = Plan {
            cluster: config.name.clone(),
            hosts,
            files: Vec::new(),
            procs,
        };
        for rel in std::iter::once(&cluster_file).chain(&config.launch.files) {
            plan.ship(base, rel)?;
        }
        Ok(plan)
    }

    /// Ships the file `rel` (below the cluster file's folder `base`, `/`-separated) to every
    /// host too, once.
    pub fn ship(&mut self, base: &Path, rel: &str) -> Result<(), LaunchError> {
        if self.files.iter().any(|f| f.entry.path == rel) {
            return Ok(());
        }
        let local = base.join(rel);
        let (digest, size) = digest_file(&local)
            .map_err(|e| LaunchError::file(&local, "cannot read a file the cluster needs", e))?;
        self.files.push(LocalFile {
            local,
            entry: FileEntry {
                path: rel.to_string(),
                digest,
                size,
            },
        });
        Ok(())
    }
}
