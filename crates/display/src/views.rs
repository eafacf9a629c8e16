/*!
What one node renders: for every viewport of every window, one view per eye, with its pixel
rectangle, colour mask and projection.
*/
use glam::{Mat4, Vec3};
use lockstep_scene::Frustum;

use crate::projection::off_axis;
use crate::screen::{Eye, ScreenSpace};
use crate::{ClusterConfig, HeadPose, StereoMode};

/// Which colour channels a view writes (anaglyph stereo writes two views into one viewport).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColorMask {
    /// Red, green, blue and alpha.
    All,
    /// Red only (the left eye of red-cyan anaglyph).
    Red,
    /// Green and blue (the right eye).
    Cyan,
}

/// One view a node renders.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewSpec {
    /// Node name.
    pub node: String,
    /// Window name.
    pub window: String,
    /// Viewport name.
    pub viewport: String,
    /// Screen name.
    pub screen: String,
    /// Eye of this view.
    pub eye: Eye,
    /// Pixel rectangle in the window: x, y from the top-left, width, height.
    pub rect: [u32; 4],
    /// Channels written.
    pub mask: ColorMask,
    /// Eye position in world space.
    pub eye_position: Vec3,
    /// World-to-eye matrix.
    pub view: Mat4,
    /// Off-axis frustum of the screen seen from the eye.
    pub frustum: Frustum,
    /// The nodes that render strips of it (sort-first), as its viewport names them.
    pub helpers: Vec<String>,
    /// Whether they send their strips LZ4-compressed.
    pub lz4_strips: bool,
}

impl ViewSpec {
    /// `NODE-WINDOW-VIEWPORT`, with `-left` or `-right` for a stereo eye rendered on its own.
    pub fn file_stem(&self) -> String {
        let base = format!("{}-{}-{}", self.node, self.window, self.viewport);
        match (self.eye, self.mask) {
            (Eye::Mono, _) | (_, ColorMask::Red | ColorMask::Cyan) => base,
            (eye, ColorMask::All) => format!("{base}-{}", eye.as_str()),
        }
    }
}

/// Near and far clipping distances of every view, metres.
pub const NEAR: f32 = 0.05;
/// See [`NEAR`].
pub const FAR: f32 = 1000.0;

impl ClusterConfig {
    /// The views of node `node` for the head pose in the file and an identity rig.
    pub fn views(&self, node: &str) -> Option<Vec<ViewSpec>> {
        self.views_for(node, &self.head, Mat4::IDENTITY)
    }

    /// The views of node `node` for a head pose (tracker space) and a rig (tracker → world,
    /// how the application moves the viewer through the world). `None` if there is no such
    /// node.
    pub fn views_for(&self, node: &str, head: &HeadPose, rig: Mat4) -> Option<Vec<ViewSpec>> {
        let n = self.node(node)?;
        let mut out = Vec::new();
        for w in &n.windows {
            for vp in &w.viewports {
                let Some(screen) = self.screen(&vp.screen) else {
                    continue;
                };
                let [x, y, width, height] = vp.rect;
                let split: Vec<(Eye, [u32; 4], ColorMask)> = match self.stereo.mode {
                    StereoMode::Mono | StereoMode::Passive => {
                        vec![(vp.eye, vp.rect, ColorMask::All)]
                    }
                    StereoMode::SideBySide => {
                        let half = width / 2;
                        vec![
                            (Eye::Left, [x, y, half, height], ColorMask::All),
                            (
                                Eye::Right,
                                [x + half, y, width - half, height],
                                ColorMask::All,
                            ),
                        ]
                    }
                    StereoMode::TopBottom => {
                        let half = height / 2;
                        vec![
                            (Eye::Left, [x, y, width, half], ColorMask::All),
                            (
                                Eye::Right,
                                [x, y + half, width, height - half],
                                ColorMask::All,
                            ),
                        ]
                    }
                    StereoMode::Anaglyph => vec![
                        (Eye::Left, vp.rect, ColorMask::Red),
                        (Eye::Right, vp.rect, ColorMask::Cyan),
                    ],
                };
                for (eye, rect, mask) in split {
                    let eye_tracker = head.eye_position(eye, self.stereo.eye_separation);
                    let eye_world = rig.transform_point3(eye_tracker);
                    // Tracker-space screens move with the rig: project in tracker space, then
                    // take world points there. World-space screens stay put.
                    let (view, frustum) = match screen.space {
                        ScreenSpace::Tracker => {
                            let o = off_axis(
                                screen.lower_left,
                                screen.lower_right,
                                screen.upper_left,
                                eye_tracker,
                                NEAR,
                                FAR,
                            );
                            (o.view * rig.inverse(), o.frustum)
                        }
                        ScreenSpace::World => {
                            let o = off_axis(
                                screen.lower_left,
                                screen.lower_right,
                                screen.upper_left,
                                eye_world,
                                NEAR,
                                FAR,
                            );
                            (o.view, o.frustum)
                        }
                    };
                    out.push(ViewSpec {
                        node: n.name.clone(),
                        window: w.name.clone(),
                        viewport: vp.name.clone(),
                        screen: screen.name.clone(),
                        eye,
                        rect,
                        mask,
                        eye_position: eye_world,
                        view,
                        frustum,
                        helpers: vp.helpers.clone(),
                        lz4_strips: vp.lz4_strips,
                    });
                }
            }
        }
        Some(out)
    }
}
