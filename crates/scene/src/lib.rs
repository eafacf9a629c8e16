/*!
The scene graph every lockstep process holds: nodes with stable ids and optional unique names,
TRS transforms, mesh instances, materials, textures, lights and cameras.

Node data sits behind [`std::sync::Arc`] and is edited copy-on-write, so that a clone of a
[`Scene`] shares every node it did not change since. That is what later lets Cull read frame F
while App edits frame F+1, and what the cluster's replication diffs against.
*/
#![deny(missing_docs)]

mod camera;
mod color;
mod error;
mod light;
mod material;
mod mesh;
mod node;
mod scene;
mod transform;

pub use camera::{Camera, Frustum};
pub use color::Color;
pub use error::SceneError;
pub use light::{Light, LightKind};
pub use material::{Material, MaterialId, Texture, TextureFilter, TextureId};
pub use mesh::{Aabb, Mesh, MeshId, Vertex};
pub use node::{Node, NodeContent, NodeId, node_copies_on_this_thread};
pub use scene::Scene;
pub use transform::Transform;

/// Re-exported so users need not name glam's version themselves.
pub use glam;
