use lockstep_scene::Scene;

use crate::replication::{apply_changes, write_changes};
use crate::{ClusterPlugin, FrameInfo, Hook, PluginError, PluginId};

/// Replicates the scene: each frame, what changed since the previous frame's snapshot.
///
/// Every process starts from a baseline: the scene its application's setup built (the same
/// on every process, as the master checks at each node's join), or an empty scene. Only
/// changes from it travel — a node that joins late gets what changed since setup, not the
/// models every process loaded itself.
pub struct SceneReplication {
    /// What the nodes hold: the snapshot last sent (the baseline until the first frame).
    sent: Scene,
    /// The scene every process starts from.
    baseline: Scene,
}

impl Default for SceneReplication {
    fn default() -> Self {
        SceneReplication::from_baseline(Scene::new())
    }
}

impl SceneReplication {
    /// Replication from `baseline`, the scene every process built before the first frame.
    pub fn from_baseline(baseline: Scene) -> Self {
        SceneReplication {
            sent: baseline.clone(),
            baseline,
        }
    }

    /// Master, before the first frame: every process starts from `baseline`.
    pub fn set_baseline(&mut self, baseline: Scene) {
        *self = SceneReplication::from_baseline(baseline);
    }
}

impl ClusterPlugin for SceneReplication {
    fn id(&self) -> PluginId {
        super::SCENE_PLUGIN
    }

    fn name(&self) -> &'static str {
        "scene"
    }

    fn write(
        &mut self,
        hook: Hook,
        _frame: &FrameInfo,
        scene: &Scene,
        out: &mut Vec<u8>,
    ) -> Result<(), PluginError> {
        if hook != Hook::PreDraw {
            return Ok(());
        }
        write_changes(&self.sent, scene, out).map_err(failed)?;
        // An O(1) copy: it shares everything with `scene`.
        self.sent = scene.clone();
        Ok(())
    }

    fn read(
        &mut self,
        _hook: Hook,
        _frame: &FrameInfo,
        scene: &mut Scene,
        bytes: &[u8],
    ) -> Result<(), PluginError> {
        apply_changes(scene, bytes).map(|_| ()).map_err(failed)
    }

    /// The whole scene, as the changes from the baseline a joining node starts from.
    fn snapshot(
        &mut self,
        hook: Hook,
        _frame: &FrameInfo,
        scene: &Scene,
        out: &mut Vec<u8>,
    ) -> Result<(), PluginError> {
        if hook != Hook::PreDraw {
            return Ok(());
        }
        write_changes(&self.baseline, scene, out)
            .map(|_| ())
            .map_err(failed)
    }
}

fn failed(e: crate::ReplicationError) -> PluginError {
    PluginError {
        plugin: "scene",
        reason: e.to_string(),
    }
}
