//! Rendering on the real driver (Vulkan on lavapipe, or GL with LOCKSTEP_TEST_BACKEND=gl),
//! asserting on pixels.

mod common;

use common::*;
use glam::{Quat, Vec3};
use lockstep_render::{OffscreenTarget, Renderer, View};
use lockstep_scene::{Color, Frustum, Light, Material, Mesh, Node, Scene, Texture, Transform};

fn unlit_scene(color: Color) -> (Scene, lockstep_scene::MeshId, lockstep_scene::MaterialId) {
    let mut s = Scene::new();
    s.background = Color::from_srgb8(10, 20, 40);
    add_camera(&mut s, None);
    let cube = s.add_mesh(Mesh::cube(1.0));
    let mat = s.add_material(Material::unlit(color)).unwrap();
    (s, cube, mat)
}

#[test]
fn empty_pixels_show_the_background() {
    let gpu = gpu();
    let (s, _, _) = unlit_scene(RED);
    let (img, list) = render(&gpu, &s);
    assert_eq!(list.stats.drawn, 0);
    for (x, y) in [(0, 0), (W - 1, H - 1), (W / 2, H / 2), (3, H - 7)] {
        assert_pixel(&img, x, y, [10, 20, 40, 255], 1);
    }
}

#[test]
fn an_object_shows_its_colour_at_its_projected_centre() {
    let gpu = gpu();
    let (mut s, cube, mat) = unlit_scene(Color::from_srgb8(200, 100, 50));
    // Off centre, so a wrong view or projection moves it: x = 1 at distance 5 with a 60° fov.
    s.add(
        Node::mesh(cube, mat).with_transform(Transform::from_translation(Vec3::new(1.0, 0.5, 0.0))),
        None,
    )
    .unwrap();
    let (img, _) = render(&gpu, &s);
    let half_h = 5.0 * 30f32.to_radians().tan();
    let half_w = half_h * W as f32 / H as f32;
    let px = ((1.0 / half_w) * 0.5 + 0.5) * W as f32;
    let py = (0.5 - (0.5 / half_h) * 0.5) * H as f32;
    assert_pixel(&img, px as u32, py as u32, [200, 100, 50, 255], 1);
    let (cx, cy, _) = centroid(&img, |p| p[0] > 150 && p[1] > 60 && p[2] < 90);
    // The cube's front face is nearer than its centre, so its image is a little larger but
    // centred on the same point along the view ray of the centre only approximately.
    assert!(
        (cx - px).abs() < 2.0 && (cy - py).abs() < 2.0,
        "centroid ({cx},{cy}) vs ({px},{py})"
    );
}

#[test]
fn a_near_object_hides_a_far_one_whatever_the_order() {
    let gpu = gpu();
    for near_first in [true, false] {
        let (mut s, cube, red) = unlit_scene(RED);
        let green = s.add_material(Material::unlit(GREEN)).unwrap();
        let near = Node::mesh(cube, green)
            .with_transform(Transform::from_translation(Vec3::new(0.0, 0.0, 1.0)));
        let far = Node::mesh(cube, red)
            .with_transform(Transform::from_translation(Vec3::new(0.0, 0.0, -1.0)).with_scale(2.5));
        if near_first {
            s.add(near, None).unwrap();
            s.add(far, None).unwrap();
        } else {
            s.add(far, None).unwrap();
            s.add(near, None).unwrap();
        }
        let (img, list) = render(&gpu, &s);
        assert_eq!(list.stats.drawn, 2);
        assert_pixel(&img, W / 2, H / 2, [0, 255, 0, 255], 0);
        // The far cube is larger on screen: red shows around the green one.
        let (_, _, reds) = centroid(&img, is_red);
        assert!(
            reds > 20,
            "far cube visible around the near one ({reds} px)"
        );
    }
}

#[test]
fn a_textured_quad_shows_its_quadrants_in_the_right_corners() {
    let gpu = gpu();
    let mut s = Scene::new();
    add_camera(&mut s, None);
    // 64×64: red top-left, green top-right, blue bottom-left, white bottom-right.
    let mut px = Vec::new();
    for y in 0..64 {
        for x in 0..64 {
            px.extend_from_slice(&match (x < 32, y < 32) {
                (true, true) => [255, 0, 0, 255],
                (false, true) => [0, 255, 0, 255],
                (true, false) => [0, 0, 255, 255],
                (false, false) => [255, 255, 255, 255],
            });
        }
    }
    let tex = s.add_texture(Texture::new("quadrants", 64, 64, px).unwrap());
    let mat = s
        .add_material(Material::unlit(Color::WHITE).with_texture(tex))
        .unwrap();
    let quad = s.add_mesh(Mesh::quad(3.0, 3.0));
    s.add(Node::mesh(quad, mat), None).unwrap();
    let (img, _) = render(&gpu, &s);
    // The quad spans ±1.5 at distance 5: ±1.5/2.887 of the half height = ±31 px around the
    // centre (80, 60). Sample 15 px from the centre, well inside each quadrant.
    let (cx, cy) = (W / 2, H / 2);
    assert_pixel(&img, cx - 15, cy - 15, [255, 0, 0, 255], 2);
    assert_pixel(&img, cx + 15, cy - 15, [0, 255, 0, 255], 2);
    assert_pixel(&img, cx - 15, cy + 15, [0, 0, 255, 255], 2);
    assert_pixel(&img, cx + 15, cy + 15, [255, 255, 255, 255], 2);
    // Beyond the quad, background.
    assert_pixel(&img, cx + 40, cy, s.background.to_srgb8(), 1);
}

#[test]
fn mipmaps_average_a_fine_checker_seen_from_afar() {
    let gpu = gpu();
    let mut s = Scene::new();
    add_camera(&mut s, None);
    // 1-pixel black/white cells: without mipmaps a minified quad shows black and white
    // pixels; with them, the grey average.
    let tex = s.add_texture(Texture::checker(
        "fine",
        256,
        256,
        [0, 0, 0, 255],
        [255, 255, 255, 255],
    ));
    let mat = s
        .add_material(Material::unlit(Color::WHITE).with_texture(tex))
        .unwrap();
    let quad = s.add_mesh(Mesh::quad(1.0, 1.0));
    s.add(Node::mesh(quad, mat), None).unwrap();
    let (img, _) = render(&gpu, &s);
    // The quad covers about 21×21 px around the centre; check its inner 11×11.
    for y in H / 2 - 5..=H / 2 + 5 {
        for x in W / 2 - 5..=W / 2 + 5 {
            let p = img.pixel(x, y).unwrap();
            assert!(
                (100..=160).contains(&p[0]) && p[0] == p[1] && p[1] == p[2],
                "pixel ({x},{y}) = {p:?}: not the grey average"
            );
        }
    }
}

#[test]
fn an_off_axis_frustum_shifts_the_image_as_computed() {
    let gpu = gpu();
    let (mut s, cube, mat) = unlit_scene(RED);
    s.add(Node::mesh(cube, mat), None).unwrap();
    let sym = Frustum::symmetric(60f32.to_radians(), W as f32 / H as f32, 0.1, 100.0);
    let (img, _) = render(&gpu, &s);
    let (x0, y0, _) = centroid(&img, is_red);

    // Shift the near-plane window right by 15% of its width and down by 10% of its height:
    // the scene moves left by 15% of the image width and up by 10% of its height.
    let dx = 0.15 * (sym.right - sym.left);
    let dy = -0.10 * (sym.top - sym.bottom);
    let (mut s2, cube2, mat2) = unlit_scene(RED);
    let cam = s2.active_camera.unwrap();
    s2.remove(cam).unwrap();
    add_camera(&mut s2, Some(sym.shifted(dx, dy)));
    s2.add(Node::mesh(cube2, mat2), None).unwrap();
    let (img2, _) = render(&gpu, &s2);
    let (x1, y1, _) = centroid(&img2, is_red);
    let want_dx = -0.15 * W as f32;
    let want_dy = -0.10 * H as f32;
    assert!(
        ((x1 - x0) - want_dx).abs() < 0.6 && ((y1 - y0) - want_dy).abs() < 0.6,
        "moved by ({}, {}), expected ({want_dx}, {want_dy})",
        x1 - x0,
        y1 - y0
    );
}

#[test]
fn lit_surfaces_are_bright_towards_the_light_and_dark_away() {
    let gpu = gpu();
    let mut s = Scene::new();
    s.background = Color::BLACK;
    s.ambient = Color::rgb(0.02, 0.02, 0.02);
    add_camera(&mut s, None);
    let ball = s.add_mesh(Mesh::uv_sphere(1.5, 48, 24));
    let mat = s.add_material(Material::lit(Color::WHITE)).unwrap();
    s.add(Node::mesh(ball, mat), None).unwrap();
    // Light travelling along -X: it comes from +X, so the right side is lit.
    s.add(
        Node::light(Light::directional(Color::WHITE, 1.0)).with_transform(
            Transform::IDENTITY.with_rotation(Quat::from_rotation_y(std::f32::consts::FRAC_PI_2)),
        ),
        None,
    )
    .unwrap();
    let (img, list) = render(&gpu, &s);
    assert_eq!(list.lights.len(), 1);
    let right = img.pixel(W / 2 + 25, H / 2).unwrap();
    let left = img.pixel(W / 2 - 25, H / 2).unwrap();
    assert!(right[0] > 150, "lit side {right:?}");
    assert!(left[0] < 50, "dark side {left:?}");
}

#[test]
fn hundreds_of_instances_draw_in_one_batch() {
    let gpu = gpu();
    let (mut s, cube, mat) = unlit_scene(RED);
    for i in 0..20 {
        for j in 0..15 {
            let p = Vec3::new(-3.8 + i as f32 * 0.4, -2.8 + j as f32 * 0.4, 0.0);
            s.add(
                Node::mesh(cube, mat)
                    .with_transform(Transform::from_translation(p).with_scale(0.1)),
                None,
            )
            .unwrap();
        }
    }
    let (img, list) = render(&gpu, &s);
    assert_eq!(list.stats.drawn, 300);
    assert_eq!(list.batches.len(), 1);
    assert_eq!(list.batches[0].instances, 0..300);
    // Every instance in view is drawn: count red blobs along the middle row of cubes.
    let (_, _, reds) = centroid(&img, is_red);
    assert!(reds > 300, "{reds} red pixels");
}

#[test]
fn culled_objects_are_neither_listed_nor_drawn() {
    let gpu = gpu();
    let (mut s, cube, mat) = unlit_scene(RED);
    s.add(Node::mesh(cube, mat), None).unwrap();
    for p in [
        Vec3::new(30.0, 0.0, 0.0),
        Vec3::new(0.0, 0.0, 20.0),
        Vec3::new(0.0, -40.0, 0.0),
    ] {
        s.add(
            Node::mesh(cube, mat).with_transform(Transform::from_translation(p)),
            None,
        )
        .unwrap();
    }
    let (_, list) = render(&gpu, &s);
    assert_eq!(
        (list.stats.considered, list.stats.drawn, list.stats.culled),
        (4, 1, 3)
    );
    assert_eq!(list.instances.len(), 1);
}

#[test]
fn the_same_frame_renders_byte_identical_twice() {
    let gpu = gpu();
    let mut s = Scene::new();
    add_camera(&mut s, None);
    let ball = s.add_mesh(Mesh::uv_sphere(1.0, 32, 16));
    let tex = s.add_texture(Texture::checker(
        "c",
        64,
        8,
        [200, 40, 40, 255],
        [240, 240, 240, 255],
    ));
    let mat = s
        .add_material(Material::lit(Color::WHITE).with_texture(tex))
        .unwrap();
    s.add(Node::mesh(ball, mat), None).unwrap();
    s.add(
        Node::light(Light::point(Color::WHITE, 20.0, 20.0))
            .with_transform(Transform::from_translation(Vec3::new(2.0, 2.0, 3.0))),
        None,
    )
    .unwrap();
    let (a, _) = render(&gpu, &s);
    // A second renderer and target, so no cached state can make them equal.
    let (b, _) = render(&gpu, &s);
    assert!(a.rgba8 == b.rgba8, "two renders of one frame differ");
    // And the same renderer twice.
    let target = OffscreenTarget::new(&gpu, W, H).unwrap();
    let mut r = Renderer::new(&gpu, OffscreenTarget::FORMAT);
    let view = View::from_camera(&s, s.active_camera.unwrap()).unwrap();
    let list = lockstep_render::cull(&s, &view, 3).unwrap();
    let c = target.render_to_image(&gpu, &mut r, &s, &list).unwrap();
    let d = target.render_to_image(&gpu, &mut r, &s, &list).unwrap();
    assert!(c.rgba8 == d.rgba8 && c.rgba8 == a.rgba8);
}

#[test]
fn zero_and_absurd_target_sizes_are_refused() {
    let gpu = gpu();
    for (w, h, want) in [
        (0, 10, "at least 1"),
        (10, 0, "at least 1"),
        (100_000, 10, "largest supported side"),
    ] {
        let err = OffscreenTarget::new(&gpu, w, h).err().expect("refused");
        let text = err.to_string();
        assert!(
            text.contains(&format!("{w}x{h}")) && text.contains(want),
            "{text}"
        );
    }
}

#[test]
fn each_backend_can_be_chosen_and_reports_itself() {
    use lockstep_render::{BackendChoice, GpuContext};
    let vk = GpuContext::new(BackendChoice::Vulkan).expect("Vulkan (mesa-vulkan-drivers)");
    assert_eq!(vk.summary.backend, "Vulkan");
    let gl = GpuContext::new(BackendChoice::Gl).expect("GL (Mesa EGL)");
    assert_eq!(gl.summary.backend, "Gl");
    // Auto prefers Vulkan when it exists.
    assert_eq!(
        GpuContext::new(BackendChoice::Auto)
            .unwrap()
            .summary
            .backend,
        "Vulkan"
    );
    assert!(!vk.summary.name.is_empty() && !vk.summary.device_type.is_empty());
}

/// A lit, textured scene with edges everywhere: spheres across the whole view.
fn busy_scene() -> Scene {
    let mut s = Scene::new();
    add_camera(&mut s, None);
    let ball = s.add_mesh(Mesh::uv_sphere(0.6, 24, 12));
    let tex = s.add_texture(Texture::checker(
        "c",
        64,
        8,
        [200, 40, 40, 255],
        [240, 240, 240, 255],
    ));
    let mat = s
        .add_material(Material::lit(Color::WHITE).with_texture(tex))
        .unwrap();
    for i in 0..12 {
        let x = -3.3 + 0.6 * i as f32;
        let y = ((i as f32) * 0.9).sin() * 1.2;
        s.add(
            Node::mesh(ball, mat).with_transform(Transform::from_translation(Vec3::new(x, y, 0.0))),
            None,
        )
        .unwrap();
    }
    s.add(
        Node::light(Light::point(Color::WHITE, 20.0, 20.0))
            .with_transform(Transform::from_translation(Vec3::new(2.0, 2.0, 3.0))),
        None,
    )
    .unwrap();
    s
}

#[test]
fn a_view_drawn_in_strips_by_three_renderers_and_composited_is_byte_identical_to_it_whole() {
    let gpu = gpu();
    let s = busy_scene();
    let view = View::from_camera(&s, s.active_camera.unwrap()).unwrap();
    let list = lockstep_render::cull(&s, &view, 0).unwrap();
    // The view in a viewport of a larger window, as a display node has it.
    let (ww, wh) = (W + 40, H + 30);
    let viewport = [25, 10, W, H];
    let draw = |target: &OffscreenTarget, r: &mut Renderer, scissor| {
        let options = lockstep_render::DrawOptions {
            viewport: Some(viewport),
            scissor,
            ..Default::default()
        };
        target
            .render_with(&gpu, r, &s, &list, options, false)
            .unwrap();
    };
    let whole = OffscreenTarget::new(&gpu, ww, wh).unwrap();
    let mut r = Renderer::new(&gpu, OffscreenTarget::FORMAT);
    draw(&whole, &mut r, None);
    let mut want = Vec::new();
    whole.read_region_into(&gpu, viewport, &mut want).unwrap();
    // Columns of the viewport: the display node's, then two helpers' (each its own target
    // and renderer, as on its own machine), in window pixels.
    let cuts = [0, 61, 97, W];
    let strip = |i: usize| [viewport[0] + cuts[i], viewport[1], cuts[i + 1] - cuts[i], H];
    let display = OffscreenTarget::new(&gpu, ww, wh).unwrap();
    let mut rd = Renderer::new(&gpu, OffscreenTarget::FORMAT);
    draw(&display, &mut rd, Some(strip(0)));
    for i in 1..3 {
        let helper = OffscreenTarget::new(&gpu, ww, wh).unwrap();
        let mut rh = Renderer::new(&gpu, OffscreenTarget::FORMAT);
        draw(&helper, &mut rh, Some(strip(i)));
        let mut pixels = Vec::new();
        helper
            .read_region_into(&gpu, strip(i), &mut pixels)
            .unwrap();
        assert_eq!(pixels.len(), (strip(i)[2] * H * 4) as usize);
        display.write_region(&gpu, strip(i), &pixels).unwrap();
    }
    let mut got = Vec::new();
    display.read_region_into(&gpu, viewport, &mut got).unwrap();
    let differing = want
        .chunks_exact(4)
        .zip(got.chunks_exact(4))
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(differing, 0, "pixels differ from the view drawn whole");
    // The scene reaches into every strip, so the comparison says something.
    let background = want.chunks_exact(4).filter(|p| p[..3] == [0, 0, 0]).count();
    assert!(
        background < want.len() / 4,
        "the scene covers part of the view"
    );
    // Outside the viewport, nothing was drawn by the strips.
    let mut all = Vec::new();
    display.copy_back(&gpu).unwrap();
    display.read_into(&gpu, &mut all).unwrap();
    let mut whole_all = Vec::new();
    whole.copy_back(&gpu).unwrap();
    whole.read_into(&gpu, &mut whole_all).unwrap();
    assert_eq!(all.len(), (ww * wh * 4) as usize);
    assert!(all == whole_all, "the windows differ outside the viewport");
}

#[test]
fn a_strip_of_the_wrong_size_or_place_is_refused_before_it_reaches_the_gpu() {
    let gpu = gpu();
    let t = OffscreenTarget::new(&gpu, W, H).unwrap();
    let e = t.write_region(&gpu, [0, 0, 10, 10], &[0; 399]).unwrap_err();
    assert!(e.to_string().contains("holds 400 bytes, not 399"), "{e}");
    let e = t
        .write_region(&gpu, [W - 5, 0, 10, 10], &[0; 400])
        .unwrap_err();
    assert!(e.to_string().contains("reaches past"), "{e}");
    let mut out = Vec::new();
    let e = t
        .read_region_into(&gpu, [0, H, 1, 1], &mut out)
        .unwrap_err();
    assert!(e.to_string().contains("reaches past"), "{e}");
}
