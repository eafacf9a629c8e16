/*!
Late latching: the newest head pose, read as each swap is released, for the next
frame's projection on every node.
*/
use lockstep_wire::LatchedHead;

use super::Master;

/// Where the master reads the newest head pose as it releases a frame's swap barrier (late
/// latching): the pose travels with that `SwapNow`, and every node projects the frame after
/// it from that pose in Draw, instead of from the older one the frame was made with.
pub trait HeadLatch: Send {
    /// The head pose for frame `frame`'s projection; `None` keeps that frame's own. `made`:
    /// whether that frame is made already (its input sampled); if not (paced: the swap is
    /// released before the next frame begins), a pose read now is older than the frame's
    /// own will be.
    fn newest(&mut self, frame: u64, made: bool) -> Option<LatchedHead>;
}

impl Master {
    /// Latches the head pose `latch` gives with every swap released from now on, for the
    /// next frame. `None` stops it.
    pub fn set_latch(&mut self, latch: Option<Box<dyn HeadLatch>>) {
        self.latch = latch;
    }

    /// The head pose latched with the last swap released, and the frame it projects, if
    /// one was; taken once (what `--record` writes).
    pub fn take_latched(&mut self) -> Option<(u64, LatchedHead)> {
        self.latched.take()
    }

    /// The pose to latch for frame `next` (`made` or not yet), if a latch is set.
    pub(super) fn latch_for(&mut self, next: u64, made: bool) -> Option<LatchedHead> {
        let head = self.latch.as_mut()?.newest(next, made)?;
        if let Err(why) = head.check() {
            // The frame's own pose stands; a sound one may come with the next swap.
            self.unsound_latches += 1;
            if self.unsound_latches.is_power_of_two() {
                tracing::warn!(
                    "frame {next}: {why}; not latched ({} so far)",
                    self.unsound_latches
                );
            }
            return None;
        }
        self.latched = Some((next, head));
        Some(head)
    }
}
