/*!
What a run-time reconfiguration may change. A running cluster keeps its name, key and master
address (every connection was made with them); everything a node renders — screens, walls,
viewports, stereo, eye separation, head, threading model, windows — and the set of nodes may
change. [`ClusterConfig::change_to`] checks the whole new file against the running one and
reports every reason at once, or what the switch will do.
*/
use crate::{ClusterConfig, NodeConfig};

/// What switching from one cluster file to another does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigChange {
    /// Nodes the new file adds: they may join from the switch frame on.
    pub added: Vec<String>,
    /// Nodes the new file removes: the master lets them go at the switch frame.
    pub removed: Vec<String>,
    /// Kept nodes whose threading model or windows change: their pipeline restarts, so
    /// they leave at the switch frame and rejoin at once.
    pub restarted: Vec<String>,
    /// Kept nodes whose views change in place (screens, viewports, stereo, head).
    pub redrawn: Vec<String>,
}

impl ConfigChange {
    /// Nothing changes for any node.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.restarted.is_empty()
            && self.redrawn.is_empty()
    }
}

impl std::fmt::Display for ConfigChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts = [
            ("adds", &self.added),
            ("removes", &self.removed),
            ("restarts", &self.restarted),
            ("changes the views of", &self.redrawn),
        ];
        let said: Vec<String> = parts
            .iter()
            .filter(|(_, names)| !names.is_empty())
            .map(|(verb, names)| format!("{verb} {}", names.join(", ")))
            .collect();
        if said.is_empty() {
            f.write_str("changes nothing any node shows")
        } else {
            f.write_str(&said.join("; "))
        }
    }
}

impl NodeConfig {
    /// Whether following `new` takes a new pipeline (threading model, or a window's size,
    /// place or kind), not only new views.
    pub fn pipeline_differs(&self, new: &NodeConfig) -> bool {
        self.threading_model != new.threading_model
            || self.windows.len() != new.windows.len()
            || self.windows.iter().zip(&new.windows).any(|(a, b)| {
                (
                    a.width,
                    a.height,
                    a.position,
                    a.fullscreen,
                    a.monitor,
                    a.offscreen,
                ) != (
                    b.width,
                    b.height,
                    b.position,
                    b.fullscreen,
                    b.monitor,
                    b.offscreen,
                )
            })
    }
}

impl ClusterConfig {
    /// Checks that a running cluster of this file may switch to `new`, and what that does;
    /// every reason it may not, each naming the field and both values.
    pub fn change_to(&self, new: &ClusterConfig) -> Result<ConfigChange, Vec<String>> {
        let mut why = Vec::new();
        if new.name != self.name {
            why.push(format!(
                "the cluster name changes from '{}' to '{}': a running cluster keeps its name",
                self.name, new.name
            ));
        }
        if new.master != self.master {
            why.push(format!(
                "the master moves from {} to {}: restart the cluster to move it",
                self.master, new.master
            ));
        }
        if new.transport != self.transport {
            why.push(format!(
                "the transport changes from {} to {}: restart the cluster to change it",
                self.transport, new.transport
            ));
        }
        if new.key_file != self.key_file {
            why.push(format!(
                "key_file changes from {} to {}: restart the cluster to change its key",
                shown(&self.key_file),
                shown(&new.key_file)
            ));
        }
        if !why.is_empty() {
            return Err(why);
        }
        let mut change = ConfigChange::default();
        let geometry =
            self.stereo != new.stereo || self.head != new.head || self.screens != new.screens;
        for n in &new.nodes {
            match self.node(&n.name) {
                None => change.added.push(n.name.clone()),
                // Sort-first's connections and strips are set up with the pipeline.
                Some(old)
                    if old.pipeline_differs(n)
                        || self.sort_first_role(&n.name) != new.sort_first_role(&n.name) =>
                {
                    change.restarted.push(n.name.clone())
                }
                Some(old) if geometry || old.windows != n.windows => {
                    change.redrawn.push(n.name.clone())
                }
                Some(_) => {}
            }
        }
        change.removed = self
            .nodes
            .iter()
            .filter(|n| new.node(&n.name).is_none())
            .map(|n| n.name.clone())
            .collect();
        Ok(change)
    }
}

/// What a node does in sort-first: its helped views (place, rectangle, helpers) and the
/// display nodes it helps, with where they listen.
type SortFirstRole = (Vec<(usize, [u32; 4], Vec<String>)>, Vec<(String, String)>);

impl ClusterConfig {
    fn sort_first_role(&self, name: &str) -> SortFirstRole {
        let helped = self
            .views(name)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .filter(|(_, v)| !v.helpers.is_empty())
            .map(|(i, v)| (i, v.rect, v.helpers))
            .collect();
        let helps = self
            .helped_by(name)
            .into_iter()
            .map(|d| (d.name.clone(), d.endpoint.to_string()))
            .collect();
        (helped, helps)
    }
}

fn shown(p: &Option<std::path::PathBuf>) -> String {
    p.as_ref()
        .map_or("none".to_string(), |p| p.display().to_string())
}
