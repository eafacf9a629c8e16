/*!
Input events: what devices report, in the order they reported it. The master gathers the
events of a frame from every device (its own window, trackers, gamepads, devices read on
nodes), and every process applies the same list to its [`crate::Input`], so that all of them
see the same input in frame F.
*/
use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// Highest tracker sensor number kept.
pub const MAX_SENSOR: u32 = 63;
/// Highest button number kept (VRPN's own limit is 256 buttons).
pub const MAX_BUTTON: u32 = 255;
/// Highest gamepad number kept.
pub const MAX_PAD: u32 = 15;
/// Most analog channels (VRPN's `vrpn_CHANNEL_MAX`).
pub const MAX_CHANNELS: usize = 128;
/// Longest device, key, button or axis name.
pub const MAX_NAME: usize = 64;

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

impl InputEvent {
    /// Checks an event that came from elsewhere (a node's devices): numbers finite, a
    /// quaternion of about unit length, ids and names within the limits above.
    pub fn check(&self) -> Result<(), String> {
        let name = |what: &str, n: &str| {
            if n.is_empty() || n.len() > MAX_NAME {
                Err(format!(
                    "{what} name of {} bytes (1 to {MAX_NAME})",
                    n.len()
                ))
            } else {
                Ok(())
            }
        };
        let id = |what: &str, n: u32, max: u32| {
            if n > max {
                Err(format!("{what} {n} is over {max}"))
            } else {
                Ok(())
            }
        };
        let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
        match self {
            InputEvent::Key { key, .. } => name("key", key),
            InputEvent::MouseButton { button, .. } => name("mouse button", button),
            InputEvent::Cursor { position } => match position {
                Some(p) if !finite(p) => Err(format!("a cursor at {p:?}")),
                _ => Ok(()),
            },
            InputEvent::Motion { delta } | InputEvent::Wheel { delta } if !finite(delta) => {
                Err(format!("a motion of {delta:?}"))
            }
            InputEvent::Motion { .. } | InputEvent::Wheel { .. } | InputEvent::FocusLost => Ok(()),
            InputEvent::Tracker {
                device,
                sensor,
                pose,
            } => {
                name("device", device)?;
                id("sensor", *sensor, MAX_SENSOR)?;
                pose.check()
                    .map_err(|why| format!("sensor {sensor} of '{device}': {why}"))
            }
            InputEvent::Button { device, button, .. } => {
                name("device", device)?;
                id("button", *button, MAX_BUTTON)
            }
            InputEvent::Analog { device, channels } => {
                name("device", device)?;
                if channels.len() > MAX_CHANNELS || channels.iter().any(|c| !c.is_finite()) {
                    return Err(format!(
                        "'{device}': {} analog channels, not all finite (at most {MAX_CHANNELS})",
                        channels.len()
                    ));
                }
                Ok(())
            }
            InputEvent::Pad { device, pad, event } => {
                name("device", device)?;
                id("pad", *pad, MAX_PAD)?;
                match event {
                    PadEvent::Connected(n) if n.len() > 256 => {
                        Err(format!("a pad name of {} bytes", n.len()))
                    }
                    PadEvent::Connected(_) | PadEvent::Disconnected => Ok(()),
                    PadEvent::Button { button, .. } => name("pad button", button),
                    PadEvent::Axis { axis, value } => {
                        name("axis", axis)?;
                        if (-1.0..=1.0).contains(value) {
                            Ok(())
                        } else {
                            Err(format!("axis {axis} at {value}"))
                        }
                    }
                }
            }
        }
    }
}

/// Merges what later events make moot, keeping every press and release, connection and
/// focus change in its order: tracker poses, analog channels, the pointer's place and pad
/// axes keep only their newest value; raw motion and wheel add up (in the newest of them).
/// The state applying the merged events leaves is the one the whole list leaves.
pub fn coalesce(events: &mut Vec<InputEvent>) {
    #[derive(PartialEq, Eq, Hash)]
    enum Slot {
        Tracker(String, u32),
        Analog(String),
        Cursor,
        Axis(String, u32, String),
    }
    let mut seen: HashSet<Slot> = HashSet::new();
    let (mut motion, mut wheel) = ([0f32; 2], [0f32; 2]);
    let (mut motion_at, mut wheel_at) = (None, None);
    let mut keep = vec![true; events.len()];
    for (i, e) in events.iter().enumerate().rev() {
        let slot = match e {
            InputEvent::Tracker { device, sensor, .. } => Slot::Tracker(device.clone(), *sensor),
            InputEvent::Analog { device, .. } => Slot::Analog(device.clone()),
            InputEvent::Cursor { .. } => Slot::Cursor,
            InputEvent::Pad {
                device,
                pad,
                event: PadEvent::Axis { axis, .. },
            } => Slot::Axis(device.clone(), *pad, axis.clone()),
            InputEvent::Motion { delta } => {
                motion[0] += delta[0];
                motion[1] += delta[1];
                keep[i] = motion_at.is_none();
                motion_at.get_or_insert(i);
                continue;
            }
            InputEvent::Wheel { delta } => {
                wheel[0] += delta[0];
                wheel[1] += delta[1];
                keep[i] = wheel_at.is_none();
                wheel_at.get_or_insert(i);
                continue;
            }
            _ => continue,
        };
        keep[i] = seen.insert(slot);
    }
    if let Some(i) = motion_at {
        events[i] = InputEvent::Motion { delta: motion };
    }
    if let Some(i) = wheel_at {
        events[i] = InputEvent::Wheel { delta: wheel };
    }
    let mut i = 0;
    events.retain(|_| {
        i += 1;
        keep[i - 1]
    });
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

    /// Checks a pose that came from elsewhere: finite, its quaternion of about unit length.
    pub fn check(&self) -> Result<(), String> {
        let finite = self
            .position
            .iter()
            .chain(&self.rotation)
            .all(|x| x.is_finite());
        let norm = self.rotation.iter().map(|x| x * x).sum::<f32>().sqrt();
        if !finite || !(0.9..=1.1).contains(&norm) {
            return Err(format!("a pose that is no pose: {self:?}"));
        }
        Ok(())
    }

    /// A pose from glam values.
    pub fn from_glam(position: glam::Vec3, rotation: glam::Quat) -> Pose {
        Pose {
            position: position.to_array(),
            rotation: rotation.to_array(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pose(x: f32) -> InputEvent {
        InputEvent::Tracker {
            device: "head".into(),
            sensor: 0,
            pose: Pose {
                position: [x, 1.7, 0.0],
                rotation: [0.0, 0.0, 0.0, 1.0],
            },
        }
    }

    fn key(down: bool) -> InputEvent {
        InputEvent::Key {
            key: "w".into(),
            down,
        }
    }

    #[test]
    fn coalescing_keeps_every_press_and_the_newest_values() {
        let m = |x: f32| InputEvent::Motion { delta: [x, 1.0] };
        let mut e = vec![
            pose(0.1),
            m(1.0),
            key(true),
            pose(0.2),
            m(2.0),
            key(false),
            pose(0.3),
        ];
        let mut whole = crate::Input::default();
        whole.advance(&e);
        coalesce(&mut e);
        assert_eq!(
            e,
            vec![
                key(true),
                InputEvent::Motion { delta: [3.0, 2.0] },
                key(false),
                pose(0.3)
            ]
        );
        let mut merged = crate::Input::default();
        merged.advance(&e);
        assert_eq!(
            (
                merged.tracker("head", 0),
                merged.motion,
                merged.keys.released("w")
            ),
            (whole.tracker("head", 0), whole.motion, true)
        );
    }

    #[test]
    fn events_from_elsewhere_are_checked() {
        assert!(pose(0.1).check().is_ok());
        let bad = InputEvent::Tracker {
            device: "head".into(),
            sensor: 0,
            pose: Pose {
                position: [f32::NAN, 0.0, 0.0],
                rotation: [0.0, 0.0, 0.0, 1.0],
            },
        };
        assert!(bad.check().unwrap_err().contains("a pose that is no pose"));
        let far = InputEvent::Button {
            device: "wand".into(),
            button: 9999,
            down: true,
        };
        assert_eq!(far.check().unwrap_err(), "button 9999 is over 255");
        let wide = InputEvent::Analog {
            device: "stick".into(),
            channels: vec![0.0; 1000],
        };
        assert!(wide.check().is_err());
    }
}
