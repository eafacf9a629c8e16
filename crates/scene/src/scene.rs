use std::sync::Arc;

use imbl::{HashMap, Vector};

use glam::{Mat4, Vec3};

use crate::{
    Aabb, Color, Material, MaterialId, Mesh, MeshId, Node, NodeContent, NodeId, SceneError,
    Texture, TextureId, Transform,
};

/// The scene graph.
///
/// Every collection is a persistent one (`imbl`: chunked trees that share unchanged chunks)
/// holding `Arc`s, and edits go through `Arc::make_mut`. So cloning a `Scene` — the frame
/// snapshot that Cull reads while App edits the next frame — costs O(1), and an edit after it
/// copies only the edited node (plus a few chunks of pointers), never the rest of the scene.
#[derive(Debug, Clone)]
pub struct Scene {
    /// Slot `i` holds node `NodeId(i)`; removed nodes leave `None` so ids stay stable.
    nodes: Vector<Option<Arc<Node>>>,
    live: usize,
    names: HashMap<Arc<str>, NodeId>,
    roots: Vector<NodeId>,
    meshes: Vector<Arc<Mesh>>,
    materials: Vector<Arc<Material>>,
    textures: Vector<Arc<Texture>>,
    /// Colour of pixels no object covers.
    pub background: Color,
    /// Light that reaches every lit surface regardless of direction.
    pub ambient: Color,
    /// The camera node views are taken from when the caller gives none.
    pub active_camera: Option<NodeId>,
}

impl Default for Scene {
    fn default() -> Self {
        Self::new()
    }
}

impl Scene {
    /// Most node slots a scene holds (live nodes and removed ones' empty slots): four
    /// million, far above any scene this renderer draws at frame rate, and small enough
    /// (32 MiB of slots) that a replica given the largest id stays within memory.
    pub const MAX_NODES: usize = 1 << 22;

    /// An empty scene with a dark grey background and dim ambient light.
    pub fn new() -> Self {
        Scene {
            nodes: Vector::new(),
            live: 0,
            names: HashMap::new(),
            roots: Vector::new(),
            meshes: Vector::new(),
            materials: Vector::new(),
            textures: Vector::new(),
            background: Color::rgb(0.02, 0.02, 0.03),
            ambient: Color::rgb(0.08, 0.08, 0.09),
            active_camera: None,
        }
    }

    /// Adds a mesh and returns its id.
    pub fn add_mesh(&mut self, mesh: Mesh) -> MeshId {
        self.meshes.push_back(Arc::new(mesh));
        MeshId(self.meshes.len() as u32 - 1)
    }

    /// Adds a texture and returns its id.
    pub fn add_texture(&mut self, texture: Texture) -> TextureId {
        self.textures.push_back(Arc::new(texture));
        TextureId(self.textures.len() as u32 - 1)
    }

    /// Adds a material; its texture, if any, must already be in this scene.
    pub fn add_material(&mut self, material: Material) -> Result<MaterialId, SceneError> {
        if let Some(t) = material.texture {
            self.texture(t)?;
        }
        self.materials.push_back(Arc::new(material));
        Ok(MaterialId(self.materials.len() as u32 - 1))
    }

    /// The mesh with this id.
    pub fn mesh(&self, id: MeshId) -> Result<&Arc<Mesh>, SceneError> {
        self.meshes
            .get(id.0 as usize)
            .ok_or(SceneError::UnknownMesh(id.0))
    }

    /// The material with this id.
    pub fn material(&self, id: MaterialId) -> Result<&Arc<Material>, SceneError> {
        self.materials
            .get(id.0 as usize)
            .ok_or(SceneError::UnknownMaterial(id.0))
    }

    /// The texture with this id.
    pub fn texture(&self, id: TextureId) -> Result<&Arc<Texture>, SceneError> {
        self.textures
            .get(id.0 as usize)
            .ok_or(SceneError::UnknownTexture(id.0))
    }

    /// Replaces a material (e.g. a colour change); nodes using it see the change.
    pub fn set_material(&mut self, id: MaterialId, material: Material) -> Result<(), SceneError> {
        if let Some(t) = material.texture {
            self.texture(t)?;
        }
        let slot = self
            .materials
            .get_mut(id.0 as usize)
            .ok_or(SceneError::UnknownMaterial(id.0))?;
        *slot = Arc::new(material);
        Ok(())
    }

    /// Number of meshes.
    pub fn mesh_count(&self) -> usize {
        self.meshes.len()
    }

    /// Number of materials.
    pub fn material_count(&self) -> usize {
        self.materials.len()
    }

    /// Number of textures.
    pub fn texture_count(&self) -> usize {
        self.textures.len()
    }

    /// Adds `node` under `parent` (or as a root) and returns its new id.
    ///
    /// The node's own `parent` and `children` fields are ignored: structure is set here.
    pub fn add(&mut self, mut node: Node, parent: Option<NodeId>) -> Result<NodeId, SceneError> {
        if self.nodes.len() >= Self::MAX_NODES {
            return Err(SceneError::TooManyNodes {
                id: self.nodes.len() as u32,
                limit: Self::MAX_NODES,
            });
        }
        if let Some(p) = parent {
            self.node(p)?;
        }
        if let Some(name) = &node.name
            && self.names.contains_key(name)
        {
            return Err(SceneError::DuplicateName(name.to_string()));
        }
        match node.content {
            NodeContent::Mesh { mesh, material } => {
                self.mesh(mesh)?;
                self.material(material)?;
            }
            NodeContent::Empty | NodeContent::Light(_) | NodeContent::Camera(_) => {}
        }
        let id = NodeId(self.nodes.len() as u32);
        node.parent = parent;
        node.children.clear();
        if let Some(name) = &node.name {
            self.names.insert(name.clone(), id);
        }
        self.nodes.push_back(Some(Arc::new(node)));
        self.live += 1;
        match parent {
            Some(p) => self.node_mut(p)?.children.push(id),
            None => self.roots.push_back(id),
        }
        Ok(id)
    }

    /// Adds or replaces node `id` as a replica does: the master chose the id, and this scene
    /// must use the same one. Slots up to `id` are created empty as needed; the parent, if
    /// any, must exist. Replacing a node keeps its children (they are replicated separately).
    pub fn put(&mut self, id: NodeId, mut node: Node) -> Result<(), SceneError> {
        if id.0 as usize >= Self::MAX_NODES {
            return Err(SceneError::TooManyNodes {
                id: id.0,
                limit: Self::MAX_NODES,
            });
        }
        if let Some(p) = node.parent {
            if p == id {
                return Err(SceneError::Cycle {
                    node: id,
                    parent: p,
                });
            }
            self.node(p)?;
        }
        match node.content {
            NodeContent::Mesh { mesh, material } => {
                self.mesh(mesh)?;
                self.material(material)?;
            }
            NodeContent::Empty | NodeContent::Light(_) | NodeContent::Camera(_) => {}
        }
        if let Some(name) = &node.name
            && self.names.get(name).is_some_and(|other| *other != id)
        {
            return Err(SceneError::DuplicateName(name.to_string()));
        }
        while self.nodes.len() <= id.0 as usize {
            self.nodes.push_back(None);
        }
        let old = self.nodes.get(id.0 as usize).cloned().flatten();
        match &old {
            Some(o) => {
                node.children = o.children.clone();
                if o.parent != node.parent {
                    match o.parent {
                        Some(p) => self.node_mut(p)?.children.retain(|c| *c != id),
                        None => self.roots.retain(|c| *c != id),
                    }
                    match node.parent {
                        Some(p) => self.node_mut(p)?.children.push(id),
                        None => self.roots.push_back(id),
                    }
                }
                if let Some(n) = &o.name {
                    self.names.remove(n);
                }
            }
            None => {
                node.children.clear();
                self.live += 1;
                match node.parent {
                    Some(p) => self.node_mut(p)?.children.push(id),
                    None => self.roots.push_back(id),
                }
            }
        }
        if let Some(n) = &node.name {
            self.names.insert(n.clone(), id);
        }
        self.nodes.set(id.0 as usize, Some(Arc::new(node)));
        Ok(())
    }

    /// Reorders a node's children to follow `order` (a replica copying the master's order);
    /// children missing from `order` keep their relative order after the listed ones.
    pub fn order_children(&mut self, id: NodeId, order: &[NodeId]) -> Result<(), SceneError> {
        let node = self.node(id)?;
        if node.children.as_slice() == order {
            return Ok(());
        }
        let rank = |c: &NodeId| order.iter().position(|o| o == c).unwrap_or(usize::MAX);
        let mut children = node.children.clone();
        children.sort_by_key(rank);
        self.node_mut(id)?.children = children;
        Ok(())
    }

    /// Whether `other` has the same root nodes in the same order: O(1) when one is a clone
    /// of the other whose roots did not change since (replication and the scene digest
    /// compare frame after frame).
    pub fn same_roots(&self, other: &Scene) -> bool {
        self.roots.ptr_eq(&other.roots) || self.roots == other.roots
    }

    /// Reorders the root nodes to follow `order` (a replica copying the master's order, which
    /// decides traversal and draw order); roots missing from `order` keep their relative order
    /// after the listed ones, and ids in `order` that are not roots are ignored.
    pub fn order_roots(&mut self, order: &[NodeId]) {
        if self.roots.iter().eq(order.iter()) {
            return;
        }
        let rank: std::collections::HashMap<NodeId, usize> =
            order.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let mut roots: Vec<NodeId> = self.roots.iter().copied().collect();
        roots.sort_by_key(|r| rank.get(r).copied().unwrap_or(usize::MAX));
        self.roots = roots.into_iter().collect();
    }

    /// Shared handles of every mesh, in id order (for replication, which compares them).
    pub fn meshes_shared(&self) -> impl Iterator<Item = &Arc<Mesh>> {
        self.meshes.iter()
    }

    /// Shared handles of every material, in id order.
    pub fn materials_shared(&self) -> impl Iterator<Item = &Arc<Material>> {
        self.materials.iter()
    }

    /// Shared handles of every texture, in id order.
    pub fn textures_shared(&self) -> impl Iterator<Item = &Arc<Texture>> {
        self.textures.iter()
    }

    /// Live nodes' shared handles with their ids, in id order.
    pub fn nodes_shared(&self) -> impl Iterator<Item = (NodeId, &Arc<Node>)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| (NodeId(i as u32), n)))
    }

    /// Every node slot in id order: `None` for removed ids. Comparing two snapshots slot by
    /// slot is how replication finds what changed.
    pub fn slots(&self) -> impl Iterator<Item = Option<&Arc<Node>>> {
        self.nodes.iter().map(Option::as_ref)
    }

    /// Number of node slots (live or removed); the next new node gets this id.
    pub fn slot_count(&self) -> usize {
        self.nodes.len()
    }

    /// Removes a node and its whole subtree; their ids are never reused.
    pub fn remove(&mut self, id: NodeId) -> Result<(), SceneError> {
        let parent = self.node(id)?.parent;
        match parent {
            Some(p) => self.node_mut(p)?.children.retain(|c| *c != id),
            None => self.roots.retain(|c| *c != id),
        }
        let mut stack = vec![id];
        while let Some(n) = stack.pop() {
            if let Some(node) = self.nodes.get_mut(n.0 as usize).and_then(Option::take) {
                self.live -= 1;
                if let Some(name) = &node.name {
                    self.names.remove(name);
                }
                stack.extend_from_slice(&node.children);
            }
        }
        if self.active_camera.is_some_and(|c| self.node(c).is_err()) {
            self.active_camera = None;
        }
        Ok(())
    }

    /// Moves a node (with its subtree) under a new parent, or to the roots.
    pub fn set_parent(&mut self, id: NodeId, parent: Option<NodeId>) -> Result<(), SceneError> {
        self.node(id)?;
        if let Some(p) = parent {
            let mut cur = Some(p);
            while let Some(c) = cur {
                if c == id {
                    return Err(SceneError::Cycle {
                        node: id,
                        parent: p,
                    });
                }
                cur = self.node(c)?.parent;
            }
        }
        let old = self.node(id)?.parent;
        match old {
            Some(o) => self.node_mut(o)?.children.retain(|c| *c != id),
            None => self.roots.retain(|c| *c != id),
        }
        match parent {
            Some(p) => self.node_mut(p)?.children.push(id),
            None => self.roots.push_back(id),
        }
        self.node_mut(id)?.parent = parent;
        Ok(())
    }

    /// The node with this id.
    pub fn node(&self, id: NodeId) -> Result<&Node, SceneError> {
        self.nodes
            .get(id.0 as usize)
            .and_then(Option::as_deref)
            .ok_or(SceneError::UnknownNode(id))
    }

    /// The shared handle of a node's current data: two scenes hold the same version of a
    /// node exactly when these pointers are equal (what snapshot tests check).
    pub fn node_shared(&self, id: NodeId) -> Result<&Arc<Node>, SceneError> {
        self.nodes
            .get(id.0 as usize)
            .and_then(Option::as_ref)
            .ok_or(SceneError::UnknownNode(id))
    }

    /// Mutable access to a node; copies its data first if a snapshot still shares it.
    ///
    /// Renaming through this reference is not tracked: use [`Scene::rename`].
    pub fn node_mut(&mut self, id: NodeId) -> Result<&mut Node, SceneError> {
        self.nodes
            .get_mut(id.0 as usize)
            .and_then(Option::as_mut)
            .map(Arc::make_mut)
            .ok_or(SceneError::UnknownNode(id))
    }

    /// Sets a node's transform relative to its parent.
    pub fn set_transform(&mut self, id: NodeId, transform: Transform) -> Result<(), SceneError> {
        self.node_mut(id)?.transform = transform;
        Ok(())
    }

    /// Shows or hides a node and its subtree.
    pub fn set_visible(&mut self, id: NodeId, visible: bool) -> Result<(), SceneError> {
        self.node_mut(id)?.visible = visible;
        Ok(())
    }

    /// Gives a node a new unique name, or none.
    pub fn rename(&mut self, id: NodeId, name: Option<&str>) -> Result<(), SceneError> {
        if let Some(n) = name
            && let Some(other) = self.names.get(n)
            && *other != id
        {
            return Err(SceneError::DuplicateName(n.to_string()));
        }
        let new: Option<Arc<str>> = name.map(Arc::from);
        let old = std::mem::replace(&mut self.node_mut(id)?.name, new.clone());
        if let Some(o) = old {
            self.names.remove(&o);
        }
        if let Some(n) = new {
            self.names.insert(n, id);
        }
        Ok(())
    }

    /// The node with this name.
    pub fn find(&self, name: &str) -> Option<NodeId> {
        self.names.get(name).copied()
    }

    /// Root nodes in insertion order.
    pub fn roots(&self) -> impl DoubleEndedIterator<Item = NodeId> + '_ {
        self.roots.iter().copied()
    }

    /// Number of live nodes.
    pub fn node_count(&self) -> usize {
        self.live
    }

    /// Live nodes with their ids, in id order.
    pub fn nodes(&self) -> impl Iterator<Item = (NodeId, &Node)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_deref().map(|n| (NodeId(i as u32), n)))
    }

    /// The matrix taking points from the node's frame to world space.
    pub fn world_transform(&self, id: NodeId) -> Result<Mat4, SceneError> {
        let mut m = Mat4::IDENTITY;
        let mut cur = Some(id);
        while let Some(c) = cur {
            let n = self.node(c)?;
            m = n.transform.to_matrix() * m;
            cur = n.parent;
        }
        Ok(m)
    }

    /// The world-space box around every visible mesh, or `None` if no mesh is visible.
    pub fn world_bounds(&self) -> Option<Aabb> {
        let mut corners = Vec::new();
        self.visit_visible(&mut Vec::new(), |_, node, world| {
            if let NodeContent::Mesh { mesh, .. } = node.content
                && let Ok(m) = self.mesh(mesh)
            {
                let (lo, hi) = (m.bounds.min, m.bounds.max);
                for i in 0..8 {
                    let c = Vec3::new(
                        if i & 1 == 0 { lo.x } else { hi.x },
                        if i & 2 == 0 { lo.y } else { hi.y },
                        if i & 4 == 0 { lo.z } else { hi.z },
                    );
                    corners.push(world.transform_point3(c));
                }
            }
        });
        (!corners.is_empty()).then(|| Aabb::from_points(corners))
    }

    /// Visits every visible node depth-first, parents before children, with its world matrix.
    /// Hidden nodes are skipped with their subtrees. `stack` is scratch space, kept by the
    /// caller so that a per-frame traversal allocates nothing once warm.
    pub fn visit_visible(
        &self,
        stack: &mut Vec<(NodeId, Mat4)>,
        mut visit: impl FnMut(NodeId, &Node, &Mat4),
    ) {
        stack.clear();
        stack.extend(self.roots.iter().rev().map(|r| (*r, Mat4::IDENTITY)));
        while let Some((id, parent_world)) = stack.pop() {
            let Some(node) = self.nodes.get(id.0 as usize).and_then(Option::as_deref) else {
                continue;
            };
            if !node.visible {
                continue;
            }
            let world = parent_world * node.transform.to_matrix();
            visit(id, node, &world);
            stack.extend(node.children.iter().rev().map(|c| (*c, world)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Camera, Color};
    use glam::{Quat, Vec3};

    fn scene_with_cube() -> (Scene, MeshId, MaterialId) {
        let mut s = Scene::new();
        let mesh = s.add_mesh(Mesh::cube(1.0));
        let mat = s.add_material(Material::lit(Color::WHITE)).unwrap();
        (s, mesh, mat)
    }

    #[test]
    fn world_transform_composes_parents() {
        let (mut s, mesh, mat) = scene_with_cube();
        let a = s
            .add(
                Node::empty().named("a").with_transform(
                    Transform::from_translation(Vec3::new(1.0, 0.0, 0.0))
                        .with_rotation(Quat::from_rotation_y(std::f32::consts::FRAC_PI_2)),
                ),
                None,
            )
            .unwrap();
        let b = s
            .add(
                Node::mesh(mesh, mat)
                    .named("b")
                    .with_transform(Transform::from_translation(Vec3::new(0.0, 0.0, 2.0))),
                Some(a),
            )
            .unwrap();
        let p = s.world_transform(b).unwrap().transform_point3(Vec3::ZERO);
        // Rotating +Z by 90° about Y gives +X: 1 + 2 = 3 on X.
        assert!(p.abs_diff_eq(Vec3::new(3.0, 0.0, 0.0), 1e-5), "{p}");
        let mut seen = Vec::new();
        s.visit_visible(&mut Vec::new(), |id, _, w| {
            seen.push((id, w.transform_point3(Vec3::ZERO)))
        });
        assert_eq!(seen.len(), 2);
        assert!(seen[1].1.abs_diff_eq(p, 1e-5));
    }

    #[test]
    fn names_are_unique_and_ids_stable() {
        let (mut s, _, _) = scene_with_cube();
        let a = s.add(Node::empty().named("x"), None).unwrap();
        assert_eq!(
            s.add(Node::empty().named("x"), None),
            Err(SceneError::DuplicateName("x".into()))
        );
        let b = s.add(Node::empty().named("y"), Some(a)).unwrap();
        s.remove(a).unwrap();
        assert_eq!(s.find("y"), None);
        assert_eq!(s.node(b).err(), Some(SceneError::UnknownNode(b)));
        let c = s.add(Node::empty().named("x"), None).unwrap();
        assert!(c.0 > b.0, "ids are never reused");
        assert_eq!(s.node_count(), 1);
    }

    #[test]
    fn hidden_subtrees_are_not_visited() {
        let (mut s, _, _) = scene_with_cube();
        let a = s.add(Node::empty(), None).unwrap();
        s.add(Node::empty(), Some(a)).unwrap();
        let c = s
            .add(Node::camera(Camera::perspective(1.0, 1.0, 0.1, 10.0)), None)
            .unwrap();
        s.set_visible(a, false).unwrap();
        let mut seen = Vec::new();
        s.visit_visible(&mut Vec::new(), |id, _, _| seen.push(id));
        assert_eq!(seen, vec![c]);
    }

    #[test]
    fn world_bounds_cover_visible_meshes_only() {
        let (mut s, mesh, mat) = scene_with_cube();
        assert_eq!(s.world_bounds(), None);
        s.add(
            Node::mesh(mesh, mat).with_transform(Transform::from_translation(Vec3::X * 4.0)),
            None,
        )
        .unwrap();
        let hidden = s
            .add(
                Node::mesh(mesh, mat).with_transform(Transform::from_translation(Vec3::Y * 50.0)),
                None,
            )
            .unwrap();
        s.set_visible(hidden, false).unwrap();
        let b = s.world_bounds().unwrap();
        assert_eq!(
            (b.min, b.max),
            (Vec3::new(3.5, -0.5, -0.5), Vec3::new(4.5, 0.5, 0.5))
        );
    }

    #[test]
    fn an_id_past_the_limit_is_refused_before_any_slot_is_made() {
        let mut s = Scene::new();
        let err = s.put(NodeId(u32::MAX - 1), Node::empty()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "node id 4294967294 exceeds the limit of 4194304 nodes per scene"
        );
        assert_eq!(s.slot_count(), 0);
        s.put(NodeId(Scene::MAX_NODES as u32 - 1), Node::empty())
            .unwrap();
        assert_eq!(s.slot_count(), Scene::MAX_NODES);
        assert!(matches!(
            s.add(Node::empty(), None),
            Err(SceneError::TooManyNodes { .. })
        ));
    }

    #[test]
    fn put_places_nodes_at_given_ids_like_a_replica() {
        let (mut s, mesh, mat) = scene_with_cube();
        s.put(NodeId(5), Node::empty().named("group")).unwrap();
        let mut child = Node::mesh(mesh, mat).named("box");
        child.parent = Some(NodeId(5));
        s.put(NodeId(2), child.clone()).unwrap();
        assert_eq!(s.node_count(), 2);
        assert_eq!(s.find("box"), Some(NodeId(2)));
        assert_eq!(s.node(NodeId(5)).unwrap().children, vec![NodeId(2)]);
        assert_eq!(s.roots().collect::<Vec<_>>(), [NodeId(5)]);
        // Replacing keeps children and moves the node between parents.
        s.put(NodeId(5), Node::empty().named("group2")).unwrap();
        assert_eq!(s.node(NodeId(5)).unwrap().children, vec![NodeId(2)]);
        assert_eq!(s.find("group"), None);
        child.parent = None;
        s.put(NodeId(2), child).unwrap();
        assert!(s.node(NodeId(5)).unwrap().children.is_empty());
        assert_eq!(s.roots().collect::<Vec<_>>(), [NodeId(5), NodeId(2)]);
        // A later add continues after the highest slot.
        assert_eq!(s.add(Node::empty(), None).unwrap(), NodeId(6));
        let mut orphan = Node::empty();
        orphan.parent = Some(NodeId(40));
        assert_eq!(
            s.put(NodeId(7), orphan),
            Err(SceneError::UnknownNode(NodeId(40)))
        );
    }

    #[test]
    fn reparenting_refuses_cycles() {
        let (mut s, _, _) = scene_with_cube();
        let a = s.add(Node::empty(), None).unwrap();
        let b = s.add(Node::empty(), Some(a)).unwrap();
        assert_eq!(
            s.set_parent(a, Some(b)),
            Err(SceneError::Cycle { node: a, parent: b })
        );
        s.set_parent(b, None).unwrap();
        assert_eq!(s.roots().collect::<Vec<_>>(), [a, b]);
    }

    #[test]
    fn a_snapshot_of_100k_nodes_copies_only_the_edited_node() {
        let (mut s, mesh, mat) = scene_with_cube();
        let group = s.add(Node::empty().named("group"), None).unwrap();
        let mut ids = Vec::new();
        for i in 0..100_000 {
            let parent = if i % 2 == 0 { None } else { Some(group) };
            ids.push(s.add(Node::mesh(mesh, mat), parent).unwrap());
        }
        let before = crate::node::node_copies_on_this_thread();
        let snapshot = s.clone();
        assert_eq!(
            crate::node::node_copies_on_this_thread(),
            before,
            "a snapshot copies no node"
        );
        s.set_transform(ids[77_777], Transform::from_translation(Vec3::X))
            .unwrap();
        assert_eq!(
            crate::node::node_copies_on_this_thread() - before,
            1,
            "an edit after a snapshot copies exactly the edited node"
        );
        // The snapshot still sees the old version; every other node is shared.
        assert_eq!(
            snapshot.node(ids[77_777]).unwrap().transform,
            Transform::IDENTITY
        );
        for id in [ids[0], ids[77_776], ids[99_999], group] {
            assert!(Arc::ptr_eq(
                s.node_shared(id).unwrap(),
                snapshot.node_shared(id).unwrap()
            ));
        }
        // A second edit of the same node in the same frame copies nothing more.
        s.set_visible(ids[77_777], false).unwrap();
        assert_eq!(crate::node::node_copies_on_this_thread() - before, 1);
    }

    #[test]
    fn clones_share_untouched_nodes() {
        let (mut s, _, _) = scene_with_cube();
        let a = s.add(Node::empty(), None).unwrap();
        let b = s.add(Node::empty(), None).unwrap();
        let snap = s.clone();
        s.set_transform(a, Transform::from_translation(Vec3::X))
            .unwrap();
        let shared = |id: NodeId| std::ptr::eq(s.node(id).unwrap(), snap.node(id).unwrap());
        assert!(!shared(a), "edited node was copied");
        assert!(shared(b), "untouched node is shared");
        assert_eq!(snap.node(a).unwrap().transform, Transform::IDENTITY);
    }

    #[test]
    fn materials_must_name_known_textures() {
        let mut s = Scene::new();
        assert_eq!(
            s.add_material(Material::lit(Color::WHITE).with_texture(TextureId(3))),
            Err(SceneError::UnknownTexture(3))
        );
        assert!(matches!(
            s.add(Node::mesh(MeshId(0), MaterialId(0)), None),
            Err(SceneError::UnknownMesh(0))
        ));
    }
}
