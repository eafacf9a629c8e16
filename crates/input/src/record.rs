/*!
Recorded input: the master's input stream, frame by frame, in a file (`--record FILE`), and
played back in place of the devices (`--replay FILE`), so that a session replays exactly —
the same events in the same frames, so the same scene and the same pictures.

The file is `LKSTINPT`, a `u16` format version and the cluster's name (both little-endian,
the name as a `u16` length and UTF-8), then records, each a `u32` length and a
postcard-encoded [`Record`]: one per frame that had input, `(frame, events)`, frames
increasing; and, with late latching, the head pose latched for a frame (written after that
frame's events), latched frames increasing too. A reader checks every length against a limit
before it reads, and names the byte offset of anything wrong.
*/
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::{InputEvent, Pose};

/// The file's first bytes.
pub const MAGIC: &[u8; 8] = b"LKSTINPT";
/// The format this build writes and reads (2: latched head poses).
pub const VERSION: u16 = 2;

/// One record of a recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Record<E> {
    /// A frame's input events (`E`: a slice of [`InputEvent`]s written, a `Vec` read).
    Frame(u64, E),
    /// The head pose latched for a frame's projection (late latching).
    Latched(u64, Pose),
}
/// Largest record (one frame's events).
pub const MAX_RECORD: u32 = 16 << 20;

/// Why a recording cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The file cannot be opened, read or written.
    #[error("{path}: {what}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The bytes are not a recording this build reads.
    #[error("{path}: byte {offset}: {what}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// A recording of another cluster.
    #[error("{path} records cluster '{recorded}', not '{cluster}'")]
    OtherCluster {
        /// The file.
        path: PathBuf,
        /// The cluster it records.
        recorded: String,
        /// The cluster replaying it.
        cluster: String,
    },
}

impl RecordError {
    fn io(path: &Path, what: &'static str, source: std::io::Error) -> RecordError {
        RecordError::Io {
            path: path.to_path_buf(),
            what,
            source,
        }
    }
}

/// Writes a recording, a frame at a time.
pub struct Recorder {
    path: PathBuf,
    out: BufWriter<std::fs::File>,
    last_flush: Instant,
    buf: Vec<u8>,
    /// Frames recorded (the last one's number plus one).
    frames: u64,
    /// The last frame written.
    last_written: Option<u64>,
}

impl Recorder {
    /// Creates (or replaces) the recording at `path` for cluster `cluster`.
    pub fn create(path: &Path, cluster: &str) -> Result<Recorder, RecordError> {
        let io = |what, source| RecordError::io(path, what, source);
        let file = std::fs::File::create(path).map_err(|e| io("cannot create", e))?;
        let mut out = BufWriter::new(file);
        let name = cluster.as_bytes();
        let mut head = MAGIC.to_vec();
        head.extend_from_slice(&VERSION.to_le_bytes());
        head.extend_from_slice(&(name.len().min(u16::MAX as usize) as u16).to_le_bytes());
        head.extend_from_slice(&name[..name.len().min(u16::MAX as usize)]);
        out.write_all(&head).map_err(|e| io("cannot write", e))?;
        Ok(Recorder {
            path: path.to_path_buf(),
            out,
            last_flush: Instant::now(),
            buf: Vec::new(),
            frames: 0,
            last_written: None,
        })
    }

    /// Records frame `frame`'s events (a frame without any takes no room). At most a second
    /// of input is lost if the process dies.
    pub fn frame(&mut self, frame: u64, events: &[InputEvent]) -> Result<(), RecordError> {
        self.frames = frame + 1;
        if self.last_flush.elapsed() > Duration::from_secs(1) {
            self.out
                .flush()
                .map_err(|e| RecordError::io(&self.path, "cannot write", e))?;
            self.last_flush = Instant::now();
        }
        if events.is_empty() {
            return Ok(());
        }
        self.write(frame, events)
    }

    fn write(&mut self, frame: u64, events: &[InputEvent]) -> Result<(), RecordError> {
        self.last_written = Some(frame);
        self.put(&Record::Frame(frame, events))
    }

    /// Records the head pose latched for frame `frame` (after that frame's events).
    pub fn latched(&mut self, frame: u64, pose: Pose) -> Result<(), RecordError> {
        self.put(&Record::Latched(frame, pose))
    }

    /// Writes one record: its length, then its postcard bytes.
    fn put(&mut self, record: &Record<&[InputEvent]>) -> Result<(), RecordError> {
        let io = |what, source| RecordError::io(&self.path, what, source);
        self.buf.clear();
        self.buf.extend_from_slice(&[0; 4]);
        let buf = std::mem::take(&mut self.buf);
        self.buf = postcard::to_extend(record, buf).map_err(|e| {
            io(
                "cannot encode a record",
                std::io::Error::other(e.to_string()),
            )
        })?;
        let len = (self.buf.len() - 4) as u32;
        self.buf[..4].copy_from_slice(&len.to_le_bytes());
        self.out
            .write_all(&self.buf)
            .map_err(|e| io("cannot write", e))
    }

    /// Writes the end (the session's last frame, as an empty record, so that a loop is the
    /// session's length) and what is buffered.
    pub fn finish(mut self) -> Result<(), RecordError> {
        if self.frames > 0 && self.last_written < Some(self.frames - 1) {
            self.write(self.frames - 1, &[])?;
        }
        self.out
            .flush()
            .map_err(|e| RecordError::io(&self.path, "cannot write", e))
    }
}

/// A recording read whole: every frame's events, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    /// The cluster it records.
    pub cluster: String,
    /// (frame, events), frames increasing.
    pub frames: Vec<(u64, Vec<InputEvent>)>,
    /// (frame, head pose latched for it), frames increasing.
    pub latched: Vec<(u64, Pose)>,
}

impl Recording {
    /// Reads the recording at `path`, made by cluster `cluster` (none: any).
    pub fn read(path: &Path, cluster: Option<&str>) -> Result<Recording, RecordError> {
        let io = |what, source| RecordError::io(path, what, source);
        let file = std::fs::File::open(path).map_err(|e| io("cannot open", e))?;
        let mut r = BufReader::new(file);
        let mut offset = 0u64;
        let corrupt = |offset: u64, what: String| RecordError::Corrupt {
            path: path.to_path_buf(),
            offset,
            what,
        };
        let read = |r: &mut BufReader<std::fs::File>, buf: &mut [u8], offset: &mut u64| {
            fill(r, buf, offset).map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => corrupt(*offset, e.to_string()),
                _ => io("cannot read", e),
            })
        };
        let mut head = [0u8; 12];
        let whole = matches!(read(&mut r, &mut head, &mut offset), Ok(true));
        if !whole || &head[..8] != MAGIC {
            return Err(corrupt(0, "not a lockstep input recording".into()));
        }
        let version = u16::from_le_bytes([head[8], head[9]]);
        if version != VERSION {
            return Err(corrupt(
                8,
                format!("format version {version}; this build reads {VERSION}"),
            ));
        }
        let len = u16::from_le_bytes([head[10], head[11]]) as usize;
        let mut name = vec![0; len];
        if !read(&mut r, &mut name, &mut offset)? {
            return Err(corrupt(offset, "the cluster's name is cut off".into()));
        }
        let recorded = String::from_utf8(name)
            .map_err(|_| corrupt(12, "the cluster's name is not UTF-8".into()))?;
        if let Some(cluster) = cluster
            && cluster != recorded
        {
            return Err(RecordError::OtherCluster {
                path: path.to_path_buf(),
                recorded,
                cluster: cluster.to_string(),
            });
        }
        let mut frames: Vec<(u64, Vec<InputEvent>)> = Vec::new();
        let mut latched: Vec<(u64, Pose)> = Vec::new();
        let mut body = Vec::new();
        loop {
            let at = offset;
            let mut len = [0u8; 4];
            if !read(&mut r, &mut len, &mut offset)? {
                break;
            }
            let len = u32::from_le_bytes(len);
            if len > MAX_RECORD {
                return Err(corrupt(
                    at,
                    format!("a record of {len} bytes is over the limit of {MAX_RECORD}"),
                ));
            }
            body.resize(len as usize, 0);
            if !read(&mut r, &mut body, &mut offset)? {
                return Err(corrupt(at, format!("a record of {len} bytes is cut off")));
            }
            let record: Record<Vec<InputEvent>> = postcard::from_bytes(&body)
                .map_err(|e| corrupt(at, format!("a record that does not decode: {e}")))?;
            match record {
                Record::Frame(frame, events) => {
                    if frames.last().is_some_and(|(f, _)| *f >= frame) {
                        return Err(corrupt(
                            at,
                            format!("frame {frame} does not come after the one before"),
                        ));
                    }
                    frames.push((frame, events));
                }
                Record::Latched(frame, pose) => {
                    if latched.last().is_some_and(|(f, _)| *f >= frame) {
                        return Err(corrupt(
                            at,
                            format!(
                                "the pose latched for frame {frame} does not come after the one before"
                            ),
                        ));
                    }
                    pose.check().map_err(|why| {
                        corrupt(at, format!("the pose latched for frame {frame}: {why}"))
                    })?;
                    latched.push((frame, pose));
                }
            }
        }
        Ok(Recording {
            cluster: recorded,
            frames,
            latched,
        })
    }
}

/// Reads `buf` whole: false at the end of the file; an error if the file ends inside it.
fn fill(r: &mut impl Read, buf: &mut [u8], offset: &mut u64) -> std::io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("cut off at byte {}", *offset + got as u64),
                ));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    *offset += got as u64;
    Ok(true)
}

/// Plays a recording back frame by frame.
#[derive(Debug)]
pub struct Replay {
    recording: Recording,
    next: usize,
    /// Start again after the last recorded frame.
    pub looped: bool,
    /// Frames added to the recorded ones (grows by a loop's length at each loop).
    offset: u64,
}

impl Replay {
    /// Plays `recording` from its start.
    pub fn new(recording: Recording, looped: bool) -> Replay {
        Replay {
            recording,
            next: 0,
            looped,
            offset: 0,
        }
    }

    /// The events of `frame` (frames must be asked for in increasing order).
    pub fn frame(&mut self, frame: u64) -> &[InputEvent] {
        let frames = &self.recording.frames;
        if self.looped && self.next == frames.len() && !frames.is_empty() {
            let length = frames[frames.len() - 1].0 + 1;
            if frame >= self.offset + length {
                self.offset += length;
                self.next = 0;
            }
        }
        while let Some((f, _)) = frames.get(self.next) {
            match (f + self.offset).cmp(&frame) {
                std::cmp::Ordering::Less => self.next += 1,
                std::cmp::Ordering::Equal => {
                    self.next += 1;
                    return &frames[self.next - 1].1;
                }
                std::cmp::Ordering::Greater => break,
            }
        }
        &[]
    }

    /// The head poses the recording latched, to latch again as it is replayed.
    pub fn latches(&self) -> Latches {
        let r = &self.recording;
        Latches {
            poses: r.latched.clone(),
            looped: self
                .looped
                .then(|| r.frames.last().map(|(f, _)| f + 1))
                .flatten(),
        }
    }
}

/// The head poses a recording latched, frame by frame: what the master latches again when it
/// replays it, so that a replay projects every frame as the session did.
#[derive(Debug, Clone, Default)]
pub struct Latches {
    poses: Vec<(u64, Pose)>,
    /// A loop's length, when the replay loops.
    looped: Option<u64>,
}

impl Latches {
    /// The pose latched for `frame` when it was recorded, if one was.
    pub fn get(&self, frame: u64) -> Option<Pose> {
        let frame = match self.looped {
            Some(length) if length > 0 => frame % length,
            _ => frame,
        };
        let i = self.poses.binary_search_by_key(&frame, |(f, _)| *f).ok()?;
        Some(self.poses[i].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> InputEvent {
        InputEvent::Key {
            key: k.into(),
            down: true,
        }
    }

    #[test]
    fn a_recording_reads_back_frame_by_frame_and_replays_in_a_loop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tour.input");
        let mut r = Recorder::create(&path, "cave").unwrap();
        r.frame(0, &[key("a")]).unwrap();
        r.frame(1, &[]).unwrap();
        r.latched(1, at(1.0)).unwrap();
        r.frame(3, &[key("b"), key("c")]).unwrap();
        r.latched(3, at(3.0)).unwrap();
        // Two quiet frames end the session: the loop is its whole length.
        r.frame(4, &[]).unwrap();
        r.frame(5, &[]).unwrap();
        r.finish().unwrap();
        let rec = Recording::read(&path, Some("cave")).unwrap();
        assert_eq!(
            rec.frames,
            vec![
                (0, vec![key("a")]),
                (3, vec![key("b"), key("c")]),
                (5, vec![])
            ]
        );
        assert_eq!(rec.latched, [(1, at(1.0)), (3, at(3.0))]);
        let mut replay = Replay::new(rec, true);
        let got: Vec<usize> = (0..13).map(|f| replay.frame(f).len()).collect();
        // A loop is six frames long (0 to 5).
        assert_eq!(got, [1, 0, 0, 2, 0, 0, 1, 0, 0, 2, 0, 0, 1]);
        let latches = replay.latches();
        let got: Vec<Option<f32>> = (0..10)
            .map(|f| latches.get(f).map(|p| p.position[0]))
            .collect();
        let (none, one, three) = (None, Some(1.0), Some(3.0));
        assert_eq!(
            got,
            [none, one, none, three, none, none, none, one, none, three]
        );
    }

    fn at(x: f32) -> Pose {
        Pose {
            position: [x, 1.7, 0.0],
            rotation: [0.0, 0.0, 0.0, 1.0],
        }
    }

    #[test]
    fn latched_poses_out_of_order_or_unsound_are_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.input");
        let mut r = Recorder::create(&path, "cave").unwrap();
        r.frame(2, &[key("a")]).unwrap();
        r.latched(2, at(0.0)).unwrap();
        r.latched(2, at(0.0)).unwrap();
        r.finish().unwrap();
        let e = Recording::read(&path, None).unwrap_err().to_string();
        assert!(
            e.contains("the pose latched for frame 2 does not come after the one before"),
            "{e}"
        );
        let mut r = Recorder::create(&path, "cave").unwrap();
        r.latched(4, at(f32::NAN)).unwrap();
        r.finish().unwrap();
        let e = Recording::read(&path, None).unwrap_err().to_string();
        assert!(
            e.contains("byte 16: the pose latched for frame 4: a pose that is no pose"),
            "{e}"
        );
    }

    #[test]
    fn a_corrupt_or_foreign_recording_is_refused_naming_where() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.input");
        let mut r = Recorder::create(&path, "cave").unwrap();
        r.frame(5, &[key("a")]).unwrap();
        r.frame(6, &[key("b")]).unwrap();
        r.finish().unwrap();
        let e = Recording::read(&path, Some("wall"))
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("records cluster 'cave', not 'wall'"), "{e}");
        let good = std::fs::read(&path).unwrap();
        let mut bad = good.clone();
        bad.truncate(good.len() - 2);
        std::fs::write(&path, &bad).unwrap();
        let e = Recording::read(&path, None).unwrap_err().to_string();
        assert!(e.contains("cut off"), "{e}");
        // Cut inside a record's length: corrupt too, not a clean end.
        let second = 16 + 4 + u32::from_le_bytes(good[16..20].try_into().unwrap()) as usize;
        std::fs::write(&path, &good[..second + 2]).unwrap();
        let e = Recording::read(&path, None).unwrap_err().to_string();
        assert!(
            e.contains(&format!("cut off at byte {}", second + 2)),
            "{e}"
        );
        let mut bad = good.clone();
        bad[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&path, &bad).unwrap();
        let e = Recording::read(&path, None).unwrap_err().to_string();
        assert!(
            e.contains("byte 16: a record of 4294967295 bytes is over the limit"),
            "{e}"
        );
        std::fs::write(&path, b"PNG....").unwrap();
        let e = Recording::read(&path, None).unwrap_err().to_string();
        assert!(e.contains("byte 0: not a lockstep input recording"), "{e}");
    }
}
