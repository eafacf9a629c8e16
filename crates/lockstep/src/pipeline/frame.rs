/*!
What passes between the stages. Each message owns its data, so a stage never reads what another
is writing: App hands Cull a [`FrameSnapshot`] (an O(1) clone of the scene), Cull hands Draw a
[`CulledFrame`].
*/
use std::time::Duration;

use lockstep_render::wgpu::ColorWrites;
use lockstep_render::{DrawList, View};
use lockstep_scene::Scene;

use super::window::WindowRequest;

/// One view of a frame: where it looks from, which part of the target it covers, and which
/// channels it writes (a cluster node's viewport and eye).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViewPass {
    /// View and projection.
    pub view: View,
    /// Pixel rectangle (x, y, width, height) of the target; `None` for all of it.
    pub rect: Option<[u32; 4]>,
    /// Channels written.
    pub color_writes: ColorWrites,
    /// Whose view it is, when a view is split across nodes (sort-first).
    pub share: PassShare,
}

/// Whose view a pass is, for sort-first (a viewport whose `helpers` draw strips of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PassShare {
    /// This node's own view, drawn whole.
    #[default]
    Own,
    /// This node's view `view` (its place among the node's views), split with helpers:
    /// drawn only in the strips this node keeps.
    Helped {
        /// Its place among the node's views.
        view: u16,
    },
    /// View `view` of display node `display` (its place among the nodes this one helps),
    /// drawn only in the strips that node asks for, into a target of its window's size.
    Helper {
        /// Which display node.
        display: u16,
        /// Its place among that node's views.
        view: u16,
        /// That node's window size.
        window: [u32; 2],
    },
}

/// What App says about its frame, carried with it to Draw's gate (a cluster node's frame
/// number of the master, and the digests it reports): no stage shares it with another.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameTag {
    /// The master's frame number.
    pub frame: u64,
    /// The scene's digest, when computed.
    pub state: Option<u64>,
    /// The views' digest, when computed.
    pub views: Option<u64>,
}

/// The scene as App left it at the end of frame `frame`.
pub struct FrameSnapshot {
    /// Frame number.
    pub frame: u64,
    /// What App tagged the frame with, if anything.
    pub tag: Option<FrameTag>,
    /// The scene, sharing all unchanged data with App's working copy.
    pub scene: Scene,
    /// Window changes App asked for this frame.
    pub window: WindowRequest,
    /// The views to draw; empty: one view from the scene's active camera over the whole target.
    pub views: Vec<ViewPass>,
    /// How Draw projects the frame again from a newer head pose, if its gate has one.
    pub latch: Option<crate::node_views::NodeViews>,
    /// Time App spent in this frame, and blocked before it.
    pub app: StageTime,
    /// When App finished this frame: Draw measures the frame's latency from here.
    pub app_done: std::time::Instant,
}

/// Draw lists for one frame, with the scene they refer to (for meshes and textures).
pub struct CulledFrame {
    /// The snapshot Cull read.
    pub snapshot: FrameSnapshot,
    /// One list per view.
    pub lists: Vec<DrawList>,
    /// Where each list is drawn (same order as `lists`).
    pub passes: Vec<ViewPass>,
    /// Name of the thread Cull ran on.
    pub cull_thread: std::sync::Arc<str>,
    /// Time Cull spent on this frame, and blocked before it.
    pub cull: StageTime,
}

/// One stage's time on one frame.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTime {
    /// Working.
    pub busy: Duration,
    /// Blocked on the stage before or after it (since finishing the previous frame).
    pub wait: Duration,
}
