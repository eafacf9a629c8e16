use lockstep_display::HeadPose;
use lockstep_scene::Scene;
use lockstep_scene::glam::{Quat, Vec3};

use crate::{ClusterPlugin, FrameInfo, Hook, PluginError, PluginId};

/// The viewer's head pose (tracker space), set on the master — from the cluster file, later
/// from a tracker — and used by every node for its off-axis projections. Sent when it changes.
pub struct HeadTracking {
    pose: HeadPose,
    dirty: bool,
}

impl HeadTracking {
    /// Starts at `pose` (the cluster file's head).
    pub fn new(pose: HeadPose) -> Self {
        HeadTracking { pose, dirty: true }
    }

    /// The current pose (on nodes: as of the last frame applied).
    pub fn pose(&self) -> &HeadPose {
        &self.pose
    }

    /// Master: a new pose, sent with the next frame.
    pub fn set(&mut self, pose: HeadPose) {
        if pose != self.pose {
            self.pose = pose;
            self.dirty = true;
        }
    }
}

impl ClusterPlugin for HeadTracking {
    fn id(&self) -> PluginId {
        super::HEAD_PLUGIN
    }

    fn name(&self) -> &'static str {
        "head"
    }

    fn write(
        &mut self,
        hook: Hook,
        _frame: &FrameInfo,
        _scene: &Scene,
        out: &mut Vec<u8>,
    ) -> Result<(), PluginError> {
        if hook != Hook::PreDraw || !self.dirty {
            return Ok(());
        }
        let (p, r) = (self.pose.position, self.pose.rotation);
        let record: [f32; 7] = [p.x, p.y, p.z, r.x, r.y, r.z, r.w];
        super::encode_block("head", &record, out)?;
        self.dirty = false;
        Ok(())
    }

    fn read(
        &mut self,
        _hook: Hook,
        _frame: &FrameInfo,
        _scene: &mut Scene,
        bytes: &[u8],
    ) -> Result<(), PluginError> {
        let r: [f32; 7] = super::decode_block("head", bytes)?;
        if r.iter().any(|v| !v.is_finite()) {
            return Err(PluginError {
                plugin: "head",
                reason: "the pose has a value that is not a finite number".into(),
            });
        }
        self.pose = HeadPose {
            position: Vec3::new(r[0], r[1], r[2]),
            rotation: Quat::from_xyzw(r[3], r[4], r[5], r[6]).normalize(),
        };
        Ok(())
    }

    fn snapshot(
        &mut self,
        hook: Hook,
        frame: &FrameInfo,
        scene: &Scene,
        out: &mut Vec<u8>,
    ) -> Result<(), PluginError> {
        let dirty = std::mem::replace(&mut self.dirty, true);
        let written = self.write(hook, frame, scene, out);
        self.dirty = dirty;
        written
    }

    /// A new cluster file brings its own head position (until a tracker moves it again).
    fn reconfigure(&mut self, config: &lockstep_display::ClusterConfig) {
        self.set(config.head);
    }
}
