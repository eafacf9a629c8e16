/*!
The scene digest: one 64-bit number for everything a frame shows, which the master and its
nodes compare to prove they hold the same scene (`lockstep demo`, `master --verify`, `soak`).

**What it covers.** Every field Cull and Draw read, and the names the application finds nodes
by: background, ambient light, active camera, the order of the root nodes; each mesh's
vertices (position, normal, UV), indices and bounds; each texture's size, filter and texels;
each material's colour, texture and lighting; each live node's parent, name, children in
order, transform, visibility, tint and content (mesh and material, light, camera frustum). A
replica whose one vertex or one texel differs gets another digest.

**Why its value is fixed.** Each part is written in one canonical little-endian encoding
(floats by their bits) and hashed with XXH3-64, whose output its specification fixes: every
build and toolchain computes the same number for the same scene, so processes built apart
still agree, and a test can pin a scene's digest.

**Why it is cheap per frame.** Meshes, textures, materials and nodes sit behind `Arc`s and
the scene is copy-on-write, so an item that is the very same allocation as in the scene hashed
last is unchanged. [`SceneHasher`] keeps that scene and a digest per item, rehashes only the
items whose pointer changed, and combines node digests in blocks of [`BLOCK`] slots, so a
frame rehashes one block per changed node and then the short list of block digests — not
every node of a large scene. Keeping the last scene has one cost: the next edit of a node
copies it (its `Arc` is shared), as it does whenever a snapshot is alive.
*/
use std::sync::Arc;

use lockstep_scene::{
    Color, LightKind, Material, Mesh, Node, NodeContent, NodeId, Scene, Texture, TextureFilter,
};
use xxhash_rust::xxh3::{Xxh3Default, xxh3_64};

/// Leads every digest, so that a change of this encoding is a change of every value.
const ENCODING: &[u8] = b"lockstep scene digest v1";

/// Node slots per block of the node digest: small enough that a changed node costs little
/// to rehash, large enough that the list of blocks stays short. Part of the encoding: another
/// value gives other digests.
pub const BLOCK: usize = 64;

/// Bytes gathered before they go to the streaming hasher (large meshes and textures).
const CHUNK: usize = 64 * 1024;

/// The digest of `scene`, computed from scratch (see [`SceneHasher`] for frame after frame).
pub fn scene_hash(scene: &Scene) -> u64 {
    SceneHasher::default().hash(scene)
}

/// Digests scene after scene, rehashing only what changed since the last one.
///
/// The digest of a scene does not depend on which scenes were hashed before it: it always
/// equals [`scene_hash`] of that scene.
#[derive(Default)]
pub struct SceneHasher {
    /// The scene hashed last. Holding it keeps its `Arc`s alive, so an `Arc` of the next scene
    /// at the same address is the same, unchanged item (never a new one at a reused address).
    last: Option<Scene>,
    meshes: Vec<u64>,
    textures: Vec<u64>,
    materials: Vec<u64>,
    /// Per node slot; `None` for an empty one.
    nodes: Vec<Option<u64>>,
    /// Per block of [`BLOCK`] slots (`None`: no live node in it), with whether it must be
    /// recomputed.
    blocks: Vec<(Option<u64>, bool)>,
    roots: u64,
    canon: Canon,
    /// The top-level record, reused.
    top: Vec<u8>,
    /// Items hashed so far (meshes, textures, materials and nodes): what caching saves.
    rehashed: u64,
}

impl SceneHasher {
    /// The digest of `scene`.
    pub fn hash(&mut self, scene: &Scene) -> u64 {
        let last = self.last.take();
        let canon = &mut self.canon;
        let rehashed = &mut self.rehashed;
        let mut fresh = |_: usize| *rehashed += 1;
        refresh(
            &mut self.meshes,
            last.iter().flat_map(|l| l.meshes_shared().map(Some)),
            scene.meshes_shared().map(Some),
            |m| m.map_or(0, |m| canon.mesh(m)),
            &mut fresh,
        );
        refresh(
            &mut self.textures,
            last.iter().flat_map(|l| l.textures_shared().map(Some)),
            scene.textures_shared().map(Some),
            |t| t.map_or(0, |t| canon.texture(t)),
            &mut fresh,
        );
        refresh(
            &mut self.materials,
            last.iter().flat_map(|l| l.materials_shared().map(Some)),
            scene.materials_shared().map(Some),
            |m| m.map_or(0, |m| canon.material(m)),
            &mut fresh,
        );
        let blocks = &mut self.blocks;
        let before = self.nodes.len();
        refresh(
            &mut self.nodes,
            last.iter().flat_map(|l| l.slots()),
            scene.slots(),
            |n| n.map(|n| canon.node(n)),
            &mut |slot| {
                *rehashed += 1;
                mark(blocks, slot);
            },
        );
        // A slot gone at the end (a different scene) changes its block too.
        for slot in self.nodes.len()..before {
            mark(&mut self.blocks, slot);
        }
        self.blocks.truncate(self.nodes.len().div_ceil(BLOCK));
        for (i, block) in self.blocks.iter_mut().enumerate() {
            if block.1 {
                let slots = &self.nodes[i * BLOCK..((i + 1) * BLOCK).min(self.nodes.len())];
                *block = (self.canon.block(i * BLOCK, slots), false);
            }
        }
        if !last.as_ref().is_some_and(|l| l.same_roots(scene)) {
            self.roots = self.canon.roots(scene);
        }
        drop(last);

        let top = &mut self.top;
        top.clear();
        top.extend_from_slice(ENCODING);
        put_color(top, scene.background);
        put_color(top, scene.ambient);
        put_option(top, scene.active_camera.map(|c| c.0));
        top.extend_from_slice(&self.roots.to_le_bytes());
        for list in [&self.meshes, &self.textures, &self.materials] {
            top.extend_from_slice(&(list.len() as u64).to_le_bytes());
            for d in list {
                top.extend_from_slice(&d.to_le_bytes());
            }
        }
        // Blocks with a live node, by index: a replica lacks the master's empty slots at the
        // end (nodes added and removed between two frames).
        for (i, (d, _)) in self.blocks.iter().enumerate() {
            if let Some(d) = d {
                top.extend_from_slice(&(i as u64).to_le_bytes());
                top.extend_from_slice(&d.to_le_bytes());
            }
        }
        self.last = Some(scene.clone());
        xxh3_64(top)
    }

    /// How many meshes, textures, materials and nodes were hashed since this hasher was made.
    pub fn items_hashed(&self) -> u64 {
        self.rehashed
    }
}

/// Marks the block holding node slot `slot` for recomputing.
fn mark(blocks: &mut Vec<(Option<u64>, bool)>, slot: usize) {
    let b = slot / BLOCK;
    if blocks.len() <= b {
        blocks.resize(b + 1, (None, true));
    }
    blocks[b].1 = true;
}

/// Brings `digests` (one per item of the previous list, `old`) up to date with `new`,
/// rehashing only items that are not the same allocation as before (`changed` hears of each
/// slot that got a new value). `None` is an empty slot.
fn refresh<'a, T: 'a, D>(
    digests: &mut Vec<D>,
    mut old: impl Iterator<Item = Option<&'a Arc<T>>>,
    new: impl Iterator<Item = Option<&'a Arc<T>>>,
    mut digest: impl FnMut(Option<&T>) -> D,
    changed: &mut impl FnMut(usize),
) {
    let mut len = 0;
    for (i, item) in new.enumerate() {
        let unchanged = match (old.next(), item) {
            (Some(Some(o)), Some(n)) => Arc::ptr_eq(o, n),
            (Some(None), None) => true,
            _ => false,
        } && i < digests.len();
        if !unchanged {
            let d = digest(item.map(|a| &**a));
            match digests.get_mut(i) {
                Some(slot) => *slot = d,
                None => digests.push(d),
            }
            changed(i);
        }
        len = i + 1;
    }
    digests.truncate(len);
}

fn put_f32s(out: &mut Vec<u8>, values: &[f32]) {
    for v in values {
        out.extend_from_slice(&v.to_bits().to_le_bytes());
    }
}

fn put_color(out: &mut Vec<u8>, c: Color) {
    put_f32s(out, &[c.r, c.g, c.b, c.a]);
}

fn put_option(out: &mut Vec<u8>, v: Option<u32>) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// The canonical encoding of one item, hashed as it is written: small items in one call,
/// large meshes and textures through the streaming hasher a chunk at a time (the same value
/// as hashing the whole encoding at once, by XXH3's definition).
struct Canon {
    buf: Vec<u8>,
    stream: Xxh3Default,
    /// Whether `stream` holds part of the current item.
    streaming: bool,
    /// Bytes gathered before they go to `stream`.
    chunk: usize,
}

impl Default for Canon {
    fn default() -> Self {
        Canon::with_chunk(CHUNK)
    }
}

impl Canon {
    fn with_chunk(chunk: usize) -> Self {
        Canon {
            buf: Vec::new(),
            stream: Xxh3Default::new(),
            streaming: false,
            chunk,
        }
    }

    fn begin(&mut self) {
        self.buf.clear();
        self.stream.reset();
        self.streaming = false;
    }

    /// Moves what is gathered into the streaming hasher once it is a chunk.
    fn spill(&mut self) {
        if self.buf.len() >= self.chunk {
            self.stream.update(&self.buf);
            self.streaming = true;
            self.buf.clear();
        }
    }

    /// Adds a large run of bytes without copying it.
    fn put_bytes(&mut self, bytes: &[u8]) {
        if bytes.len() < self.chunk {
            self.buf.extend_from_slice(bytes);
            self.spill();
            return;
        }
        self.stream.update(&self.buf);
        self.buf.clear();
        self.stream.update(bytes);
        self.streaming = true;
    }

    fn finish(&mut self) -> u64 {
        if self.streaming {
            self.stream.update(&self.buf);
            self.stream.digest()
        } else {
            xxh3_64(&self.buf)
        }
    }

    fn mesh(&mut self, m: &Mesh) -> u64 {
        self.begin();
        put_str(&mut self.buf, m.name.as_deref());
        let b = m.bounds;
        put_f32s(
            &mut self.buf,
            &[b.min.x, b.min.y, b.min.z, b.max.x, b.max.y, b.max.z],
        );
        self.buf
            .extend_from_slice(&(m.vertices.len() as u64).to_le_bytes());
        for v in &m.vertices {
            let (p, n, t) = (v.position, v.normal, v.uv);
            put_f32s(&mut self.buf, &[p.x, p.y, p.z, n.x, n.y, n.z, t.x, t.y]);
            self.spill();
        }
        self.buf
            .extend_from_slice(&(m.indices.len() as u64).to_le_bytes());
        for i in &m.indices {
            self.buf.extend_from_slice(&i.to_le_bytes());
            self.spill();
        }
        self.finish()
    }

    fn texture(&mut self, t: &Texture) -> u64 {
        self.begin();
        put_str(&mut self.buf, Some(&t.name));
        self.buf.extend_from_slice(&t.width.to_le_bytes());
        self.buf.extend_from_slice(&t.height.to_le_bytes());
        self.buf.push(match t.filter {
            TextureFilter::Linear => 0,
            TextureFilter::Nearest => 1,
        });
        self.buf
            .extend_from_slice(&(t.rgba8.len() as u64).to_le_bytes());
        self.put_bytes(&t.rgba8);
        self.finish()
    }

    fn material(&mut self, m: &Material) -> u64 {
        self.begin();
        put_str(&mut self.buf, m.name.as_deref());
        put_color(&mut self.buf, m.base_color);
        put_option(&mut self.buf, m.texture.map(|t| t.0));
        self.buf.push(u8::from(m.lit));
        self.finish()
    }

    fn node(&mut self, n: &Node) -> u64 {
        self.begin();
        let out = &mut self.buf;
        put_option(out, n.parent.map(|p| p.0));
        put_str(out, n.name.as_deref());
        out.extend_from_slice(&(n.children.len() as u64).to_le_bytes());
        for c in &n.children {
            out.extend_from_slice(&c.0.to_le_bytes());
        }
        let (p, r, s) = (
            n.transform.translation,
            n.transform.rotation,
            n.transform.scale,
        );
        put_f32s(out, &[p.x, p.y, p.z, r.x, r.y, r.z, r.w, s.x, s.y, s.z]);
        out.push(u8::from(n.visible));
        put_color(out, n.tint);
        match &n.content {
            NodeContent::Empty => out.push(0),
            NodeContent::Mesh { mesh, material } => {
                out.push(1);
                out.extend_from_slice(&mesh.0.to_le_bytes());
                out.extend_from_slice(&material.0.to_le_bytes());
            }
            NodeContent::Light(l) => {
                out.push(2);
                match l.kind {
                    LightKind::Directional => out.push(0),
                    LightKind::Point { range } => {
                        out.push(1);
                        put_f32s(out, &[range]);
                    }
                }
                put_color(out, l.color);
                put_f32s(out, &[l.intensity]);
            }
            NodeContent::Camera(c) => {
                out.push(3);
                let f = c.frustum;
                put_f32s(out, &[f.left, f.right, f.bottom, f.top, f.near, f.far]);
            }
        }
        self.finish()
    }

    /// The live nodes of one block, by id (nothing of an empty slot is drawn, and a replica
    /// has no slot for a node the master added and removed between two frames); `None` if it
    /// has none.
    fn block(&mut self, first: usize, slots: &[Option<u64>]) -> Option<u64> {
        if slots.iter().all(Option::is_none) {
            return None;
        }
        self.begin();
        for (i, d) in slots.iter().enumerate() {
            if let Some(d) = d {
                self.buf
                    .extend_from_slice(&((first + i) as u32).to_le_bytes());
                self.buf.extend_from_slice(&d.to_le_bytes());
            }
        }
        Some(self.finish())
    }

    /// The root nodes, in the order Cull visits them.
    fn roots(&mut self, scene: &Scene) -> u64 {
        self.begin();
        for NodeId(id) in scene.roots() {
            self.buf.extend_from_slice(&id.to_le_bytes());
            self.spill();
        }
        self.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glam::Vec3;
    use lockstep_scene::{Transform, Vertex};

    fn scene(nodes: usize) -> Scene {
        let mut s = Scene::new();
        let cube = s.add_mesh(Mesh::cube(1.0));
        let tex = s.add_texture(Texture::checker("c", 8, 2, [255, 0, 0, 255], [0; 4]));
        let m = s
            .add_material(Material::lit(Color::WHITE).with_texture(tex))
            .unwrap();
        for i in 0..nodes {
            s.add(Node::mesh(cube, m).named(format!("n{i}")), None)
                .unwrap();
        }
        s
    }

    #[test]
    fn frame_after_frame_the_hasher_gives_the_digest_from_scratch() {
        let mut s = scene(20);
        let mut h = SceneHasher::default();
        assert_eq!(h.hash(&s), scene_hash(&s));
        let a = s.find("n3").unwrap();
        s.set_transform(a, Transform::from_translation(Vec3::X))
            .unwrap();
        let moved = h.hash(&s);
        assert_eq!(moved, scene_hash(&s));
        s.remove(a).unwrap();
        assert_eq!(h.hash(&s), scene_hash(&s));
        assert_ne!(h.hash(&s), moved);
        // A different scene altogether, a larger one, then the first one again.
        let other = Scene::new();
        assert_eq!(h.hash(&other), scene_hash(&other));
        let large = scene(3 * BLOCK + 5);
        assert_eq!(h.hash(&large), scene_hash(&large));
        assert_eq!(h.hash(&s), scene_hash(&s));
    }

    #[test]
    fn a_frame_rehashes_only_the_nodes_that_changed() {
        let mut s = scene(2 * BLOCK);
        let mut h = SceneHasher::default();
        h.hash(&s);
        // Every mesh, texture, material and node once.
        assert_eq!(h.items_hashed(), 3 + 2 * BLOCK as u64);
        h.hash(&s);
        assert_eq!(h.items_hashed(), 3 + 2 * BLOCK as u64, "nothing changed");
        let a = s.find(&format!("n{}", BLOCK + 3)).unwrap();
        s.set_transform(a, Transform::from_translation(Vec3::Y))
            .unwrap();
        assert_eq!(h.hash(&s), scene_hash(&s));
        assert_eq!(h.items_hashed(), 4 + 2 * BLOCK as u64, "one node moved");
    }

    #[test]
    fn the_order_of_the_roots_is_part_of_the_digest() {
        let mut a = scene(3);
        let mut b = scene(3);
        let (n0, n1) = (a.find("n0").unwrap(), a.find("n1").unwrap());
        // The same nodes, n0 last among the roots of b.
        b.set_parent(n0, Some(n1)).unwrap();
        b.set_parent(n0, None).unwrap();
        assert_ne!(a.roots().collect::<Vec<_>>(), b.roots().collect::<Vec<_>>());
        assert_ne!(scene_hash(&a), scene_hash(&b));
        a.set_parent(n0, Some(n1)).unwrap();
        a.set_parent(n0, None).unwrap();
        assert_eq!(scene_hash(&a), scene_hash(&b));
    }

    #[test]
    fn empty_slots_at_the_end_change_nothing_even_past_a_block() {
        // The master's nodes added and removed between two frames leave it empty slots that a
        // replica never had.
        let mut master = scene(BLOCK + 5);
        for i in BLOCK - 5..BLOCK + 5 {
            let id = master.find(&format!("n{i}")).unwrap();
            master.remove(id).unwrap();
        }
        let replica = scene(BLOCK - 5);
        assert!(master.slot_count() > BLOCK && replica.slot_count() < BLOCK);
        assert_eq!(scene_hash(&master), scene_hash(&replica));
        let mut h = SceneHasher::default();
        h.hash(&scene(BLOCK + 5));
        assert_eq!(h.hash(&master), scene_hash(&replica));
    }

    #[test]
    fn equal_content_in_other_allocations_gives_the_same_digest() {
        assert_eq!(scene_hash(&scene(20)), scene_hash(&scene(20)));
    }

    /// The value XXH3 and this encoding give for a scene built without floating-point
    /// functions (the demo's pin, in `lockstep`, also depends on the platform's `sin`/`cos`).
    #[test]
    fn a_scene_of_plain_numbers_has_a_fixed_digest() {
        let mut s = Scene::new();
        let tri = s.add_mesh(Mesh::new(
            vec![
                Vertex {
                    position: Vec3::ZERO,
                    ..Default::default()
                },
                Vertex {
                    position: Vec3::X,
                    ..Default::default()
                },
                Vertex {
                    position: Vec3::Y,
                    ..Default::default()
                },
            ],
            vec![0, 1, 2],
        ));
        let m = s.add_material(Material::unlit(Color::WHITE)).unwrap();
        s.add(Node::mesh(tri, m).named("tri"), None).unwrap();
        assert_eq!(format!("{:016x}", scene_hash(&s)), "cccedd7b07e26746");
    }

    #[test]
    fn large_items_hashed_in_chunks_give_the_value_of_one_buffer() {
        let n = 3000;
        let verts: Vec<Vertex> = (0..n)
            .map(|i| Vertex {
                position: Vec3::splat(i as f32),
                ..Default::default()
            })
            .collect();
        let mesh = Mesh::new(verts, (0..n as u32).collect());
        let texture = Texture::checker("t", 64, 4, [1, 2, 3, 4], [5, 6, 7, 8]);
        let mut whole = Canon::with_chunk(usize::MAX);
        let mut chunked = Canon::with_chunk(100);
        assert_eq!(chunked.mesh(&mesh), whole.mesh(&mesh));
        assert!(
            chunked.buf.capacity() < 1000,
            "never one buffer for the mesh"
        );
        assert_eq!(chunked.texture(&texture), whole.texture(&texture));
        // And the streaming path is the one-shot XXH3 of the same bytes.
        let mut one = Canon::with_chunk(usize::MAX);
        one.begin();
        one.buf.extend_from_slice(b"abc");
        let mut two = Canon::with_chunk(1);
        two.begin();
        two.put_bytes(b"abc");
        assert_eq!(one.finish(), two.finish());
    }
}
