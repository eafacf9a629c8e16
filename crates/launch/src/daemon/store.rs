/*!
The daemon's content-addressed file store: every file a launcher ships is kept once, under its
SHA-256 (`objects/<hex>`), and each cluster's workspace (`clusters/<name>/`) is laid out from
those objects. A launcher only sends what the store lacks, so a second launch with unchanged
files sends no file bytes at all.

Disk use is bounded, whatever key holders send, by three times the quota (plus what the
started processes write themselves):
- a manifest's distinct files must fit the quota, and each is copied into the workspace once
  (further names of the same content are hard links to that copy);
- the objects that syncs in progress hold and no commit has recorded (being received, or
  received and not committed) must fit the quota together;
- each commit records what it lays out (`records/<name>`), removes from the workspace what
  the previous commit laid out and this one does not name, and every finished sync (committed
  or abandoned) removes the objects no record names and no sync still uses.

The daemon creates workspace folders one at a time and never follows a symlink there, so a
link a started process left in the workspace cannot send its writes elsewhere. One daemon owns
a store: it holds a lock on `lock` in it while it runs.
*/
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest as _, Sha256};

use crate::protocol::{
    Digest, FileEntry, MAX_FILE_SIZE, MAX_FILES, check_name, check_relative_path, hex,
};

/// The store's folder.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// Most bytes of distinct files one manifest may lay out, and most bytes being received at
    /// once.
    quota: u64,
    /// What the syncs in progress hold, shared by every connection's.
    books: Arc<Mutex<Books>>,
    /// Held while the daemon runs, so that no second daemon collects this store's objects.
    _lock: Arc<Flock<File>>,
}

/// What the store's objects are kept for. Every change to it, and every collection, happens
/// under its lock.
#[derive(Debug, Default)]
struct Books {
    /// Objects that syncs in progress name: how many syncs do, and the object's size. Never
    /// collected.
    pinned: HashMap<Digest, (usize, u64)>,
    /// Per cluster, the objects its record names (what its workspace was laid out from).
    recorded: HashMap<String, HashSet<Digest>>,
}

impl Books {
    fn is_recorded(&self, d: &Digest) -> bool {
        self.recorded.values().any(|r| r.contains(d))
    }

    /// Bytes that syncs hold and no record names: received, or to be received, for a commit
    /// still to come.
    fn unrecorded(&self) -> u64 {
        self.pinned
            .iter()
            .filter(|(d, _)| !self.is_recorded(d))
            .map(|(_, (_, size))| size)
            .sum()
    }
}

/// Names each sync's temporary files apart from every other's.
static NEXT_TMP: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A file being received.
struct Partial {
    tmp: PathBuf,
    file: File,
    hasher: Sha256,
    written: u64,
    size: u64,
}

/// One launcher's sync: its manifest, and the files it still has to send. Dropping it (once
/// committed, or abandoned) releases what it held and collects unneeded objects.
pub struct Sync {
    store: Store,
    cluster: String,
    files: Vec<FileEntry>,
    sizes: HashMap<Digest, u64>,
    partial: HashMap<Digest, Partial>,
    /// File bytes received so far.
    pub received: u64,
}

impl Store {
    /// Opens (creating) the store at `root`; a manifest's distinct files may take `quota`
    /// bytes. Fails if another daemon has it open.
    pub fn open(root: &Path, quota: u64) -> Result<Store, String> {
        for sub in ["objects", "clusters", "records", "tmp"] {
            std::fs::create_dir_all(root.join(sub))
                .map_err(|e| format!("cannot create {}: {e}", root.join(sub).display()))?;
        }
        let root = root
            .canonicalize()
            .map_err(|e| format!("{}: {e}", root.display()))?;
        let lock_path = root.join("lock");
        let lock = File::create(&lock_path)
            .map_err(|e| format!("cannot create {}: {e}", lock_path.display()))?;
        let lock = Flock::lock(lock, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
            if e == nix::errno::Errno::EWOULDBLOCK {
                format!(
                    "{} is in use by another daemon (state_dir must differ per daemon)",
                    root.display()
                )
            } else {
                format!("cannot lock {}: {e}", lock_path.display())
            }
        })?;
        // Left by a daemon that was killed while receiving: no sync can own them now.
        if let Ok(dir) = std::fs::read_dir(root.join("tmp")) {
            for e in dir.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let store = Store {
            root,
            quota,
            books: Arc::default(),
            _lock: Arc::new(lock),
        };
        let records = store.root.join("records");
        let entries = std::fs::read_dir(&records)
            .map_err(|e| format!("cannot read {}: {e}", records.display()))?;
        for e in entries.flatten() {
            let Some(cluster) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if check_name("cluster", &cluster).is_err() {
                continue; // a temporary file of a record being written when the daemon died
            }
            let digests = store.recorded(&cluster)?.iter().map(|f| f.digest).collect();
            store.books().recorded.insert(cluster, digests);
        }
        store.collect();
        Ok(store)
    }

    fn object(&self, d: &Digest) -> PathBuf {
        self.root.join("objects").join(hex(d))
    }

    /// The workspace folder of `cluster` (a valid cluster name).
    pub fn workspace(&self, cluster: &str) -> Result<PathBuf, String> {
        check_name("cluster", cluster)?;
        Ok(self.root.join("clusters").join(cluster))
    }

    /// Where the last commit for `cluster` recorded what it laid out.
    fn record(&self, cluster: &str) -> PathBuf {
        self.root.join("records").join(cluster)
    }

    fn books(&self) -> MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|p| p.into_inner())
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
        let mut paths = HashSet::new();
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
        // Checked and pinned under one lock, so that no collection removes an object
        // between finding it present and pinning it.
        let mut books = self.books();
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
        // Whatever this sync would hold that no record names and no other sync holds yet.
        let adds: u64 = sizes
            .iter()
            .filter(|(d, _)| !books.pinned.contains_key(*d) && !books.is_recorded(d))
            .map(|(_, size)| size)
            .sum();
        let held = books.unrecorded();
        if held + adds > self.quota {
            return Err(format!(
                "these files add {adds} bytes to the {held} that other launchers are sending or have not committed: together over this daemon's quota of {} bytes (quota_mib in its daemon file); try again when they are done",
                self.quota
            ));
        }
        for (d, size) in &sizes {
            books.pinned.entry(*d).or_insert((0, *size)).0 += 1;
        }
        drop(books);
        let sync = Sync {
            store: self.clone(),
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
            // Another launcher's sync finished it meanwhile: nothing more to receive.
            if let Some(p) = sync.partial.remove(&digest) {
                let _ = std::fs::remove_file(&p.tmp);
            }
            sync.received += bytes.len() as u64;
            return Ok(());
        }
        let partial = match sync.partial.entry(digest) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let n = NEXT_TMP.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let tmp = self.root.join("tmp").join(format!("{}.{n}", hex(&digest)));
                let file = File::options()
                    .write(true)
                    .create_new(true)
                    .open(&tmp)
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

    /// Lays the manifest's files out in the cluster's workspace, in place of what the last
    /// commit laid out, and records them; an error names the first file still missing.
    pub fn commit(&self, sync: &Sync) -> Result<PathBuf, String> {
        let ws = self.workspace(&sync.cluster)?;
        make_folders(&self.root, &ws)?;
        if let Some(f) = sync
            .files
            .iter()
            .find(|f| !self.object(&f.digest).is_file())
        {
            return Err(format!("{} ({}) was never sent", f.path, hex(&f.digest)));
        }
        // Until the layout is done the record names the old files and the new: a commit that
        // fails half-way leaves nothing that the next one would not clean up.
        let old = self.recorded(&sync.cluster)?;
        let both: Vec<FileEntry> = old.iter().chain(&sync.files).cloned().collect();
        self.write_record(&sync.cluster, &both)?;
        // What the last commit laid out and this one does not name goes first (it may be a
        // file where this manifest wants a folder).
        let keep: HashSet<&str> = sync.files.iter().map(|f| f.path.as_str()).collect();
        for f in old.iter().filter(|f| !keep.contains(f.path.as_str())) {
            remove_laid_out(&ws, &f.path)?;
        }
        // Where each distinct file was laid out: its other names link to that copy.
        let mut laid: HashMap<Digest, PathBuf> = HashMap::new();
        for f in &sync.files {
            let dest = ws.join(&f.path);
            if let Some(dir) = dest.parent() {
                make_folders(&ws, dir)?;
            }
            // A copy of the store's object, not a link: a process that edits its file must
            // not change the store. Names of the same content share one copy. The
            // temporary name is created anew (never opened through a link), and the rename
            // replaces whatever is at `dest`, a link included, without following it.
            let tmp = dest.with_extension("lockstep-tmp");
            let _ = std::fs::remove_file(&tmp);
            match laid.get(&f.digest) {
                Some(first) => std::fs::hard_link(first, &tmp)
                    .map_err(|e| format!("cannot link {}: {e}", tmp.display()))?,
                None => copy_new(&self.object(&f.digest), &tmp)?,
            }
            std::fs::rename(&tmp, &dest)
                .map_err(|e| format!("cannot write {}: {e}", dest.display()))?;
            laid.entry(f.digest).or_insert(dest);
        }
        self.write_record(&sync.cluster, &sync.files)?;
        Ok(ws)
    }

    /// What the last commit for `cluster` laid out (nothing, if none did).
    fn recorded(&self, cluster: &str) -> Result<Vec<FileEntry>, String> {
        let path = self.record(cluster);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        postcard::from_bytes(&bytes).map_err(|e| {
            format!(
                "{} is damaged ({e}); remove it and the workspace clusters/{cluster} to start afresh",
                path.display()
            )
        })
    }

    /// Writes `cluster`'s record, on disk and in the books.
    fn write_record(&self, cluster: &str, files: &[FileEntry]) -> Result<(), String> {
        let path = self.record(cluster);
        let bytes = postcard::to_stdvec(files).map_err(|e| format!("cannot encode: {e}"))?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let digests = files.iter().map(|f| f.digest).collect();
        self.books().recorded.insert(cluster.to_string(), digests);
        Ok(())
    }

    /// Removes the objects that no record names and no sync in progress uses; all under the
    /// books' lock, so that no sync pins or records an object while it goes. Returns how
    /// many it removed.
    fn collect(&self) -> usize {
        let books = self.books();
        let Ok(objects) = std::fs::read_dir(self.root.join("objects")) else {
            return 0;
        };
        let mut removed = 0;
        for e in objects.flatten() {
            let name = e.file_name();
            let wanted = name
                .to_str()
                .and_then(parse_hex)
                .is_some_and(|d| books.pinned.contains_key(&d) || books.is_recorded(&d));
            if !wanted && std::fs::remove_file(e.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }
}

/// The digest a store object's file name spells.
fn parse_hex(name: &str) -> Option<Digest> {
    if name.len() != 64 {
        return None;
    }
    let mut d = [0u8; 32];
    for (i, b) in d.iter_mut().enumerate() {
        *b = u8::from_str_radix(name.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(d)
}

/// Creates `dir` (inside `base`, an existing real folder) one folder at a time, refusing any
/// part that is a symlink or not a folder: a started process may have left a link where a
/// manifest names a folder, and the daemon must not write through it.
fn make_folders(base: &Path, dir: &Path) -> Result<(), String> {
    let rel = dir
        .strip_prefix(base)
        .map_err(|_| format!("{} is not inside {}", dir.display(), base.display()))?;
    let mut at = base.to_path_buf();
    for part in rel.components() {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!(
                    "{} is a symlink: the daemon lays files out only in real folders of the workspace",
                    at.display()
                ));
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(format!("{} is a file, not a folder", at.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(&at)
                .map_err(|e| format!("cannot create {}: {e}", at.display()))?,
            Err(e) => return Err(format!("{}: {e}", at.display())),
        }
    }
    Ok(())
}

/// Copies `from` to `to`, a name that must not exist yet (so no link there is followed).
fn copy_new(from: &Path, to: &Path) -> Result<(), String> {
    let write = |e: std::io::Error| format!("cannot write {}: {e}", to.display());
    let mut src = File::open(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    let mut dst = File::options()
        .write(true)
        .create_new(true)
        .open(to)
        .map_err(write)?;
    std::io::copy(&mut src, &mut dst).map_err(write)?;
    Ok(())
}

/// Removes a file an earlier commit laid out at `path` in `ws`, and the folders it leaves
/// empty.
fn remove_laid_out(ws: &Path, path: &str) -> Result<(), String> {
    let full = ws.join(path);
    // Nothing is removed through a link: every folder on the way must be a real one.
    let mut at = ws.to_path_buf();
    let parent = Path::new(path).parent().unwrap_or(Path::new(""));
    for part in parent.components() {
        at.push(part);
        if !std::fs::symlink_metadata(&at).is_ok_and(|m| m.is_dir()) {
            return Ok(());
        }
    }
    match std::fs::remove_file(&full) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        // A folder a process made there, say: not ours to remove.
        Err(_) if full.is_dir() => return Ok(()),
        Err(e) => return Err(format!("cannot remove {}: {e}", full.display())),
    }
    let mut dir = full.parent();
    while let Some(d) = dir.filter(|d| *d != ws) {
        // Fails, as it should, once a folder holds anything else.
        if std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
    Ok(())
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
        {
            let mut books = self.store.books();
            for d in self.sizes.keys() {
                if let Some((n, _)) = books.pinned.get_mut(d) {
                    *n -= 1;
                    if *n == 0 {
                        books.pinned.remove(d);
                    }
                }
            }
        }
        self.store.collect();
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

    /// Sends every missing file of `files` whole and commits.
    fn launch(store: &Store, files: &[(&str, &[u8])]) -> Result<PathBuf, String> {
        let entries: Vec<FileEntry> = files.iter().map(|(p, b)| entry(p, b)).collect();
        let (mut sync, missing) = store.begin("cave", entries)?;
        for d in missing {
            let (_, body) = files
                .iter()
                .find(|(_, b)| Sha256::digest(b).as_slice() == d)
                .unwrap();
            store.chunk(&mut sync, d, 0, body)?;
        }
        store.commit(&sync)
    }

    fn objects(store: &Store) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(store.root.join("objects"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    fn hexes(bodies: &[&[u8]]) -> Vec<String> {
        let mut v: Vec<String> = bodies
            .iter()
            .map(|b| hex(&Sha256::digest(b).into()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_new_manifest_replaces_the_last_and_unneeded_objects_are_collected() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let ws = launch(&store, &[("a/one", b"1"), ("a/two", b"2"), ("keep", b"k")]).unwrap();
        // A process's own output in the workspace is not the store's to remove.
        std::fs::write(ws.join("a/out.png"), b"png").unwrap();
        assert_eq!(objects(&store), hexes(&[b"1", b"2", b"k"]));
        // The second launch names a file where the first had a folder.
        launch(&store, &[("keep", b"k"), ("b", b"3"), ("a/two/x", b"4")]).unwrap();
        assert!(!ws.join("a/one").exists());
        assert_eq!(std::fs::read(ws.join("a/out.png")).unwrap(), b"png");
        assert_eq!(std::fs::read(ws.join("a/two/x")).unwrap(), b"4");
        assert_eq!(objects(&store), hexes(&[b"k", b"3", b"4"]));
        // Five launches of different content leave one launch's bytes behind.
        for i in 0..5u8 {
            launch(&store, &[("big", &[i; 50_000])]).unwrap();
        }
        assert_eq!(objects(&store), hexes(&[&[4u8; 50_000]]));
        let sizes: u64 = std::fs::read_dir(&ws)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert!(sizes < 60_000, "{sizes} bytes in the workspace");
        // A folder a process replaced with a link out of the workspace is neither written
        // nor cleaned through.
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("one"), b"theirs").unwrap();
        launch(&store, &[("m/one", b"5")]).unwrap();
        std::fs::remove_dir_all(ws.join("m")).unwrap();
        std::os::unix::fs::symlink(outside.path(), ws.join("m")).unwrap();
        for deep in ["m/two", "m/sub/two"] {
            let err = launch(&store, &[(deep, b"6")]).unwrap_err();
            assert!(
                err.ends_with(
                    "/m is a symlink: the daemon lays files out only in real folders of the workspace"
                ),
                "{err}"
            );
        }
        launch(&store, &[("n", b"7")]).unwrap();
        assert_eq!(
            std::fs::read(outside.path().join("one")).unwrap(),
            b"theirs"
        );
        assert!(!outside.path().join("two").exists() && !outside.path().join("sub").exists());
        // A link planted at a laid-out file's name is replaced, not written through.
        std::fs::remove_file(ws.join("n")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("one"), ws.join("n")).unwrap();
        launch(&store, &[("n", b"8")]).unwrap();
        assert_eq!(
            std::fs::read(outside.path().join("one")).unwrap(),
            b"theirs"
        );
        assert_eq!(std::fs::read(ws.join("n")).unwrap(), b"8");
    }

    #[test]
    fn abandoned_uploads_are_collected_and_what_syncs_hold_uncommitted_fits_the_quota() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 100_000).unwrap();
        let first = entry("f", &[1u8; 60_000]);
        let (mut sync, missing) = store.begin("cave", vec![first.clone()]).unwrap();
        store
            .chunk(&mut sync, missing[0], 0, &[1u8; 30_000])
            .unwrap();
        // Two launchers sending the same file at once: each in its own temporary file.
        let (mut other, _) = store.begin("cave", vec![first.clone()]).unwrap();
        store
            .chunk(&mut other, missing[0], 0, &[1u8; 60_000])
            .unwrap();
        drop(other);
        store
            .chunk(&mut sync, missing[0], 30_000, &[1u8; 30_000])
            .unwrap();
        assert_eq!(
            std::fs::read(store.object(&missing[0])).unwrap(),
            [1u8; 60_000]
        );
        // While 60,000 bytes are held for a commit, another 60,000 would pass the quota.
        let second = entry("g", &[2u8; 60_000]);
        let err = store.begin("cave", vec![second.clone()]).unwrap_err();
        assert!(
            err.starts_with(
                "these files add 60000 bytes to the 60000 that other launchers are sending or have not committed"
            ),
            "{err}"
        );
        // A second launcher naming the file received holds it too, at no extra cost; the
        // first going away frees no room while the second holds it.
        let (again, missing) = store.begin("cave", vec![first]).unwrap();
        assert!(missing.is_empty());
        drop(sync);
        assert_eq!(objects(&store), hexes(&[&[1u8; 60_000]]));
        assert!(store.begin("cave", vec![second.clone()]).is_err());
        // Both gone without committing: the file goes too, and the room comes back.
        drop(again);
        assert!(objects(&store).is_empty());
        store.begin("cave", vec![second]).unwrap();
    }

    #[test]
    fn one_daemon_owns_a_store() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path(), 1 << 20).unwrap();
        let err = Store::open(dir.path(), 1 << 20).unwrap_err();
        assert!(
            err.ends_with("is in use by another daemon (state_dir must differ per daemon)"),
            "{err}"
        );
    }
}
