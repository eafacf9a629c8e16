/*!
Built-in plugins. `DefaultClusterPlugins` registers them in this order:

1. [`SceneReplication`] — scene changes (nodes, transforms, visibility, colours, materials,
   meshes, textures, camera). NOTE: first, because application data may refer to nodes it adds.
2. [`HeadTracking`] — the viewer's head pose, which every node's projection depends on.
3. [`Events`] — the frame's cluster events, the same list on every process.
4. [`Shared`] plugins the application registers for its own typed data.

The clock needs no plugin: it travels in `FrameBegin` itself.
*/
mod events;
mod head;
mod scene;
mod shared;

pub use events::{
    Event, Events, MAX_EVENT_NAME, MAX_EVENT_PAYLOAD, MAX_EVENTS_PER_FRAME,
    MAX_EVENTS_SENT_PER_FRAME,
};
pub use head::HeadTracking;
pub use scene::SceneReplication;
pub use shared::Shared;

/// Id of the scene replication plugin.
pub const SCENE_PLUGIN: crate::PluginId = 1;
/// Id of the head-tracking plugin.
pub const HEAD_PLUGIN: crate::PluginId = 2;
/// Id of the cluster events plugin.
pub const EVENTS_PLUGIN: crate::PluginId = 3;
/// First id free for application plugins.
pub const FIRST_APP_PLUGIN: crate::PluginId = 100;

/// Appends `value`, postcard-encoded, to `out`; errors name `plugin`.
pub(crate) fn encode_block<T: serde::Serialize>(
    plugin: &'static str,
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), crate::PluginError> {
    let v = std::mem::take(out);
    *out = postcard::to_extend(value, v).map_err(|e| crate::PluginError {
        plugin,
        reason: format!("cannot encode: {e}"),
    })?;
    Ok(())
}

/// Decodes a block written by [`encode_block`]; errors name `plugin`.
pub(crate) fn decode_block<T: serde::de::DeserializeOwned>(
    plugin: &'static str,
    bytes: &[u8],
) -> Result<T, crate::PluginError> {
    postcard::from_bytes(bytes).map_err(|e| crate::PluginError {
        plugin,
        reason: format!("cannot decode: {e}"),
    })
}
