use lockstep_scene::Scene;

use crate::replication::{apply_changes, write_changes};
use crate::{ClusterPlugin, FrameInfo, Hook, PluginError, PluginId};

/// Replicates the scene: each frame, what changed since the previous frame's snapshot.
pub struct SceneReplication {
    /// What the nodes hold: the snapshot last sent (empty until the first frame, so that the
    /// first write is the whole scene).
    sent: Scene,
}

impl Default for SceneReplication {
    fn default() -> Self {
        SceneReplication { sent: Scene::new() }
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

    /// The whole scene: the changes from an empty one.
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
        write_changes(&Scene::new(), scene, out)
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
