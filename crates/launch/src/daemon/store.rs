/*!
The daemon's content-addressed file store: every file a launcher ships is kept once, under its
SHA-256 (`objects/<hex>`), and each cluster's workspace (`clusters/<name>/`) is laid out from
those objects. A launcher only sends what the store lacks, so a second launch with unchanged
files sends no file bytes at all.

A manifest's distinct files must fit the daemon's quota, and each distinct file is copied into
the workspace once: further names of the same content are hard links to that copy, so 4,096
names of one object cost one object's bytes, not 4,096.
*/
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::protocol::{
    Digest, FileEntry, MAX_FILE_SIZE, MAX_FILES, check_name, check_relative_path, hex,
};

/// The store's folder.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// Most bytes of distinct files one manifest may lay out.
    quota: u64,
}

/// A file being received.
struct Partial {
    tmp: PathBuf,
    file: File,
    hasher: Sha256,
    written: u64,
    size: u64,
}

/// One launcher's sync: its manifest, and the files it still has to send.
#[derive(Default)]
pub struct Sync {
    cluster: String,
    files: Vec<FileEntry>,
    sizes: HashMap<Digest, u64>,
    partial: HashMap<Digest, Partial>,
    /// File bytes received so far.
    pub received: u64,
}

impl Store {
    /// Opens (creating) the store at `root`; a manifest's distinct files may take `quota`
    /// bytes.
    pub fn open(root: &Path, quota: u64) -> Result<Store, String> {
        for sub in ["objects", "clusters", "tmp"] {
            std::fs::create_dir_all(root.join(sub))
                .map_err(|e| format!("cannot create {}: {e}", root.join(sub).display()))?;
        }
        let root = root
            .canonicalize()
            .map_err(|e| format!("{}: {e}", root.display()))?;
        Ok(Store { root, quota })
    }

    fn object(&self, d: &Digest) -> PathBuf {
        self.root.join("objects").join(hex(d))
    }

    /// The workspace folder of `cluster` (a valid cluster name).
    pub fn workspace(&self, cluster: &str) -> Result<PathBuf, String> {
        check_name("cluster", cluster)?;
        Ok(self.root.join("clusters").join(cluster))
    }

    /// Starts a sync of `files` for `cluster`; returns it and the digests the store lacks.
    pub fn begin(
        &self,
        cluster: &str,
        files: Vec<FileEntry>,
    ) -> Result<(Sync, Vec<Digest>), String> {
        self.workspace(cluster)?;
        if files.len() > MAX_FILES {
            return Err(format!("{} files: at most {MAX_FILES}", files.len()));
        }
        let mut sizes = HashMap::new();
        let mut paths = std::collections::HashSet::new();
        for f in &files {
            check_relative_path(&f.path)?;
            if !paths.insert(f.path.as_str()) {
                return Err(format!("{}: named twice in the manifest", f.path));
            }
            if f.size > MAX_FILE_SIZE {
                return Err(format!(
                    "{}: {} bytes is over the limit of {MAX_FILE_SIZE}",
                    f.path, f.size
                ));
            }
            if sizes.insert(f.digest, f.size).is_some_and(|s| s != f.size) {
                return Err(format!("{}: one digest with two sizes", f.path));
            }
        }
        let total: u64 = sizes.values().sum();
        if total > self.quota {
            return Err(format!(
                "the files take {total} bytes, over this daemon's quota of {} bytes per cluster (quota_mib in its daemon file)",
                self.quota
            ));
        }
        let mut missing = Vec::new();
        for (d, size) in &sizes {
            if self.object(d).is_file() {
                continue;
            }
            if *size == 0 {
                // Nothing to send: the empty file's digest is its content.
                let empty: Digest = Sha256::digest([]).into();
                if *d != empty {
                    return Err(format!("an empty file cannot have digest {}", hex(d)));
                }
                File::create(self.object(d)).map_err(|e| format!("cannot write the store: {e}"))?;
                continue;
            }
            missing.push(*d);
        }
        missing.sort();
        let sync = Sync {
            cluster: cluster.to_string(),
            files,
            sizes,
            partial: HashMap::new(),
            received: 0,
        };
        Ok((sync, missing))
    }

    /// Takes one chunk of a missing file; the file enters the store when its last byte has
    /// arrived and its digest matches.
    pub fn chunk(
        &self,
        sync: &mut Sync,
        digest: Digest,
        offset: u64,
        bytes: &[u8],
    ) -> Result<(), String> {
        let Some(&size) = sync.sizes.get(&digest) else {
            return Err(format!(
                "chunk of {} which the manifest does not name",
                hex(&digest)
            ));
        };
        if self.object(&digest).is_file() {
            return Err(format!(
                "chunk of {} which the store already has",
                hex(&digest)
            ));
        }
        let partial = match sync.partial.entry(digest) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let tmp =
                    self.root
                        .join("tmp")
                        .join(format!("{}.{}", hex(&digest), std::process::id()));
                let file = File::create(&tmp)
                    .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
                v.insert(Partial {
                    tmp,
                    file,
                    hasher: Sha256::new(),
                    written: 0,
                    size,
                })
            }
        };
        if offset != partial.written {
            return Err(format!(
                "chunk of {} at offset {offset}, expected {}",
                hex(&digest),
                partial.written
            ));
        }
        if partial.written + bytes.len() as u64 > partial.size {
            return Err(format!(
                "{} is longer than the {} bytes announced",
                hex(&digest),
                partial.size
            ));
        }
        partial
            .file
            .write_all(bytes)
            .map_err(|e| format!("cannot write {}: {e}", partial.tmp.display()))?;
        partial.hasher.update(bytes);
        partial.written += bytes.len() as u64;
        sync.received += bytes.len() as u64;
        if partial.written == partial.size {
            let done = sync.partial.remove(&digest).expect("present");
            let got: Digest = done.hasher.finalize().into();
            if got != digest {
                let _ = std::fs::remove_file(&done.tmp);
                return Err(format!(
                    "file announced as {} arrived as {}",
                    hex(&digest),
                    hex(&got)
                ));
            }
            done.file
                .sync_all()
                .map_err(|e| format!("cannot write {}: {e}", done.tmp.display()))?;
            std::fs::rename(&done.tmp, self.object(&digest))
                .map_err(|e| format!("cannot store {}: {e}", hex(&digest)))?;
        }
        Ok(())
    }

    /// Lays the manifest's files out in the cluster's workspace; an error names the first
    /// file still missing.
    pub fn commit(&self, sync: &Sync) -> Result<PathBuf, String> {
        let ws = self.workspace(&sync.cluster)?;
        // Where each distinct file was laid out: its other names link to that copy.
        let mut laid: HashMap<Digest, PathBuf> = HashMap::new();
        for f in &sync.files {
            let object = self.object(&f.digest);
            if !object.is_file() {
                return Err(format!("{} ({}) was never sent", f.path, hex(&f.digest)));
            }
            let dest = ws.join(&f.path);
            if let Some(dir) = dest.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            // A copy of the store's object, not a link: a process that edits its file must
            // not change the store. Names of the same content share one copy.
            let tmp = dest.with_extension("lockstep-tmp");
            let _ = std::fs::remove_file(&tmp);
            match laid.get(&f.digest) {
                Some(first) => std::fs::hard_link(first, &tmp)
                    .map_err(|e| format!("cannot link {}: {e}", tmp.display()))?,
                None => {
                    std::fs::copy(&object, &tmp)
                        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
                }
            }
            std::fs::rename(&tmp, &dest)
                .map_err(|e| format!("cannot write {}: {e}", dest.display()))?;
            laid.entry(f.digest).or_insert(dest);
        }
        Ok(ws)
    }
}

impl std::fmt::Debug for Sync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sync")
            .field("cluster", &self.cluster)
            .field("files", &self.files.len())
            .field("receiving", &self.partial.len())
            .field("received", &self.received)
            .finish()
    }
}

impl Drop for Sync {
    fn drop(&mut self) {
        for p in self.partial.values() {
            let _ = std::fs::remove_file(&p.tmp);
        }
    }
}

/// SHA-256 and size of a local file.
pub fn digest_file(path: &Path) -> std::io::Result<(Digest, u64)> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        match std::io::Read::read(&mut f, &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                h.update(&buf[..n]);
                size += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((h.finalize().into(), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, bytes: &[u8]) -> FileEntry {
        FileEntry {
            path: path.into(),
            digest: Sha256::digest(bytes).into(),
            size: bytes.len() as u64,
        }
    }

    #[test]
    fn only_files_the_store_lacks_are_asked_for_and_a_wrong_digest_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 30).unwrap();
        let a = entry("cave.toml", b"name = 'cave'");
        let b = entry("models/room.glb", b"glTF....");
        let e = entry("empty", b"");
        let (mut sync, missing) = store.begin("cave", vec![a.clone(), b.clone(), e]).unwrap();
        let mut want = vec![a.digest, b.digest];
        want.sort();
        assert_eq!(missing, want);
        // Out of order, too long, or not in the manifest: refused.
        assert!(
            store
                .chunk(&mut sync, a.digest, 3, b"x")
                .unwrap_err()
                .contains("expected 0")
        );
        assert!(
            store
                .chunk(&mut sync, [7; 32], 0, b"x")
                .unwrap_err()
                .contains("does not name")
        );
        store.chunk(&mut sync, a.digest, 0, b"name = ").unwrap();
        store.chunk(&mut sync, a.digest, 7, b"'cave'").unwrap();
        assert!(store.commit(&sync).unwrap_err().contains("models/room.glb"));
        store.chunk(&mut sync, b.digest, 0, b"glTF....").unwrap();
        assert_eq!(sync.received, 21);
        let ws = store.commit(&sync).unwrap();
        assert_eq!(
            std::fs::read(ws.join("models/room.glb")).unwrap(),
            b"glTF...."
        );
        assert_eq!(std::fs::read(ws.join("empty")).unwrap(), b"");
        // Again: nothing missing.
        let (_, missing) = store.begin("cave", vec![a, b.clone()]).unwrap();
        assert!(missing.is_empty());
        // Bytes that do not match their digest never enter the store.
        let liar = FileEntry {
            path: "x".into(),
            digest: [1; 32],
            size: 3,
        };
        let (mut sync, _) = store.begin("cave", vec![liar]).unwrap();
        let err = store.chunk(&mut sync, [1; 32], 0, b"abc").unwrap_err();
        assert!(err.contains("arrived as"), "{err}");
        assert!(!store.object(&[1; 32]).exists());
    }

    #[test]
    fn bad_manifests_are_refused_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 30).unwrap();
        let mut up = entry("../up", b"x");
        assert!(
            store
                .begin("cave", vec![up.clone()])
                .unwrap_err()
                .contains("'..'")
        );
        up.path = "ok".into();
        assert!(
            store
                .begin("../cave", vec![up.clone()])
                .unwrap_err()
                .contains("cluster name")
        );
        up.size = MAX_FILE_SIZE + 1;
        assert!(
            store
                .begin("cave", vec![up])
                .unwrap_err()
                .contains("over the limit")
        );
    }

    #[test]
    fn many_names_of_one_file_take_its_bytes_once_and_the_quota_holds() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 100_000).unwrap();
        let body = vec![7u8; 65_536];
        let names: Vec<FileEntry> = (0..4096).map(|i| entry(&format!("d/{i}"), &body)).collect();
        let (mut sync, missing) = store.begin("cave", names.clone()).unwrap();
        assert_eq!(missing.len(), 1);
        store.chunk(&mut sync, missing[0], 0, &body).unwrap();
        let ws = store.commit(&sync).unwrap();
        let (first, last) = (
            std::fs::metadata(ws.join("d/0")).unwrap(),
            std::fs::metadata(ws.join("d/4095")).unwrap(),
        );
        assert_eq!(std::fs::read(ws.join("d/4095")).unwrap(), body);
        // One copy in the workspace, linked 4,096 times; the store's object apart from it.
        assert_eq!((first.ino(), first.nlink()), (last.ino(), 4096));
        let object = std::fs::metadata(store.object(&missing[0])).unwrap();
        assert_ne!(object.ino(), first.ino());
        // Two distinct files of 64 KiB are over a quota of 100,000 bytes.
        let other = entry("e", &[8u8; 65_536]);
        let err = store
            .begin("cave", vec![names[0].clone(), other])
            .unwrap_err();
        assert_eq!(
            err,
            "the files take 131072 bytes, over this daemon's quota of 100000 bytes per cluster (quota_mib in its daemon file)"
        );
    }
}
