/*!
Built-in plugins. `DefaultClusterPlugins` registers them in this order:

1. [`SceneReplication`] — scene changes (nodes, transforms, visibility, colours, materials,
   meshes, textures, camera). NOTE: first, because application data may refer to nodes it adds.
2. [`Shared`] plugins the application registers for its own typed data.

The clock needs no plugin: it travels in `FrameBegin` itself.
*/
mod scene;
mod shared;

pub use scene::SceneReplication;
pub use shared::Shared;

/// Id of the scene replication plugin.
pub const SCENE_PLUGIN: crate::PluginId = 1;
/// First id free for application plugins.
pub const FIRST_APP_PLUGIN: crate::PluginId = 100;
