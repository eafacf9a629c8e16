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
    max_bytes: usize,
}

/// The largest encoded value a [`Shared`] sends unless [`Shared::max_bytes`] says otherwise.
pub const DEFAULT_MAX_SHARED_BYTES: usize = 1 << 20;

impl<T: Serialize + DeserializeOwned + Send + 'static> Shared<T> {
    /// Shared data with wire id `id` (≥ [`super::FIRST_APP_PLUGIN`] for application data).
    pub fn new(id: PluginId, name: &'static str, value: T) -> Self {
        Shared {
            id,
            name,
            hook: Hook::PreDraw,
            value,
            dirty: true,
            max_bytes: DEFAULT_MAX_SHARED_BYTES,
        }
    }

    /// The same data, allowed to take up to `n` bytes encoded (1 MiB by default). A larger
    /// value is an error on the master naming this plugin, before anything is sent.
    pub fn max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n;
        self
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
        let start = out.len();
        super::encode_block(self.name, &self.value, out)?;
        let len = out.len() - start;
        if len > self.max_bytes {
            out.truncate(start);
            return Err(PluginError {
                plugin: self.name,
                reason: format!(
                    "the value takes {len} bytes, over its limit of {} (Shared::max_bytes)",
                    self.max_bytes
                ),
            });
        }
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
        if bytes.len() > self.max_bytes {
            return Err(PluginError {
                plugin: self.name,
                reason: format!(
                    "a value of {} bytes, over its limit of {}",
                    bytes.len(),
                    self.max_bytes
                ),
            });
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_over_its_limit_is_an_error_naming_the_plugin_and_sends_nothing() {
        let mut big = Shared::new(100, "points", vec![0u8; 10]).max_bytes(8);
        let mut out = vec![9];
        let err = big
            .write(
                Hook::PreDraw,
                &FrameInfo::default(),
                &Scene::new(),
                &mut out,
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin 'points': the value takes 11 bytes, over its limit of 8 (Shared::max_bytes)"
        );
        assert_eq!(out, [9]);
        big.set(vec![1; 3]);
        big.write(
            Hook::PreDraw,
            &FrameInfo::default(),
            &Scene::new(),
            &mut out,
        )
        .unwrap();
        let mut node = Shared::new(100, "points", Vec::<u8>::new()).max_bytes(3);
        let err = node
            .read(
                Hook::PreDraw,
                &FrameInfo::default(),
                &mut Scene::new(),
                &out[1..],
            )
            .unwrap_err();
        assert!(err.reason.starts_with("a value of 4 bytes"), "{err}");
    }
}
