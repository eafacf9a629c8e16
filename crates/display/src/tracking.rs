/*!
Input devices the cluster file names (`[[input]]`), and the conversion of a tracker's reports
into the cluster's tracker space: right-handed, y up, −z in front of the viewer (the screens'
space), in metres.

Trackers report in their own frames — Z up or Y up, left- or right-handed, millimetres or
metres, with their origin wherever the system was calibrated. A device says how its axes map
onto the cluster's (`axes = ["x", "z", "-y"]`: the cluster's x is the tracker's x, its y the
tracker's z, its z the tracker's −y, as for a Z-up tracker), a `scale` to metres, and where
the tracker's origin is in the cluster's tracker space (`position`, `hpr`).
*/
use glam::{Mat3, Quat, Vec3};

/// Where a device is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceHost {
    /// On the master.
    Master,
    /// On this render node.
    Node(String),
}

/// What kind of device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceKind {
    /// A VRPN device (`Device@host[:port]`): its tracker sensors, buttons and analog
    /// channels.
    Vrpn {
        /// The device's address.
        address: String,
    },
    /// The gamepads plugged into the host, or a scripted one.
    Gamepad {
        /// A script the gamepad plays instead (`script`, relative to the cluster file): a
        /// gamepad without a gamepad, for tests and unattended shows.
        script: Option<std::path::PathBuf>,
    },
}

/// One `[[input]]` of the cluster file.
#[derive(Debug, Clone, PartialEq)]
pub struct InputDevice {
    /// Its name in the cluster (and in the application's input).
    pub name: String,
    /// What it is.
    pub kind: DeviceKind,
    /// Where it is read.
    pub host: DeviceHost,
    /// From the tracker's space into the cluster's.
    pub remap: TrackerRemap,
}

/// From a tracker's frame into the cluster's tracker space.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackerRemap {
    /// The signed permutation taking the tracker's axes to the cluster's.
    pub axes: Mat3,
    /// Tracker units to metres.
    pub scale: f32,
    /// Where the tracker's origin is, in the cluster's tracker space.
    pub position: Vec3,
    /// How the tracker's (remapped) axes are turned there.
    pub rotation: Quat,
}

impl Default for TrackerRemap {
    fn default() -> Self {
        TrackerRemap {
            axes: Mat3::IDENTITY,
            scale: 1.0,
            position: Vec3::ZERO,
            rotation: Quat::IDENTITY,
        }
    }
}

impl TrackerRemap {
    /// The axes mapping written as `["x", "z", "-y"]`: entry i names the tracker axis (with
    /// an optional sign) that becomes the cluster's axis i. Each axis must appear once.
    pub fn parse_axes(axes: &[String; 3]) -> Result<Mat3, String> {
        let mut cols = [Vec3::ZERO; 3];
        let mut seen = [false; 3];
        let mut rows = [Vec3::ZERO; 3];
        for (i, a) in axes.iter().enumerate() {
            let (sign, name) = match a.strip_prefix('-') {
                Some(n) => (-1.0, n),
                None => (1.0, a.strip_prefix('+').unwrap_or(a)),
            };
            let j = match name {
                "x" => 0,
                "y" => 1,
                "z" => 2,
                _ => {
                    return Err(format!(
                        "axis '{a}' is not x, y or z (with an optional '-')"
                    ));
                }
            };
            if std::mem::replace(&mut seen[j], true) {
                return Err(format!("axes {axes:?} name the tracker's {name} twice"));
            }
            let mut row = Vec3::ZERO;
            row[j] = sign;
            rows[i] = row;
        }
        // Row i picks the tracker axis for the cluster's axis i: M = rowsᵀ as columns.
        for (j, col) in cols.iter_mut().enumerate() {
            *col = Vec3::new(rows[0][j], rows[1][j], rows[2][j]);
        }
        Ok(Mat3::from_cols(cols[0], cols[1], cols[2]))
    }

    /// A tracker's report (its position, its orientation) in the cluster's tracker space.
    pub fn apply(&self, position: Vec3, rotation: Quat) -> (Vec3, Quat) {
        let m = self.axes;
        let p = self.position + self.rotation * (m * position * self.scale);
        // The same turn, seen in the cluster's axes: M R Mᵀ is a rotation even when M
        // flips handedness.
        let r = m * Mat3::from_quat(rotation) * m.transpose();
        (p, (self.rotation * Quat::from_mat3(&r)).normalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axes(a: [&str; 3]) -> Mat3 {
        TrackerRemap::parse_axes(&a.map(String::from)).unwrap()
    }

    #[test]
    fn a_z_up_tracker_in_millimetres_reports_in_metres_with_y_up() {
        let remap = TrackerRemap {
            axes: axes(["x", "z", "-y"]),
            scale: 0.001,
            position: Vec3::new(0.0, 0.0, 1.0),
            ..TrackerRemap::default()
        };
        // 1.7 m above the floor (tracker z), 0.5 m in front (tracker y, towards the screen).
        let (p, r) = remap.apply(Vec3::new(100.0, 500.0, 1700.0), Quat::IDENTITY);
        assert!((p - Vec3::new(0.1, 1.7, 0.5)).length() < 1e-5, "{p}");
        assert!(r.angle_between(Quat::IDENTITY) < 1e-5);
        // Turned about the tracker's up (z) is turned about the cluster's up (y).
        let (_, r) = remap.apply(Vec3::ZERO, Quat::from_rotation_z(0.5));
        assert!(r.angle_between(Quat::from_rotation_y(0.5)) < 1e-5, "{r}");
    }

    #[test]
    fn a_left_handed_tracker_turns_the_other_way() {
        let remap = TrackerRemap {
            axes: axes(["x", "y", "-z"]),
            ..TrackerRemap::default()
        };
        let (p, r) = remap.apply(Vec3::new(1.0, 2.0, 3.0), Quat::from_rotation_y(0.3));
        assert_eq!(p, Vec3::new(1.0, 2.0, -3.0));
        assert!(r.angle_between(Quat::from_rotation_y(-0.3)) < 1e-5, "{r}");
    }

    #[test]
    fn axes_are_a_permutation_with_signs() {
        assert_eq!(axes(["x", "y", "z"]), Mat3::IDENTITY);
        for bad in [["x", "x", "z"], ["x", "y", "w"], ["x", "-y", "--z"]] {
            assert!(
                TrackerRemap::parse_axes(&bad.map(String::from)).is_err(),
                "{bad:?}"
            );
        }
    }
}
