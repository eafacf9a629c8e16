use glam::{Vec2, Vec3};
use std::f32::consts::PI;

/// Index of a [`Mesh`] in its [`crate::Scene`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MeshId(pub u32);

/// One vertex: position, normal and texture coordinate (UV (0,0) is the image's top-left, as
/// in glTF).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Vertex {
    /// Position in the mesh's frame.
    pub position: Vec3,
    /// Unit normal in the mesh's frame.
    pub normal: Vec3,
    /// Texture coordinate.
    pub uv: Vec2,
}

/// An axis-aligned box, used for culling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aabb {
    /// Smallest corner.
    pub min: Vec3,
    /// Largest corner.
    pub max: Vec3,
}

impl Aabb {
    /// The smallest box holding every point; an empty input gives a degenerate box at 0.
    pub fn from_points(points: impl IntoIterator<Item = Vec3>) -> Self {
        let mut min = Vec3::splat(f32::INFINITY);
        let mut max = Vec3::splat(f32::NEG_INFINITY);
        for p in points {
            min = min.min(p);
            max = max.max(p);
        }
        if min.x > max.x {
            return Aabb {
                min: Vec3::ZERO,
                max: Vec3::ZERO,
            };
        }
        Aabb { min, max }
    }

    /// Centre of the box.
    pub fn center(&self) -> Vec3 {
        (self.min + self.max) * 0.5
    }

    /// Half the diagonal: the radius of a sphere around `center` holding the box.
    pub fn radius(&self) -> f32 {
        (self.max - self.min).length() * 0.5
    }
}

/// An indexed triangle list.
#[derive(Debug, Clone, PartialEq)]
pub struct Mesh {
    /// Optional name (from glTF or user code), for diagnostics.
    pub name: Option<String>,
    /// Vertices referenced by `indices`.
    pub vertices: Vec<Vertex>,
    /// Three indices per triangle, counter-clockwise seen from the front.
    pub indices: Vec<u32>,
    /// Bounds of `vertices`, kept in step by the constructors.
    pub bounds: Aabb,
}

impl Mesh {
    /// Builds a mesh and computes its bounds.
    pub fn new(vertices: Vec<Vertex>, indices: Vec<u32>) -> Self {
        let bounds = Aabb::from_points(vertices.iter().map(|v| v.position));
        Mesh {
            name: None,
            vertices,
            indices,
            bounds,
        }
    }

    /// Sets the name.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Number of triangles.
    pub fn triangle_count(&self) -> usize {
        self.indices.len() / 3
    }

    /// A cube of edge `size` centred on the origin, each face with its own normal and full UVs.
    pub fn cube(size: f32) -> Self {
        let h = size * 0.5;
        // (normal, u axis, v axis): u runs left→right, v top→bottom as seen from outside.
        let faces = [
            (Vec3::X, Vec3::NEG_Z, Vec3::NEG_Y),
            (Vec3::NEG_X, Vec3::Z, Vec3::NEG_Y),
            (Vec3::Y, Vec3::X, Vec3::Z),
            (Vec3::NEG_Y, Vec3::X, Vec3::NEG_Z),
            (Vec3::Z, Vec3::X, Vec3::NEG_Y),
            (Vec3::NEG_Z, Vec3::NEG_X, Vec3::NEG_Y),
        ];
        let mut vertices = Vec::with_capacity(24);
        let mut indices = Vec::with_capacity(36);
        for (n, u, v) in faces {
            let base = vertices.len() as u32;
            for (du, dv) in [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)] {
                let p = (n + u * (du * 2.0 - 1.0) + v * (dv * 2.0 - 1.0)) * h;
                vertices.push(Vertex {
                    position: p,
                    normal: n,
                    uv: Vec2::new(du, dv),
                });
            }
            // Corners go top-left, top-right, bottom-right, bottom-left seen from outside, which
            // is clockwise; emit the triangles reversed so the front face is counter-clockwise.
            indices.extend_from_slice(&[base, base + 3, base + 2, base, base + 2, base + 1]);
        }
        Mesh::new(vertices, indices).named("cube")
    }

    /// A UV sphere of `radius` with `segments` around and `rings` from pole to pole
    /// (2 · segments · (rings − 1) triangles).
    pub fn uv_sphere(radius: f32, segments: u32, rings: u32) -> Self {
        let segments = segments.max(3);
        let rings = rings.max(2);
        let mut vertices = Vec::with_capacity(((segments + 1) * (rings + 1)) as usize);
        for r in 0..=rings {
            let v = r as f32 / rings as f32;
            let theta = v * PI;
            for s in 0..=segments {
                let u = s as f32 / segments as f32;
                let phi = u * 2.0 * PI;
                let n = Vec3::new(
                    theta.sin() * phi.cos(),
                    theta.cos(),
                    -theta.sin() * phi.sin(),
                );
                vertices.push(Vertex {
                    position: n * radius,
                    normal: n,
                    uv: Vec2::new(u, v),
                });
            }
        }
        let mut indices = Vec::with_capacity((segments * (rings - 1) * 6) as usize);
        let row = segments + 1;
        for r in 0..rings {
            for s in 0..segments {
                let a = r * row + s;
                let b = a + row;
                if r != 0 {
                    indices.extend_from_slice(&[a, b, a + 1]);
                }
                if r != rings - 1 {
                    indices.extend_from_slice(&[a + 1, b, b + 1]);
                }
            }
        }
        Mesh::new(vertices, indices).named("sphere")
    }

    /// A grid in the XZ plane facing +Y, `width` along X and `depth` along Z, split into
    /// `cells` × `cells` quads; UVs span 0..1 once over the whole plane.
    pub fn plane(width: f32, depth: f32, cells: u32) -> Self {
        let cells = cells.max(1);
        let mut vertices = Vec::with_capacity(((cells + 1) * (cells + 1)) as usize);
        for j in 0..=cells {
            let v = j as f32 / cells as f32;
            for i in 0..=cells {
                let u = i as f32 / cells as f32;
                vertices.push(Vertex {
                    position: Vec3::new((u - 0.5) * width, 0.0, (v - 0.5) * depth),
                    normal: Vec3::Y,
                    uv: Vec2::new(u, v),
                });
            }
        }
        let mut indices = Vec::with_capacity((cells * cells * 6) as usize);
        let row = cells + 1;
        for j in 0..cells {
            for i in 0..cells {
                let a = j * row + i;
                let b = a + row;
                indices.extend_from_slice(&[a, b, a + 1, a + 1, b, b + 1]);
            }
        }
        Mesh::new(vertices, indices).named("plane")
    }

    /// A rectangle in the XY plane facing +Z, centred on the origin; UV (0,0) at its top-left.
    pub fn quad(width: f32, height: f32) -> Self {
        let (w, h) = (width * 0.5, height * 0.5);
        let v = |x: f32, y: f32, u: f32, t: f32| Vertex {
            position: Vec3::new(x, y, 0.0),
            normal: Vec3::Z,
            uv: Vec2::new(u, t),
        };
        let vertices = vec![
            v(-w, h, 0.0, 0.0),
            v(w, h, 1.0, 0.0),
            v(w, -h, 1.0, 1.0),
            v(-w, -h, 0.0, 1.0),
        ];
        Mesh::new(vertices, vec![0, 3, 2, 0, 2, 1]).named("quad")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every triangle must wind counter-clockwise around its outward normal, or back-face
    /// culling would hide it.
    fn assert_front_faces_out(mesh: &Mesh) {
        for tri in mesh.indices.chunks(3) {
            let [a, b, c] = [0, 1, 2].map(|i| mesh.vertices[tri[i] as usize]);
            let face = (b.position - a.position).cross(c.position - a.position);
            if face.length() < 1e-9 {
                continue;
            }
            let n = a.normal + b.normal + c.normal;
            assert!(
                face.dot(n) > 0.0,
                "{:?}: triangle {tri:?} winds inward",
                mesh.name
            );
        }
    }

    #[test]
    fn procedural_meshes_wind_outward() {
        assert_front_faces_out(&Mesh::cube(2.0));
        assert_front_faces_out(&Mesh::uv_sphere(1.0, 16, 8));
        assert_front_faces_out(&Mesh::plane(4.0, 4.0, 3));
        assert_front_faces_out(&Mesh::quad(1.0, 2.0));
    }

    #[test]
    fn counts_and_bounds() {
        let s = Mesh::uv_sphere(2.0, 16, 8);
        assert_eq!(s.triangle_count(), 2 * 16 * 7);
        assert!(s.bounds.max.abs_diff_eq(Vec3::splat(2.0), 1e-5));
        let c = Mesh::cube(2.0);
        assert_eq!((c.vertices.len(), c.triangle_count()), (24, 12));
        assert_eq!(c.bounds.min, Vec3::splat(-1.0));
        assert_eq!(Mesh::plane(1.0, 1.0, 4).triangle_count(), 32);
    }
}
