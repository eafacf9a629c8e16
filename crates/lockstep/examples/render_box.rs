//! The README's library example: one lit cube, rendered offscreen to `box.png`.
//!
//! `cargo run -p lockstep --example render_box`

use lockstep::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut scene = Scene::new();
    let cube = scene.add_mesh(Mesh::cube(1.0));
    let red = scene.add_material(Material::lit(Color::rgb(0.8, 0.1, 0.1)))?;
    scene.add(Node::mesh(cube, red).named("box"), None)?;
    scene.add(
        Node::light(Light::directional(Color::WHITE, 1.0)).with_transform(
            Transform::IDENTITY
                .with_rotation(Quat::from_rotation_x(-0.8) * Quat::from_rotation_y(0.5)),
        ),
        None,
    )?;
    let camera = scene.add(
        Node::camera(Camera::perspective(1.0, 16.0 / 9.0, 0.1, 100.0)).with_transform(
            Transform::looking_at(Vec3::new(1.5, 1.5, 3.0), Vec3::ZERO, Vec3::Y),
        ),
        None,
    )?;

    let gpu = GpuContext::new(BackendChoice::Auto)?;
    let target = OffscreenTarget::new(&gpu, 640, 360)?;
    let mut renderer = Renderer::new(&gpu, OffscreenTarget::FORMAT);
    let list = lockstep::render::cull(&scene, &View::from_camera(&scene, camera)?, 0)?;
    let image = target.render_to_image(&gpu, &mut renderer, &scene, &list)?;
    image.write_png("box.png".as_ref())?;
    println!("wrote box.png ({} objects drawn)", list.stats.drawn);
    Ok(())
}
