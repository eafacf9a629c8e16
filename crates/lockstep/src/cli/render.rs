/*!
`lockstep render`: the demo scene or a glTF file, drawn offscreen to PNG files — from a free
camera, or as one node of a cluster file sees it (one PNG per viewport and eye).
*/
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use lockstep::demo::{DEFAULT_EYE, DEFAULT_LOOK_AT, Demo};
use lockstep::display::ClusterConfig;
use lockstep::node_views::render_views;
use lockstep::render::import::load_gltf;
use lockstep::render::{DrawList, OffscreenTarget, Renderer, View};
use lockstep::scene::glam::Vec3;
use lockstep::scene::{Camera, Color, Node, Scene, Transform};
use lockstep::view::{ViewApp, add_default_light};

use super::{GpuArgs, Size, frame_path, parse_fov, parse_vec3, ranged};

/// Frames per second of the animation clock: frame F shows time F / 60 s.
const FRAME_RATE: f64 = 60.0;

/// Arguments of `lockstep render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// `demo` for the built-in scene, or a glTF 2.0 file (.gltf or .glb).
    #[arg(long, default_value = "demo")]
    scene: String,
    /// Image size in pixels, WIDTHxHEIGHT.
    #[arg(long, default_value = "640x360", conflicts_with = "config")]
    size: Size,
    /// Camera position X,Y,Z in metres (default: the demo's eye, or framing the model).
    #[arg(long, value_parser = parse_vec3, allow_hyphen_values = true, conflicts_with = "config")]
    eye: Option<Vec3>,
    /// Point the camera looks at, X,Y,Z.
    #[arg(long = "look-at", value_parser = parse_vec3, allow_hyphen_values = true, conflicts_with = "config")]
    look_at: Option<Vec3>,
    /// Vertical field of view in degrees.
    #[arg(long, default_value = "60", value_parser = parse_fov, conflicts_with = "config")]
    fov: f32,
    /// Number of frames; frame F shows the animation at F / 60 s. More than one frame writes
    /// OUT-0000.png, OUT-0001.png, …
    #[arg(long, default_value = "1", value_parser = |s: &str| ranged(s, 1, 100_000), conflicts_with = "config")]
    frames: u64,
    /// Render as node NODE of this cluster file sees the scene: one PNG per viewport and eye,
    /// named NODE-WINDOW-VIEWPORT[-EYE].png, written into the folder --out.
    #[arg(long, requires = "node")]
    config: Option<PathBuf>,
    /// The node of --config to render.
    #[arg(long, requires = "config")]
    node: Option<String>,
    /// With --config: the frame to render (the animation at FRAME / 60 s).
    #[arg(long, default_value = "0", value_parser = |s: &str| ranged(s, 0, 1 << 40), requires = "config")]
    frame: u64,
    /// Output PNG file; with --config, the folder for the PNG files.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    gpu: GpuArgs,
}

/// What to draw and how to move it between frames.
enum Source {
    Demo(Demo),
    /// A loaded model; its camera is the scene's active camera.
    Model(Scene),
}

impl Source {
    fn scene(&self) -> &Scene {
        match self {
            Source::Demo(d) => &d.scene,
            Source::Model(scene) => scene,
        }
    }
}

pub fn run(args: RenderArgs) -> Result<()> {
    if let (Some(config), Some(node)) = (&args.config, &args.node) {
        return run_cluster_node(&args, config, node);
    }
    let aspect = args.size.width as f32 / args.size.height as f32;
    let fov = args.fov.to_radians();
    if let (Some(e), Some(t)) = (args.eye, args.look_at)
        && e.distance(t) < 1e-6
    {
        bail!("--eye and --look-at are the same point: the camera needs a direction");
    }
    let mut source = if args.scene == "demo" {
        let mut demo = Demo::new(fov, aspect).context("building the demo scene")?;
        demo.look(
            args.eye.unwrap_or(DEFAULT_EYE),
            args.look_at.unwrap_or(DEFAULT_LOOK_AT),
        )?;
        Source::Demo(demo)
    } else {
        Source::Model(model_scene(
            Path::new(&args.scene),
            fov,
            aspect,
            args.eye,
            args.look_at,
        )?)
    };

    let gpu = args.gpu.open()?;
    let target = OffscreenTarget::new(&gpu, args.size.width, args.size.height)?;
    let mut renderer = Renderer::new(&gpu, OffscreenTarget::FORMAT);
    let mut list = DrawList::default();
    let mut pixels = Vec::new();
    for frame in 0..args.frames {
        if let Source::Demo(demo) = &mut source {
            demo.animate(frame as f64 / FRAME_RATE)?;
        }
        let scene = source.scene();
        let camera = match &source {
            Source::Demo(d) => d.camera(),
            Source::Model(scene) => scene
                .active_camera
                .context("the model scene has no camera")?,
        };
        list.cull(scene, &View::from_camera(scene, camera)?, frame)?;
        target.render(&gpu, &mut renderer, scene, &list, true)?;
        target.read_into(&gpu, &mut pixels)?;
        let path = frame_path(&args.out, frame, args.frames);
        lockstep::render::write_png(&path, target.width(), target.height(), &pixels)?;
        let s = list.stats;
        println!(
            "wrote {} ({}x{}, frame {frame}: {} objects drawn, {} culled, {} draw calls, {} triangles)",
            path.display(),
            target.width(),
            target.height(),
            s.drawn,
            s.culled,
            s.batches,
            s.triangles
        );
    }
    Ok(())
}

/// Loads a model, adds lights if it has none, and a camera framing it unless told where.
pub(super) fn model_scene(
    path: &Path,
    fov: f32,
    aspect: f32,
    eye: Option<Vec3>,
    look_at: Option<Vec3>,
) -> Result<Scene> {
    let mut scene = Scene::new();
    scene.background = Color::from_srgb8(18, 22, 34);
    let report = load_gltf(path, &mut scene, None)?;
    for w in &report.warnings {
        eprintln!("warning: {}: {w}", path.display());
    }
    add_default_light(&mut scene)?;
    let bounds = scene.world_bounds();
    let (center, radius) = bounds
        .map(|b| (b.center(), b.radius().max(1e-3)))
        .unwrap_or((Vec3::ZERO, 1.0));
    // Far enough back that the bounding sphere fits the narrower field of view.
    let half_vertical = fov * 0.5;
    let half_horizontal = (half_vertical.tan() * aspect).atan();
    let half = half_vertical.min(half_horizontal);
    let distance = radius / half.sin() * 1.1;
    let target = look_at.unwrap_or(center);
    let eye = eye.unwrap_or(center + Vec3::new(0.0, 0.35, 1.0).normalize() * distance);
    let reach = eye.distance(center) + radius;
    let camera = Camera::perspective(fov, aspect, (reach * 1e-4).max(1e-3), reach * 2.0);
    let id = scene.add(
        Node::camera(camera).with_transform(Transform::looking_at(eye, target, Vec3::Y)),
        None,
    )?;
    scene.active_camera = Some(id);
    Ok(scene)
}

/// `render --config FILE --node NAME`: the node's views of the demo scene (or of a model as
/// `lockstep view` shows it), one PNG per viewport and eye.
fn run_cluster_node(args: &RenderArgs, config: &Path, node: &str) -> Result<()> {
    let cluster = ClusterConfig::load(config)?;
    let scene = if args.scene == "demo" {
        let mut demo = Demo::new(1.0, 1.0).context("building the demo scene")?;
        demo.animate(args.frame as f64 / FRAME_RATE)?;
        demo.scene
    } else {
        // Exactly what `lockstep view` shows before anyone moves.
        lockstep::app::prepare(&mut ViewApp::new(&args.scene), &cluster, None)?.scene
    };
    let views = cluster
        .views_for(node, &cluster.head, lockstep::roles::rig(&scene))
        .with_context(|| {
            let names: Vec<&str> = cluster.nodes.iter().map(|n| n.name.as_str()).collect();
            format!(
                "{}: no node named '{node}' (nodes: {})",
                config.display(),
                names.join(", ")
            )
        })?;
    if views.is_empty() {
        bail!(
            "{}: node '{node}' has no viewports to render",
            config.display()
        );
    }
    let gpu = args.gpu.open()?;
    let mut renderer = Renderer::new(&gpu, OffscreenTarget::FORMAT);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create output folder {}", args.out.display()))?;
    for v in render_views(&gpu, &mut renderer, &scene, &views, args.frame)? {
        let path = args.out.join(format!("{}.png", v.stem));
        v.image.write_png(&path)?;
        println!(
            "wrote {} ({}x{}, frame {})",
            path.display(),
            v.image.width,
            v.image.height,
            args.frame
        );
    }
    Ok(())
}
