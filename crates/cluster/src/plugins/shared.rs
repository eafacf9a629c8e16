use serde::Serialize;
use serde::de::DeserializeOwned;

use lockstep_scene::Scene;

use crate::{ClusterPlugin, FrameInfo, Hook, PluginError, PluginId};

/// Typed application data: set on the master, read on every node (VR Juggler's
/// `UserData<T>`). Sent only in frames where it changed, at its hook (pre-draw unless
/// [`Shared::at`] says otherwise).
pub struct Shared<T> {
    id: PluginId,
    name: &'static str,
    hook: Hook,
    value: T,
    dirty: bool,
}

impl<T: Serialize + DeserializeOwned + Send + 'static> Shared<T> {
    /// Shared data with wire id `id` (≥ [`super::FIRST_APP_PLUGIN`] for application data).
    pub fn new(id: PluginId, name: &'static str, value: T) -> Self {
        Shared {
            id,
            name,
            hook: Hook::PreDraw,
            value,
            dirty: true,
        }
    }

    /// The same data, sent and applied at `hook` instead: e.g. [`Hook::FrameStart`] for
    /// input the node's own per-frame logic reads, [`Hook::PostFrame`] for requests that must
    /// not change the frame being presented.
    pub fn at(mut self, hook: Hook) -> Self {
        self.hook = hook;
        self
    }

    /// The current value (on nodes: as of the last frame applied).
    pub fn get(&self) -> &T {
        &self.value
    }

    /// Master: replaces the value; it goes to the nodes with the next frame.
    pub fn set(&mut self, value: T) {
        self.value = value;
        self.dirty = true;
    }
}

impl<T: Serialize + DeserializeOwned + Send + 'static> ClusterPlugin for Shared<T> {
    fn id(&self) -> PluginId {
        self.id
    }

    fn name(&self) -> &'static str {
        self.name
    }

    fn write(
        &mut self,
        hook: Hook,
        _frame: &FrameInfo,
        _scene: &Scene,
        out: &mut Vec<u8>,
    ) -> Result<(), PluginError> {
        if hook != self.hook || !self.dirty {
            return Ok(());
        }
        super::encode_block(self.name, &self.value, out)?;
        self.dirty = false;
        Ok(())
    }

    fn read(
        &mut self,
        _hook: Hook,
        _frame: &FrameInfo,
        _scene: &mut Scene,
        bytes: &[u8],
    ) -> Result<(), PluginError> {
        self.value = super::decode_block(self.name, bytes)?;
        Ok(())
    }

    fn snapshot(
        &mut self,
        hook: Hook,
        frame: &FrameInfo,
        scene: &Scene,
        out: &mut Vec<u8>,
    ) -> Result<(), PluginError> {
        let dirty = std::mem::replace(&mut self.dirty, true);
        let written = self.write(hook, frame, scene, out);
        self.dirty = dirty;
        written
    }
}
