/*!
A node's view of the master's stream: frames assembled from their messages, and checked for
order (`FrameBegin`, frame-start blocks, `EndBlock(FrameStart)`, pre-draw blocks,
`EndBlock(PreDraw)`; after `SwapNow(F)`, F's post-frame blocks and `EndBlock(PostFrame)`).
Shared by the threaded node link and the direct one, so both accept exactly the same streams.
*/
use std::ops::Range;
use std::path::Path;

use lockstep_display::ClusterConfig;
use lockstep_scene::Scene;
use lockstep_wire::{Hook, Message};

use crate::{ClusterError, ClusterManager, FrameInfo};

/// Blocks as they arrived: payloads back to back in one buffer, reused from frame to frame,
/// so receiving a frame allocates nothing once warm.
#[derive(Default)]
pub(crate) struct FrameBlocks {
    arena: Vec<u8>,
    /// Each block's hook, the frame it was written for, its plugin and its bytes.
    blocks: Vec<(Hook, FrameInfo, u16, Range<usize>)>,
    /// A new cluster file that applies from this frame on, and how many blocks (post-frame
    /// blocks of earlier frames) come before it.
    config: Option<(usize, Range<usize>)>,
}

impl FrameBlocks {
    pub fn clear(&mut self) {
        self.arena.clear();
        self.blocks.clear();
        self.config = None;
    }

    fn set_config(&mut self, text: &str) {
        let start = self.arena.len();
        self.arena.extend_from_slice(text.as_bytes());
        self.config = Some((self.blocks.len(), start..self.arena.len()));
    }

    fn push(&mut self, hook: Hook, frame: FrameInfo, plugin: u16, bytes: &[u8]) {
        let start = self.arena.len();
        self.arena.extend_from_slice(bytes);
        self.blocks
            .push((hook, frame, plugin, start..self.arena.len()));
    }

    /// Hands every block to its plugin, in arrival order: post-frame blocks of an earlier
    /// frame, then the new frame's frame-start and pre-draw blocks. A new cluster file that
    /// came with the frame is read (as if it were the file at `origin`) and given to every
    /// plugin's reconfigure hook before the frame's own blocks, as on the master; it is
    /// returned.
    pub fn apply(
        &self,
        manager: &mut ClusterManager,
        scene: &mut Scene,
        origin: &Path,
    ) -> Result<Option<ClusterConfig>, ClusterError> {
        let mut config = None;
        for (i, (hook, frame, plugin, range)) in self.blocks.iter().enumerate() {
            if let Some((at, text)) = &self.config
                && *at == i
            {
                config = Some(self.reconfigure(manager, origin, text.clone())?);
            }
            manager.read(*hook, *plugin, frame, scene, &self.arena[range.clone()])?;
        }
        if let Some((at, text)) = &self.config
            && *at == self.blocks.len()
        {
            config = Some(self.reconfigure(manager, origin, text.clone())?);
        }
        Ok(config)
    }

    fn reconfigure(
        &self,
        manager: &mut ClusterManager,
        origin: &Path,
        text: Range<usize>,
    ) -> Result<ClusterConfig, ClusterError> {
        let text = std::str::from_utf8(&self.arena[text]).map_err(|_| {
            ClusterError::Config(lockstep_display::ConfigErrors(vec![
                lockstep_display::ConfigError {
                    path: origin.to_path_buf(),
                    line: 0,
                    column: 0,
                    message: "the text is not UTF-8".into(),
                },
            ]))
        })?;
        let config = ClusterConfig::parse(origin, text).map_err(ClusterError::Config)?;
        manager.reconfigure(&config);
        Ok(config)
    }
}

/// What one message meant.
pub(crate) enum Step {
    /// Part of a frame; nothing to do yet.
    More,
    /// Frame `info` is complete: its blocks are in [`Assembler::blocks`].
    Frame(FrameInfo),
    /// Present frame `frame`; project the next one from this head pose (late latching).
    SwapNow(u64, Option<lockstep_wire::LatchedHead>),
    /// The master stops the cluster.
    Shutdown(String),
    /// The master is alive and waits; answer with the same number.
    Heartbeat(u64),
}

/// Assembles frames from the master's messages.
#[derive(Default)]
pub(crate) struct Assembler {
    /// The hook whose blocks are arriving, and its frame.
    open: Option<(u64, Hook)>,
    /// The frame the open hook's blocks belong to; `None` drops them (post-frame blocks sent
    /// before this node's first frame, which brings it everything up to that point).
    section: Option<FrameInfo>,
    /// The frame begun and not yet complete.
    info: Option<FrameInfo>,
    /// The last two complete frames (a `SwapNow` names one of them: the master may be a frame
    /// ahead of its barrier).
    recent: [Option<FrameInfo>; 2],
    /// The last frame begun and the last swapped: each number must be greater than the one
    /// before, or a stream could make a node apply or present a frame twice.
    last_begun: Option<u64>,
    last_swapped: Option<u64>,
    /// Blocks received since the last complete frame was taken.
    pub blocks: FrameBlocks,
}

impl Assembler {
    /// Takes one message; an error says how the stream broke the protocol.
    pub fn accept(&mut self, msg: Message<'_>) -> Result<Step, String> {
        match msg {
            Message::FrameBegin { frame, time, dt } => {
                if let Some((f, hook)) = self.open {
                    return Err(format!(
                        "the master began frame {frame} inside frame {f}'s {} blocks",
                        hook.name()
                    ));
                }
                if let Some(last) = self.last_begun.filter(|l| frame <= *l) {
                    return Err(format!(
                        "the master began frame {frame} after frame {last}: frame numbers must increase"
                    ));
                }
                if !(time.is_finite() && dt.is_finite()) {
                    return Err(format!(
                        "the master's clock at frame {frame} is not a number (time {time}, dt {dt})"
                    ));
                }
                self.last_begun = Some(frame);
                self.info = Some(FrameInfo { frame, time, dt });
                self.section = self.info;
                self.open = Some((frame, Hook::FrameStart));
                Ok(Step::More)
            }
            Message::Block { plugin, bytes } => match self.open {
                Some((_, hook)) => {
                    if let Some(frame) = self.section {
                        self.blocks.push(hook, frame, plugin, bytes);
                    }
                    Ok(Step::More)
                }
                None => Err("the master sent a Block outside a frame".into()),
            },
            Message::Reconfigure { frame, config } => {
                if self.open != Some((frame, Hook::FrameStart)) || self.blocks.config.is_some() {
                    return Err(format!(
                        "the master sent a new cluster file for frame {frame} outside that frame's beginning"
                    ));
                }
                self.blocks.set_config(config);
                Ok(Step::More)
            }
            Message::EndBlock { frame, hook } => {
                if self.open != Some((frame, hook)) {
                    return Err(format!(
                        "the master ended frame {frame}'s {} blocks, which were not open",
                        hook.name()
                    ));
                }
                match hook {
                    Hook::FrameStart => {
                        self.open = Some((frame, Hook::PreDraw));
                        Ok(Step::More)
                    }
                    Hook::PreDraw => {
                        self.open = None;
                        match self.info.take() {
                            Some(info) => {
                                self.recent = [self.recent[1], Some(info)];
                                Ok(Step::Frame(info))
                            }
                            None => Err(format!("frame {frame} ended, but it never began")),
                        }
                    }
                    Hook::PostFrame => {
                        self.open = None;
                        Ok(Step::More)
                    }
                }
            }
            Message::SwapNow { frame, head } => {
                if let Some(why) = head.and_then(|h| h.check().err()) {
                    return Err(format!("the master swapped frame {frame} with {why}"));
                }
                if let Some((f, hook)) = self.open {
                    return Err(format!(
                        "the master swapped frame {frame} inside frame {f}'s {} blocks",
                        hook.name()
                    ));
                }
                if let Some(last) = self.last_swapped.filter(|l| frame <= *l) {
                    return Err(format!(
                        "the master swapped frame {frame} after frame {last}: frame numbers must increase"
                    ));
                }
                self.last_swapped = Some(frame);
                self.open = Some((frame, Hook::PostFrame));
                // A frame this node has not kept (a reader running ahead, or a frame from
                // before it joined whose post-frame blocks were written after its first
                // frame): its blocks still apply, with the clock of the newest frame.
                let newest = self.recent[1];
                self.section = self
                    .recent
                    .into_iter()
                    .flatten()
                    .find(|i| i.frame == frame)
                    .or(newest.map(|n| FrameInfo { frame, ..n }));
                Ok(Step::SwapNow(frame, head))
            }
            Message::Heartbeat { seq } => Ok(Step::Heartbeat(seq)),
            Message::Shutdown { reason } => Ok(Step::Shutdown(lockstep_wire::printable(reason))),
            other => Err(format!(
                "the master sent an unexpected {} message",
                other.kind()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(messages: &[Message<'_>]) -> Result<Vec<String>, String> {
        let mut a = Assembler::default();
        let mut out = Vec::new();
        for m in messages {
            match a.accept(m.clone())? {
                Step::More => {}
                Step::Frame(i) => out.push(format!("frame {}", i.frame)),
                Step::SwapNow(f, _) => out.push(format!("swap {f}")),
                Step::Shutdown(r) => out.push(format!("shutdown {r}")),
                Step::Heartbeat(n) => out.push(format!("heartbeat {n}")),
            }
        }
        Ok(out)
    }

    fn begin(frame: u64) -> Message<'static> {
        Message::FrameBegin {
            frame,
            time: 0.0,
            dt: 0.0,
        }
    }

    fn end(frame: u64, hook: Hook) -> Message<'static> {
        Message::EndBlock { frame, hook }
    }

    #[test]
    fn a_well_formed_stream_gives_frames_and_swaps() {
        let block = Message::Block {
            plugin: 1,
            bytes: b"x",
        };
        let got = feed(&[
            begin(0),
            block.clone(),
            end(0, Hook::FrameStart),
            block.clone(),
            end(0, Hook::PreDraw),
            Message::SwapNow {
                frame: 0,
                head: None,
            },
            block.clone(),
            end(0, Hook::PostFrame),
            begin(1),
            end(1, Hook::FrameStart),
            end(1, Hook::PreDraw),
            Message::Shutdown { reason: "bye" },
        ])
        .unwrap();
        assert_eq!(got, ["frame 0", "swap 0", "frame 1", "shutdown bye"]);
    }

    #[test]
    fn out_of_order_streams_are_refused_with_what_was_wrong() {
        let cases: Vec<(Vec<Message<'static>>, &str)> = vec![
            (
                vec![Message::Block {
                    plugin: 1,
                    bytes: b"x",
                }],
                "a Block outside a frame",
            ),
            (
                vec![begin(0), end(0, Hook::PreDraw)],
                "ended frame 0's pre-draw blocks, which were not open",
            ),
            (
                vec![begin(0), end(1, Hook::FrameStart)],
                "ended frame 1's frame-start blocks",
            ),
            (
                vec![begin(0), begin(1)],
                "began frame 1 inside frame 0's frame-start blocks",
            ),
            (
                vec![
                    begin(0),
                    Message::SwapNow {
                        frame: 0,
                        head: None,
                    },
                ],
                "swapped frame 0 inside frame 0's frame-start blocks",
            ),
            (
                vec![Message::SwapNow {
                    frame: 2,
                    head: Some(lockstep_wire::LatchedHead {
                        position: [f32::NAN, 1.7, 0.0],
                        rotation: [0.0, 0.0, 0.0, 1.0],
                    }),
                }],
                "swapped frame 2 with the latched head pose",
            ),
            (
                vec![Message::SwapNow {
                    frame: 2,
                    head: Some(lockstep_wire::LatchedHead {
                        position: [0.0, 1.7, 0.0],
                        rotation: [0.0, 0.0, 0.0, 2.0],
                    }),
                }],
                "is not a unit quaternion (length 2)",
            ),
            (
                vec![
                    Message::SwapNow {
                        frame: 3,
                        head: None,
                    },
                    begin(4),
                ],
                "began frame 4 inside frame 3's post-frame blocks",
            ),
            (
                vec![Message::Welcome { max_frame: 1 }],
                "unexpected Welcome message",
            ),
            (
                vec![
                    begin(5),
                    end(5, Hook::FrameStart),
                    end(5, Hook::PreDraw),
                    begin(4),
                ],
                "began frame 4 after frame 5: frame numbers must increase",
            ),
            (
                vec![
                    begin(5),
                    end(5, Hook::FrameStart),
                    end(5, Hook::PreDraw),
                    begin(5),
                ],
                "began frame 5 after frame 5",
            ),
            (
                vec![
                    Message::SwapNow {
                        frame: 2,
                        head: None,
                    },
                    end(2, Hook::PostFrame),
                    Message::SwapNow {
                        frame: 2,
                        head: None,
                    },
                ],
                "swapped frame 2 after frame 2",
            ),
            (
                vec![Message::FrameBegin {
                    frame: 0,
                    time: f64::NAN,
                    dt: 0.0,
                }],
                "clock at frame 0 is not a number",
            ),
        ];
        for (messages, wanted) in cases {
            let err = feed(&messages).unwrap_err();
            assert!(err.contains(wanted), "{err:?} lacks {wanted:?}");
        }
    }
}
