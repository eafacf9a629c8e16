/*!
Per-frame, per-stage statistics: how long App, Cull and Draw worked on each frame, how long
each waited on its neighbours, and on which thread each ran. `lockstep run --stats` prints a
rolling table of them; `--stats-out` writes them all as JSON.
*/
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::stats::Summary;

/// One stage's share of one frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageStats {
    /// Name of the thread that ran it ("main" for the main thread).
    pub thread: Arc<str>,
    /// Milliseconds working.
    pub busy_ms: f64,
    /// Milliseconds blocked on the stage before or after it.
    pub wait_ms: f64,
}

/// Everything measured about one frame, sent by Draw once the frame is drawn.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrameStats {
    /// Frame number.
    pub frame: u64,
    /// App stage.
    pub app: StageStats,
    /// Cull stage.
    pub cull: StageStats,
    /// Draw stage (recording, submitting and waiting for the GPU; presenting for windows).
    pub draw: StageStats,
    /// Objects drawn.
    pub drawn: u32,
    /// Objects culled.
    pub culled: u32,
    /// Triangles submitted.
    pub triangles: u64,
    /// Milliseconds from App finishing this frame to Draw finishing it.
    pub latency_ms: f64,
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Busy and wait time per thread over many frames.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThreadTotals {
    /// Thread name.
    pub thread: String,
    /// Stages it ran, e.g. "App" or "Cull+Draw".
    pub stages: String,
    /// Total milliseconds working.
    pub busy_ms: f64,
    /// Total milliseconds blocked.
    pub wait_ms: f64,
}

/// Sums per thread, in the order threads first appear (main first).
pub fn thread_totals(frames: &[FrameStats]) -> Vec<ThreadTotals> {
    let mut out: Vec<ThreadTotals> = Vec::new();
    for f in frames {
        for (stage, s) in [("App", &f.app), ("Cull", &f.cull), ("Draw", &f.draw)] {
            match out.iter_mut().find(|t| *t.thread == *s.thread) {
                Some(t) => {
                    if !t.stages.split('+').any(|x| x == stage) {
                        t.stages.push('+');
                        t.stages.push_str(stage);
                    }
                    t.busy_ms += s.busy_ms;
                    t.wait_ms += s.wait_ms;
                }
                None => out.push(ThreadTotals {
                    thread: s.thread.to_string(),
                    stages: stage.to_string(),
                    busy_ms: s.busy_ms,
                    wait_ms: s.wait_ms,
                }),
            }
        }
    }
    out
}

/// The rolling table: one line per reporting period.
pub struct RollingTable {
    window: Vec<FrameStats>,
    printed_header: bool,
}

impl Default for RollingTable {
    fn default() -> Self {
        Self::new()
    }
}

impl RollingTable {
    /// An empty table.
    pub fn new() -> Self {
        RollingTable {
            window: Vec::new(),
            printed_header: false,
        }
    }

    /// Adds a frame.
    pub fn push(&mut self, f: FrameStats) {
        self.window.push(f);
    }

    /// The line for the frames pushed since the last call (with the header before the first),
    /// covering `elapsed` of wall time; `None` when no frame came.
    pub fn flush(&mut self, elapsed: Duration) -> Option<String> {
        if self.window.is_empty() {
            return None;
        }
        let median = |pick: fn(&FrameStats) -> f64| {
            let v: Vec<Duration> = self
                .window
                .iter()
                .map(|f| Duration::from_secs_f64(pick(f) / 1e3))
                .collect();
            Summary::of(&v).map_or(0.0, |s| s.median_ms)
        };
        let mut line = String::new();
        if !self.printed_header {
            line +=
                "frames        fps   app ms (wait)   cull ms (wait)   draw ms (wait)   threads\n";
            self.printed_header = true;
        }
        let (first, last) = (
            self.window[0].frame,
            self.window[self.window.len() - 1].frame,
        );
        let f = &self.window[0];
        line += &format!(
            "{:<11} {:>5.1}   {:>6.2} ({:>5.2})  {:>6.2} ({:>5.2})   {:>6.2} ({:>5.2})   App@{} Cull@{} Draw@{}",
            format!("{first}-{last}"),
            self.window.len() as f64 / elapsed.as_secs_f64().max(1e-9),
            median(|f| f.app.busy_ms),
            median(|f| f.app.wait_ms),
            median(|f| f.cull.busy_ms),
            median(|f| f.cull.wait_ms),
            median(|f| f.draw.busy_ms),
            median(|f| f.draw.wait_ms),
            f.app.thread,
            f.cull.thread,
            f.draw.thread,
        );
        self.window.clear();
        Some(line)
    }
}
