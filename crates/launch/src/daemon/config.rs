/*!
What a daemon may do: `daemon.toml` and the command line's overrides.

```toml
listen = "0.0.0.0:7399"               # where launchers connect
cluster = "cave"                      # the cluster this daemon serves (part of the handshake)
key_file = "/etc/lockstep/cave.key"   # its key (or LOCKSTEP_KEY in the environment)
state_dir = "/var/lib/lockstep"       # file store and cluster workspaces
roles = ["node", "master"]            # subcommands of this lockstep binary that may run
programs = []                         # other programs, by absolute path
folders = []                          # working folders beyond the cluster workspaces
stop_on_disconnect = true             # stop a launcher's processes when it goes away
grace_ms = 3000                       # TERM, then KILL after this long
launcher_timeout_s = 15               # a launcher silent this long counts as gone
quota_mib = 16384                     # most file bytes of one launch, and being received at once
```
*/
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lockstep_wire::ClusterKey;
use serde::Deserialize;

use crate::LaunchError;

/// The default port of `lockstep daemon`.
pub const DEFAULT_PORT: u16 = 7399;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    listen: Option<String>,
    cluster: Option<String>,
    key_file: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    roles: Option<Vec<String>>,
    programs: Option<Vec<PathBuf>>,
    folders: Option<Vec<PathBuf>>,
    stop_on_disconnect: Option<bool>,
    grace_ms: Option<u64>,
    launcher_timeout_s: Option<u64>,
    quota_mib: Option<u64>,
}

/// Command-line values that override the file's.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--cluster`.
    pub cluster: Option<String>,
    /// `--key`.
    pub key_file: Option<PathBuf>,
    /// `--state-dir`.
    pub state_dir: Option<PathBuf>,
}

/// A daemon's settings, checked.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Listening address.
    pub listen: SocketAddr,
    /// The cluster it serves.
    pub cluster: String,
    /// The cluster key.
    pub key: ClusterKey,
    /// The key's text, handed to started processes in `LOCKSTEP_KEY`.
    pub key_text: Vec<u8>,
    /// Store and workspaces.
    pub state_dir: PathBuf,
    /// Subcommands of [`DaemonConfig::lockstep_exe`] that may run.
    pub roles: Vec<String>,
    /// Other programs that may run (canonical absolute paths).
    pub programs: Vec<PathBuf>,
    /// Extra working folders (canonical).
    pub folders: Vec<PathBuf>,
    /// Stop a launcher's processes when its connection ends.
    pub stop_on_disconnect: bool,
    /// Between TERM and KILL.
    pub grace: Duration,
    /// Silence after which a launcher counts as gone.
    pub launcher_timeout: Duration,
    /// The `lockstep` binary that `Program::Lockstep` runs.
    pub lockstep_exe: PathBuf,
    /// Most bytes of distinct files one cluster's manifest may lay out in its workspace.
    pub quota: u64,
}

impl DaemonConfig {
    /// Reads `file` (if any) and applies the overrides; every error names the file or flag.
    pub fn load(file: Option<&Path>, o: &Overrides) -> Result<DaemonConfig, LaunchError> {
        let raw: RawDaemon = match file {
            None => RawDaemon::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| LaunchError::file(path, "cannot read", e))?;
                toml::from_str(&text).map_err(|e| {
                    let line = e
                        .span()
                        .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
                    LaunchError::Config(format!(
                        "{}{}: {}",
                        path.display(),
                        line.map_or(String::new(), |l| format!(":{l}")),
                        e.message().trim()
                    ))
                })?
            }
        };
        // Where a value came from, for messages: the flag that overrode it, or the file's field.
        let from = |field: &str, flag: Option<&str>| match (flag, file) {
            (Some(flag), _) => format!("--{flag}"),
            (None, Some(p)) => format!("{} ({field})", p.display()),
            (None, None) => field.to_string(),
        };
        let key_flag = o.key_file.is_some().then_some("key");
        let listen_text = o
            .listen
            .clone()
            .or(raw.listen)
            .unwrap_or_else(|| format!("0.0.0.0:{DEFAULT_PORT}"));
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            LaunchError::Config(format!(
                "{}: '{listen_text}' is not ADDRESS:PORT (e.g. 0.0.0.0:{DEFAULT_PORT})",
                from("listen", o.listen.is_some().then_some("listen"))
            ))
        })?;
        let cluster = o.cluster.clone().or(raw.cluster).ok_or_else(|| {
            LaunchError::Config(
                "no cluster name: give --cluster NAME or `cluster` in the daemon file".into(),
            )
        })?;
        let (key, key_text) = match (&o.key_file, &raw.key_file, std::env::var_os("LOCKSTEP_KEY")) {
            (Some(p), _, _) | (None, Some(p), _) => {
                // Read once: the text goes to the children, the key checks launchers.
                let text = std::fs::read(p)
                    .map_err(|e| {
                        LaunchError::Config(format!(
                            "{}: cannot read {}: {e}",
                            from("key_file", key_flag),
                            p.display()
                        ))
                    })?
                    .trim_ascii()
                    .to_vec();
                let key = ClusterKey::new(text.clone()).map_err(|e| {
                    LaunchError::Config(format!(
                        "{}: {}: {e}",
                        from("key_file", key_flag),
                        p.display()
                    ))
                })?;
                (key, text)
            }
            (None, None, Some(k)) => {
                let text = k.into_encoded_bytes();
                let key = ClusterKey::new(text.clone())
                    .map_err(|e| LaunchError::Config(format!("LOCKSTEP_KEY: {e}")))?;
                (key, text)
            }
            (None, None, None) => {
                return Err(LaunchError::Config(
                    "no cluster key: give --key FILE, `key_file` in the daemon file, or LOCKSTEP_KEY"
                        .into(),
                ));
            }
        };
        let state_dir = o
            .state_dir
            .clone()
            .or(raw.state_dir)
            .unwrap_or_else(default_state_dir);
        let roles = raw
            .roles
            .unwrap_or_else(|| vec!["node".into(), "master".into()]);
        for r in &roles {
            if !matches!(r.as_str(), "node" | "master") {
                return Err(LaunchError::Config(format!(
                    "{}: role '{r}' cannot be started by a daemon (node, master)",
                    from("roles", None)
                )));
            }
        }
        let canonical = |p: &PathBuf, what: &str| {
            if !p.is_absolute() {
                return Err(LaunchError::Config(format!(
                    "{}: '{}' is not an absolute path",
                    from(what, None),
                    p.display()
                )));
            }
            p.canonicalize().map_err(|e| {
                LaunchError::Config(format!("{}: '{}': {e}", from(what, None), p.display()))
            })
        };
        let programs = raw
            .programs
            .unwrap_or_default()
            .iter()
            .map(|p| canonical(p, "programs"))
            .collect::<Result<_, _>>()?;
        let folders = raw
            .folders
            .unwrap_or_default()
            .iter()
            .map(|p| canonical(p, "folders"))
            .collect::<Result<_, _>>()?;
        let lockstep_exe = std::env::current_exe()
            .map_err(|e| LaunchError::Config(format!("cannot find this program's path: {e}")))?;
        Ok(DaemonConfig {
            listen,
            cluster,
            key,
            key_text,
            state_dir,
            roles,
            programs,
            folders,
            stop_on_disconnect: raw.stop_on_disconnect.unwrap_or(true),
            grace: Duration::from_millis(raw.grace_ms.unwrap_or(3000).clamp(10, 600_000)),
            launcher_timeout: Duration::from_secs(
                raw.launcher_timeout_s.unwrap_or(15).clamp(3, 3600),
            ),
            lockstep_exe,
            quota: raw.quota_mib.unwrap_or(16 * 1024).clamp(1, 1 << 30) << 20,
        })
    }
}

/// `/var/lib/lockstep` for root, else `~/.local/share/lockstep`.
fn default_state_dir() -> PathBuf {
    if nix::unistd::Uid::effective().is_root() {
        return PathBuf::from("/var/lib/lockstep");
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".local/share/lockstep"))
        .unwrap_or_else(|| std::env::temp_dir().join("lockstep"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packaged_daemon_file_loads() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        std::fs::write(&key, "0123456789abcdef0123456789abcdef\n").unwrap();
        let file = dir.path().join("daemon.toml");
        std::fs::write(&file, include_str!("../../../../packaging/daemon.toml")).unwrap();
        // Only the key file is elsewhere on this machine.
        let o = Overrides {
            key_file: Some(key),
            ..Default::default()
        };
        let c = DaemonConfig::load(Some(&file), &o).unwrap();
        assert_eq!(c.cluster, "cave");
        assert_eq!(c.listen.port(), DEFAULT_PORT);
        assert_eq!(c.key_text, b"0123456789abcdef0123456789abcdef");
        assert_eq!(c.grace, Duration::from_millis(3000));
    }

    #[test]
    fn a_daemon_file_error_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        std::fs::write(&key, "0123456789abcdef0123456789abcdef").unwrap();
        let file = dir.path().join("daemon.toml");
        std::fs::write(
            &file,
            format!(
                "cluster = 'cave'\nkey_file = '{}'\nroles = ['node', 'shell']\n",
                key.display()
            ),
        )
        .unwrap();
        let e = DaemonConfig::load(Some(&file), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("daemon.toml (roles): role 'shell' cannot be started"),
            "{e}"
        );
        std::fs::write(&file, "cluster = 'cave'\nlisten = 7\nbogus = 1\n").unwrap();
        let e = DaemonConfig::load(Some(&file), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("daemon.toml:2"), "{e}");
        std::fs::write(
            &file,
            format!(
                "cluster = 'cave'\nkey_file = '{}'\nprograms = ['bin/x']\n",
                key.display()
            ),
        )
        .unwrap();
        let e = DaemonConfig::load(Some(&file), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("'bin/x' is not an absolute path"), "{e}");
        let o = Overrides {
            listen: Some("nowhere".into()),
            ..Default::default()
        };
        std::fs::write(
            &file,
            format!("cluster = 'cave'\nkey_file = '{}'\n", key.display()),
        )
        .unwrap();
        let e = DaemonConfig::load(Some(&file), &o).unwrap_err().to_string();
        assert!(e.contains("'nowhere' is not ADDRESS:PORT"), "{e}");
        let ok = DaemonConfig::load(Some(&file), &Overrides::default()).unwrap();
        assert_eq!(
            (ok.roles.len(), ok.stop_on_disconnect, ok.listen.port()),
            (2, true, DEFAULT_PORT)
        );
    }
}
