/*!
What a started built-in role may touch: every path its arguments name must lie inside the
cluster's workspace (or a working folder the daemon's owner allowed), after symlinks. A key
holder can start `lockstep node`, but not make it write `--hash-out /etc/cron.d/x` or stream
back `--config /etc/passwd`.

Programs from the `programs` allow-list get their arguments as given: their owner vouched for
them.
*/
use std::path::{Path, PathBuf};

/// Flags of the built-in roles (`lockstep node`, `lockstep master`) whose value is a path the
/// process reads or writes. `lockstep`'s own tests check that this list covers every path
/// flag of those subcommands.
pub const PATH_FLAGS: &[&str] = &[
    "--config",
    "--out",
    "--hash-out",
    "--views-out",
    "--stats-out",
    "--scene",
    "--record",
    "--replay",
    "--image-hashes",
];

/// Checks a built-in role's arguments: each path flag's value, resolved from `dir` (the
/// process's working folder), must lie inside one of `roots` (canonical folders).
pub fn check_role_args(args: &[String], dir: &Path, roots: &[PathBuf]) -> Result<(), String> {
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let (flag, value) = match arg.split_once('=') {
            Some((flag, value)) if PATH_FLAGS.contains(&flag) => (flag, value),
            _ if PATH_FLAGS.contains(&arg.as_str()) => {
                i += 1;
                let Some(value) = args.get(i) else {
                    return Err(format!("{arg} needs a path"));
                };
                (arg.as_str(), value.as_str())
            }
            _ => {
                i += 1;
                continue;
            }
        };
        // `..` is refused outright: after a folder that does not exist yet it could not be
        // resolved, and the process may create that folder before it writes.
        if Path::new(value)
            .components()
            .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(format!(
                "{flag} '{value}' contains '..'; paths given to a started role must stay inside the cluster's workspace"
            ));
        }
        let resolved = resolve(&dir.join(value));
        if !roots.iter().any(|r| resolved.starts_with(r)) {
            return Err(format!(
                "{flag} '{value}' is outside the cluster's workspace (it resolves to {}); paths given to a started role must stay inside it",
                resolved.display()
            ));
        }
        i += 1;
    }
    Ok(())
}

/// `path` with every symlink followed: those of its longest existing prefix by the system,
/// dangling ones by hand (writing through one would create its target), and the parts that
/// do not exist yet appended by name (`file_name` never yields `..`).
fn resolve(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    let mut hops = 0;
    let base = loop {
        if let Ok(c) = existing.canonicalize() {
            break c;
        }
        let dangling = existing
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink());
        if dangling && hops < 40 {
            if let Ok(target) = std::fs::read_link(&existing) {
                hops += 1;
                let parent = existing.parent().unwrap_or(Path::new("/")).to_path_buf();
                existing = parent.join(target);
                continue;
            }
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            // The root, or a path that cannot be resolved: compared as it is.
            _ => break existing.clone(),
        }
    };
    let mut out = base;
    for part in rest.iter().rev() {
        out.push(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn paths_inside_the_workspace_pass_and_every_escape_is_refused_with_its_flag() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("clusters/cave");
        std::fs::create_dir_all(ws.join("out")).unwrap();
        std::fs::write(ws.join("cave.toml"), "").unwrap();
        let ws = ws.canonicalize().unwrap();
        std::os::unix::fs::symlink("/etc", ws.join("etc-link")).unwrap();
        std::os::unix::fs::symlink("/tmp/elsewhere", ws.join("dangling")).unwrap();
        let roots = [ws.clone()];
        let ok = args(&[
            "--config",
            "cave.toml",
            "--name",
            "front",
            "--out=out",
            "--hash-out",
            "out/new/h.txt",
            "--stats-out",
            &ws.join("s.json").display().to_string(),
        ]);
        check_role_args(&ok, &ws, &roots).unwrap();
        for (bad, flag) in [
            (&["--hash-out", "/tmp/x"][..], "--hash-out '/tmp/x'"),
            (&["--config", "/etc/passwd"], "--config '/etc/passwd'"),
            (
                &["--config=../../../etc/passwd"],
                "--config '../../../etc/passwd'",
            ),
            (
                &["--views-out", "etc-link/cron.d/x"],
                "--views-out 'etc-link/cron.d/x'",
            ),
            (&["--out", "dangling"], "--out 'dangling'"),
            (&["--stats-out", "out/../../x"], "--stats-out 'out/../../x'"),
        ] {
            let err = check_role_args(&args(bad), &ws, &roots).unwrap_err();
            assert!(
                err.starts_with(flag)
                    && (err.contains("outside the cluster's workspace") || err.contains("'..'")),
                "{err}"
            );
        }
        assert_eq!(
            check_role_args(&args(&["--config"]), &ws, &roots).unwrap_err(),
            "--config needs a path"
        );
    }
}
