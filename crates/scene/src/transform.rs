use glam::{Mat4, Quat, Vec3};

/// Translation, rotation and scale relative to the parent node, applied scale first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transform {
    /// Position in the parent's frame.
    pub translation: Vec3,
    /// Orientation in the parent's frame.
    pub rotation: Quat,
    /// Scale along the node's own axes.
    pub scale: Vec3,
}

impl Default for Transform {
    fn default() -> Self {
        Self::IDENTITY
    }
}

impl Transform {
    /// No translation, rotation or scale.
    pub const IDENTITY: Transform = Transform {
        translation: Vec3::ZERO,
        rotation: Quat::IDENTITY,
        scale: Vec3::ONE,
    };

    /// A pure translation.
    pub fn from_translation(translation: Vec3) -> Self {
        Transform {
            translation,
            ..Self::IDENTITY
        }
    }

    /// Decomposes an affine matrix (e.g. a glTF node's `matrix`).
    pub fn from_matrix(m: Mat4) -> Self {
        let (scale, rotation, translation) = m.to_scale_rotation_translation();
        Transform {
            translation,
            rotation,
            scale,
        }
    }

    /// A transform at `eye` whose -Z axis points at `target` (the camera convention), with
    /// +Y as close to `up` as it can be. Looking straight along `up` picks another up axis
    /// rather than producing NaNs; `target == eye` keeps the identity orientation.
    pub fn looking_at(eye: Vec3, target: Vec3, up: Vec3) -> Self {
        let forward = target - eye;
        if forward.length_squared() < 1e-12 {
            return Self::from_translation(eye);
        }
        let up = if forward
            .normalize()
            .cross(up.normalize_or(Vec3::Y))
            .length_squared()
            < 1e-8
        {
            if forward.y.abs() > 0.5 {
                Vec3::NEG_Z
            } else {
                Vec3::Y
            }
        } else {
            up
        };
        let view = Mat4::look_at_rh(eye, target, up);
        Self::from_matrix(view.inverse())
    }

    /// Sets a uniform scale.
    pub fn with_scale(mut self, s: f32) -> Self {
        self.scale = Vec3::splat(s);
        self
    }

    /// Sets a (possibly non-uniform) scale.
    pub fn with_scale_xyz(mut self, s: Vec3) -> Self {
        self.scale = s;
        self
    }

    /// Sets the rotation.
    pub fn with_rotation(mut self, r: Quat) -> Self {
        self.rotation = r;
        self
    }

    /// The matrix taking points from this node's frame to its parent's.
    pub fn to_matrix(&self) -> Mat4 {
        Mat4::from_scale_rotation_translation(self.scale, self.rotation, self.translation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looking_at_points_minus_z_at_the_target() {
        for target in [
            Vec3::new(1.0, 2.0, -3.0),
            Vec3::new(0.0, -5.0, 0.0),
            Vec3::new(0.0, 9.0, 0.0),
        ] {
            let t = Transform::looking_at(Vec3::ZERO, target, Vec3::Y);
            let forward = t.rotation * Vec3::NEG_Z;
            assert!(forward.is_finite());
            assert!(
                forward.abs_diff_eq(target.normalize(), 1e-5),
                "{forward} vs {target}"
            );
        }
        assert_eq!(
            Transform::looking_at(Vec3::ONE, Vec3::ONE, Vec3::Y).rotation,
            Quat::IDENTITY
        );
    }
}
