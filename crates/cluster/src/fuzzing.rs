/*!
The fuzz entry point of what a node does with a master's messages (`fuzz/`), also replayed by
a stable test: whatever the bytes, frames decoded as messages go through the node's frame
assembler, and scene blocks through replication into a scene, ending in values or errors.
*/
use lockstep_scene::Scene;
use lockstep_wire::{Decoder, Message};

use crate::frame::{Assembler, Step};
use crate::plugins::SCENE_PLUGIN;

/// Decodes `data` as the messages of a session (after the handshake), assembles frames as a
/// node does and applies every scene block to one scene; returns how many frames completed.
pub fn apply_stream(data: &[u8]) -> usize {
    let mut decoder = Decoder::new(1 << 20);
    decoder.push(data);
    let mut frames = Assembler::default();
    let mut scene = Scene::new();
    let mut complete = 0;
    loop {
        let msg = match decoder.next_message() {
            Ok(Some(m)) => m,
            Ok(None) | Err(_) => return complete,
        };
        if let Message::Block {
            plugin: SCENE_PLUGIN,
            bytes,
        } = &msg
        {
            let _ = crate::apply_changes(&mut scene, bytes);
        }
        match frames.accept(msg) {
            Ok(Step::Frame(_)) => {
                complete += 1;
                frames.blocks.clear();
            }
            Ok(_) => {}
            Err(_) => return complete,
        }
    }
}
