/*!
Input for a cluster: every process sees the same input in frame F.

Devices report [`InputEvent`]s — the master's window (keys, mouse buttons, pointer, raw
motion, wheel), VRPN trackers, buttons and analog devices ([`vrpn`]), gamepads. The master
gathers a frame's events, and [`InputReplication`] (a cluster plugin) hands the same list to
every process, which applies it to its [`Input`]: what is held, what went down or up in this
frame, how far things moved, every tracker sensor's newest pose. The master can write its
input stream to a file and play it back instead of its devices ([`record`]).
*/
#![deny(missing_docs)]

mod event;
pub mod fuzzing;
pub mod gamepad;
mod plugin;
pub mod record;
mod state;
pub mod vrpn;

pub use event::{
    InputEvent, MAX_BUTTON, MAX_CHANNELS, MAX_NAME, MAX_PAD, MAX_SENSOR, PadEvent, Pose, coalesce,
};
pub use plugin::{INPUT_PLUGIN, InputReplication, MAX_EVENTS_PER_FRAME};
pub use state::{Buttons, Gamepad, Input};
