/*!
The `App` trait: what user code implements, and what it sees each frame.
*/
use lockstep_scene::Scene;

use super::window::{WindowProperties, WindowRequest};

/// User code. lockstep calls `setup` once, then `update` once per frame on the main thread
/// (the App stage), then `exit`.
pub trait App {
    /// Builds the scene before the first frame.
    fn setup(&mut self, scene: &mut Scene) -> anyhow::Result<()>;

    /// Edits the scene for frame `ctx.frame`. Whatever the scene holds when this returns is
    /// what Cull and Draw show for that frame, even while later frames are being edited.
    fn update(&mut self, ctx: &mut FrameContext<'_>) -> anyhow::Result<()>;

    /// Called once after the last frame, whatever ended the run.
    fn exit(&mut self, _scene: &Scene) {}
}

/// What the App stage can read and change in one frame.
pub struct FrameContext<'a> {
    /// The scene to edit.
    pub scene: &'a mut Scene,
    /// Frame number, from 0.
    pub frame: u64,
    /// Seconds since the first frame (a fixed step per frame when the run uses one).
    pub time: f64,
    /// Seconds since the previous frame.
    pub dt: f64,
    /// The window's keyboard and mouse in this frame: what is held, what went down or up
    /// since the last frame (empty offscreen).
    pub input: &'a lockstep_input::Input,
    pub(crate) window: &'a mut WindowRequest,
    pub(crate) views: &'a mut Vec<super::ViewPass>,
    pub(crate) applied: &'a WindowProperties,
    pub(crate) exit: &'a mut bool,
    pub(crate) skip: &'a mut bool,
    pub(crate) tag: &'a mut Option<super::FrameTag>,
    pub(crate) latch: &'a mut Option<crate::node_views::NodeViews>,
}

impl FrameContext<'_> {
    /// Asks Draw to change window properties at its next frame (Panda's `requestProperties`).
    /// Later requests in the same frame override earlier ones field by field.
    pub fn request_window(&mut self, request: WindowRequest) {
        self.window.merge(request);
    }

    /// The window properties Draw has applied so far (size, title, fullscreen, cursor).
    pub fn window(&self) -> &WindowProperties {
        self.applied
    }

    /// Draws this frame with these views instead of one from the active camera (a cluster
    /// node's viewports and eyes). Applies to this frame only.
    pub fn set_views(&mut self, views: impl IntoIterator<Item = super::ViewPass>) {
        self.views.clear();
        self.views.extend(views);
    }

    /// Tags this frame: the tag travels with it, through Cull, to Draw's gate.
    pub fn tag(&mut self, tag: super::FrameTag) {
        *self.tag = Some(tag);
    }

    /// Lets Draw project this frame again with `views` if its gate has a newer head pose
    /// for it (late latching, on a cluster node).
    pub(crate) fn latch_with(&mut self, views: crate::node_views::NodeViews) {
        *self.latch = Some(views);
    }

    /// Ends the run after this frame.
    pub fn request_exit(&mut self) {
        *self.exit = true;
    }

    /// Ends the run now: this frame is not drawn (e.g. a cluster node told the cluster is
    /// over, for which no further frame will be swapped).
    pub fn end_now(&mut self) {
        *self.exit = true;
        *self.skip = true;
    }
}
