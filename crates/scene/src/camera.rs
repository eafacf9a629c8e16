use glam::Mat4;

/// A view volume in the camera's frame, given like `glFrustum`: the extents of the near-plane
/// window (left, right, bottom, top at distance `near`) plus the near and far distances.
///
/// Unequal `left`/`right` or `bottom`/`top` give an off-axis (asymmetric) frustum, which is what
/// a screen seen from an eye that is not at its centre needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frustum {
    /// X of the near-plane window's left edge.
    pub left: f32,
    /// X of the near-plane window's right edge.
    pub right: f32,
    /// Y of the near-plane window's bottom edge.
    pub bottom: f32,
    /// Y of the near-plane window's top edge.
    pub top: f32,
    /// Distance to the near plane (> 0).
    pub near: f32,
    /// Distance to the far plane (> near).
    pub far: f32,
}

impl Frustum {
    /// A symmetric frustum with vertical field of view `fov_y` (radians) and `aspect` = w / h.
    pub fn symmetric(fov_y: f32, aspect: f32, near: f32, far: f32) -> Self {
        let top = near * (fov_y * 0.5).tan();
        let right = top * aspect;
        Frustum {
            left: -right,
            right,
            bottom: -top,
            top,
            near,
            far,
        }
    }

    /// The projection to wgpu clip space (right-handed view, depth 0 at near, 1 at far).
    pub fn projection(&self) -> Mat4 {
        let Frustum {
            left: l,
            right: r,
            bottom: b,
            top: t,
            near: n,
            far: f,
        } = *self;
        Mat4::from_cols_array(&[
            2.0 * n / (r - l),
            0.0,
            0.0,
            0.0,
            0.0,
            2.0 * n / (t - b),
            0.0,
            0.0,
            (r + l) / (r - l),
            (t + b) / (t - b),
            f / (n - f),
            -1.0,
            0.0,
            0.0,
            n * f / (n - f),
            0.0,
        ])
    }

    /// The same frustum with its near-plane window shifted by `dx`, `dy` (off-axis).
    pub fn shifted(mut self, dx: f32, dy: f32) -> Self {
        self.left += dx;
        self.right += dx;
        self.bottom += dy;
        self.top += dy;
        self
    }
}

/// A camera looks down its node's -Z axis with +Y up, through its frustum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Camera {
    /// The view volume in the camera's own frame.
    pub frustum: Frustum,
}

impl Camera {
    /// A camera with a symmetric perspective frustum; `fov_y` in radians.
    pub fn perspective(fov_y: f32, aspect: f32, near: f32, far: f32) -> Self {
        Camera {
            frustum: Frustum::symmetric(fov_y, aspect, near, far),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glam::{Vec3, Vec4};

    #[test]
    fn symmetric_projection_matches_glam() {
        let f = Frustum::symmetric(1.0, 16.0 / 9.0, 0.1, 100.0);
        let ours = f.projection();
        let glam = Mat4::perspective_rh(1.0, 16.0 / 9.0, 0.1, 100.0);
        assert!(ours.abs_diff_eq(glam, 1e-5), "{ours:?} vs {glam:?}");
    }

    #[test]
    fn off_axis_window_corners_map_to_clip_corners() {
        let f = Frustum {
            left: -0.3,
            right: 0.1,
            bottom: -0.05,
            top: 0.2,
            near: 0.5,
            far: 50.0,
        };
        let p = f.projection();
        let ndc = |v: Vec3| {
            let c = p * Vec4::new(v.x, v.y, v.z, 1.0);
            c.truncate() / c.w
        };
        let ll = ndc(Vec3::new(-0.3, -0.05, -0.5));
        let ur = ndc(Vec3::new(0.1, 0.2, -0.5));
        assert!(ll.abs_diff_eq(Vec3::new(-1.0, -1.0, 0.0), 1e-5), "{ll}");
        assert!(ur.abs_diff_eq(Vec3::new(1.0, 1.0, 0.0), 1e-5), "{ur}");
        // A point on the far plane, on the ray through the window's upper-right corner.
        let far = ndc(Vec3::new(0.1, 0.2, -0.5) * 100.0);
        assert!(far.abs_diff_eq(Vec3::new(1.0, 1.0, 1.0), 1e-4), "{far}");
    }
}
