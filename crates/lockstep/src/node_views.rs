/*!
The views one node of a cluster file owns. [`NodeViews`] derives them from a head pose — in
App from the frame's pose, and again in Draw from a newer one when the master latched it
(late latching). [`render_views`] renders them one by one: each (viewport, eye) from
[`lockstep_display::ClusterConfig::views`] becomes an image, or — for anaglyph stereo — both
eyes of a viewport become one image, red from the left eye and green and blue from the right.
*/
use std::collections::HashMap;
use std::sync::Arc;

use lockstep_display::{ClusterConfig, ColorMask, HeadPose, ViewSpec};
use lockstep_render::wgpu::ColorWrites;
use lockstep_render::{
    DrawList, DrawOptions, GpuContext, Image, OffscreenTarget, RenderError, Renderer, View,
};
use lockstep_scene::Scene;
use lockstep_scene::glam::Mat4;

use crate::pipeline::{PassShare, ViewPass};

/// How node `node` of `config` projects a frame: everything but the head pose, so that Draw
/// can project the frame again from a newer pose. Cloning it copies two pointers.
#[derive(Debug, Clone)]
pub struct NodeViews {
    config: Arc<ClusterConfig>,
    node: Arc<str>,
    /// Where the display's tracker space sits in the world this frame.
    rig: Mat4,
}

impl NodeViews {
    /// The views of `node` under `config`, with the scene's rig at `rig`.
    pub fn new(config: Arc<ClusterConfig>, node: Arc<str>, rig: Mat4) -> NodeViews {
        NodeViews { config, node, rig }
    }

    /// The passes of the node's first window (one window per node process) for the head
    /// at `head`, into `out`, then — for a helper (sort-first) — those of the display
    /// nodes' views it helps with; false if the file has no such node.
    pub fn passes(&self, head: &HeadPose, out: &mut Vec<ViewPass>) -> bool {
        out.clear();
        let Some(views) = self.config.views_for(&self.node, head, self.rig) else {
            return false;
        };
        let first = self.config.node(&self.node).and_then(|n| n.windows.first());
        out.extend(
            views
                .iter()
                .enumerate()
                .filter(|(_, v)| first.is_some_and(|w| w.name == v.window))
                .map(|(i, v)| {
                    let share = if v.helpers.is_empty() {
                        PassShare::Own
                    } else {
                        PassShare::Helped { view: i as u16 }
                    };
                    pass(v, share)
                }),
        );
        for (d, display) in self.config.helped_by(&self.node).into_iter().enumerate() {
            let Some(window) = display.windows.first() else {
                continue;
            };
            let Some(theirs) = self.config.views_for(&display.name, head, self.rig) else {
                continue;
            };
            for (i, v) in theirs.iter().enumerate() {
                if v.window == window.name && v.helpers.iter().any(|h| **h == *self.node) {
                    let share = PassShare::Helper {
                        display: d as u16,
                        view: i as u16,
                        window: [window.width, window.height],
                    };
                    out.push(pass(v, share));
                }
            }
        }
        true
    }

    /// The digest of the projections for the head at `head` (what `--views-out` lists).
    pub fn digest(&self, head: &HeadPose) -> Option<u64> {
        views_digest(&self.config, &self.node, head)
    }

    /// Projects a frame again from `head`, newer than the pose App made it with: every
    /// pass's view, and its draw list culled again for it (a moved eye moves the frustum's
    /// edges, most of all far behind the screen, so App's culling cannot be kept). False,
    /// with the frame untouched, if these views are not the frame's passes (App drew from
    /// the scene's camera: the node's window has no viewport).
    pub fn relatch(
        &self,
        head: &HeadPose,
        scene: &Scene,
        frame: u64,
        passes: &mut [ViewPass],
        lists: &mut [DrawList],
    ) -> Result<bool, RenderError> {
        let mut latched = Vec::with_capacity(passes.len());
        if !self.passes(head, &mut latched)
            || latched.len() != passes.len()
            || lists.len() != passes.len()
        {
            return Ok(false);
        }
        for ((list, pass), new) in lists.iter_mut().zip(passes.iter_mut()).zip(latched) {
            *pass = new;
            list.cull(scene, &pass.view, frame)?;
        }
        Ok(true)
    }
}

/// The pass that draws view `v`.
fn pass(v: &ViewSpec, share: PassShare) -> ViewPass {
    ViewPass {
        view: View {
            view: v.view,
            projection: v.frustum.projection(),
        },
        rect: Some(v.rect),
        color_writes: color_writes(v.mask),
        share,
    }
}

/// A digest of the projections node `name` renders under `config` with the head at `head`:
/// every view of its first window, in order (what `--views-out` writes, and what tests
/// compare with the cluster file).
pub fn views_digest(config: &ClusterConfig, name: &str, head: &HeadPose) -> Option<u64> {
    let views = config.views_for(name, head, Mat4::IDENTITY)?;
    let first = config.node(name)?.windows.first()?.name.clone();
    // XXH3 over little-endian bytes: the value is the same in every build that writes or
    // reads a `--views-out` file.
    let mut bytes = Vec::new();
    for v in views.iter().filter(|v| v.window == first) {
        v.rect
            .iter()
            .for_each(|x| bytes.extend_from_slice(&x.to_le_bytes()));
        for x in v.frustum.projection().to_cols_array() {
            bytes.extend_from_slice(&x.to_bits().to_le_bytes());
        }
    }
    Some(xxhash_rust::xxh3::xxh3_64(&bytes))
}

/// One rendered image and the name it is saved under (`NODE-WINDOW-VIEWPORT[-EYE]`).
#[derive(Debug, Clone)]
pub struct ViewImage {
    /// File stem, from [`ViewSpec::file_stem`].
    pub stem: String,
    /// The pixels, the viewport's (or eye's) size.
    pub image: Image,
}

/// The channels a view's mask lets through.
pub fn color_writes(mask: ColorMask) -> ColorWrites {
    match mask {
        ColorMask::All => ColorWrites::ALL,
        ColorMask::Red => ColorWrites::RED | ColorWrites::ALPHA,
        ColorMask::Cyan => ColorWrites::GREEN | ColorWrites::BLUE,
    }
}

/// Renders `views` of `scene` for frame `frame`, one image per file stem. Views sharing a
/// stem (anaglyph eyes) are drawn into the same image, the first one clearing it.
pub fn render_views(
    gpu: &GpuContext,
    renderer: &mut Renderer,
    scene: &Scene,
    views: &[ViewSpec],
    frame: u64,
) -> Result<Vec<ViewImage>, RenderError> {
    let mut targets: HashMap<(u32, u32), OffscreenTarget> = HashMap::new();
    let mut list = DrawList::default();
    let mut out = Vec::new();
    let mut i = 0;
    while i < views.len() {
        let stem = views[i].file_stem();
        let group_end = views[i..]
            .iter()
            .position(|v| v.file_stem() != stem)
            .map_or(views.len(), |n| i + n);
        let [_, _, w, h] = views[i].rect;
        let target = match targets.entry((w, h)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(OffscreenTarget::new(gpu, w, h)?)
            }
        };
        for (k, spec) in views[i..group_end].iter().enumerate() {
            let view = View {
                view: spec.view,
                projection: spec.frustum.projection(),
            };
            list.cull(scene, &view, frame)?;
            let options = DrawOptions {
                clear: k == 0,
                color_writes: color_writes(spec.mask),
                viewport: None,
                scissor: None,
            };
            target.render_with(gpu, renderer, scene, &list, options, k + i + 1 == group_end)?;
        }
        let mut pixels = Vec::new();
        target.read_into(gpu, &mut pixels)?;
        out.push(ViewImage {
            stem,
            image: Image {
                width: w,
                height: h,
                rgba8: pixels,
            },
        });
        i = group_end;
    }
    Ok(out)
}
