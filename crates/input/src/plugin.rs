/*!
[`InputReplication`]: the cluster plugin that gives every process the master's input. The
master hands it each frame's events before the frame begins; it writes them at the frame's
start (every frame, so that a node's "pressed this frame" ends with the frame) and every node
applies the same events to its own [`Input`]. A node that joins late gets the whole state.
*/
use lockstep_cluster::{ClusterPlugin, FrameInfo, Hook, PluginError, PluginId};
use lockstep_scene::Scene;
use serde::{Deserialize, Serialize};

use crate::{Input, InputEvent};

/// Id of the input plugin.
pub const INPUT_PLUGIN: PluginId = 4;
/// Most events one frame carries; more wait for the next frame.
pub const MAX_EVENTS_PER_FRAME: usize = 4096;
/// Events waiting for later frames, at most (after merging what later ones make moot).
const MAX_LATER: usize = 4 * MAX_EVENTS_PER_FRAME;
/// Largest input block a node accepts: a frame's events at their largest (names and analog
/// channels are bounded) with room to spare.
const MAX_BLOCK: usize = 16 << 20;

#[derive(Serialize, Deserialize)]
enum Block<'a> {
    /// The frame's events.
    Events(std::borrow::Cow<'a, [InputEvent]>),
    /// Everything, for a node that holds nothing.
    Whole(Box<Input>),
}

/// The input every process sees, frame by frame.
#[derive(Default)]
pub struct InputReplication {
    input: Input,
    /// Events that did not fit in their frame.
    later: Vec<InputEvent>,
    /// Events dropped in floods, so far.
    dropped: u64,
}

impl InputReplication {
    /// No input yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// This frame's input (on a node: as of the last frame applied).
    pub fn input(&self) -> &Input {
        &self.input
    }

    /// Master: the events of the frame about to begin, in order. Past
    /// [`MAX_EVENTS_PER_FRAME`], what later events make moot is merged ([`crate::coalesce`])
    /// and the rest waits for the next frames, in order; past four frames' worth even then,
    /// the oldest are dropped, with a warning.
    pub fn begin(&mut self, events: impl IntoIterator<Item = InputEvent>) {
        self.later.extend(events);
        if self.later.len() > MAX_EVENTS_PER_FRAME {
            crate::coalesce(&mut self.later);
        }
        if self.later.len() > MAX_LATER {
            let over = self.later.len() - MAX_LATER;
            self.later.drain(..over);
            self.dropped += over as u64;
            tracing::warn!(
                "input: {over} events dropped (a flood: {} so far)",
                self.dropped
            );
        }
        let n = self.later.len().min(MAX_EVENTS_PER_FRAME);
        self.input.advance(&self.later[..n]);
        self.later.drain(..n);
    }
}

/// Appends `block` to `out`.
fn encode(block: &Block<'_>, out: &mut Vec<u8>) -> Result<(), PluginError> {
    let v = std::mem::take(out);
    *out = postcard::to_extend(block, v).map_err(|e| fail(format!("cannot encode: {e}")))?;
    Ok(())
}

fn fail(reason: String) -> PluginError {
    PluginError {
        plugin: "input",
        reason,
    }
}

impl ClusterPlugin for InputReplication {
    fn id(&self) -> PluginId {
        INPUT_PLUGIN
    }

    fn name(&self) -> &'static str {
        "input"
    }

    fn write(
        &mut self,
        hook: Hook,
        _frame: &FrameInfo,
        _scene: &Scene,
        out: &mut Vec<u8>,
    ) -> Result<(), PluginError> {
        if hook != Hook::FrameStart {
            return Ok(());
        }
        encode(
            &Block::Events(std::borrow::Cow::Borrowed(self.input.events())),
            out,
        )
    }

    fn read(
        &mut self,
        _hook: Hook,
        _frame: &FrameInfo,
        _scene: &mut Scene,
        bytes: &[u8],
    ) -> Result<(), PluginError> {
        if bytes.len() > MAX_BLOCK {
            return Err(fail(format!(
                "a block of {} bytes is over the limit of {MAX_BLOCK}",
                bytes.len()
            )));
        }
        match postcard::from_bytes::<Block>(bytes) {
            Ok(Block::Events(events)) => {
                if events.len() > MAX_EVENTS_PER_FRAME {
                    return Err(fail(format!(
                        "{} events in one frame, over {MAX_EVENTS_PER_FRAME}",
                        events.len()
                    )));
                }
                self.input.advance(&events);
            }
            Ok(Block::Whole(input)) => self.input = *input,
            Err(e) => return Err(fail(format!("cannot decode: {e}"))),
        }
        Ok(())
    }

    fn snapshot(
        &mut self,
        hook: Hook,
        _frame: &FrameInfo,
        _scene: &Scene,
        out: &mut Vec<u8>,
    ) -> Result<(), PluginError> {
        if hook != Hook::FrameStart {
            return Ok(());
        }
        encode(&Block::Whole(Box::new(self.input.clone())), out)
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

    fn round(master: &mut InputReplication, node: &mut InputReplication, snapshot: bool) {
        let (info, scene) = (FrameInfo::default(), Scene::new());
        let mut out = Vec::new();
        if snapshot {
            master
                .snapshot(Hook::FrameStart, &info, &scene, &mut out)
                .unwrap();
        } else {
            master
                .write(Hook::FrameStart, &info, &scene, &mut out)
                .unwrap();
        }
        assert!(!out.is_empty(), "every frame has a block");
        node.read(Hook::FrameStart, &info, &mut Scene::new(), &out)
            .unwrap();
    }

    #[test]
    fn every_process_sees_the_masters_input_frame_by_frame() {
        let (mut master, mut node, mut late) = Default::default();
        let (m, n, l): (
            &mut InputReplication,
            &mut InputReplication,
            &mut InputReplication,
        ) = (&mut master, &mut node, &mut late);
        m.begin([key("w", true)]);
        round(m, n, false);
        assert_eq!(n.input(), m.input());
        assert!(n.input().key_pressed("w"));
        // A frame without events still ends the last one's presses.
        m.begin([]);
        round(m, n, false);
        assert!(n.input().key_held("w") && !n.input().key_pressed("w"));
        // A late joiner gets the whole state.
        round(m, l, true);
        assert_eq!(l.input(), m.input());
    }

    #[test]
    fn a_flood_of_events_is_spread_over_frames_in_order() {
        let mut m = InputReplication::new();
        // Presses and releases are never merged: they wait for the next frame.
        let many: Vec<InputEvent> = (0..MAX_EVENTS_PER_FRAME + 10)
            .map(|i| key(&format!("k{}", i % 100), i % 2 == 0))
            .collect();
        m.begin(many.clone());
        assert_eq!(m.input().events(), &many[..MAX_EVENTS_PER_FRAME]);
        m.begin([]);
        assert_eq!(m.input().events(), &many[MAX_EVENTS_PER_FRAME..]);
        // Motion is: a mouse's flood adds up in one frame.
        let moves: Vec<InputEvent> = (0..2 * MAX_EVENTS_PER_FRAME)
            .map(|i| InputEvent::Motion {
                delta: [1.0, (i % 2) as f32],
            })
            .collect();
        m.begin(moves);
        assert_eq!(m.input().events().len(), 1);
        let n = MAX_EVENTS_PER_FRAME as f32;
        assert_eq!(m.input().motion, [2.0 * n, n]);
    }

    #[test]
    fn bad_blocks_are_errors_naming_the_plugin() {
        let mut n = InputReplication::new();
        let e = n
            .read(
                Hook::FrameStart,
                &FrameInfo::default(),
                &mut Scene::new(),
                &[9, 9, 9],
            )
            .unwrap_err();
        assert_eq!(e.plugin, "input");
        assert!(e.reason.contains("cannot decode"), "{e}");
    }
}
