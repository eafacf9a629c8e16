/*!
Which copy of a file a node's setup reads. Without `[assets] send` it is the node's own, and
the master refuses the node if that copy differs from its own. With it, a node whose copy is
missing or differs reads the master's instead: fetched once over an asset connection into the
cache (`[assets] cache`), by digest, and found there at every later start, so a model is not
sent again. The node's own copy is never overwritten.

A glTF model is a unit: its file and the files it names beside it (buffers, images). If any
of them differs, the whole model is read from the cache, where its files keep their relative
names.
*/
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use lockstep_cluster::{AssetClient, AssetInfo, ClusterError};
use lockstep_launch::daemon::store::digest_file;
use lockstep_launch::protocol::hex;
use lockstep_wire::ClusterKey;

/// Fetches the master's copies of files a node's setup loads.
pub struct Fetcher {
    cluster: String,
    key: ClusterKey,
    master: std::net::SocketAddr,
    timeout: Duration,
    /// The asset connection, dialled when first needed.
    client: Option<AssetClient>,
    cache: PathBuf,
    max_bytes: u64,
}

impl Fetcher {
    /// A fetcher from the master of `cluster` at `master`, dialled within `timeout`, into
    /// `cache`, accepting files up to `max_bytes`.
    pub fn new(
        cluster: &str,
        key: ClusterKey,
        master: std::net::SocketAddr,
        timeout: Duration,
        cache: PathBuf,
        max_bytes: u64,
    ) -> Fetcher {
        Fetcher {
            cluster: cluster.to_string(),
            key,
            master,
            timeout,
            client: None,
            cache,
            max_bytes,
        }
    }

    /// The file to read for the glTF model the master loaded as `path`: `path` itself if it
    /// and every file it names match the master's, else the model's copy in the cache
    /// (fetched if it is not there yet).
    pub fn model(&mut self, path: &Path) -> Result<PathBuf> {
        let info = self.info(path)?;
        if same(path, &info) {
            let mut all_same = true;
            // The local file is the master's, so it names the same files.
            for file in beside(path)? {
                let theirs = self.info(&master_name(path, path, &file))?;
                if !same(&file, &theirs) {
                    all_same = false;
                    break;
                }
            }
            if all_same {
                return Ok(path.to_path_buf());
            }
        }
        let main = self.cached(path, &info)?;
        for file in beside(&main)? {
            let name = master_name(path, &main, &file);
            let theirs = self.info(&name)?;
            self.ensure(&file, &name, &theirs)?;
        }
        Ok(main)
    }

    /// The file to read for the file the master loaded as `path`: `path` itself if it is the
    /// master's, else its copy in the cache.
    pub fn file(&mut self, path: &Path) -> Result<PathBuf> {
        let info = self.info(path)?;
        if same(path, &info) {
            return Ok(path.to_path_buf());
        }
        self.cached(path, &info)
    }

    /// The cached copy of the master's `path` (of digest `info`), fetched if need be. Each
    /// version has its own folder, named by its digest, so versions never mix.
    fn cached(&mut self, path: &Path, info: &AssetInfo) -> Result<PathBuf> {
        let name = path
            .file_name()
            .with_context(|| format!("{} names no file", path.display()))?;
        let copy = self.cache.join(hex(&info.digest)).join(name);
        self.ensure(&copy, path, info)?;
        Ok(copy)
    }

    /// Makes `copy` hold the master's `name` (of digest `info`): kept if it already does,
    /// else fetched beside it and moved in place once its digest is checked.
    fn ensure(&mut self, copy: &Path, name: &Path, info: &AssetInfo) -> Result<()> {
        if same(copy, info) {
            tracing::debug!("{}: the cached copy is the master's", name.display());
            return Ok(());
        }
        let dir = copy.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        // Processes of one host may share the cache: each writes its own part, and the
        // rename puts one whole copy in place.
        let mut part = copy.as_os_str().to_owned();
        part.push(format!(".part{}", std::process::id()));
        let part = PathBuf::from(part);
        let fetched = self.fetch_to(name, &part);
        let result = fetched.and_then(|fetched| {
            let (digest, _) = digest_file(&part)
                .with_context(|| format!("cannot read {}", part.display()))?;
            if digest != fetched.digest {
                bail!(
                    "the master's {} arrived with SHA-256 {}, not the {} its setup loaded: it changed on the master after setup",
                    name.display(),
                    hex(&digest),
                    hex(&fetched.digest)
                );
            }
            if fetched.digest != info.digest {
                bail!("the master's {} changed while it was fetched", name.display());
            }
            std::fs::rename(&part, copy)
                .with_context(|| format!("cannot move {} to {}", part.display(), copy.display()))
        });
        if result.is_err() {
            let _ = std::fs::remove_file(&part);
        }
        result?;
        eprintln!(
            "fetched {} from the master ({} bytes) into {}",
            name.display(),
            info.size,
            copy.display()
        );
        Ok(())
    }

    fn fetch_to(&mut self, name: &Path, part: &Path) -> Result<AssetInfo> {
        let mut out = BufWriter::new(
            File::create(part).with_context(|| format!("cannot create {}", part.display()))?,
        );
        let max = self.max_bytes;
        let got = self.with_client(|c| c.fetch(&name.display().to_string(), max, &mut out))?;
        out.flush()
            .with_context(|| format!("cannot write {}", part.display()))?;
        Ok(got)
    }

    fn info(&mut self, path: &Path) -> Result<AssetInfo> {
        let name = path.display().to_string();
        self.with_client(|c| c.info(&name))
    }

    /// Runs `f` on the asset connection (dialled first if there is none); a failed request
    /// closes it, so the next one dials again.
    fn with_client<T>(
        &mut self,
        f: impl FnOnce(&mut AssetClient) -> Result<T, ClusterError>,
    ) -> Result<T> {
        let client = match &mut self.client {
            Some(c) => c,
            None => self.client.insert(
                AssetClient::connect(&self.cluster, self.key.clone(), self.master, self.timeout)
                    .context("cannot reach the master for the files of the application")?,
            ),
        };
        let result = f(client);
        if result.is_err() {
            self.client = None;
        }
        Ok(result?)
    }
}

/// The file `file` of the model read as `read`, named as the master (which read the model
/// as `path`) names it.
pub(super) fn master_name(path: &Path, read: &Path, file: &Path) -> PathBuf {
    let dir = read.parent().unwrap_or(Path::new(""));
    let rel = file.strip_prefix(dir).unwrap_or(file);
    path.parent().unwrap_or(Path::new("")).join(rel)
}

/// The files a model names beside it.
fn beside(path: &Path) -> Result<Vec<PathBuf>> {
    let mut files = lockstep_render::import::model_files(path)?;
    files.remove(0);
    Ok(files)
}

/// Whether the file at `path` holds the bytes of digest `info` (false if it is missing).
fn same(path: &Path, info: &AssetInfo) -> bool {
    digest_file(path).is_ok_and(|(d, n)| d == info.digest && n == info.size)
}
