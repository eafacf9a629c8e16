/*!
[`Input`]: what every process knows about input in one frame — what is held, what went down
or up in this frame, where the pointer is, how far the mouse and wheel moved, every tracker
sensor's newest pose, every button device and gamepad. It is built by applying the frame's
[`InputEvent`]s in order, so every process that applies the same events holds the same
`Input`.
*/
use std::borrow::Borrow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::{InputEvent, PadEvent, Pose};

/// Buttons of one kind: which are held, which went down and which went up this frame. A
/// button pressed and released within one frame is in both lists and not held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Buttons<T> {
    held: Vec<T>,
    pressed: Vec<T>,
    released: Vec<T>,
}

impl<T> Default for Buttons<T> {
    fn default() -> Self {
        Buttons {
            held: Vec::new(),
            pressed: Vec::new(),
            released: Vec::new(),
        }
    }
}

impl<T: PartialEq + Clone> Buttons<T> {
    /// Held down now (asked by name as a `&str`, or by number).
    pub fn held<Q: PartialEq + ?Sized>(&self, b: &Q) -> bool
    where
        T: Borrow<Q>,
    {
        self.held.iter().any(|h| h.borrow() == b)
    }

    /// Went down in this frame.
    pub fn pressed<Q: PartialEq + ?Sized>(&self, b: &Q) -> bool
    where
        T: Borrow<Q>,
    {
        self.pressed.iter().any(|h| h.borrow() == b)
    }

    /// Went up in this frame.
    pub fn released<Q: PartialEq + ?Sized>(&self, b: &Q) -> bool
    where
        T: Borrow<Q>,
    {
        self.released.iter().any(|h| h.borrow() == b)
    }

    /// Everything held, in the order it went down.
    pub fn all_held(&self) -> &[T] {
        &self.held
    }

    /// Everything that went down this frame, in order.
    pub fn all_pressed(&self) -> &[T] {
        &self.pressed
    }

    fn set(&mut self, b: &T, down: bool) {
        let was = self.held.contains(b);
        if down && !was {
            self.held.push(b.clone());
            self.pressed.push(b.clone());
        } else if !down && was {
            self.held.retain(|h| h != b);
            self.released.push(b.clone());
        }
    }

    fn release_all(&mut self) {
        for b in std::mem::take(&mut self.held) {
            self.released.push(b);
        }
    }

    fn new_frame(&mut self) {
        self.pressed.clear();
        self.released.clear();
    }
}

/// A gamepad.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Gamepad {
    /// Its name, as the system tells it.
    pub name: String,
    /// Plugged in now.
    pub connected: bool,
    /// Plugged in during this frame.
    pub connected_now: bool,
    /// Unplugged during this frame.
    pub disconnected_now: bool,
    /// Its buttons.
    pub buttons: Buttons<String>,
    axes: BTreeMap<String, f32>,
}

impl Gamepad {
    /// An axis's value, −1 to 1 (0 for one that never moved).
    pub fn axis(&self, axis: &str) -> f32 {
        self.axes.get(axis).copied().unwrap_or(0.0)
    }
}

/// The input of one frame, the same on every process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Input {
    /// Keyboard keys, by name.
    pub keys: Buttons<String>,
    /// Mouse buttons, by name.
    pub mouse: Buttons<String>,
    /// The pointer in the window, in pixels.
    pub cursor: Option<[f32; 2]>,
    /// Raw mouse motion this frame.
    pub motion: [f32; 2],
    /// Wheel motion this frame, in lines.
    pub wheel: [f32; 2],
    trackers: BTreeMap<(String, u32), Pose>,
    buttons: BTreeMap<String, Buttons<u32>>,
    analogs: BTreeMap<String, Vec<f64>>,
    pads: BTreeMap<(String, u32), Gamepad>,
    /// This frame's events, in order.
    events: Vec<InputEvent>,
}

impl Input {
    /// Starts a new frame: nothing has gone down or up in it, nothing moved.
    pub fn new_frame(&mut self) {
        self.keys.new_frame();
        self.mouse.new_frame();
        self.motion = [0.0; 2];
        self.wheel = [0.0; 2];
        for b in self.buttons.values_mut() {
            b.new_frame();
        }
        for p in self.pads.values_mut() {
            p.buttons.new_frame();
            p.connected_now = false;
            p.disconnected_now = false;
        }
        self.events.clear();
    }

    /// Applies one event of this frame.
    pub fn apply(&mut self, e: &InputEvent) {
        match e {
            InputEvent::Key { key, down } => self.keys.set(key, *down),
            InputEvent::MouseButton { button, down } => self.mouse.set(button, *down),
            InputEvent::Cursor { position } => self.cursor = *position,
            InputEvent::Motion { delta } => {
                self.motion[0] += delta[0];
                self.motion[1] += delta[1];
            }
            InputEvent::Wheel { delta } => {
                self.wheel[0] += delta[0];
                self.wheel[1] += delta[1];
            }
            InputEvent::FocusLost => {
                self.keys.release_all();
                self.mouse.release_all();
            }
            InputEvent::Tracker {
                device,
                sensor,
                pose,
            } => {
                self.trackers.insert((device.clone(), *sensor), *pose);
            }
            InputEvent::Button {
                device,
                button,
                down,
            } => self
                .buttons
                .entry(device.clone())
                .or_default()
                .set(button, *down),
            InputEvent::Analog { device, channels } => {
                self.analogs.insert(device.clone(), channels.clone());
            }
            InputEvent::Pad { device, pad, event } => {
                let p = self.pads.entry((device.clone(), *pad)).or_default();
                match event {
                    PadEvent::Connected(name) => {
                        p.name.clone_from(name);
                        p.connected = true;
                        p.connected_now = true;
                    }
                    PadEvent::Disconnected => {
                        p.connected = false;
                        p.disconnected_now = true;
                        p.buttons.release_all();
                        p.axes.clear();
                    }
                    PadEvent::Button { button, down } => p.buttons.set(button, *down),
                    PadEvent::Axis { axis, value } => {
                        p.axes.insert(axis.clone(), *value);
                    }
                }
            }
        }
        self.events.push(e.clone());
    }

    /// A new frame with these events.
    pub fn advance(&mut self, events: &[InputEvent]) {
        self.new_frame();
        for e in events {
            self.apply(e);
        }
    }

    /// This frame's events, in the order they were applied.
    pub fn events(&self) -> &[InputEvent] {
        &self.events
    }

    /// A key is held (by name: `w`, `ArrowLeft`, `Escape`).
    pub fn key_held(&self, key: &str) -> bool {
        self.keys.held(key)
    }

    /// A key went down this frame.
    pub fn key_pressed(&self, key: &str) -> bool {
        self.keys.pressed(key)
    }

    /// The newest pose of a tracker's sensor.
    pub fn tracker(&self, device: &str, sensor: u32) -> Option<Pose> {
        self.trackers.get(&(device.to_string(), sensor)).copied()
    }

    /// A button device's buttons.
    pub fn buttons(&self, device: &str) -> Option<&Buttons<u32>> {
        self.buttons.get(device)
    }

    /// An analog device's newest channels.
    pub fn analog(&self, device: &str) -> Option<&[f64]> {
        self.analogs.get(device).map(Vec::as_slice)
    }

    /// A gamepad of a gamepad device.
    pub fn gamepad(&self, device: &str, pad: u32) -> Option<&Gamepad> {
        self.pads.get(&(device.to_string(), pad))
    }

    /// Every gamepad, by device and number.
    pub fn gamepads(&self) -> impl Iterator<Item = (&str, u32, &Gamepad)> {
        self.pads.iter().map(|((d, n), p)| (d.as_str(), *n, p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str, down: bool) -> InputEvent {
        InputEvent::Key {
            key: k.into(),
            down,
        }
    }

    #[test]
    fn a_press_and_release_in_one_frame_are_both_seen_and_nothing_stays_held() {
        let mut i = Input::default();
        i.advance(&[key("w", true), key("a", true), key("a", false)]);
        assert!(i.key_held("w") && i.key_pressed("w"));
        assert!(!i.key_held("a") && i.key_pressed("a") && i.keys.released("a"));
        // Repeats while held are not presses.
        i.advance(&[key("w", true)]);
        assert!(i.key_held("w") && !i.key_pressed("w"));
        i.advance(&[InputEvent::FocusLost]);
        assert!(!i.key_held("w") && i.keys.released("w"));
        assert_eq!(i.events(), [InputEvent::FocusLost]);
    }

    #[test]
    fn motion_and_wheel_add_up_within_a_frame_and_restart_at_the_next() {
        let mut i = Input::default();
        let m = |x: f32, y: f32| InputEvent::Motion { delta: [x, y] };
        i.advance(&[
            m(1.0, 2.0),
            m(3.0, -1.0),
            InputEvent::Wheel { delta: [0.0, 1.0] },
        ]);
        assert_eq!((i.motion, i.wheel), ([4.0, 1.0], [0.0, 1.0]));
        i.advance(&[]);
        assert_eq!((i.motion, i.wheel), ([0.0; 2], [0.0; 2]));
    }

    #[test]
    fn an_unplugged_gamepad_lets_go_of_its_buttons_and_axes() {
        let mut i = Input::default();
        let pad = |event| InputEvent::Pad {
            device: "pads".into(),
            pad: 0,
            event,
        };
        i.advance(&[
            pad(PadEvent::Connected("X-Box".into())),
            pad(PadEvent::Button {
                button: "South".into(),
                down: true,
            }),
            pad(PadEvent::Axis {
                axis: "LeftStickX".into(),
                value: 0.5,
            }),
        ]);
        let p = i.gamepad("pads", 0).unwrap();
        assert!(p.connected_now && p.buttons.pressed("South"));
        assert_eq!(p.axis("LeftStickX"), 0.5);
        i.advance(&[pad(PadEvent::Disconnected)]);
        let p = i.gamepad("pads", 0).unwrap();
        assert!(!p.connected && p.disconnected_now && p.buttons.released("South"));
        assert_eq!(p.axis("LeftStickX"), 0.0);
    }

    #[test]
    fn trackers_keep_their_newest_pose() {
        let mut i = Input::default();
        let at = |x: f32| InputEvent::Tracker {
            device: "head".into(),
            sensor: 0,
            pose: Pose {
                position: [x, 1.7, 0.0],
                rotation: [0.0, 0.0, 0.0, 1.0],
            },
        };
        i.advance(&[at(0.1), at(0.2)]);
        i.advance(&[]);
        assert_eq!(i.tracker("head", 0).unwrap().position, [0.2, 1.7, 0.0]);
        assert_eq!(i.tracker("head", 1), None);
    }
}
