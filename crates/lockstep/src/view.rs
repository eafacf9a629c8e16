/*!
The no-code viewer, `lockstep view MODEL --config FILE`: a glTF model on every display of a
cluster, as a cluster application ([`ViewApp`]). Every process loads its own copy of the model
(the master refuses a node whose copy differs, naming both digests); the master moves the
viewer through it from the keyboard of its own window (`--render NODE`), by moving the scene's
`rig` node, the tracker space's place in the world that every node projects from.
*/
use std::f32::consts::TAU;
use std::path::PathBuf;

use anyhow::Result;
use lockstep_scene::glam::{Quat, Vec3};
use lockstep_scene::{Color, Light, Node, NodeContent, NodeId, Scene, Transform};

use crate::app::{ClusterApp, MasterFrame, Setup};
use lockstep_input::Input;

/// Shows a glTF model; navigated from the master's window.
pub struct ViewApp {
    model: PathBuf,
    rig: Option<NodeId>,
    navigator: Navigator,
}

impl ViewApp {
    /// The viewer of the model at `model` (the same path on every host).
    pub fn new(model: impl Into<PathBuf>) -> Self {
        ViewApp {
            model: model.into(),
            rig: None,
            navigator: Navigator::default(),
        }
    }
}

impl ClusterApp for ViewApp {
    fn name(&self) -> &str {
        "view"
    }

    fn setup(&mut self, setup: &mut Setup<'_>) -> Result<()> {
        setup.scene.background = Color::from_srgb8(18, 22, 34);
        setup.load_gltf(&self.model, None)?;
        add_default_light(setup.scene)?;
        // A model may bring its own rig (where the display stands at the start).
        let rig = match setup.scene.find("rig") {
            Some(rig) => rig,
            None => setup.scene.add(Node::empty().named("rig"), None)?,
        };
        self.navigator.home = setup.scene.node(rig)?.transform;
        self.navigator.at = self.navigator.home;
        self.rig = Some(rig);
        Ok(())
    }

    fn update(&mut self, frame: &mut MasterFrame<'_>) -> Result<()> {
        let Some(rig) = self.rig else {
            anyhow::bail!("ViewApp::update before setup");
        };
        let moved = self.navigator.step(frame.input(), frame.info.dt as f32);
        if moved {
            frame.scene.node_mut(rig)?.transform = self.navigator.at;
        }
        Ok(())
    }
}

/// Lights a model that brings none: a key light from above and to the side, and some
/// ambient light (what `lockstep render` does too).
pub fn add_default_light(scene: &mut Scene) -> Result<()> {
    let lit = scene
        .nodes()
        .any(|(_, n)| matches!(n.content, NodeContent::Light(_)));
    if !lit {
        let key = Transform::IDENTITY.with_rotation(
            Quat::from_rotation_y(30f32.to_radians()) * Quat::from_rotation_x(-45f32.to_radians()),
        );
        scene.add(
            Node::light(Light::directional(Color::WHITE, 1.0)).with_transform(key),
            None,
        )?;
        scene.ambient = Color::rgb(0.15, 0.15, 0.17);
    }
    Ok(())
}

/// Walking and flying through a scene from the keyboard, as the rig's transform: W/S or ↑/↓
/// forward and back, A/D sideways, Q/E or PageDown/PageUp down and up, ←/→ turn, + and −
/// double or halve the speed, R goes back to the start.
#[derive(Debug, Clone, PartialEq)]
pub struct Navigator {
    /// Where the rig is now.
    pub at: Transform,
    /// Where it started (R).
    pub home: Transform,
    /// Metres per second.
    pub speed: f32,
    /// Radians per second.
    pub turn: f32,
}

impl Default for Navigator {
    fn default() -> Self {
        Navigator {
            at: Transform::IDENTITY,
            home: Transform::IDENTITY,
            speed: 1.5,
            turn: TAU / 8.0,
        }
    }
}

impl Navigator {
    /// Moves by what `input` asks for over `dt` seconds; whether the rig moved. Keys walk
    /// (W/S, ↑/↓), step sideways (A/D), fly (Q/E, PageDown/PageUp) and turn (←/→); dragging
    /// with the left mouse button turns too; a gamepad's left stick walks, its right stick
    /// turns and its triggers fly; holding the [`WAND`]'s first button flies where it points.
    /// `+`/`-` double or halve the speed once per press, `R` goes home.
    pub fn step(&mut self, input: &Input, dt: f32) -> bool {
        let any = |keys: &[String], names: &[&str]| {
            keys.iter()
                .any(|k| names.iter().any(|n| k.eq_ignore_ascii_case(n)))
        };
        let down = |names: &[&str]| any(input.keys.all_held(), names);
        let pressed = |names: &[&str]| any(input.keys.all_pressed(), names);
        let before = self.at;
        let dt = dt.clamp(0.0, 0.25);
        if pressed(&["+", "="]) {
            self.speed = (self.speed * 2.0).min(1000.0);
        }
        if pressed(&["-"]) {
            self.speed = (self.speed / 2.0).max(0.01);
        }
        if pressed(&["r"]) {
            self.at = self.home;
        }
        let axis =
            |plus: &[&str], minus: &[&str]| down(plus) as i32 as f32 - down(minus) as i32 as f32;
        let mut forward = axis(&["w", "ArrowUp"], &["s", "ArrowDown"]);
        let mut right = axis(&["d"], &["a"]);
        let mut up = axis(&["e", "PageUp"], &["q", "PageDown"]);
        let mut yaw = axis(&["ArrowLeft"], &["ArrowRight"]) * self.turn * dt;
        // Gamepads add to the keys (a stick at rest inside its dead zone adds nothing).
        let live = |v: f32| if v.abs() < 0.15 { 0.0 } else { v };
        for (_, _, pad) in input.gamepads().filter(|(_, _, p)| p.connected) {
            forward += live(pad.axis("LeftStickY"));
            right += live(pad.axis("LeftStickX"));
            up += live(pad.axis("RightZ")) - live(pad.axis("LeftZ"));
            yaw -= live(pad.axis("RightStickX")) * self.turn * dt;
        }
        // Mouse look: dragging left turns the world the way the hand goes.
        if input.mouse.held("left") {
            yaw -= input.motion[0] * MOUSE_TURN;
        }
        let (forward, right, up) = (
            forward.clamp(-1.0, 1.0),
            right.clamp(-1.0, 1.0),
            up.clamp(-1.0, 1.0),
        );
        self.at.rotation = (Quat::from_rotation_y(yaw) * self.at.rotation).normalize();
        // Forward is the rig's -Z, sideways its +X, up the world's +Y.
        let mut step = self.at.rotation * Vec3::new(right, 0.0, -forward) + Vec3::new(0.0, up, 0.0);
        // The wand: while its first button is held, fly where it points (its -Z, turned
        // from the display's tracker space into the world by the rig).
        if let (Some(wand), Some(buttons)) = (input.tracker(WAND, 0), input.buttons(WAND))
            && buttons.held(&0)
        {
            let (_, pointing) = wand.to_glam();
            step += self.at.rotation * (pointing * Vec3::NEG_Z);
        }
        self.at.translation += step * self.speed * dt;
        self.at != before
    }
}

/// The input device the viewer flies with: tracker sensor 0 points, button 0 goes.
pub const WAND: &str = "wand";

/// Radians the rig turns per count of mouse motion while dragging.
const MOUSE_TURN: f32 = 0.004;

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_input::{InputEvent, PadEvent};

    /// A frame of input in which exactly `k` are held, after `input`'s frame.
    fn keys(input: &mut Input, k: &[&str]) -> Input {
        let mut events: Vec<InputEvent> = input
            .keys
            .all_held()
            .iter()
            .filter(|h| !k.contains(&h.as_str()))
            .map(|h| InputEvent::Key {
                key: h.clone(),
                down: false,
            })
            .collect();
        events.extend(k.iter().map(|k| InputEvent::Key {
            key: k.to_string(),
            down: true,
        }));
        input.advance(&events);
        input.clone()
    }

    #[test]
    fn keys_walk_turn_fly_and_go_home() {
        let mut n = Navigator::default();
        let mut i = Input::default();
        let mut keys = |k: &[&str]| keys(&mut i, k);
        assert!(!n.step(&keys(&[]), 0.1));
        // One second forward at 1.5 m/s: 1.5 m along -Z.
        assert!(n.step(&keys(&["W"]), 1.0 / 4.0));
        for _ in 0..3 {
            n.step(&keys(&["w"]), 1.0 / 4.0);
        }
        assert!((n.at.translation - Vec3::new(0.0, 0.0, -1.5)).length() < 1e-5);
        // A quarter turn left, then forward goes along -X.
        for _ in 0..8 {
            n.step(&keys(&["ArrowLeft"]), 0.25);
        }
        n.step(&keys(&["ArrowUp"]), 0.25);
        assert!((n.at.translation - Vec3::new(-0.375, 0.0, -1.5)).length() < 1e-4);
        // + doubles the speed once per press, however long it is held.
        n.step(&keys(&["+"]), 0.25);
        n.step(&keys(&["+"]), 0.25);
        assert_eq!(n.speed, 3.0);
        n.step(&keys(&[]), 0.25);
        n.step(&keys(&["+"]), 0.25);
        assert_eq!(n.speed, 6.0);
        n.step(&keys(&["PageUp"]), 0.25);
        assert!((n.at.translation.y - 1.5).abs() < 1e-5);
        n.step(&keys(&["r"]), 0.25);
        assert_eq!(n.at, n.home);
    }

    #[test]
    fn a_gamepad_walks_and_a_left_drag_turns() {
        let mut n = Navigator::default();
        let mut i = Input::default();
        let pad = |event| InputEvent::Pad {
            device: "pads".into(),
            pad: 0,
            event,
        };
        let stick = |value| {
            pad(PadEvent::Axis {
                axis: "LeftStickY".into(),
                value,
            })
        };
        i.advance(&[pad(PadEvent::Connected("pad".into())), stick(1.0)]);
        n.step(&i, 0.25);
        assert!((n.at.translation - Vec3::new(0.0, 0.0, -0.375)).length() < 1e-5);
        // Inside the dead zone: nothing.
        i.advance(&[stick(0.1)]);
        assert!(!n.step(&i, 0.25));
        let button = |down| InputEvent::MouseButton {
            button: "left".into(),
            down,
        };
        let motion = InputEvent::Motion {
            delta: [-100.0, 0.0],
        };
        i.advance(&[button(true), motion.clone()]);
        n.step(&i, 0.25);
        assert!(n.at.rotation.angle_between(Quat::from_rotation_y(0.4)) < 1e-4);
        // Motion without the button held turns nothing.
        i.advance(&[button(false), motion]);
        assert!(!n.step(&i, 0.25));
    }

    #[test]
    fn the_wand_flies_where_it_points_while_its_button_is_held() {
        let mut n = Navigator::default();
        let mut i = Input::default();
        // Pointing left (its -Z turned a quarter about y): -X.
        let pose = lockstep_input::Pose::from_glam(
            Vec3::new(0.2, 1.2, -0.3),
            Quat::from_rotation_y(std::f32::consts::FRAC_PI_2),
        );
        let wand = |down| {
            [
                InputEvent::Tracker {
                    device: WAND.into(),
                    sensor: 0,
                    pose,
                },
                InputEvent::Button {
                    device: WAND.into(),
                    button: 0,
                    down,
                },
            ]
        };
        i.advance(&wand(false));
        assert!(!n.step(&i, 0.25), "pointing alone moves nothing");
        i.advance(&wand(true));
        n.step(&i, 0.25);
        assert!(
            (n.at.translation - Vec3::new(-0.375, 0.0, 0.0)).length() < 1e-5,
            "{}",
            n.at.translation
        );
    }
}
