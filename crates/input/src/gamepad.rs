/*!
Gamepads, read with `gilrs` on their own thread: each `[[input]] device = "gamepad"` reads
every gamepad plugged into its host, numbered in the order the system gives them. Buttons go
down and up by name (`South`, `East`, `LeftTrigger`, `Start`, …), sticks and analog triggers
are axes from −1 to 1 (`LeftStickX`, `LeftStickY`, `RightStickX`, `RightStickY`, `LeftZ`,
`RightZ`; the analog value of a trigger button as `LeftTrigger2`, `RightTrigger2`), and a pad
unplugged mid-frame lets go of everything it held.
*/
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{InputEvent, PadEvent};

/// Events kept between two takes; older ones are dropped.
const MAX_PENDING: usize = 4096;

/// The gamepads of this host, read until dropped.
pub struct Gamepads {
    pending: Arc<Mutex<Vec<InputEvent>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Gamepads {
    /// Starts reading this host's gamepads as device `device`.
    pub fn start(device: &str) -> std::io::Result<Gamepads> {
        let pending = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (pending, stop, device) = (pending.clone(), stop.clone(), device.to_string());
            std::thread::Builder::new()
                .name(format!("gamepads {device}"))
                .spawn(move || run(&device, &pending, &stop))?
        };
        Ok(Gamepads {
            pending,
            stop,
            thread: Some(thread),
        })
    }

    /// What the gamepads reported since the last take, in order.
    pub fn take(&self, out: &mut Vec<InputEvent>) {
        if let Ok(mut p) = self.pending.lock() {
            out.append(&mut p);
        }
    }
}

impl Drop for Gamepads {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(device: &str, pending: &Mutex<Vec<InputEvent>>, stop: &AtomicBool) {
    let mut gilrs = match gilrs::Gilrs::new() {
        Ok(g) => g,
        Err(gilrs::Error::NotImplemented(g)) => {
            tracing::warn!("input '{device}': gamepads are not supported on this system");
            g
        }
        Err(e) => {
            tracing::warn!("input '{device}': cannot read gamepads: {e}");
            return;
        }
    };
    // The pads already plugged in are reported as connected first.
    let mut out: Vec<InputEvent> = gilrs
        .gamepads()
        .map(|(id, pad)| InputEvent::Pad {
            device: device.to_string(),
            pad: usize::from(id) as u32,
            event: PadEvent::Connected(pad.name().to_string()),
        })
        .collect();
    while !stop.load(Ordering::Relaxed) {
        // Wakes at least this often to see `stop`; no busy wait.
        if let Some(ev) = gilrs.next_event_blocking(Some(Duration::from_millis(100))) {
            let event = match ev.event {
                gilrs::EventType::Connected => {
                    Some(PadEvent::Connected(gilrs.gamepad(ev.id).name().to_string()))
                }
                other => pad_event(&other),
            };
            if let Some(event) = event {
                out.push(InputEvent::Pad {
                    device: device.to_string(),
                    pad: usize::from(ev.id) as u32,
                    event,
                });
            }
        }
        if !out.is_empty()
            && let Ok(mut p) = pending.lock()
        {
            p.append(&mut out);
            if p.len() > MAX_PENDING {
                // Nobody took them for a long while: merge what is moot, then drop the
                // oldest, saying so.
                crate::coalesce(&mut p);
                let over = p.len().saturating_sub(MAX_PENDING);
                if over > 0 {
                    p.drain(..over);
                    tracing::warn!(
                        "input '{device}': {over} gamepad events dropped (not taken in time)"
                    );
                }
            }
        }
    }
}

/// A gilrs event as a pad event (none for what carries nothing: repeats, dropped events).
fn pad_event(e: &gilrs::EventType) -> Option<PadEvent> {
    use gilrs::EventType as E;
    Some(match e {
        E::ButtonPressed(b, _) => PadEvent::Button {
            button: format!("{b:?}"),
            down: true,
        },
        E::ButtonReleased(b, _) => PadEvent::Button {
            button: format!("{b:?}"),
            down: false,
        },
        // Analog triggers: their travel, as an axis named after the button.
        E::ButtonChanged(
            b @ (gilrs::Button::LeftTrigger2 | gilrs::Button::RightTrigger2),
            v,
            _,
        ) if v.is_finite() => PadEvent::Axis {
            axis: format!("{b:?}"),
            value: v.clamp(0.0, 1.0),
        },
        E::AxisChanged(a, v, _) if v.is_finite() => PadEvent::Axis {
            axis: format!("{a:?}"),
            value: v.clamp(-1.0, 1.0),
        },
        E::Disconnected => PadEvent::Disconnected,
        E::Connected
        | E::ButtonRepeated(..)
        | E::ButtonChanged(..)
        | E::AxisChanged(..)
        | E::Dropped
        | E::ForceFeedbackEffectCompleted => return None,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_gilrs_own() {
        // What the viewer and applications ask for by name.
        assert_eq!(format!("{:?}", gilrs::Axis::LeftStickY), "LeftStickY");
        assert_eq!(format!("{:?}", gilrs::Axis::RightStickX), "RightStickX");
        assert_eq!(format!("{:?}", gilrs::Button::South), "South");
        assert_eq!(
            pad_event(&gilrs::EventType::Disconnected),
            Some(PadEvent::Disconnected)
        );
        assert_eq!(pad_event(&gilrs::EventType::Dropped), None);
    }
}
