/*!
The generalised perspective projection (Robert Kooima, "Generalized Perspective Projection",
2008): from an eye position and a screen's lower-left, lower-right and upper-left corners to a
view matrix (world to eye, axes aligned with the screen) and an off-axis frustum. It stays
correct for any eye position and screen orientation, which is what head tracking, CAVE walls
and tiled walls need.
*/
use glam::{Mat4, Vec3};
use lockstep_scene::Frustum;

/// A view matrix and the frustum that goes with it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OffAxis {
    /// Maps the corners' frame to the eye's frame: the eye at the origin, the screen's right,
    /// up and normal along +X, +Y, +Z.
    pub view: Mat4,
    /// The screen rectangle as seen from the eye, scaled to the near plane.
    pub frustum: Frustum,
    /// Distance from the eye to the screen's plane (negative: the eye is behind the screen).
    pub distance: f32,
}

/// Computes the view and frustum of the screen (`ll`, `lr`, `ul`) seen from `eye`.
///
/// An eye on or behind the screen plane has no meaningful view; the distance is clamped to a
/// tiny positive value so the result stays finite, and `distance` reports the real one.
pub fn off_axis(ll: Vec3, lr: Vec3, ul: Vec3, eye: Vec3, near: f32, far: f32) -> OffAxis {
    let vr = (lr - ll).normalize();
    let vu = (ul - ll).normalize();
    let vn = vr.cross(vu).normalize();
    let (va, vb, vc) = (ll - eye, lr - eye, ul - eye);
    let distance = -va.dot(vn);
    let d = distance.max(1e-6);
    let scale = near / d;
    let frustum = Frustum {
        left: vr.dot(va) * scale,
        right: vr.dot(vb) * scale,
        bottom: vu.dot(va) * scale,
        top: vu.dot(vc) * scale,
        near,
        far,
    };
    let rotation = Mat4::from_cols(
        vr.extend(0.0),
        vu.extend(0.0),
        vn.extend(0.0),
        glam::Vec4::W,
    )
    .transpose();
    OffAxis {
        view: rotation * Mat4::from_translation(-eye),
        frustum,
        distance,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HeadPose, PandaLens, Screen, ScreenSpace};
    use glam::{Quat, Vec4};

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-5
    }

    fn assert_frustum(f: Frustum, [l, r, b, t]: [f32; 4]) {
        assert!(
            close(f.left, l) && close(f.right, r) && close(f.bottom, b) && close(f.top, t),
            "{f:?} vs {:?}",
            [l, r, b, t]
        );
    }

    #[test]
    fn centred_eye_gives_a_symmetric_frustum_and_no_rotation() {
        // A 2 m × 2 m screen 1 m ahead: with near = 1 the window equals the screen.
        let o = off_axis(
            Vec3::new(-1.0, -1.0, -1.0),
            Vec3::new(1.0, -1.0, -1.0),
            Vec3::new(-1.0, 1.0, -1.0),
            Vec3::ZERO,
            1.0,
            100.0,
        );
        assert_frustum(o.frustum, [-1.0, 1.0, -1.0, 1.0]);
        assert!(o.view.abs_diff_eq(Mat4::IDENTITY, 1e-6));
        assert!(close(o.distance, 1.0));
        // And it is the ordinary 90° perspective.
        let p = o.frustum.projection();
        assert!(p.abs_diff_eq(
            Mat4::perspective_rh(90f32.to_radians(), 1.0, 1.0, 100.0),
            1e-5
        ));
    }

    #[test]
    fn an_off_centre_eye_shifts_the_window_by_hand_computed_amounts() {
        // Eye 0.5 right, 0.25 up, 0.5 back of the origin; screen 1.5 m ahead of the eye.
        // At near = 0.3 the window is the screen's extent relative to the eye × 0.3 / 1.5.
        let eye = Vec3::new(0.5, 0.25, 0.5);
        let o = off_axis(
            Vec3::new(-1.0, -1.0, -1.0),
            Vec3::new(1.0, -1.0, -1.0),
            Vec3::new(-1.0, 1.0, -1.0),
            eye,
            0.3,
            100.0,
        );
        let s = 0.3 / 1.5;
        assert_frustum(o.frustum, [-1.5 * s, 0.5 * s, -1.25 * s, 0.75 * s]);
        assert!(o.view.abs_diff_eq(Mat4::from_translation(-eye), 1e-6));
    }

    #[test]
    fn a_rotated_screen_is_seen_straight_on_through_the_view_matrix() {
        // The right wall of a 3 m CAVE seen from its centre, 1.5 m away.
        let (ll, lr, ul) = (
            Vec3::new(1.5, 0.0, -1.5),
            Vec3::new(1.5, 0.0, 1.5),
            Vec3::new(1.5, 3.0, -1.5),
        );
        let eye = Vec3::new(0.0, 1.7, 0.0);
        let o = off_axis(ll, lr, ul, eye, 0.1, 100.0);
        let s = 0.1 / 1.5;
        assert_frustum(o.frustum, [-1.5 * s, 1.5 * s, -1.7 * s, 1.3 * s]);
        // The screen's centre lies straight ahead of the eye, 1.5 m away, and its lower-left
        // corner maps to clip (-1, -1).
        let centre = o.view.transform_point3(Vec3::new(1.5, 1.7, 0.0));
        assert!(
            centre.abs_diff_eq(Vec3::new(0.0, 0.0, -1.5), 1e-5),
            "{centre}"
        );
        let clip = o.frustum.projection() * o.view * ll.extend(1.0);
        let ndc = clip / clip.w;
        assert!(
            ndc.truncate()
                .truncate()
                .abs_diff_eq(glam::Vec2::new(-1.0, -1.0), 1e-5)
        );
        assert!((Vec4::W - Vec4::W).length() == 0.0);
    }

    #[test]
    fn a_panda_camera_offset_equals_the_same_screen_given_by_corners() {
        let head = HeadPose {
            position: Vec3::new(0.2, 1.6, 0.3),
            rotation: Quat::from_rotation_y(0.1),
        };
        let hpr = [30.0, 10.0, 0.0];
        let lens = PandaLens::Fov {
            horizontal: 90.0,
            vertical: 60.0,
        };
        let panda = Screen::from_camera_offset(
            "p".into(),
            ScreenSpace::Tracker,
            &head,
            Vec3::ZERO,
            hpr,
            lens,
            2.0,
        );
        let o = off_axis(
            panda.lower_left,
            panda.lower_right,
            panda.upper_left,
            head.position,
            0.1,
            50.0,
        );
        // The lens's own frustum: tan(45°) and tan(30°) at the near plane, symmetric…
        let (tw, th) = (
            45f32.to_radians().tan() * 0.1,
            30f32.to_radians().tan() * 0.1,
        );
        assert_frustum(o.frustum, [-tw, tw, -th, th]);
        // …looking along the head's rotation followed by the offset's heading and pitch.
        let camera =
            Mat4::from_rotation_translation(head.rotation * crate::hpr_to_quat(hpr), head.position);
        assert!(
            o.view.abs_diff_eq(camera.inverse(), 1e-5),
            "{:?} vs {:?}",
            o.view,
            camera.inverse()
        );

        // Film size and offset: a film shifted right shifts the window right.
        let film = PandaLens::Film {
            size: [36.0, 24.0],
            offset: [6.0, 0.0],
            focal_length: 30.0,
        };
        let s = Screen::from_camera_offset(
            "f".into(),
            ScreenSpace::Tracker,
            &head,
            Vec3::ZERO,
            [0.0; 3],
            film,
            1.0,
        );
        let o = off_axis(
            s.lower_left,
            s.lower_right,
            s.upper_left,
            head.position,
            1.0,
            50.0,
        );
        assert_frustum(
            o.frustum,
            [
                (-18.0 + 6.0) / 30.0,
                (18.0 + 6.0) / 30.0,
                -12.0 / 30.0,
                12.0 / 30.0,
            ],
        );
    }
}
