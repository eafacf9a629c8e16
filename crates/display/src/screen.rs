/*!
Screens: physical display rectangles given by three corners, or converted from a Panda3D-style
camera offset and lens.
*/
use glam::{Quat, Vec3};

use crate::HeadPose;

/// Which frame a screen's corners are given in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScreenSpace {
    /// The room the display stands in (the tracker's frame). When the application moves the
    /// viewer through the world (the camera rig), these screens move with it. The usual case.
    #[default]
    Tracker,
    /// Fixed in the virtual world, whatever the rig does.
    World,
}

/// Which eye a view is rendered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Eye {
    /// The head's centre (no stereo).
    Mono,
    /// Half the eye separation to the head's left.
    Left,
    /// Half the eye separation to the head's right.
    Right,
}

impl Eye {
    /// `mono`, `left` or `right`.
    pub fn as_str(self) -> &'static str {
        match self {
            Eye::Mono => "mono",
            Eye::Left => "left",
            Eye::Right => "right",
        }
    }

    /// −1 for left, +1 for right, 0 for mono: where along the head's X axis the eye sits, in
    /// half eye separations.
    pub fn side(self) -> f32 {
        match self {
            Eye::Mono => 0.0,
            Eye::Left => -1.0,
            Eye::Right => 1.0,
        }
    }
}

/// A planar rectangle on which images appear.
#[derive(Debug, Clone, PartialEq)]
pub struct Screen {
    /// Unique name; tiles of a wall are `WALL-rROWcCOL`, row 0 at the top.
    pub name: String,
    /// Frame of the corners.
    pub space: ScreenSpace,
    /// Lower-left corner, metres.
    pub lower_left: Vec3,
    /// Lower-right corner.
    pub lower_right: Vec3,
    /// Upper-left corner.
    pub upper_left: Vec3,
}

impl Screen {
    /// The fourth corner.
    pub fn upper_right(&self) -> Vec3 {
        self.lower_right + self.upper_left - self.lower_left
    }

    /// Width in metres.
    pub fn width(&self) -> f32 {
        (self.lower_right - self.lower_left).length()
    }

    /// Height in metres.
    pub fn height(&self) -> f32 {
        (self.upper_left - self.lower_left).length()
    }

    /// Centre of the rectangle.
    pub fn center(&self) -> Vec3 {
        (self.lower_right + self.upper_left) * 0.5
    }

    /// Unit normal, pointing towards the viewer (right × up).
    pub fn normal(&self) -> Vec3 {
        (self.lower_right - self.lower_left)
            .cross(self.upper_left - self.lower_left)
            .normalize_or_zero()
    }

    /// Why three corners do not make a rectangle, if they don't.
    pub fn rectangle_problem(ll: Vec3, lr: Vec3, ul: Vec3) -> Option<String> {
        let (right, up) = (lr - ll, ul - ll);
        if !(ll.is_finite() && lr.is_finite() && ul.is_finite()) {
            return Some("corners must be finite numbers".into());
        }
        if right.length() < 1e-6 {
            return Some("lower_left and lower_right are the same point".into());
        }
        if up.length() < 1e-6 {
            return Some("lower_left and upper_left are the same point".into());
        }
        let cos = right.normalize().dot(up.normalize());
        if cos.abs() > 1e-3 {
            return Some(format!(
                "the corners are not a rectangle: the edges meet at {:.2}° at lower_left, not 90°",
                cos.clamp(-1.0, 1.0).acos().to_degrees()
            ));
        }
        None
    }
}

/// A Panda3D lens: a field of view, or film size and offset with a focal length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PandaLens {
    /// Horizontal and vertical field of view, degrees.
    Fov {
        /// Horizontal field of view.
        horizontal: f32,
        /// Vertical field of view.
        vertical: f32,
    },
    /// Film size and offset in the focal length's units (Panda's `setFilmSize`,
    /// `setFilmOffset`, `setFocalLength`).
    Film {
        /// Film width and height.
        size: [f32; 2],
        /// Shift of the film's centre, right and up.
        offset: [f32; 2],
        /// Focal length.
        focal_length: f32,
    },
}

/// Panda3D's heading, pitch, roll (degrees) in lockstep's Y-up frame: heading turns left about
/// +Y, pitch tilts the view up about +X, roll tilts the top to the right about the view axis.
pub fn hpr_to_quat(hpr: [f32; 3]) -> Quat {
    let [h, p, r] = hpr.map(f32::to_radians);
    Quat::from_rotation_y(h) * Quat::from_rotation_x(p) * Quat::from_rotation_z(-r)
}

impl Screen {
    /// The screen a Panda3D display region shows: a camera offset (`pos`, `hpr`) from the
    /// viewer's head and a lens, as a rectangle `distance` metres in front of that camera.
    /// Seen from the head, it gives the same projection as the lens.
    pub fn from_camera_offset(
        name: String,
        space: ScreenSpace,
        head: &HeadPose,
        pos: Vec3,
        hpr: [f32; 3],
        lens: PandaLens,
        distance: f32,
    ) -> Screen {
        let (half_w, half_h, cx, cy) = match lens {
            PandaLens::Fov {
                horizontal,
                vertical,
            } => (
                (horizontal.to_radians() / 2.0).tan(),
                (vertical.to_radians() / 2.0).tan(),
                0.0,
                0.0,
            ),
            PandaLens::Film {
                size,
                offset,
                focal_length: f,
            } => (
                size[0] / 2.0 / f,
                size[1] / 2.0 / f,
                offset[0] / f,
                offset[1] / f,
            ),
        };
        let d = distance;
        let local = |x: f32, y: f32| Vec3::new((cx + x) * d, (cy + y) * d, -d);
        let to_tracker = |v: Vec3| head.position + head.rotation * (pos + hpr_to_quat(hpr) * v);
        Screen {
            name,
            space,
            lower_left: to_tracker(local(-half_w, -half_h)),
            lower_right: to_tracker(local(half_w, -half_h)),
            upper_left: to_tracker(local(-half_w, half_h)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rectangles_are_checked() {
        let ll = Vec3::ZERO;
        assert_eq!(Screen::rectangle_problem(ll, Vec3::X, Vec3::Y), None);
        let skew = Screen::rectangle_problem(ll, Vec3::X, Vec3::new(0.1, 1.0, 0.0)).unwrap();
        assert!(skew.contains("84.29°"), "{skew}");
        assert!(
            Screen::rectangle_problem(ll, ll, Vec3::Y)
                .unwrap()
                .contains("same point")
        );
    }

    #[test]
    fn hpr_follows_panda() {
        let fwd = Vec3::NEG_Z;
        let left = hpr_to_quat([90.0, 0.0, 0.0]) * fwd;
        assert!(
            left.abs_diff_eq(Vec3::NEG_X, 1e-6),
            "heading +90 looks left: {left}"
        );
        let up = hpr_to_quat([0.0, 90.0, 0.0]) * fwd;
        assert!(up.abs_diff_eq(Vec3::Y, 1e-6), "pitch +90 looks up: {up}");
        let top = hpr_to_quat([0.0, 0.0, 90.0]) * Vec3::Y;
        assert!(
            top.abs_diff_eq(Vec3::X, 1e-6),
            "roll +90 tips the top right: {top}"
        );
    }
}
