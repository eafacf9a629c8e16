/*!
The scene digest: one 64-bit number for everything a frame shows, which the master and its
nodes compare to prove they hold the same scene (`lockstep demo`, `master --verify`, `soak`).

**What it covers.** Every field Cull and Draw read, and the names the application finds nodes
by: background, ambient light, active camera; each mesh's vertices (position, normal, UV),
indices and bounds; each texture's size, filter and texels; each material's colour, texture
and lighting; each node's parent, name, children in order, transform, visibility, tint and
content (mesh and material, light, camera frustum). A replica whose one vertex or one texel
differs gets another digest.

**Why its value is fixed.** Each part is written in one canonical little-endian encoding
(floats by their bits) and hashed with XXH3-64, whose output its specification fixes: every
build, toolchain and machine computes the same number for the same scene, so processes built
apart still agree, and a test can pin the demo scene's digest.

**Why it is cheap per frame.** Meshes, textures, materials and nodes sit behind `Arc`s and
the scene is copy-on-write, so an item that is the very same allocation as in the scene hashed
last is unchanged. [`SceneHasher`] keeps that scene and one digest per item, and per frame
rehashes only the items whose pointer changed, then hashes the list of item digests.
*/
use std::sync::Arc;

use lockstep_scene::{Color, Material, Mesh, Node, NodeContent, Scene, Texture, TextureFilter};
use xxhash_rust::xxh3::{Xxh3, xxh3_64};

/// Leads every digest, so that a change of this encoding is a change of every value.
const ENCODING: &[u8] = b"lockstep scene digest v1";

/// Bytes gathered before they are fed to the streaming hasher (large meshes and textures).
const CHUNK: usize = 64 * 1024;

/// The digest of an empty node slot (a removed node). A node whose XXH3 is 0 would count as
/// absent: a chance of one in 2^64.
const EMPTY_SLOT: u64 = 0;

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
    nodes: Vec<u64>,
    canon: Canon,
    /// The top-level record, reused.
    top: Vec<u8>,
}

impl SceneHasher {
    /// The digest of `scene`.
    pub fn hash(&mut self, scene: &Scene) -> u64 {
        let last = self.last.take();
        let canon = &mut self.canon;
        refresh(
            &mut self.meshes,
            last.iter().flat_map(|l| l.meshes_shared().map(Some)),
            scene.meshes_shared().map(Some),
            |m| canon.mesh(m),
        );
        refresh(
            &mut self.textures,
            last.iter().flat_map(|l| l.textures_shared().map(Some)),
            scene.textures_shared().map(Some),
            |t| canon.texture(t),
        );
        refresh(
            &mut self.materials,
            last.iter().flat_map(|l| l.materials_shared().map(Some)),
            scene.materials_shared().map(Some),
            |m| canon.material(m),
        );
        refresh(
            &mut self.nodes,
            last.iter().flat_map(|l| l.slots()),
            scene.slots(),
            |n| canon.node(n),
        );
        drop(last);

        let top = &mut self.top;
        top.clear();
        top.extend_from_slice(ENCODING);
        put_color(top, scene.background);
        put_color(top, scene.ambient);
        put_option(top, scene.active_camera.map(|c| c.0));
        for list in [&self.meshes, &self.textures, &self.materials] {
            top.extend_from_slice(&(list.len() as u64).to_le_bytes());
            for d in list {
                top.extend_from_slice(&d.to_le_bytes());
            }
        }
        // Live nodes by id: a replica has no slot for a node the master added and removed
        // between two frames, and nothing of an empty slot is drawn.
        for (id, d) in self.nodes.iter().enumerate() {
            if *d != EMPTY_SLOT {
                top.extend_from_slice(&(id as u32).to_le_bytes());
                top.extend_from_slice(&d.to_le_bytes());
            }
        }
        self.last = Some(scene.clone());
        xxh3_64(top)
    }
}

/// Brings `digests` (one per item of the previous list, `old`) up to date with `new`,
/// rehashing only items that are not the same allocation as before. `None` is an empty slot.
fn refresh<'a, T: 'a>(
    digests: &mut Vec<u64>,
    mut old: impl Iterator<Item = Option<&'a Arc<T>>>,
    new: impl Iterator<Item = Option<&'a Arc<T>>>,
    mut digest: impl FnMut(&T) -> u64,
) {
    let mut len = 0;
    for (i, item) in new.enumerate() {
        let unchanged = match (old.next(), item) {
            (Some(Some(o)), Some(n)) => Arc::ptr_eq(o, n),
            (Some(None), None) => true,
            _ => false,
        } && i < digests.len();
        if !unchanged {
            let d = item.map_or(EMPTY_SLOT, |n| digest(n));
            match digests.get_mut(i) {
                Some(slot) => *slot = d,
                None => digests.push(d),
            }
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
#[derive(Default)]
struct Canon {
    buf: Vec<u8>,
    stream: Option<Box<Xxh3>>,
}

impl Canon {
    fn begin(&mut self) {
        self.buf.clear();
        self.stream = None;
    }

    /// Moves what is gathered into the streaming hasher once it is a chunk.
    fn spill(&mut self) {
        if self.buf.len() >= CHUNK {
            self.stream
                .get_or_insert_with(|| Box::new(Xxh3::new()))
                .update(&self.buf);
            self.buf.clear();
        }
    }

    fn finish(&mut self) -> u64 {
        match self.stream.take() {
            Some(mut s) => {
                s.update(&self.buf);
                s.digest()
            }
            None => xxh3_64(&self.buf),
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
        for chunk in t.rgba8.chunks(CHUNK) {
            self.buf.extend_from_slice(chunk);
            self.spill();
        }
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
                    lockstep_scene::LightKind::Directional => out.push(0),
                    lockstep_scene::LightKind::Point { range } => {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use glam::Vec3;
    use lockstep_scene::{Transform, Vertex};

    fn scene() -> Scene {
        let mut s = Scene::new();
        let cube = s.add_mesh(Mesh::cube(1.0));
        let tex = s.add_texture(Texture::checker("c", 8, 2, [255, 0, 0, 255], [0; 4]));
        let m = s
            .add_material(Material::lit(Color::WHITE).with_texture(tex))
            .unwrap();
        for i in 0..20 {
            s.add(Node::mesh(cube, m).named(format!("n{i}")), None)
                .unwrap();
        }
        s
    }

    #[test]
    fn frame_after_frame_the_hasher_gives_the_digest_from_scratch() {
        let mut s = scene();
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
        // A different scene altogether, then the first one again.
        let other = Scene::new();
        assert_eq!(h.hash(&other), scene_hash(&other));
        assert_eq!(h.hash(&s), scene_hash(&s));
    }

    #[test]
    fn equal_content_in_other_allocations_gives_the_same_digest() {
        assert_eq!(scene_hash(&scene()), scene_hash(&scene()));
    }

    #[test]
    fn a_large_mesh_is_hashed_in_chunks_like_one_buffer() {
        // More than a chunk of vertex data: the streaming path.
        let n = CHUNK / 32 * 3;
        let verts: Vec<Vertex> = (0..n)
            .map(|i| Vertex {
                position: Vec3::splat(i as f32),
                ..Default::default()
            })
            .collect();
        let mesh = Mesh::new(verts, (0..n as u32).collect());
        let mut c = Canon::default();
        let streamed = c.mesh(&mesh);
        assert!(
            c.buf.capacity() <= 2 * CHUNK,
            "never one buffer for the mesh: {}",
            c.buf.capacity()
        );
        let mut whole = Vec::new();
        put_str(&mut whole, None);
        let b = mesh.bounds;
        put_f32s(
            &mut whole,
            &[b.min.x, b.min.y, b.min.z, b.max.x, b.max.y, b.max.z],
        );
        whole.extend_from_slice(&(n as u64).to_le_bytes());
        for v in &mesh.vertices {
            let (p, nn, t) = (v.position, v.normal, v.uv);
            put_f32s(&mut whole, &[p.x, p.y, p.z, nn.x, nn.y, nn.z, t.x, t.y]);
        }
        whole.extend_from_slice(&(n as u64).to_le_bytes());
        for i in &mesh.indices {
            whole.extend_from_slice(&i.to_le_bytes());
        }
        assert_eq!(streamed, xxh3_64(&whole));
    }
}
