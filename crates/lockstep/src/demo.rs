/*!
The built-in demo scene: a room with a floor grid and three walls, lit objects at different
depths and sizes, a textured cube, and a ring of a few hundred instanced cubes. Units are
metres, the floor is at y = 0 and the room is centred on the origin, so a 3 m CAVE around the
origin stands inside it.

The scene animates from a time in seconds only ([`Demo::animate`]), so every process that is
given the same time draws the same picture.
*/
use std::f32::consts::TAU;

use lockstep_scene::glam::{Quat, Vec2, Vec3};
use lockstep_scene::{
    Camera, Color, Light, Material, Mesh, Node, NodeId, Scene, SceneError, Texture, Transform,
};

/// Where the demo camera stands by default: eye height, a few metres back from the centre.
pub const DEFAULT_EYE: Vec3 = Vec3::new(0.0, 1.7, 4.5);
/// What the demo camera looks at by default.
pub const DEFAULT_LOOK_AT: Vec3 = Vec3::new(0.0, 1.1, -1.0);
/// Number of cubes in the instanced ring.
pub const RING_CUBES: usize = 360;

/// The demo scene and the nodes its animation moves.
pub struct Demo {
    /// The scene; its active camera is the node named `camera`.
    pub scene: Scene,
    camera: NodeId,
    ring: NodeId,
    spinning_cube: NodeId,
    textured_cube: NodeId,
    bouncing_ball: NodeId,
    rig: NodeId,
}

impl Demo {
    /// Builds the demo scene with a camera of vertical field of view `fov_y` (radians) for an
    /// image of `aspect` = width / height.
    pub fn new(fov_y: f32, aspect: f32) -> Result<Demo, SceneError> {
        let mut s = Scene::new();
        s.background = Color::from_srgb8(18, 22, 34);
        s.ambient = Color::rgb(0.05, 0.05, 0.06);

        // Floor: a 12 m square whose texture repeats once per metre.
        let mut floor = Mesh::plane(12.0, 12.0, 12);
        for v in &mut floor.vertices {
            v.uv *= Vec2::splat(12.0);
        }
        let floor = s.add_mesh(floor.named("floor"));
        let grid = s.add_texture(grid_texture());
        let floor_mat = s.add_material(
            Material::lit(Color::WHITE)
                .with_texture(grid)
                .named("floor"),
        )?;
        s.add(Node::mesh(floor, floor_mat).named("floor"), None)?;

        // Walls: quads facing into the room.
        let wall = s.add_mesh(Mesh::quad(12.0, 4.0).named("wall"));
        let walls = [
            (
                "back wall",
                Color::from_srgb8(92, 96, 120),
                Vec3::new(0.0, 2.0, -6.0),
                0.0,
            ),
            (
                "left wall",
                Color::from_srgb8(120, 92, 86),
                Vec3::new(-6.0, 2.0, 0.0),
                90f32,
            ),
            (
                "right wall",
                Color::from_srgb8(86, 112, 96),
                Vec3::new(6.0, 2.0, 0.0),
                -90f32,
            ),
        ];
        for (name, color, at, turn) in walls {
            let m = s.add_material(Material::lit(color).named(name))?;
            let t = Transform::from_translation(at)
                .with_rotation(Quat::from_rotation_y(turn.to_radians()));
            s.add(Node::mesh(wall, m).named(name).with_transform(t), None)?;
        }

        // Objects at different depths and sizes.
        let sphere = s.add_mesh(Mesh::uv_sphere(1.0, 48, 24));
        let cube = s.add_mesh(Mesh::cube(1.0));
        let red = s.add_material(Material::lit(Color::from_srgb8(210, 40, 36)).named("red"))?;
        let gold = s.add_material(Material::lit(Color::from_srgb8(230, 170, 40)).named("gold"))?;
        let blue = s.add_material(Material::lit(Color::from_srgb8(40, 90, 220)).named("blue"))?;
        let green = s.add_material(Material::lit(Color::from_srgb8(60, 200, 90)).named("green"))?;
        let place = |at: Vec3, size: f32| Transform::from_translation(at).with_scale(size);
        s.add(
            Node::mesh(sphere, red)
                .named("red ball")
                .with_transform(place(Vec3::new(-1.3, 0.5, 0.2), 0.5)),
            None,
        )?;
        s.add(
            Node::mesh(sphere, gold)
                .named("gold ball")
                .with_transform(place(Vec3::new(0.8, 1.0, -3.6), 1.0)),
            None,
        )?;
        let spinning_cube = s.add(
            Node::mesh(cube, blue)
                .named("blue cube")
                .with_transform(place(Vec3::new(1.4, 0.4, -0.8), 0.8)),
            None,
        )?;
        let bouncing_ball = s.add(
            Node::mesh(sphere, green)
                .named("green ball")
                .with_transform(place(Vec3::new(0.2, 0.25, 1.3), 0.25)),
            None,
        )?;
        let checker = s.add_texture(Texture::checker(
            "checker",
            256,
            8,
            [240, 120, 30, 255],
            [245, 240, 230, 255],
        ));
        let checker_mat = s.add_material(
            Material::lit(Color::WHITE)
                .with_texture(checker)
                .named("checker"),
        )?;
        let textured_cube = s.add(
            Node::mesh(cube, checker_mat)
                .named("textured cube")
                .with_transform(place(Vec3::new(-2.4, 0.6, -2.6), 1.2)),
            None,
        )?;

        // A slowly turning ring of small cubes: one mesh, one material, tinted per node, so
        // Cull draws them all in one instanced batch.
        let ring = s.add(
            Node::empty()
                .named("ring")
                .with_transform(Transform::from_translation(Vec3::new(0.0, 0.0, -1.5))),
            None,
        )?;
        let white = s.add_material(Material::lit(Color::WHITE).named("ring"))?;
        for i in 0..RING_CUBES {
            let f = i as f32 / RING_CUBES as f32;
            let angle = f * TAU * 3.0;
            let at = Vec3::new(2.6 * angle.cos(), 0.5 + 2.3 * f, 2.6 * angle.sin());
            let t = Transform::from_translation(at)
                .with_rotation(Quat::from_rotation_y(-angle))
                .with_scale(0.09);
            s.add(
                Node::mesh(cube, white).with_transform(t).with_tint(hue(f)),
                Some(ring),
            )?;
        }

        // Lights: a warm key light from above, a cool and a warm point light.
        let sun = Transform::IDENTITY.with_rotation(
            Quat::from_rotation_y(35f32.to_radians()) * Quat::from_rotation_x(-55f32.to_radians()),
        );
        s.add(
            Node::light(Light::directional(Color::rgb(1.0, 0.95, 0.85), 0.9))
                .named("sun")
                .with_transform(sun),
            None,
        )?;
        s.add(
            Node::light(Light::point(Color::rgb(0.45, 0.6, 1.0), 6.0, 9.0))
                .named("cool lamp")
                .with_transform(Transform::from_translation(Vec3::new(2.5, 2.8, 1.0))),
            None,
        )?;
        s.add(
            Node::light(Light::point(Color::rgb(1.0, 0.7, 0.4), 5.0, 8.0))
                .named("warm lamp")
                .with_transform(Transform::from_translation(Vec3::new(-2.5, 2.4, -2.0))),
            None,
        )?;

        // Where a CAVE or wall stands in the world (its tracker space); it sways slowly, so
        // cluster walls see the room move as a tracked or navigating viewer would.
        let rig = s.add(Node::empty().named("rig"), None)?;
        let camera = s.add(
            Node::camera(Camera::perspective(fov_y, aspect, 0.05, 100.0))
                .named("camera")
                .with_transform(Transform::looking_at(DEFAULT_EYE, DEFAULT_LOOK_AT, Vec3::Y)),
            None,
        )?;
        s.active_camera = Some(camera);
        let mut demo = Demo {
            scene: s,
            camera,
            ring,
            spinning_cube,
            textured_cube,
            bouncing_ball,
            rig,
        };
        demo.animate(0.0)?;
        Ok(demo)
    }

    /// The camera node.
    pub fn camera(&self) -> NodeId {
        self.camera
    }

    /// Places the camera at `eye` looking at `target`.
    pub fn look(&mut self, eye: Vec3, target: Vec3) -> Result<(), SceneError> {
        self.scene
            .set_transform(self.camera, Transform::looking_at(eye, target, Vec3::Y))
    }

    /// Poses every animated node for time `t` (seconds). The same `t` always gives the same
    /// scene.
    pub fn animate(&mut self, t: f64) -> Result<(), SceneError> {
        // Reduce in f64 first so that hours of uptime do not cost f32 precision.
        let phase = |period: f64| ((t % period) / period) as f32 * TAU;
        let s = &mut self.scene;
        let ring = s.node(self.ring)?.transform;
        s.set_transform(
            self.ring,
            ring.with_rotation(Quat::from_rotation_y(phase(40.0))),
        )?;
        let cube = s.node(self.spinning_cube)?.transform;
        s.set_transform(
            self.spinning_cube,
            cube.with_rotation(Quat::from_rotation_y(phase(6.0)) * Quat::from_rotation_x(0.4)),
        )?;
        let tex = s.node(self.textured_cube)?.transform;
        s.set_transform(
            self.textured_cube,
            tex.with_rotation(Quat::from_rotation_y(-phase(12.0))),
        )?;
        let mut ball = s.node(self.bouncing_ball)?.transform;
        ball.translation.y = 0.25 + 0.6 * phase(1.5).sin().abs();
        s.set_transform(self.bouncing_ball, ball)?;
        let sway = Quat::from_rotation_y(0.25 * phase(20.0).sin());
        s.set_transform(self.rig, Transform::IDENTITY.with_rotation(sway))
    }
}

/// A dark tile with light edges: repeated once per metre it draws the floor grid.
fn grid_texture() -> Texture {
    const SIZE: u32 = 128;
    let mut px = Vec::with_capacity((SIZE * SIZE * 4) as usize);
    for y in 0..SIZE {
        for x in 0..SIZE {
            let edge = x < 2 || y < 2 || x >= SIZE - 2 || y >= SIZE - 2;
            px.extend_from_slice(if edge {
                &[200, 205, 215, 255]
            } else {
                &[58, 60, 66, 255]
            });
        }
    }
    Texture::new("grid", SIZE, SIZE, px).expect("size matches by construction")
}

/// A fully saturated colour around the hue circle, `f` in 0..1.
fn hue(f: f32) -> Color {
    let h = (f.fract() * 6.0).max(0.0);
    let x = 1.0 - (h % 2.0 - 1.0).abs();
    let (r, g, b) = match h as u32 {
        0 => (1.0, x, 0.0),
        1 => (x, 1.0, 0.0),
        2 => (0.0, 1.0, x),
        3 => (0.0, x, 1.0),
        4 => (x, 0.0, 1.0),
        _ => (1.0, 0.0, x),
    };
    Color::rgb(r, g, b)
}

/// The demo as an [`App`](crate::pipeline::App): the scene animates, the camera circles the
/// room, the image keeps the window's aspect, and Escape ends the run.
pub struct DemoApp {
    demo: Option<Demo>,
    fov_y: f32,
    /// Circle the camera around the room (else it stays at [`DEFAULT_EYE`]).
    pub orbit: bool,
}

impl DemoApp {
    /// A demo app with vertical field of view `fov_y` (radians).
    pub fn new(fov_y: f32) -> Self {
        DemoApp {
            demo: None,
            fov_y,
            orbit: true,
        }
    }
}

impl crate::pipeline::App for DemoApp {
    fn setup(&mut self, scene: &mut Scene) -> anyhow::Result<()> {
        let demo = Demo::new(self.fov_y, 16.0 / 9.0)?;
        *scene = demo.scene.clone();
        self.demo = Some(demo);
        Ok(())
    }

    fn update(&mut self, ctx: &mut crate::pipeline::FrameContext<'_>) -> anyhow::Result<()> {
        let Some(demo) = self.demo.as_mut() else {
            anyhow::bail!("DemoApp::update before setup");
        };
        if ctx.input.key_held("Escape") {
            ctx.request_exit();
        }
        // The demo's own scene is the working copy; App hands the pipeline the edited one.
        std::mem::swap(&mut demo.scene, ctx.scene);
        let result = (|| {
            demo.animate(ctx.time)?;
            if self.orbit {
                let a = ((ctx.time % 60.0) / 60.0) as f32 * TAU;
                let eye = Vec3::new(4.5 * a.sin(), 1.7, 4.5 * a.cos());
                demo.look(eye, DEFAULT_LOOK_AT)?;
            }
            let (w, h) = ctx.window().size;
            let aspect = w.max(1) as f32 / h.max(1) as f32;
            let cam = demo.camera();
            demo.scene.node_mut(cam)?.content = lockstep_scene::NodeContent::Camera(
                Camera::perspective(self.fov_y, aspect, 0.05, 100.0),
            );
            Ok::<(), SceneError>(())
        })();
        std::mem::swap(&mut demo.scene, ctx.scene);
        Ok(result?)
    }
}

/// The demo as a cluster application ([`crate::app::ClusterApp`]): what `lockstep master`
/// and `lockstep node` run unless told otherwise. Every process builds the scene; the master
/// animates it.
#[derive(Default)]
pub struct DemoCluster {
    demo: Option<Demo>,
}

impl crate::app::ClusterApp for DemoCluster {
    fn name(&self) -> &str {
        "demo"
    }

    fn setup(&mut self, setup: &mut crate::app::Setup<'_>) -> anyhow::Result<()> {
        let demo = Demo::new(1.0, 1.0)?;
        *setup.scene = demo.scene.clone();
        self.demo = Some(demo);
        Ok(())
    }

    fn update(&mut self, frame: &mut crate::app::MasterFrame<'_>) -> anyhow::Result<()> {
        let Some(demo) = self.demo.as_mut() else {
            anyhow::bail!("DemoCluster::update before setup");
        };
        // The demo's own scene is the working copy while it animates.
        std::mem::swap(&mut demo.scene, frame.scene);
        let animated = demo.animate(frame.info.time);
        std::mem::swap(&mut demo.scene, frame.scene);
        Ok(animated?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_has_a_few_hundred_instanced_objects_and_animates_deterministically() {
        let mut a = Demo::new(1.0, 16.0 / 9.0).unwrap();
        let mut b = Demo::new(1.0, 16.0 / 9.0).unwrap();
        assert!(a.scene.node_count() > RING_CUBES + 10);
        a.animate(12.34).unwrap();
        b.animate(12.34).unwrap();
        let id = a.scene.find("green ball").unwrap();
        assert_eq!(
            a.scene.node(id).unwrap().transform,
            b.scene.node(id).unwrap().transform
        );
        let before = a.scene.node(id).unwrap().transform;
        a.animate(12.6).unwrap();
        assert_ne!(a.scene.node(id).unwrap().transform, before);
    }

    /// The digest every process of a cluster compares (`demo`, `master --verify`, `soak`) is
    /// fixed by XXH3's specification and the scene: a build or toolchain that computes another
    /// value for frame 0 of the demo fails here. (The demo's spheres and ring come from `sin`
    /// and `cos`, so this value also holds the platform's maths library to its results:
    /// `lockstep_cluster`'s digest tests pin a scene without them.)
    #[test]
    fn the_demo_scene_at_frame_0_has_a_fixed_digest() {
        // As `lockstep master` builds and animates it.
        let mut demo = Demo::new(1.0, 1.0).unwrap();
        demo.animate(0.0).unwrap();
        assert_eq!(
            format!("{:016x}", lockstep_cluster::scene_hash(&demo.scene)),
            "6044d0e6ed70a00e"
        );
    }
}
