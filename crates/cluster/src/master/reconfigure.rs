/*!
Switching cluster files at run time: a whole new file is checked against the running one
and takes effect, on every process, at the next frame begun.
*/
use lockstep_display::{ClusterConfig, ConfigChange};
use lockstep_wire::Message;

use crate::ClusterError;

use super::Master;
use super::barrier::SwapReport;

/// Why a master without a cluster file refuses every reconfiguration.
pub(super) const NO_CLUSTER_FILE: &str =
    "this master was started without a cluster file, so it cannot be reconfigured";

/// A reconfiguration accepted and waiting for its frame.
pub(super) struct Pending {
    pub(super) file: ClusterConfig,
    pub(super) text: String,
    pub(super) change: ConfigChange,
}

impl Master {
    /// Checks `text` (a whole cluster file) against the running one and, if every node can
    /// follow, schedules it for the next frame begun: that frame number and what changes;
    /// otherwise every reason, and nothing changes.
    pub fn reconfigure_text(&mut self, text: String) -> Result<(u64, ConfigChange), Vec<String>> {
        let Some(current) = &self.config.cluster_file else {
            return Err(vec![NO_CLUSTER_FILE.into()]);
        };
        let file = ClusterConfig::parse(&current.path, &text)
            .map_err(|e| e.0.iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
        self.reconfigure(file, text)
    }

    /// [`Master::reconfigure_text`] with the file already read: `text` is what nodes get.
    pub fn reconfigure(
        &mut self,
        file: ClusterConfig,
        text: String,
    ) -> Result<(u64, ConfigChange), Vec<String>> {
        let Some(current) = &self.config.cluster_file else {
            return Err(vec![NO_CLUSTER_FILE.into()]);
        };
        let mut why = Vec::new();
        if self.pending.is_some() {
            why.push(format!(
                "another reconfiguration is waiting for frame {}",
                self.next + u64::from(self.begun.is_some())
            ));
        }
        // The text travels inside one frame, with room for the frame's own blocks.
        let room = (self.config.max_frame as usize) / 2;
        if text.len() > room {
            why.push(format!(
                "the cluster file is {} bytes; at most {room} fit in a frame",
                text.len()
            ));
        }
        let change = match current.change_to(&file) {
            Ok(c) => Some(c),
            Err(reasons) => {
                why.extend(reasons);
                None
            }
        };
        match change {
            Some(change) if why.is_empty() => {
                let frame = self.next + u64::from(self.begun.is_some());
                tracing::info!("reconfiguration accepted for frame {frame}: {change}");
                self.pending = Some(Pending {
                    file,
                    text,
                    change: change.clone(),
                });
                Ok((frame, change))
            }
            _ => Err(why),
        }
    }

    /// Switches to the pending cluster file at frame `frame`.
    pub(super) fn switch(
        &mut self,
        frame: u64,
        report: &mut SwapReport,
    ) -> Result<(), ClusterError> {
        let Some(Pending { file, text, change }) = self.pending.take() else {
            return Ok(());
        };
        let names: Vec<String> = file.nodes.iter().map(|n| n.name.clone()).collect();
        if let Ok(mut a) = self.gate.allowed.lock() {
            a.clone_from(&names);
        }
        self.gate.assets.allow(file.assets.send);
        self.session.set_order(names.clone());
        self.config.nodes = names;
        let why = format!("removed from the cluster by the reconfiguration at frame {frame}");
        for name in &change.removed {
            let Some(i) = self.nodes.iter().position(|n| &n.name == name) else {
                continue;
            };
            let mut n = self.nodes.remove(i);
            self.reindex();
            let on_group = self.session.remove(n.id).is_some_and(|p| p.on_group);
            // By multicast the switch frame is still to come: the node stops before it.
            if on_group && let Some(units) = self.multicast.as_ref().and_then(|m| m.units_sent()) {
                let _ = n.link.send(&units);
            }
            self.head.clear();
            Self::encode(&Message::Shutdown { reason: &why }, &mut self.head)?;
            let _ = n.link.send_encoded(&self.head, &[]);
            self.head.clear();
            tracing::info!("node '{name}' {why}");
            report.dropped.push((name.clone(), why.clone()));
            self.gone.insert(name.clone(), "removed".into());
        }
        self.manager.reconfigure(&file);
        self.config.cluster_file = Some(file);
        self.file_text = Some(text);
        report.reconfigured = Some(frame);
        self.session.restart_with_next_frame(change.restarted);
        Ok(())
    }
}
