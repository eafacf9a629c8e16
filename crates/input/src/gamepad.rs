/*!
Gamepads, read with `gilrs` on their own thread: each `[[input]] device = "gamepad"` reads
every gamepad plugged into its host, numbered in the order the system gives them. Buttons go
down and up by name (`South`, `East`, `LeftTrigger`, `Start`, …), sticks and analog triggers
are axes from −1 to 1 (`LeftStickX`, `LeftStickY`, `RightStickX`, `RightStickY`, `LeftZ`,
`RightZ`; the analog value of a trigger button as `LeftTrigger2`, `RightTrigger2`), and a pad
unplugged mid-frame lets go of everything it held.

A [`PadScript`] plays a gamepad without one (`[[input]] script = FILE`): pad 0 connects,
presses, moves and disconnects at the script's times, through the same events, so tests and
unattended shows need no hardware.
*/
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{InputEvent, PadEvent};

/// The latest time a script may name: a year.
const MAX_SCRIPT_SECONDS: f64 = 366.0 * 86_400.0;

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

    /// Plays `script` as device `device`'s pad 0, its clock starting now.
    pub fn scripted(device: &str, script: PadScript) -> std::io::Result<Gamepads> {
        let pending = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (pending, stop, device) = (pending.clone(), stop.clone(), device.to_string());
            std::thread::Builder::new()
                .name(format!("gamepad script {device}"))
                .spawn(move || play(&device, script, &pending, &stop))?
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
            // A script's thread may be parked until its next step.
            t.thread().unpark();
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
        deliver(device, pending, &mut out);
    }
}

/// Hands `out` to the frame loop's next take, keeping at most [`MAX_PENDING`] events.
fn deliver(device: &str, pending: &Mutex<Vec<InputEvent>>, out: &mut Vec<InputEvent>) {
    if out.is_empty() {
        return;
    }
    let Ok(mut p) = pending.lock() else {
        return;
    };
    p.append(out);
    if p.len() > MAX_PENDING {
        // Nobody took them for a long while: merge what is moot, then drop the oldest,
        // saying so.
        crate::coalesce(&mut p);
        let over = p.len().saturating_sub(MAX_PENDING);
        if over > 0 {
            p.drain(..over);
            tracing::warn!("input '{device}': {over} gamepad events dropped (not taken in time)");
        }
    }
}

/// A scripted gamepad: each step at its time, parked (never spinning) in between.
fn play(device: &str, script: PadScript, pending: &Mutex<Vec<InputEvent>>, stop: &AtomicBool) {
    let start = Instant::now();
    let mut out = Vec::new();
    for (at, event) in script.steps {
        let due = start + Duration::from_secs_f64(at);
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let now = Instant::now();
            if now >= due {
                break;
            }
            std::thread::park_timeout(due - now);
        }
        out.push(InputEvent::Pad {
            device: device.to_string(),
            pad: 0,
            event,
        });
        deliver(device, pending, &mut out);
    }
}

/// What a scripted gamepad does, one step a line: `SECONDS connect [NAME]`, `SECONDS
/// disconnect`, `SECONDS button BUTTON down|up`, `SECONDS axis AXIS VALUE` (−1 to 1), with
/// seconds from the start, never decreasing; `#` begins a comment. Names are gilrs's (`South`,
/// `LeftStickX`, …), so a script drives an application as a real pad would.
#[derive(Debug, Clone, PartialEq)]
pub struct PadScript {
    /// (seconds, event), in time order.
    pub steps: Vec<(f64, PadEvent)>,
}

impl PadScript {
    /// Reads the script at `path`; an error names the file and the line.
    pub fn load(path: &std::path::Path) -> Result<PadScript, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        PadScript::parse(&text, &path.display().to_string())
    }

    /// Parses a script; `what` names it in errors (`FILE line N: …`).
    pub fn parse(text: &str, what: &str) -> Result<PadScript, String> {
        let mut steps: Vec<(f64, PadEvent)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let err = |why: String| format!("{what} line {}: {why}", i + 1);
            let words: Vec<&str> = line.split_whitespace().collect();
            let at: f64 = words[0]
                .parse()
                .ok()
                .filter(|t: &f64| (0.0..=MAX_SCRIPT_SECONDS).contains(t))
                .ok_or_else(|| {
                    err(format!(
                        "'{}' is not a time in seconds (0 to {MAX_SCRIPT_SECONDS})",
                        words[0]
                    ))
                })?;
            if let Some((last, _)) = steps.last()
                && at < *last
            {
                return Err(err(format!(
                    "{at} s comes before the step before ({last} s)"
                )));
            }
            let name = |n: &str| {
                if n.is_empty() || n.len() > crate::MAX_NAME {
                    Err(err(format!(
                        "a name of 1 to {} bytes, not '{n}'",
                        crate::MAX_NAME
                    )))
                } else {
                    Ok(n.to_string())
                }
            };
            let event = match words[1..] {
                ["connect"] => PadEvent::Connected("scripted gamepad".into()),
                ["connect", ..] => {
                    let n = words[2..].join(" ");
                    if n.len() > 256 {
                        return Err(err(format!(
                            "a pad name of {} bytes (at most 256)",
                            n.len()
                        )));
                    }
                    PadEvent::Connected(n)
                }
                ["disconnect"] => PadEvent::Disconnected,
                ["button", b, "down"] => PadEvent::Button {
                    button: name(b)?,
                    down: true,
                },
                ["button", b, "up"] => PadEvent::Button {
                    button: name(b)?,
                    down: false,
                },
                ["axis", a, v] => {
                    let value: f32 = v
                        .parse()
                        .ok()
                        .filter(|v: &f32| (-1.0..=1.0).contains(v))
                        .ok_or_else(|| err(format!("axis value '{v}' is not from -1 to 1")))?;
                    PadEvent::Axis {
                        axis: name(a)?,
                        value,
                    }
                }
                _ => {
                    return Err(err(format!(
                        "'{line}' is not SECONDS connect [NAME] | disconnect | button BUTTON down|up | axis AXIS VALUE"
                    )));
                }
            };
            steps.push((at, event));
        }
        Ok(PadScript { steps })
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
    fn a_script_plays_its_steps_in_order_and_bad_lines_are_named() {
        let script = PadScript::parse(
            "# a press\n0 connect Pad One\n0.01 button South down\n0.02 axis LeftStickX -0.5\n0.03 disconnect\n",
            "pads.txt",
        )
        .unwrap();
        let want = [
            PadEvent::Connected("Pad One".into()),
            PadEvent::Button {
                button: "South".into(),
                down: true,
            },
            PadEvent::Axis {
                axis: "LeftStickX".into(),
                value: -0.5,
            },
            PadEvent::Disconnected,
        ];
        let events: Vec<PadEvent> = script.steps.iter().map(|(_, e)| e.clone()).collect();
        assert_eq!(events, want);
        let pads = Gamepads::scripted("pads", script).unwrap();
        let mut got = Vec::new();
        let end = Instant::now() + Duration::from_secs(20);
        while got.len() < want.len() {
            assert!(Instant::now() < end, "only {got:?} within 20 s");
            pads.take(&mut got);
            std::thread::sleep(Duration::from_millis(5));
        }
        let played: Vec<PadEvent> = got
            .into_iter()
            .map(|e| match e {
                InputEvent::Pad {
                    device,
                    pad: 0,
                    event,
                } if device == "pads" => event,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(played, want);
        for (text, error) in [
            (
                "x button South down",
                "pads.txt line 1: 'x' is not a time in seconds",
            ),
            (
                "1 connect\n0.5 disconnect",
                "pads.txt line 2: 0.5 s comes before the step before (1 s)",
            ),
            (
                "0 axis LeftStickX 2",
                "pads.txt line 1: axis value '2' is not from -1 to 1",
            ),
            (
                "0 button South sideways",
                "pads.txt line 1: '0 button South sideways' is not SECONDS",
            ),
        ] {
            let e = PadScript::parse(text, "pads.txt").unwrap_err();
            assert!(e.starts_with(error), "{e}");
        }
        // A script that never ends stops with its device, at once.
        let long = PadScript::parse("0 connect\n3600 disconnect", "long").unwrap();
        let t = Instant::now();
        drop(Gamepads::scripted("pads", long).unwrap());
        assert!(t.elapsed() < Duration::from_secs(10));
    }

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
