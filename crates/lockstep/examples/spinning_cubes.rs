//! A minimal lockstep `App`: a ring of cubes that turns, run through the App/Cull/Draw
//! pipeline with three threads, in a window when there is a display, else offscreen.
//!
//! `cargo run -p lockstep --example spinning_cubes`

use lockstep::pipeline::{self, App, FrameContext, PipelineConfig, Target};
use lockstep::prelude::*;

#[derive(Default)]
struct SpinningCubes {
    ring: Option<NodeId>,
}

impl App for SpinningCubes {
    fn setup(&mut self, scene: &mut Scene) -> anyhow::Result<()> {
        let cube = scene.add_mesh(Mesh::cube(0.3));
        let ring = scene.add(Node::empty().named("ring"), None)?;
        for i in 0..12 {
            let a = i as f32 / 12.0 * std::f32::consts::TAU;
            let colour = scene.add_material(Material::lit(Color::rgb(
                0.5 + 0.5 * a.cos(),
                0.5,
                0.5 + 0.5 * a.sin(),
            )))?;
            let at = Transform::from_translation(Vec3::new(1.5 * a.cos(), 0.0, 1.5 * a.sin()));
            scene.add(Node::mesh(cube, colour).with_transform(at), Some(ring))?;
        }
        scene.add(
            Node::light(Light::directional(Color::WHITE, 1.0))
                .with_transform(Transform::IDENTITY.with_rotation(Quat::from_rotation_x(-0.7))),
            None,
        )?;
        let camera = scene.add(
            Node::camera(Camera::perspective(1.0, 16.0 / 9.0, 0.1, 50.0)).with_transform(
                Transform::looking_at(Vec3::new(0.0, 2.0, 4.5), Vec3::ZERO, Vec3::Y),
            ),
            None,
        )?;
        scene.active_camera = Some(camera);
        self.ring = Some(ring);
        Ok(())
    }

    fn update(&mut self, ctx: &mut FrameContext<'_>) -> anyhow::Result<()> {
        if let Some(ring) = self.ring {
            let turn = Quat::from_rotation_y(ctx.time as f32 * 0.8);
            ctx.scene
                .set_transform(ring, Transform::IDENTITY.with_rotation(turn))?;
        }
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let mut config = PipelineConfig::offscreen(960, 540);
    config.threading = "Cull/Draw".parse().map_err(anyhow::Error::msg)?;
    if std::env::var_os("DISPLAY").is_some() {
        config.target = Target::Window {
            width: 960,
            height: 540,
            title: "spinning cubes".into(),
            vsync: true,
        };
    } else {
        config.frames = Some(300);
    }
    let report = pipeline::run(&mut SpinningCubes::default(), config)?;
    println!("{} frames on {}", report.frames, report.adapter);
    Ok(())
}
