/*!
Cull: from a scene and a view to a sorted, instanced draw list.

Every visible mesh node gets a world-space bounding sphere, tested against the six planes of the
view's frustum. Survivors are sorted by (pipeline, material, mesh) so that Draw changes state as
rarely as possible, and runs of the same key become one instanced draw. The list is reused from
frame to frame: once its buffers have grown, culling allocates nothing.
*/
use std::ops::Range;

use glam::{Mat3, Mat4, Vec3, Vec4};
use lockstep_scene::{LightKind, MaterialId, MeshId, NodeContent, NodeId, Scene, SceneError};

use crate::raw::{InstanceRaw, LightRaw, MAX_LIGHTS};

/// Which render pipeline draws a batch; the order here is the draw order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PipelineKind {
    /// Per-pixel lighting.
    Lit,
    /// Base colour only.
    Unlit,
}

/// Where a view looks from and how it projects.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    /// World-to-eye matrix.
    pub view: Mat4,
    /// Eye-to-clip matrix (wgpu depth range 0..1).
    pub projection: Mat4,
}

impl View {
    /// A view from the camera on node `camera` (its world transform and frustum).
    pub fn from_camera(scene: &Scene, camera: NodeId) -> Result<View, SceneError> {
        let node = scene.node(camera)?;
        let NodeContent::Camera(cam) = node.content else {
            return Err(SceneError::UnknownNode(camera));
        };
        Ok(View {
            view: scene.world_transform(camera)?.inverse(),
            projection: cam.frustum.projection(),
        })
    }

    /// The eye position in world space.
    pub fn eye(&self) -> Vec3 {
        self.view.inverse().w_axis.truncate()
    }
}

/// Counters of one Cull run, for tests and statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CullStats {
    /// Visible mesh nodes considered.
    pub considered: u32,
    /// Nodes inside the frustum, to be drawn.
    pub drawn: u32,
    /// Nodes outside the frustum, dropped.
    pub culled: u32,
    /// Instanced draw calls after grouping.
    pub batches: u32,
    /// Triangles that the draw calls will submit.
    pub triangles: u64,
}

/// One instanced draw: `instances` of `mesh` with `material` through `pipeline`.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Pipeline to bind.
    pub pipeline: PipelineKind,
    /// Material whose texture to bind.
    pub material: MaterialId,
    /// Mesh to draw.
    pub mesh: MeshId,
    /// Range into [`DrawList::instances`].
    pub instances: Range<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct SortKey {
    pipeline: PipelineKind,
    material: MaterialId,
    mesh: MeshId,
}

/// Everything Draw needs for one view of one frame.
#[derive(Debug, Default)]
pub struct DrawList {
    /// Frame number this list was culled for.
    pub frame: u64,
    /// The view it was culled for.
    pub view_proj: Mat4,
    /// Eye position in world space.
    pub eye: Vec3,
    /// Draw calls, sorted by pipeline, material, mesh.
    pub batches: Vec<Batch>,
    /// Per-instance data, grouped by batch.
    pub instances: Vec<InstanceRaw>,
    /// Lights in world space (at most [`MAX_LIGHTS`]).
    pub lights: Vec<LightRaw>,
    /// Counters.
    pub stats: CullStats,
    // Scratch kept between frames so that culling allocates nothing once warm.
    keys: Vec<(SortKey, u32)>,
    unsorted: Vec<InstanceRaw>,
    stack: Vec<(NodeId, Mat4)>,
}

/// Culls `scene` for `view` into a fresh draw list.
pub fn cull(scene: &Scene, view: &View, frame: u64) -> Result<DrawList, SceneError> {
    let mut list = DrawList::default();
    list.cull(scene, view, frame)?;
    Ok(list)
}

impl DrawList {
    /// Culls `scene` for `view`, replacing this list's contents and reusing its buffers.
    pub fn cull(&mut self, scene: &Scene, view: &View, frame: u64) -> Result<(), SceneError> {
        let view_proj = view.projection * view.view;
        let planes = frustum_planes(&view_proj);
        self.frame = frame;
        self.view_proj = view_proj;
        self.eye = view.eye();
        self.batches.clear();
        self.instances.clear();
        self.lights.clear();
        self.keys.clear();
        self.unsorted.clear();
        self.stats = CullStats::default();

        let mut error = None;
        let mut stack = std::mem::take(&mut self.stack);
        scene.visit_visible(&mut stack, |_, node, world| match node.content {
            NodeContent::Mesh { mesh, material } => {
                self.stats.considered += 1;
                let (m, mat) = match (scene.mesh(mesh), scene.material(material)) {
                    (Ok(m), Ok(mat)) => (m, mat),
                    (Err(e), _) | (_, Err(e)) => {
                        error.get_or_insert(e);
                        return;
                    }
                };
                let center = world.transform_point3(m.bounds.center());
                let scale = world
                    .x_axis
                    .truncate()
                    .length()
                    .max(world.y_axis.truncate().length())
                    .max(world.z_axis.truncate().length());
                let radius = m.bounds.radius() * scale;
                let linear = Mat3::from_mat4(*world);
                let det = linear.determinant();
                if !sphere_visible(&planes, center, radius) || det.abs() < 1e-12 || !det.is_finite()
                {
                    self.stats.culled += 1;
                    return;
                }
                let normal = linear.inverse().transpose();
                let color = mat.base_color * node.tint;
                self.keys.push((
                    SortKey {
                        pipeline: if mat.lit {
                            PipelineKind::Lit
                        } else {
                            PipelineKind::Unlit
                        },
                        material,
                        mesh,
                    },
                    self.unsorted.len() as u32,
                ));
                self.unsorted.push(InstanceRaw {
                    model: world.to_cols_array_2d(),
                    normal: [
                        normal.x_axis.extend(0.0).to_array(),
                        normal.y_axis.extend(0.0).to_array(),
                        normal.z_axis.extend(0.0).to_array(),
                    ],
                    color: [color.r, color.g, color.b, color.a],
                });
                self.stats.drawn += 1;
                self.stats.triangles += m.triangle_count() as u64;
            }
            NodeContent::Light(light) => {
                let c = light.color;
                let i = light.intensity;
                let (pos, range) = match light.kind {
                    LightKind::Directional => {
                        let dir = world.transform_vector3(Vec3::NEG_Z).normalize_or_zero();
                        (dir.extend(0.0), 0.0)
                    }
                    LightKind::Point { range } => (world.w_axis.truncate().extend(1.0), range),
                };
                self.lights.push(LightRaw {
                    position_or_direction: pos.to_array(),
                    color_range: [c.r * i, c.g * i, c.b * i, range],
                });
            }
            NodeContent::Empty | NodeContent::Camera(_) => {}
        });
        self.stack = stack;
        if let Some(e) = error {
            return Err(e);
        }
        if self.lights.len() > MAX_LIGHTS {
            // Directional lights first (they reach everything), then the nearest point lights.
            let eye = self.eye;
            self.lights
                .sort_by(|a, b| light_distance(a, eye).total_cmp(&light_distance(b, eye)));
            self.lights.truncate(MAX_LIGHTS);
        }

        // Stable by (key, traversal order): the same scene always gives the same list.
        self.keys.sort_unstable();
        let mut current: Option<SortKey> = None;
        for (key, index) in &self.keys {
            let i = self.instances.len() as u32;
            self.instances.push(self.unsorted[*index as usize]);
            match (current, self.batches.last_mut()) {
                (Some(k), Some(b)) if k == *key => b.instances.end = i + 1,
                _ => {
                    self.batches.push(Batch {
                        pipeline: key.pipeline,
                        material: key.material,
                        mesh: key.mesh,
                        instances: i..i + 1,
                    });
                    current = Some(*key);
                }
            }
        }
        self.stats.batches = self.batches.len() as u32;
        Ok(())
    }
}

fn light_distance(l: &LightRaw, eye: Vec3) -> f32 {
    let p = Vec4::from_array(l.position_or_direction);
    if p.w == 0.0 {
        -1.0
    } else {
        p.truncate().distance(eye)
    }
}

/// The six planes (left, right, bottom, top, near, far) of a view-projection with depth in
/// 0..1, as `n·p + d ≥ 0` inside, normalised so the value is a distance.
fn frustum_planes(m: &Mat4) -> [Vec4; 6] {
    let r = [m.row(0), m.row(1), m.row(2), m.row(3)];
    [
        r[3] + r[0],
        r[3] - r[0],
        r[3] + r[1],
        r[3] - r[1],
        r[2],
        r[3] - r[2],
    ]
    .map(|p| {
        let len = p.truncate().length();
        if len > 0.0 { p / len } else { p }
    })
}

fn sphere_visible(planes: &[Vec4; 6], center: Vec3, radius: f32) -> bool {
    planes
        .iter()
        .all(|p| p.truncate().dot(center) + p.w >= -radius)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_scene::{Camera, Color, Material, Mesh, Node, Transform};

    fn view() -> View {
        View {
            view: Mat4::look_at_rh(Vec3::new(0.0, 0.0, 5.0), Vec3::ZERO, Vec3::Y),
            projection: Camera::perspective(1.0, 1.0, 0.1, 100.0)
                .frustum
                .projection(),
        }
    }

    fn place(scene: &mut Scene, mesh: MeshId, mat: MaterialId, at: Vec3) -> NodeId {
        scene
            .add(
                Node::mesh(mesh, mat).with_transform(Transform::from_translation(at)),
                None,
            )
            .unwrap()
    }

    #[test]
    fn objects_outside_the_frustum_are_dropped() {
        let mut s = Scene::new();
        let cube = s.add_mesh(Mesh::cube(1.0));
        let mat = s.add_material(Material::lit(Color::WHITE)).unwrap();
        place(&mut s, cube, mat, Vec3::ZERO); // in front
        place(&mut s, cube, mat, Vec3::new(0.0, 0.0, 10.0)); // behind the eye
        place(&mut s, cube, mat, Vec3::new(50.0, 0.0, 0.0)); // far right
        place(&mut s, cube, mat, Vec3::new(0.0, 0.0, -200.0)); // beyond far
        place(&mut s, cube, mat, Vec3::new(2.9, 0.0, 0.0)); // straddles the right edge
        let list = cull(&s, &view(), 7).unwrap();
        assert_eq!(list.frame, 7);
        assert_eq!(
            (list.stats.considered, list.stats.drawn, list.stats.culled),
            (5, 2, 3)
        );
        assert_eq!(list.instances.len(), 2);
    }

    #[test]
    fn instances_are_grouped_and_sorted() {
        let mut s = Scene::new();
        let cube = s.add_mesh(Mesh::cube(0.2));
        let ball = s.add_mesh(Mesh::uv_sphere(0.1, 8, 4));
        let unlit = s.add_material(Material::unlit(Color::WHITE)).unwrap();
        let lit = s.add_material(Material::lit(Color::WHITE)).unwrap();
        for i in 0..10 {
            let x = i as f32 * 0.1 - 0.5;
            place(
                &mut s,
                if i % 2 == 0 { cube } else { ball },
                unlit,
                Vec3::new(x, 0.0, 0.0),
            );
            place(&mut s, cube, lit, Vec3::new(x, 0.5, 0.0));
        }
        let list = cull(&s, &view(), 0).unwrap();
        let keys: Vec<_> = list
            .batches
            .iter()
            .map(|b| (b.pipeline, b.material, b.mesh, b.instances.len()))
            .collect();
        assert_eq!(
            keys,
            vec![
                (PipelineKind::Lit, lit, cube, 10),
                (PipelineKind::Unlit, unlit, cube, 5),
                (PipelineKind::Unlit, unlit, ball, 5),
            ]
        );
        assert_eq!(list.stats.batches, 3);
        // Within a batch, traversal order is kept: x rises.
        let xs: Vec<f32> = list.instances[0..10]
            .iter()
            .map(|i| i.model[3][0])
            .collect();
        assert!(xs.windows(2).all(|w| w[0] < w[1]), "{xs:?}");
    }

    #[test]
    fn a_reused_list_gives_the_same_result() {
        let mut s = Scene::new();
        let cube = s.add_mesh(Mesh::cube(1.0));
        let mat = s.add_material(Material::lit(Color::WHITE)).unwrap();
        let a = place(&mut s, cube, mat, Vec3::ZERO);
        let mut list = DrawList::default();
        list.cull(&s, &view(), 1).unwrap();
        s.set_visible(a, false).unwrap();
        list.cull(&s, &view(), 2).unwrap();
        assert_eq!(list.stats.considered, 0);
        assert!(list.batches.is_empty() && list.instances.is_empty());
    }
}
