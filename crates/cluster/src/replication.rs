/*!
Scene replication: the master encodes what changed between the snapshot it sent last and the
current one; a node applies that to its replica. Changes are found by `Arc` identity — the
scene is copy-on-write, so an untouched node, mesh or material is the very same allocation in
both snapshots — and sent by stable id, never by position.

What is replicated: background, ambient light, active camera; meshes and textures (added once,
they never change); materials (added or replaced); nodes (added, changed — a transform-only
change takes a short record — re-parented, removed); the root nodes' order, when applying the
rest would not give it. Diffing against an empty scene gives the
full scene, which is what a node that joins late receives.
*/
use std::borrow::Cow;
use std::sync::Arc;

use glam::{Quat, Vec2, Vec3};
use lockstep_scene::{
    Camera, Color, Frustum, Light, LightKind, Material, MaterialId, Mesh, MeshId, Node,
    NodeContent, NodeId, Scene, SceneError, Texture, TextureFilter, TextureId, Transform, Vertex,
};
use serde::{Deserialize, Serialize};

/// Why a replica could not apply a change: the stream does not fit its scene.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicationError {
    /// The bytes are not a change list.
    #[error("malformed change list: {0}")]
    Malformed(String),
    /// An asset arrived under another id than the master's: the replica missed a change.
    #[error(
        "{kind} arrived as id {got} but the master created it as {expected}: the replica is out of step"
    )]
    OutOfStep {
        /// "mesh", "material" or "texture".
        kind: &'static str,
        /// Id on the master.
        expected: u32,
        /// Id it got here.
        got: u32,
    },
    /// The scene refused a change (e.g. a node under a parent it does not have).
    #[error("cannot apply change: {0}")]
    Scene(#[from] SceneError),
}

type Trs = [f32; 10];

fn trs(t: &Transform) -> Trs {
    let (p, r, s) = (t.translation, t.rotation, t.scale);
    [p.x, p.y, p.z, r.x, r.y, r.z, r.w, s.x, s.y, s.z]
}

fn from_trs(v: &Trs) -> Transform {
    Transform {
        translation: Vec3::new(v[0], v[1], v[2]),
        rotation: Quat::from_xyzw(v[3], v[4], v[5], v[6]),
        scale: Vec3::new(v[7], v[8], v[9]),
    }
}

fn rgba(c: Color) -> [f32; 4] {
    [c.r, c.g, c.b, c.a]
}

fn color(v: [f32; 4]) -> Color {
    Color::rgba(v[0], v[1], v[2], v[3])
}

#[derive(Debug, Serialize, Deserialize)]
enum ContentRecord {
    Empty,
    Mesh {
        mesh: u32,
        material: u32,
    },
    Light {
        kind: u8,
        range: f32,
        color: [f32; 4],
        intensity: f32,
    },
    Camera {
        frustum: [f32; 6],
    },
}

#[derive(Debug, Serialize, Deserialize)]
enum Change<'a> {
    Background([f32; 4]),
    Ambient([f32; 4]),
    ActiveCamera(Option<u32>),
    AddTexture {
        id: u32,
        name: &'a str,
        width: u32,
        height: u32,
        nearest: bool,
        rgba8: &'a [u8],
    },
    AddMesh {
        id: u32,
        name: Option<&'a str>,
        vertices: Vec<[f32; 8]>,
        indices: Cow<'a, [u32]>,
    },
    PutMaterial {
        id: u32,
        name: Option<&'a str>,
        color: [f32; 4],
        texture: Option<u32>,
        lit: bool,
    },
    PutNode {
        id: u32,
        parent: Option<u32>,
        name: Option<&'a str>,
        trs: Trs,
        visible: bool,
        tint: [f32; 4],
        content: ContentRecord,
        children: Vec<u32>,
    },
    Transform {
        id: u32,
        trs: Trs,
    },
    Remove {
        id: u32,
    },
    /// The root nodes' order, when a replica would not reach it by itself.
    Roots(Vec<u32>),
}

fn content_record(c: &NodeContent) -> ContentRecord {
    match c {
        NodeContent::Empty => ContentRecord::Empty,
        NodeContent::Mesh { mesh, material } => ContentRecord::Mesh {
            mesh: mesh.0,
            material: material.0,
        },
        NodeContent::Light(l) => {
            let (kind, range) = match l.kind {
                LightKind::Directional => (0, 0.0),
                LightKind::Point { range } => (1, range),
            };
            ContentRecord::Light {
                kind,
                range,
                color: rgba(l.color),
                intensity: l.intensity,
            }
        }
        NodeContent::Camera(c) => {
            let f = c.frustum;
            ContentRecord::Camera {
                frustum: [f.left, f.right, f.bottom, f.top, f.near, f.far],
            }
        }
    }
}

fn content(r: &ContentRecord) -> NodeContent {
    match r {
        ContentRecord::Empty => NodeContent::Empty,
        ContentRecord::Mesh { mesh, material } => NodeContent::Mesh {
            mesh: MeshId(*mesh),
            material: MaterialId(*material),
        },
        ContentRecord::Light {
            kind,
            range,
            color: c,
            intensity,
        } => NodeContent::Light(Light {
            kind: if *kind == 0 {
                LightKind::Directional
            } else {
                LightKind::Point { range: *range }
            },
            color: color(*c),
            intensity: *intensity,
        }),
        ContentRecord::Camera { frustum: f } => NodeContent::Camera(Camera {
            frustum: Frustum {
                left: f[0],
                right: f[1],
                bottom: f[2],
                top: f[3],
                near: f[4],
                far: f[5],
            },
        }),
    }
}

fn put_node(id: NodeId, n: &Node) -> Change<'_> {
    Change::PutNode {
        id: id.0,
        parent: n.parent.map(|p| p.0),
        name: n.name.as_deref(),
        trs: trs(&n.transform),
        visible: n.visible,
        tint: rgba(n.tint),
        content: content_record(&n.content),
        // The order decides traversal and draw order, so replicas copy it too.
        children: n.children.iter().map(|c| c.0).collect(),
    }
}

/// Only the transform differs (the common per-frame change): a short record suffices.
fn transform_only(a: &Node, b: &Node) -> bool {
    a.name == b.name
        && a.parent == b.parent
        && a.children == b.children
        && a.visible == b.visible
        && a.tint == b.tint
        && a.content == b.content
}

/// Appends to `out` the changes that turn `prev` into `cur`, and returns how many there were.
/// `prev` must be the scene the receiving replicas hold (an empty scene for a full copy).
pub fn write_changes(
    prev: &Scene,
    cur: &Scene,
    out: &mut Vec<u8>,
) -> Result<usize, ReplicationError> {
    let mut changes: Vec<Change<'_>> = Vec::new();
    if prev.background != cur.background {
        changes.push(Change::Background(rgba(cur.background)));
    }
    if prev.ambient != cur.ambient {
        changes.push(Change::Ambient(rgba(cur.ambient)));
    }
    for (i, t) in cur.textures_shared().enumerate().skip(prev.texture_count()) {
        changes.push(Change::AddTexture {
            id: i as u32,
            name: &t.name,
            width: t.width,
            height: t.height,
            nearest: t.filter == TextureFilter::Nearest,
            rgba8: &t.rgba8,
        });
    }
    for (i, m) in cur.meshes_shared().enumerate().skip(prev.mesh_count()) {
        changes.push(Change::AddMesh {
            id: i as u32,
            name: m.name.as_deref(),
            vertices: m
                .vertices
                .iter()
                .map(|v| {
                    let (p, n, t) = (v.position, v.normal, v.uv);
                    [p.x, p.y, p.z, n.x, n.y, n.z, t.x, t.y]
                })
                .collect(),
            indices: Cow::Borrowed(&m.indices),
        });
    }
    let mut old = prev.materials_shared();
    for (i, m) in cur.materials_shared().enumerate() {
        if old.next().is_some_and(|o| Arc::ptr_eq(o, m)) {
            continue;
        }
        changes.push(Change::PutMaterial {
            id: i as u32,
            name: m.name.as_deref(),
            color: rgba(m.base_color),
            texture: m.texture.map(|t| t.0),
            lit: m.lit,
        });
    }
    // Nodes: one pass over both snapshots' slots, comparing pointers (fast: no lookups).
    // Removals go last, so a child moved out of a removed subtree has been re-parented first;
    // a replica defers a node whose parent comes later in the list.
    let mut removed = Vec::new();
    let mut old = prev.slots();
    for (i, c) in cur.slots().enumerate() {
        let p = old.next().flatten();
        let id = NodeId(i as u32);
        match (p, c) {
            (Some(p), Some(c)) if Arc::ptr_eq(p, c) => {}
            (Some(p), Some(c)) if transform_only(p, c) => changes.push(Change::Transform {
                id: id.0,
                trs: trs(&c.transform),
            }),
            (_, Some(c)) => changes.push(put_node(id, c)),
            (Some(_), None) => removed.push(Change::Remove { id: id.0 }),
            (None, None) => {}
        }
    }
    changes.extend(removed);
    if !prev.same_roots(cur) && !replica_keeps_root_order(prev, cur) {
        changes.push(Change::Roots(cur.roots().map(|r| r.0).collect()));
    }
    if prev.active_camera != cur.active_camera {
        changes.push(Change::ActiveCamera(cur.active_camera.map(|c| c.0)));
    }
    let n = changes.len();
    let v = std::mem::take(out);
    *out =
        postcard::to_extend(&changes, v).map_err(|e| ReplicationError::Malformed(e.to_string()))?;
    Ok(n)
}

/// Whether a replica holding `prev` ends with `cur`'s root order by applying the changes alone:
/// it keeps its roots that stay roots, in their order, and appends new roots in id order
/// (the order of the change list). The master appends them in the order they became roots,
/// and a joiner built from nothing has them all in id order: then the order travels.
fn replica_keeps_root_order(prev: &Scene, cur: &Scene) -> bool {
    let before: std::collections::HashSet<NodeId> = prev.roots().collect();
    let stay = prev
        .roots()
        .filter(|r| cur.node(*r).is_ok_and(|n| n.parent.is_none()));
    let mut added: Vec<NodeId> = cur.roots().filter(|r| !before.contains(r)).collect();
    added.sort_unstable();
    stay.chain(added).eq(cur.roots())
}

fn expect_id(kind: &'static str, expected: u32, got: u32) -> Result<(), ReplicationError> {
    if expected == got {
        Ok(())
    } else {
        Err(ReplicationError::OutOfStep {
            kind,
            expected,
            got,
        })
    }
}

/// Applies a change list written by [`write_changes`] to a replica; returns how many changes
/// it held.
pub fn apply_changes(scene: &mut Scene, bytes: &[u8]) -> Result<usize, ReplicationError> {
    let (changes, rest): (Vec<Change<'_>>, &[u8]) =
        postcard::take_from_bytes(bytes).map_err(|e| ReplicationError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(ReplicationError::Malformed(format!(
            "{} bytes after the change list",
            rest.len()
        )));
    }
    let n = changes.len();
    // Children orders are set once every node of the list exists.
    let mut orders: Vec<(NodeId, Vec<u32>)> = Vec::new();
    // Nodes whose parent comes later in the list wait for it.
    let mut deferred: Vec<(NodeId, Node, Vec<u32>)> = Vec::new();
    let mut removals: Vec<NodeId> = Vec::new();
    let mut roots: Option<Vec<NodeId>> = None;
    for c in changes {
        match c {
            Change::Background(v) => scene.background = color(v),
            Change::Ambient(v) => scene.ambient = color(v),
            Change::ActiveCamera(c) => scene.active_camera = c.map(NodeId),
            Change::AddTexture {
                id,
                name,
                width,
                height,
                nearest,
                rgba8,
            } => {
                let t =
                    Texture::new(name, width, height, rgba8.to_vec())?.with_filter(if nearest {
                        TextureFilter::Nearest
                    } else {
                        TextureFilter::Linear
                    });
                expect_id("texture", id, scene.add_texture(t).0)?;
            }
            Change::AddMesh {
                id,
                name,
                vertices,
                indices,
            } => {
                if let Some(bad) = indices.iter().find(|i| **i as usize >= vertices.len()) {
                    return Err(ReplicationError::Malformed(format!(
                        "mesh {id}: index {bad} is past its {} vertices",
                        vertices.len()
                    )));
                }
                let verts = vertices
                    .iter()
                    .map(|v| Vertex {
                        position: Vec3::new(v[0], v[1], v[2]),
                        normal: Vec3::new(v[3], v[4], v[5]),
                        uv: Vec2::new(v[6], v[7]),
                    })
                    .collect();
                let mut mesh = Mesh::new(verts, indices.into_owned());
                mesh.name = name.map(str::to_string);
                expect_id("mesh", id, scene.add_mesh(mesh).0)?;
            }
            Change::PutMaterial {
                id,
                name,
                color: c,
                texture,
                lit,
            } => {
                let m = Material {
                    name: name.map(str::to_string),
                    base_color: color(c),
                    texture: texture.map(TextureId),
                    lit,
                };
                if (id as usize) < scene.material_count() {
                    scene.set_material(MaterialId(id), m)?;
                } else {
                    expect_id("material", id, scene.add_material(m)?.0)?;
                }
            }
            Change::PutNode {
                id,
                parent,
                name,
                trs,
                visible,
                tint,
                content: c,
                children,
            } => {
                let mut node = Node::empty();
                node.parent = parent.map(NodeId);
                node.name = name.map(Arc::from);
                node.transform = from_trs(&trs);
                node.visible = visible;
                node.tint = color(tint);
                node.content = content(&c);
                match node.parent {
                    Some(p) if scene.node(p).is_err() => {
                        deferred.push((NodeId(id), node, children))
                    }
                    _ => {
                        scene.put(NodeId(id), node)?;
                        if children.len() > 1 {
                            orders.push((NodeId(id), children));
                        }
                    }
                }
            }
            Change::Transform { id, trs } => scene.set_transform(NodeId(id), from_trs(&trs))?,
            // After every node is placed: a child moving out of a removed subtree must have
            // moved before the subtree goes.
            Change::Remove { id } => removals.push(NodeId(id)),
            Change::Roots(order) => roots = Some(order.into_iter().map(NodeId).collect()),
        }
    }
    while !deferred.is_empty() {
        let before = deferred.len();
        let mut waiting = Vec::new();
        for (id, node, children) in deferred {
            if node.parent.is_some_and(|p| scene.node(p).is_err()) {
                waiting.push((id, node, children));
                continue;
            }
            scene.put(id, node)?;
            if children.len() > 1 {
                orders.push((id, children));
            }
        }
        if waiting.len() == before {
            let (id, node, _) = &waiting[0];
            return Err(ReplicationError::Malformed(format!(
                "node {id} names parent {}, which the change list never provides",
                node.parent.map_or(0, |p| p.0)
            )));
        }
        deferred = waiting;
    }
    for id in removals {
        match scene.remove(id) {
            // Already gone with a removed ancestor.
            Ok(()) | Err(SceneError::UnknownNode(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    for (id, order) in orders {
        let order: Vec<NodeId> = order.into_iter().map(NodeId).collect();
        match scene.order_children(id, &order) {
            Ok(()) | Err(SceneError::UnknownNode(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(order) = roots {
        scene.order_roots(&order);
    }
    Ok(n)
}
