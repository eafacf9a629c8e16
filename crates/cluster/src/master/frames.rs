/*!
Encoding each frame once and writing it to every node: `FrameBegin` and each hook's
blocks, a joiner's snapshot, the swap before it.
*/
use std::time::Instant;

use lockstep_scene::Scene;
use lockstep_wire::{Hook, Message, encode_into};

use crate::link::wire;
use crate::{ClusterError, ClusterManager, FrameInfo};

use super::Master;
use super::barrier::SwapReport;

impl Master {
    /// Appends `message` to `out`.
    pub(super) fn encode(message: &Message<'_>, out: &mut Vec<u8>) -> Result<(), ClusterError> {
        encode_into(message, out).map_err(|e| wire("master", e))
    }

    /// Appends every plugin's blocks for `hook` — its changes, or with `whole` its whole
    /// state — and the `EndBlock` closing them to `out`.
    pub(super) fn encode_hook(
        manager: &mut ClusterManager,
        hook: Hook,
        info: &FrameInfo,
        scene: &Scene,
        whole: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), ClusterError> {
        let mut err = None;
        let emit = |plugin, bytes: &[u8]| {
            if let Err(e) = encode_into(&Message::Block { plugin, bytes }, out) {
                err.get_or_insert(e);
            }
        };
        if whole {
            manager.snapshot_all(hook, info, scene, emit)?;
        } else {
            manager.write_all(hook, info, scene, emit)?;
        }
        if let Some(e) = err {
            return Err(wire("master", e));
        }
        Self::encode(
            &Message::EndBlock {
                frame: info.frame,
                hook,
            },
            out,
        )
    }

    /// Begins frame `info`: takes in nodes that have joined (their first frame, sent with
    /// this one, is a snapshot), switches to a pending cluster file, answers control
    /// clients, then the frame-start hook writes. Call it before the App stage's update;
    /// [`Master::send_frame`] calls it if you did not.
    pub fn begin_frame(&mut self, info: &FrameInfo, scene: &Scene) -> Result<(), ClusterError> {
        if let Some(b) = self.begun {
            return Err(ClusterError::Misuse(format!(
                "frame {} begun while frame {} was not sent yet",
                info.frame, b.frame
            )));
        }
        self.admit()?;
        self.serve_control(None)?;
        let mut report = std::mem::take(&mut self.carry);
        self.switch(info.frame, &mut report)?;
        self.carry = report;
        self.session.begin_frame(info.frame, Instant::now());
        self.bytes.clear();
        Self::encode(
            &Message::FrameBegin {
                frame: info.frame,
                time: info.time,
                dt: info.dt,
            },
            &mut self.bytes,
        )?;
        if self.carry.reconfigured == Some(info.frame)
            && let Some(text) = &self.file_text
        {
            Self::encode(
                &Message::Reconfigure {
                    frame: info.frame,
                    config: text,
                },
                &mut self.bytes,
            )?;
        }
        self.deliver_events();
        Self::encode_hook(
            &mut self.manager,
            Hook::FrameStart,
            info,
            scene,
            false,
            &mut self.bytes,
        )?;
        self.begun = Some(*info);
        self.next = info.frame + 1;
        Ok(())
    }

    /// Finishes frame `info` (the pre-draw hook writes, after the App stage's update) and
    /// sends it: the same bytes to every node, and a snapshot to nodes joining with it. If
    /// `pipeline_depth` frames are already in flight, the oldest one's swap barrier runs
    /// first and its `SwapNow` travels in the same write; the report is that barrier's.
    /// Nodes that cannot take the frame are dropped.
    pub fn send_frame(
        &mut self,
        info: &FrameInfo,
        scene: &Scene,
    ) -> Result<SwapReport, ClusterError> {
        match self.begun {
            Some(b) if b.frame == info.frame => {}
            Some(b) => {
                return Err(ClusterError::Misuse(format!(
                    "frame {} sent while frame {} was begun",
                    info.frame, b.frame
                )));
            }
            None => self.begin_frame(info, scene)?,
        }
        Self::encode_hook(
            &mut self.manager,
            Hook::PreDraw,
            info,
            scene,
            false,
            &mut self.bytes,
        )?;
        self.begun = None;
        let mut report = std::mem::take(&mut self.carry);
        self.head.clear();
        let depth = self.config.pipeline_depth.clamp(1, 2);
        if self.in_flight.len() >= depth
            && let Some(oldest) = self.in_flight.pop_front()
        {
            // The frame sent now is made: the swap may latch a pose for the one after it.
            self.barrier(&oldest, scene, &mut report, true)?;
        }
        if self.config.verify {
            if self.hashes.len() >= 4 {
                self.hashes.pop_front();
            }
            let digest = self.hasher.hash(scene);
            self.hashes.push_back((info.frame, digest));
        }
        // After the barrier: the snapshot holds what its post-frame blocks wrote.
        if self.session.needs_snapshot(info.frame) {
            self.encode_snapshot(info, scene)?;
        }
        self.write_frame(info.frame, &mut report)?;
        self.in_flight.push_back(*info);
        if let Some(f) = report.swapped {
            report.presented = self.presenting(f);
        }
        Ok(report)
    }

    /// A joiner's first frame: `FrameBegin`, the cluster file if it was ever reconfigured,
    /// every plugin's whole state.
    pub(super) fn encode_snapshot(
        &mut self,
        info: &FrameInfo,
        scene: &Scene,
    ) -> Result<(), ClusterError> {
        self.snapshot.clear();
        Self::encode(
            &Message::FrameBegin {
                frame: info.frame,
                time: info.time,
                dt: info.dt,
            },
            &mut self.snapshot,
        )?;
        if let Some(text) = &self.file_text {
            Self::encode(
                &Message::Reconfigure {
                    frame: info.frame,
                    config: text,
                },
                &mut self.snapshot,
            )?;
        }
        for hook in [Hook::FrameStart, Hook::PreDraw] {
            Self::encode_hook(
                &mut self.manager,
                hook,
                info,
                scene,
                true,
                &mut self.snapshot,
            )?;
        }
        Ok(())
    }

    /// Writes the head and frame `frame` to every node (a joiner's first frame: its
    /// snapshot alone) — once to the group with multicast, and on each connection that
    /// does not take it from there; drops the nodes that cannot take it. Nodes that restart
    /// for a reconfiguration get this frame, then nothing more.
    pub(super) fn write_frame(
        &mut self,
        frame: u64,
        report: &mut SwapReport,
    ) -> Result<(), ClusterError> {
        self.last_sent = self.head.len() + self.bytes.len();
        self.session.send_frame(frame, Instant::now());
        self.transmit(report)
    }
}
