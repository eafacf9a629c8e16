use crate::NodeId;

/// What can go wrong when editing a [`crate::Scene`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SceneError {
    /// Node names are unique so that replication and user code can find a node by name.
    #[error("a node named '{0}' already exists")]
    DuplicateName(String),
    /// The id does not name a live node (never created, or removed).
    #[error("no node with id {0}")]
    UnknownNode(NodeId),
    /// The mesh id was not returned by this scene's `add_mesh`.
    #[error("no mesh with id {0}")]
    UnknownMesh(u32),
    /// The material id was not returned by this scene's `add_material`.
    #[error("no material with id {0}")]
    UnknownMaterial(u32),
    /// The texture id was not returned by this scene's `add_texture`.
    #[error("no texture with id {0}")]
    UnknownTexture(u32),
    /// Re-parenting would make a node its own ancestor.
    #[error("moving node {node} under {parent} would create a cycle")]
    Cycle {
        /// The node being moved.
        node: NodeId,
        /// The requested new parent.
        parent: NodeId,
    },
    /// A node id at or past [`crate::Scene::MAX_NODES`]: refused before any slot is made for
    /// it, so an id from a peer cannot make a scene allocate without bound.
    #[error("node id {id} exceeds the limit of {limit} nodes per scene")]
    TooManyNodes {
        /// The id asked for.
        id: u32,
        /// The limit.
        limit: usize,
    },
    /// A texture's pixel buffer does not hold `width * height * 4` bytes.
    #[error("texture '{name}' is {width}x{height} but has {len} bytes (expected {expected})")]
    TextureSize {
        /// The texture's name.
        name: String,
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// Bytes given.
        len: usize,
        /// Bytes expected.
        expected: usize,
    },
}
