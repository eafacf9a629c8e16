/*!
Input events: what devices report, in the order they reported it. The master gathers the
events of a frame from every device (its own window, trackers, gamepads, devices read on
nodes), and every process applies the same list to its [`crate::Input`], so that all of them
see the same input in frame F.
*/
use serde::{Deserialize, Serialize};

/// One thing a device reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum InputEvent {
    /// A key went down or up, named as the window names it (`w`, `ArrowLeft`, `Escape`).
    Key {
        /// The key's name.
        key: String,
        /// Down (else up).
        down: bool,
    },
    /// A mouse button went down or up (`left`, `right`, `middle`, `back`, `forward`, …).
    MouseButton {
        /// The button's name.
        button: String,
        /// Down (else up).
        down: bool,
    },
    /// The pointer moved to this place in the window, in pixels (none: it left).
    Cursor {
        /// Where.
        position: Option<[f32; 2]>,
    },
    /// Raw mouse motion (counts, not pixels: it goes on at the window's edge).
    Motion {
        /// How far.
        delta: [f32; 2],
    },
    /// The wheel turned, in lines (x: sideways).
    Wheel {
        /// How far.
        delta: [f32; 2],
    },
    /// The window lost the keyboard: every key and mouse button is up.
    FocusLost,
    /// A tracker sensor's pose, in the cluster's tracker space (the device's remap applied).
    Tracker {
        /// The device's name in the cluster file.
        device: String,
        /// The sensor.
        sensor: u32,
        /// Its pose.
        pose: Pose,
    },
    /// A button of a button device (a wand, a VRPN button box) went down or up.
    Button {
        /// The device's name in the cluster file.
        device: String,
        /// The button.
        button: u32,
        /// Down (else up).
        down: bool,
    },
    /// An analog device's channels (a joystick, a wand's stick), in full.
    Analog {
        /// The device's name in the cluster file.
        device: String,
        /// Every channel's value.
        channels: Vec<f64>,
    },
    /// Something happened to gamepad `pad` of device `device`.
    Pad {
        /// The device's name in the cluster file.
        device: String,
        /// Which pad of that device (in the order they were connected).
        pad: u32,
        /// What.
        event: PadEvent,
    },
}

/// What a gamepad reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PadEvent {
    /// Plugged in (or found at start), with its name.
    Connected(String),
    /// Unplugged: its buttons are up, its axes at rest.
    Disconnected,
    /// A button went down or up (`South`, `East`, `LeftTrigger`, `Start`, …).
    Button {
        /// The button's name.
        button: String,
        /// Down (else up).
        down: bool,
    },
    /// An axis moved (`LeftStickX`, `RightStickY`, …), from −1 to 1.
    Axis {
        /// The axis's name.
        axis: String,
        /// Its value.
        value: f32,
    },
}

/// A position and an orientation (quaternion x, y, z, w), in metres.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pose {
    /// Position.
    pub position: [f32; 3],
    /// Orientation, a unit quaternion (x, y, z, w).
    pub rotation: [f32; 4],
}

impl Pose {
    /// The pose as glam values.
    pub fn to_glam(&self) -> (glam::Vec3, glam::Quat) {
        (
            glam::Vec3::from_array(self.position),
            glam::Quat::from_array(self.rotation),
        )
    }

    /// A pose from glam values.
    pub fn from_glam(position: glam::Vec3, rotation: glam::Quat) -> Pose {
        Pose {
            position: position.to_array(),
            rotation: rotation.to_array(),
        }
    }
}
