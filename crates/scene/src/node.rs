use std::fmt;
use std::sync::Arc;

use crate::{Camera, Color, Light, MaterialId, MeshId, Transform};

/// A node's stable id: never reused within a scene, so it can name the same node on every
/// process of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What a node carries besides its transform and children.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeContent {
    /// A pure grouping or transform node.
    Empty,
    /// An instance of a mesh drawn with a material.
    Mesh {
        /// The mesh to draw.
        mesh: MeshId,
        /// The material to draw it with.
        material: MaterialId,
    },
    /// A light source.
    Light(Light),
    /// A camera.
    Camera(Camera),
}

thread_local! {
    static NODE_COPIES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many times node data was copied on this thread (by `Clone`, which is what
/// copy-on-write does when a snapshot still shares a node). For tests and statistics: a
/// snapshot must cost copies in proportion to what changed, not to the scene's size.
pub fn node_copies_on_this_thread() -> u64 {
    NODE_COPIES.with(|c| c.get())
}

/// One node of the scene graph.
#[derive(Debug, PartialEq)]
pub struct Node {
    /// Unique name within the scene, if any.
    pub name: Option<Arc<str>>,
    /// Parent node; `None` for a root.
    pub parent: Option<NodeId>,
    /// Children in insertion order.
    pub children: Vec<NodeId>,
    /// Transform relative to the parent.
    pub transform: Transform,
    /// Hidden nodes are skipped by Cull together with their whole subtree.
    pub visible: bool,
    /// Multiplies the material's base colour of this node's mesh (Panda's `setColorScale`).
    pub tint: Color,
    /// Mesh, light, camera or nothing.
    pub content: NodeContent,
}

impl Clone for Node {
    fn clone(&self) -> Self {
        NODE_COPIES.with(|c| c.set(c.get() + 1));
        Node {
            name: self.name.clone(),
            parent: self.parent,
            children: self.children.clone(),
            transform: self.transform,
            visible: self.visible,
            tint: self.tint,
            content: self.content.clone(),
        }
    }
}

impl Node {
    /// An empty, visible node at the identity transform.
    pub fn empty() -> Self {
        Node {
            name: None,
            parent: None,
            children: Vec::new(),
            transform: Transform::IDENTITY,
            visible: true,
            tint: Color::WHITE,
            content: NodeContent::Empty,
        }
    }

    /// A node drawing `mesh` with `material`.
    pub fn mesh(mesh: MeshId, material: MaterialId) -> Self {
        Node {
            content: NodeContent::Mesh { mesh, material },
            ..Node::empty()
        }
    }

    /// A node carrying a light.
    pub fn light(light: Light) -> Self {
        Node {
            content: NodeContent::Light(light),
            ..Node::empty()
        }
    }

    /// A node carrying a camera.
    pub fn camera(camera: Camera) -> Self {
        Node {
            content: NodeContent::Camera(camera),
            ..Node::empty()
        }
    }

    /// Sets the name (checked for uniqueness when the node is added).
    pub fn named(mut self, name: impl AsRef<str>) -> Self {
        self.name = Some(Arc::from(name.as_ref()));
        self
    }

    /// Sets the transform.
    pub fn with_transform(mut self, transform: Transform) -> Self {
        self.transform = transform;
        self
    }

    /// Sets the tint.
    pub fn with_tint(mut self, tint: Color) -> Self {
        self.tint = tint;
        self
    }
}
