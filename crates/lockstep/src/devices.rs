/*!
The input devices a process reads itself, as the cluster file's `[[input]]` places them: VRPN
devices (their trackers, buttons and analog channels) and gamepads, on the master or on a
render node. Each
frame [`Devices::poll`] turns what they reported into [`InputEvent`]s — tracker poses in the
cluster's tracker space, through the device's remap — for the master to hand to every process.
*/
use anyhow::{Context, Result};
use lockstep_display::{ClusterConfig, DeviceHost, DeviceKind, HeadPose, HeadTracker, InputDevice};
use lockstep_input::gamepad::Gamepads;
use lockstep_input::vrpn::{Address, Device};
use lockstep_input::{Input, InputEvent, Pose};
use lockstep_scene::glam::{DQuat, DVec3, Quat, Vec3};

/// The devices this process reads.
#[derive(Default)]
pub struct Devices {
    vrpn: Vec<(InputDevice, Device)>,
    pads: Vec<Gamepads>,
}

impl Devices {
    /// Starts reading every device `config` places on `here`.
    pub fn start(config: &ClusterConfig, here: &DeviceHost) -> Result<Devices> {
        let (mut vrpn, mut pads) = (Vec::new(), Vec::new());
        for d in config.input.iter().filter(|d| &d.host == here) {
            match &d.kind {
                DeviceKind::Vrpn { address } => {
                    let parsed: Address = address
                        .parse()
                        .map_err(anyhow::Error::msg)
                        .with_context(|| format!("input '{}'", d.name))?;
                    let device = Device::start(parsed, &d.name)
                        .with_context(|| format!("input '{}'", d.name))?;
                    vrpn.push((d.clone(), device));
                }
                DeviceKind::Gamepad => pads.push(
                    Gamepads::start(&d.name)
                        .with_context(|| format!("input '{}': cannot read gamepads", d.name))?,
                ),
            }
        }
        Ok(Devices { vrpn, pads })
    }

    /// No devices.
    pub fn none() -> Devices {
        Devices::default()
    }

    /// Appends what every device reported since the last poll: the newest pose of each
    /// sensor, every button change in order, the newest channels.
    pub fn poll(&mut self, out: &mut Vec<InputEvent>) {
        for pads in &self.pads {
            pads.take(out);
        }
        for (d, device) in &self.vrpn {
            let r = device.take();
            for (sensor, p) in r.poses {
                let position = DVec3::from_array(p.position).as_vec3();
                let rotation = DQuat::from_array(p.rotation).as_quat();
                let (position, rotation) = d.remap.apply(position, rotation);
                out.push(InputEvent::Tracker {
                    device: d.name.clone(),
                    sensor,
                    pose: Pose::from_glam(position, rotation),
                });
            }
            for (button, down) in r.buttons {
                out.push(InputEvent::Button {
                    device: d.name.clone(),
                    button,
                    down,
                });
            }
            if let Some(channels) = r.analog {
                out.push(InputEvent::Analog {
                    device: d.name.clone(),
                    channels,
                });
            }
        }
    }
}

/// Most events a node sends in one batch (one frame's worth).
const MAX_BATCH: usize = 1024;

impl Devices {
    /// On a node: what the devices reported since the last call, into `events` and encoded
    /// for the master (none if nothing was reported).
    pub fn batch(&mut self, events: &mut Vec<InputEvent>) -> Option<Vec<u8>> {
        events.clear();
        self.poll(events);
        if events.is_empty() {
            return None;
        }
        events.truncate(MAX_BATCH);
        postcard::to_stdvec(&events).ok()
    }
}

/// What node `node` sent of its devices' input, checked: only events of devices `devices`
/// (the cluster file's) places on that node.
pub fn decode_batch(
    node: &str,
    bytes: &[u8],
    devices: &[InputDevice],
) -> Result<Vec<InputEvent>, String> {
    let events: Vec<InputEvent> = postcard::from_bytes(bytes)
        .map_err(|e| format!("node '{node}' sent input that does not decode: {e}"))?;
    if events.len() > MAX_BATCH {
        return Err(format!(
            "node '{node}' sent {} input events at once, over {MAX_BATCH}",
            events.len()
        ));
    }
    for e in &events {
        let device = match e {
            InputEvent::Tracker { device, .. }
            | InputEvent::Button { device, .. }
            | InputEvent::Analog { device, .. }
            | InputEvent::Pad { device, .. } => device,
            other => {
                return Err(format!(
                    "node '{node}' sent {other:?}: a node sends only the input of its own devices"
                ));
            }
        };
        let here = devices
            .iter()
            .any(|d| &d.name == device && d.host == DeviceHost::Node(node.to_string()));
        if !here {
            return Err(format!(
                "node '{node}' sent input of device '{device}', which the cluster file does not place on it"
            ));
        }
    }
    Ok(events)
}

/// The head pose `tracker` gives in `input`, if that sensor has reported.
pub fn head_from(input: &Input, tracker: &HeadTracker) -> Option<HeadPose> {
    let pose = input.tracker(&tracker.device, tracker.sensor)?;
    let (position, rotation): (Vec3, Quat) = pose.to_glam();
    Some(HeadPose { position, rotation })
}
