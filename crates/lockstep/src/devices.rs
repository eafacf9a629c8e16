/*!
The input devices a process reads itself, as the cluster file's `[[input]]` places them: VRPN
devices (their trackers, buttons and analog channels) and gamepads, on the master or on a
render node. Each
frame [`Devices::poll`] turns what they reported into [`InputEvent`]s — tracker poses in the
cluster's tracker space, through the device's remap — for the master to hand to every process.
*/
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use lockstep_cluster::HeadLatch;
use lockstep_display::{
    ClusterConfig, DeviceHost, DeviceKind, HeadPose, HeadTracker, InputDevice, TrackerRemap,
};
use lockstep_input::gamepad::{Gamepads, PadScript};
use lockstep_input::record::{Latches, Replay};
use lockstep_input::vrpn::{Address, Device, PoseWatch};
use lockstep_input::{Input, InputEvent, Pose};
use lockstep_scene::glam::{Quat, Vec3};
use lockstep_wire::LatchedHead;

/// The devices this process reads.
#[derive(Default)]
pub struct Devices {
    vrpn: Vec<Vrpn>,
    pads: Vec<Gamepads>,
}

/// A VRPN device, with what is known of its reports for warnings.
struct Vrpn {
    config: InputDevice,
    device: Device,
    /// When a pose last came, and whether its silence since was told.
    last_pose: Option<(Instant, bool)>,
}

/// A tracker silent this long (while its server answers) is told about.
const STALE: Duration = Duration::from_secs(1);

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
                    vrpn.push(Vrpn {
                        config: d.clone(),
                        device,
                        last_pose: None,
                    });
                }
                DeviceKind::Gamepad { script: None } => pads.push(
                    Gamepads::start(&d.name)
                        .with_context(|| format!("input '{}': cannot read gamepads", d.name))?,
                ),
                DeviceKind::Gamepad { script: Some(path) } => {
                    let script = PadScript::load(path)
                        .map_err(anyhow::Error::msg)
                        .with_context(|| format!("input '{}'", d.name))?;
                    pads.push(
                        Gamepads::scripted(&d.name, script).with_context(|| {
                            format!("input '{}': cannot play its script", d.name)
                        })?,
                    );
                }
            }
        }
        Ok(Devices { vrpn, pads })
    }

    /// Appends what every device reported since the last poll: the newest pose of each
    /// sensor, every button change in order, the newest channels.
    pub fn poll(&mut self, out: &mut Vec<InputEvent>) {
        for pads in &self.pads {
            pads.take(out);
        }
        let now = Instant::now();
        for v in &mut self.vrpn {
            let d = &v.config;
            let r = v.device.take();
            if r.dropped_buttons > 0 {
                tracing::warn!(
                    "input '{}': {} button changes dropped (not taken in time)",
                    d.name,
                    r.dropped_buttons
                );
            }
            match (&mut v.last_pose, r.poses.is_empty()) {
                (last, false) => {
                    if last.is_some_and(|(_, told)| told) {
                        tracing::info!("input '{}': its tracker reports again", d.name);
                    }
                    *last = Some((now, false));
                }
                (Some((at, told)), true) if !*told && now.duration_since(*at) > STALE => {
                    tracing::warn!(
                        "input '{}': no tracker report for {:.1} s; its last pose holds",
                        d.name,
                        now.duration_since(*at).as_secs_f32()
                    );
                    *told = true;
                }
                _ => {}
            }
            for (sensor, p) in r.poses {
                let (position, rotation) = p.to_glam();
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

/// A head pose as a swap carries it: its quaternion made unit (trackers and recordings give
/// quaternions of about unit length; the wire wants them unit).
pub fn latched_head(position: Vec3, rotation: Quat) -> LatchedHead {
    LatchedHead {
        position: position.to_array(),
        rotation: rotation.normalize().to_array(),
    }
}

/// Late latching: the head tracker's newest pose, through its device's remap, read as the
/// master releases each swap (only once the next frame is made: before, the frame's own
/// pose will be newer).
struct LiveLatch {
    watch: PoseWatch,
    remap: TrackerRemap,
}

impl HeadLatch for LiveLatch {
    fn newest(&mut self, _frame: u64, made: bool) -> Option<LatchedHead> {
        if !made {
            return None;
        }
        let (position, rotation) = self.watch.newest()?.to_glam();
        let (position, rotation) = self.remap.apply(position, rotation);
        Some(latched_head(position, rotation))
    }
}

/// Late latching in a replay: the poses the recording latched, frame by frame, however the
/// replay is paced.
struct ReplayLatch(Latches);

impl HeadLatch for ReplayLatch {
    fn newest(&mut self, frame: u64, _made: bool) -> Option<LatchedHead> {
        let (position, rotation) = self.0.get(frame)?.to_glam();
        Some(latched_head(position, rotation))
    }
}

impl Devices {
    /// A latch that reads `tracker`'s newest pose, if this process reads that tracker.
    pub fn head_latch(&self, tracker: &HeadTracker) -> Option<Box<dyn HeadLatch>> {
        let v = self.vrpn.iter().find(|v| v.config.name == tracker.device)?;
        Some(Box::new(LiveLatch {
            watch: v.device.watch(tracker.sensor),
            remap: v.config.remap,
        }))
    }
}

/// A latch that latches again what `replay`'s recording latched.
pub fn replay_latch(replay: &Replay) -> Box<dyn HeadLatch> {
    Box::new(ReplayLatch(replay.latches()))
}

/// Most events a node sends in one batch (one frame's worth).
const MAX_BATCH: usize = 4096;

impl Devices {
    /// On a node: what the devices reported since the last call, into `events` and encoded
    /// for the master (none if nothing was reported).
    pub fn batch(&mut self, events: &mut Vec<InputEvent>) -> Option<Vec<u8>> {
        events.clear();
        self.poll(events);
        if events.is_empty() {
            return None;
        }
        if events.len() > MAX_BATCH {
            // What is moot goes; presses and releases stay (a dropped release would leave a
            // button held on every process).
            lockstep_input::coalesce(events);
            if events.len() > MAX_BATCH {
                tracing::warn!(
                    "{} input events in one frame: the oldest {} dropped",
                    events.len(),
                    events.len() - MAX_BATCH
                );
                events.drain(..events.len() - MAX_BATCH);
            }
        }
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
        e.check()
            .map_err(|why| format!("node '{node}' sent input that is not sound: {why}"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn placed() -> Vec<InputDevice> {
        vec![InputDevice {
            name: "wand".into(),
            kind: DeviceKind::Vrpn {
                address: "Wand@h".into(),
            },
            host: DeviceHost::Node("left".into()),
            remap: TrackerRemap::default(),
        }]
    }

    fn batch(events: &[InputEvent]) -> Vec<u8> {
        postcard::to_stdvec(&events).unwrap()
    }

    #[test]
    fn a_node_may_send_only_sound_input_of_its_own_devices() {
        let press = InputEvent::Button {
            device: "wand".into(),
            button: 0,
            down: true,
        };
        let one = std::slice::from_ref(&press);
        assert_eq!(decode_batch("left", &batch(one), &placed()).unwrap(), one);
        let e = decode_batch("right", &batch(&[press]), &placed()).unwrap_err();
        assert_eq!(
            e,
            "node 'right' sent input of device 'wand', which the cluster file does not place on it"
        );
        let key = InputEvent::Key {
            key: "Escape".into(),
            down: true,
        };
        let e = decode_batch("left", &batch(&[key]), &placed()).unwrap_err();
        assert!(
            e.contains("a node sends only the input of its own devices"),
            "{e}"
        );
        let nan = InputEvent::Tracker {
            device: "wand".into(),
            sensor: 0,
            pose: Pose {
                position: [f32::NAN, 0.0, 0.0],
                rotation: [0.0, 0.0, 0.0, 1.0],
            },
        };
        let e = decode_batch("left", &batch(&[nan]), &placed()).unwrap_err();
        assert!(e.contains("not sound"), "{e}");
        let e = decode_batch("left", &[0xff, 0xff, 0xff], &placed()).unwrap_err();
        assert!(e.contains("does not decode"), "{e}");
    }
}
