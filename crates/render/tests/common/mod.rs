//! Helpers shared by the rendering tests: a GPU context, a standard camera, pixel checks.
#![allow(dead_code)]

use glam::Vec3;
use lockstep_render::{
    BackendChoice, DrawList, GpuContext, Image, OffscreenTarget, Renderer, View,
};
use lockstep_scene::{Camera, Color, Frustum, Node, NodeId, Scene, Transform};

pub const W: u32 = 160;
pub const H: u32 = 120;

/// The backend under test: `LOCKSTEP_TEST_BACKEND=gl` runs the suite on GL.
pub fn gpu() -> GpuContext {
    let choice = std::env::var("LOCKSTEP_TEST_BACKEND")
        .ok()
        .map(|b| b.parse().expect("LOCKSTEP_TEST_BACKEND"))
        .unwrap_or(BackendChoice::Auto);
    GpuContext::new(choice).expect("a Vulkan or GL adapter (install mesa-vulkan-drivers)")
}

/// A camera at (0, 0, 5) looking at the origin, 60° vertical field of view, W:H aspect.
pub fn add_camera(scene: &mut Scene, frustum: Option<Frustum>) -> NodeId {
    let frustum = frustum.unwrap_or(Frustum::symmetric(
        60f32.to_radians(),
        W as f32 / H as f32,
        0.1,
        100.0,
    ));
    let id = scene
        .add(
            Node::camera(Camera { frustum }).with_transform(Transform::looking_at(
                Vec3::new(0.0, 0.0, 5.0),
                Vec3::ZERO,
                Vec3::Y,
            )),
            None,
        )
        .unwrap();
    scene.active_camera = Some(id);
    id
}

/// Culls and draws the scene from its active camera into a fresh W×H target.
pub fn render(gpu: &GpuContext, scene: &Scene) -> (Image, DrawList) {
    render_sized(gpu, scene, W, H)
}

pub fn render_sized(gpu: &GpuContext, scene: &Scene, w: u32, h: u32) -> (Image, DrawList) {
    let target = OffscreenTarget::new(gpu, w, h).unwrap();
    let mut renderer = Renderer::new(gpu, OffscreenTarget::FORMAT);
    let view = View::from_camera(scene, scene.active_camera.unwrap()).unwrap();
    let list = lockstep_render::cull(scene, &view, 0).unwrap();
    let image = target
        .render_to_image(gpu, &mut renderer, scene, &list)
        .unwrap();
    (image, list)
}

/// Asserts a pixel is within `tol` of `want` on every channel.
pub fn assert_pixel(img: &Image, x: u32, y: u32, want: [u8; 4], tol: u8) {
    let got = img.pixel(x, y).unwrap();
    let close = got.iter().zip(want).all(|(g, w)| g.abs_diff(w) <= tol);
    assert!(
        close,
        "pixel ({x},{y}) is {got:?}, expected {want:?} ±{tol}"
    );
}

/// The centroid of pixels for which `pred` holds, and how many there are.
pub fn centroid(img: &Image, pred: impl Fn([u8; 4]) -> bool) -> (f32, f32, u32) {
    let (mut sx, mut sy, mut n) = (0f64, 0f64, 0u32);
    for y in 0..img.height {
        for x in 0..img.width {
            if pred(img.pixel(x, y).unwrap()) {
                sx += x as f64 + 0.5;
                sy += y as f64 + 0.5;
                n += 1;
            }
        }
    }
    assert!(n > 0, "no pixel matched");
    ((sx / n as f64) as f32, (sy / n as f64) as f32, n)
}

pub fn is_red(p: [u8; 4]) -> bool {
    p[0] > 200 && p[1] < 50 && p[2] < 50
}

pub const RED: Color = Color::rgb(1.0, 0.0, 0.0);
pub const GREEN: Color = Color::rgb(0.0, 1.0, 0.0);
