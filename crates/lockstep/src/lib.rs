/*!
lockstep: several computers render one 3D scene together, frame-locked.

This crate is the facade applications depend on: it re-exports the scene graph
([`scene`]), the renderer ([`render`]) and the display geometry ([`display`]), and holds the
built-in demo scene ([`demo`]) and the rendering of a node's views ([`node_views`]). The
`lockstep` binary (the CLI) lives here too.

```
use lockstep::prelude::*;

let mut scene = Scene::new();
let cube = scene.add_mesh(Mesh::cube(1.0));
let red = scene.add_material(Material::unlit(Color::rgb(1.0, 0.0, 0.0))).unwrap();
let id = scene.add(Node::mesh(cube, red).named("box"), None).unwrap();
assert_eq!(scene.find("box"), Some(id));
```
*/
#![deny(missing_docs)]

pub mod app;
pub mod demo;
pub mod devices;
pub mod node_views;
pub mod options;
pub mod pipeline;
pub mod roles;
pub mod sort_first;
pub mod stats;
pub mod view;

pub use lockstep_cluster as cluster;
pub use lockstep_display as display;
pub use lockstep_input as input;
pub use lockstep_launch as launch;
pub use lockstep_render as render;
pub use lockstep_scene as scene;

/// The names most applications need.
pub mod prelude {
    pub use crate::render::{BackendChoice, DrawList, GpuContext, OffscreenTarget, Renderer, View};
    pub use crate::scene::glam::{Quat, Vec3};
    pub use crate::scene::{
        Camera, Color, Frustum, Light, Material, Mesh, Node, NodeId, Scene, Texture, Transform,
    };
}
