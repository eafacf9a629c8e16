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
use sha2::{Digest, Sha256};

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
    /// and every file it names match the master's, else the model's copy in the cache, put
    /// together from the node's matching files and the master's for the others.
    pub fn model(&mut self, path: &Path) -> Result<PathBuf> {
        let info = self.info(path)?;
        let here = same(path, &info);
        // The file that names the others: the node's own if it is the master's.
        let main = if here {
            path.to_path_buf()
        } else {
            self.cached(path, &info)?
        };
        let dir = main.parent().unwrap_or(Path::new(""));
        let mut parts = Vec::new();
        for file in beside(&main)? {
            let rel = file.strip_prefix(dir).unwrap_or(&file).to_path_buf();
            let theirs = self.info(&master_name(path, &main, &file))?;
            parts.push((rel, theirs));
        }
        let own = |rel: &Path| path.parent().unwrap_or(Path::new("")).join(rel);
        if here && parts.iter().all(|(rel, theirs)| same(&own(rel), theirs)) {
            return Ok(path.to_path_buf());
        }
        if parts.is_empty() {
            return Ok(main);
        }
        // The model's own folder, named by the digests of all its files, so that two models
        // sharing a file name (or their first file) never mix.
        let mut key = Sha256::new();
        key.update(info.digest);
        for (rel, theirs) in &parts {
            key.update(rel.as_os_str().as_encoded_bytes());
            key.update([0]);
            key.update(theirs.digest);
        }
        let folder = self.cache.join(hex(&key.finalize().into()));
        let name = path
            .file_name()
            .with_context(|| format!("{} names no file", path.display()))?;
        let copy = folder.join(name);
        self.ensure(&copy, path, &info, Some(&main))?;
        for (rel, theirs) in &parts {
            let master = master_name(path, path, &own(rel));
            self.ensure(&folder.join(rel), &master, theirs, Some(&own(rel)))?;
        }
        Ok(copy)
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

    /// The cached copy of the master's `path` (of digest `info`), fetched if need be, in a
    /// folder named by its digest.
    fn cached(&mut self, path: &Path, info: &AssetInfo) -> Result<PathBuf> {
        let name = path
            .file_name()
            .with_context(|| format!("{} names no file", path.display()))?;
        let copy = self.cache.join(hex(&info.digest)).join(name);
        self.ensure(&copy, path, info, None)?;
        Ok(copy)
    }

    /// Makes `copy` hold the master's `name` (of digest `info`): kept if it already does,
    /// else copied from `from` if that holds it, else fetched; written beside it under a
    /// name of its own and moved in place once its digest is checked.
    fn ensure(
        &mut self,
        copy: &Path,
        name: &Path,
        info: &AssetInfo,
        from: Option<&Path>,
    ) -> Result<()> {
        if same(copy, info) {
            return Ok(());
        }
        let dir = copy.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        // Processes of one host, or of several sharing the folder, may fill the cache at
        // once: each writes its own part file, and the rename puts one whole copy in place.
        let mut part = tempfile::Builder::new()
            .prefix(".part-")
            .tempfile_in(dir)
            .with_context(|| format!("cannot create a file in {}", dir.display()))?;
        let fetched = match from {
            Some(from) if same(from, info) => {
                let mut src =
                    File::open(from).with_context(|| format!("cannot read {}", from.display()))?;
                std::io::copy(&mut src, part.as_file_mut())
                    .with_context(|| format!("cannot copy {} into the cache", from.display()))?;
                false
            }
            _ => {
                let mut out = BufWriter::new(part.as_file_mut());
                let max = self.max_bytes;
                let got =
                    self.with_client(|c| c.fetch(&name.display().to_string(), max, &mut out))?;
                out.flush()
                    .with_context(|| format!("cannot write into {}", dir.display()))?;
                drop(out);
                if got.digest != info.digest {
                    bail!(
                        "the master's {} changed while it was fetched",
                        name.display()
                    );
                }
                true
            }
        };
        let (digest, size) = digest_file(part.path())
            .with_context(|| format!("cannot read {}", part.path().display()))?;
        if digest != info.digest {
            bail!(
                "the master's {} arrived with SHA-256 {}, not the {} its setup loaded",
                name.display(),
                hex(&digest),
                hex(&info.digest)
            );
        }
        part.persist(copy)
            .with_context(|| format!("cannot move a file to {}", copy.display()))?;
        if fetched {
            eprintln!(
                "fetched {} from the master ({size} bytes) into {}",
                name.display(),
                copy.display()
            );
        }
        Ok(())
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
    digest_file(path).is_ok_and(|(d, _)| d == info.digest)
}
