/*!
Rendering the views one node of a cluster file owns: each (viewport, eye) from
[`lockstep_display::ClusterConfig::views`] becomes an image, or — for anaglyph stereo — both
eyes of a viewport become one image, red from the left eye and green and blue from the right.
*/
use std::collections::HashMap;

use lockstep_display::{ColorMask, ViewSpec};
use lockstep_render::wgpu::ColorWrites;
use lockstep_render::{
    DrawList, DrawOptions, GpuContext, Image, OffscreenTarget, RenderError, Renderer, View,
};
use lockstep_scene::Scene;

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
