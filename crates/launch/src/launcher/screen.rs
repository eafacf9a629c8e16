/*!
What the operator sees: lines (logs prefixed with the process name, state changes, failures)
printed above a live table of processes, and a progress bar while files are sent. On a
terminal the table and bar redraw in place; elsewhere (a pipe, a CI log) only the lines
appear, so the output stays readable as a log.
*/
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::state::NodeState;

/// The launcher's output.
pub struct Screen {
    multi: MultiProgress,
    rows: Vec<ProgressBar>,
}

impl Screen {
    /// A screen with one table row per process (`name`, `host`).
    pub fn new(procs: &[(String, String)]) -> Screen {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("  {prefix:<16} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let rows = procs
            .iter()
            .map(|(name, host)| {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(format!("{name} @ {host}"));
                bar.set_message(NodeState::Starting.word());
                bar
            })
            .collect();
        Screen { multi, rows }
    }

    /// Prints a line above the table.
    pub fn line(&self, text: &str) {
        self.multi.suspend(|| println!("{text}"));
    }

    /// Shows row `i`'s state.
    pub fn set(&self, i: usize, state: NodeState, detail: &str) {
        if let Some(r) = self.rows.get(i) {
            r.set_message(format!("{:<9}{detail}", state.word()));
        }
    }

    /// A byte-count progress bar for sending `total` bytes to `host`.
    pub fn transfer(&self, host: &str, total: u64) -> ProgressBar {
        let bar = self.multi.insert(0, ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template("  sync {prefix:<14} [{bar:30}] {bytes}/{total_bytes}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(host.to_string());
        bar
    }

    /// Removes the table (before the final summary).
    pub fn finish(&self) {
        for r in &self.rows {
            r.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}
