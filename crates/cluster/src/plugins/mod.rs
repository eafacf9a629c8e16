/*!
Built-in plugins. `DefaultClusterPlugins` registers them in this order:

1. [`SceneReplication`] — scene changes (nodes, transforms, visibility, colours, materials,
   meshes, textures, camera). NOTE: first, because application data may refer to nodes it adds.
2. [`HeadTracking`] — the viewer's head pose, which every node's projection depends on.
3. [`Shared`] plugins the application registers for its own typed data.

The clock needs no plugin: it travels in `FrameBegin` itself.
*/
mod head;
mod scene;
mod shared;

pub use head::HeadTracking;
pub use scene::SceneReplication;
pub use shared::Shared;

/// Id of the scene replication plugin.
pub const SCENE_PLUGIN: crate::PluginId = 1;
/// Id of the head-tracking plugin.
pub const HEAD_PLUGIN: crate::PluginId = 2;
/// First id free for application plugins.
pub const FIRST_APP_PLUGIN: crate::PluginId = 100;
