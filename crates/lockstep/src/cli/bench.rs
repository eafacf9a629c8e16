/*!
`lockstep bench render`: a grid of lit, instanced spheres with a chosen triangle budget, drawn
frame after frame with and without reading the pixels back. The two modes alternate frame by
frame, so both see the same machine load and their ratio is fair.
*/
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Args;
use lockstep::render::{DrawList, OffscreenTarget, Renderer, View};
use lockstep::scene::glam::{Quat, Vec3};
use lockstep::scene::{Camera, Color, Light, Material, Mesh, Node, Scene, Transform};
use lockstep::stats::Summary;
use serde::Serialize;

use super::{GpuArgs, Size, ranged};

/// Arguments of `lockstep bench render`.
#[derive(Debug, Args)]
pub struct BenchRenderArgs {
    /// Total triangle budget over all instances.
    #[arg(long, default_value = "100000", value_parser = |s: &str| ranged(s, 1, 20_000_000))]
    triangles: u64,
    /// Number of sphere instances (one mesh, drawn instanced).
    #[arg(long, default_value = "400", value_parser = |s: &str| ranged(s, 1, 1_000_000))]
    instances: u64,
    /// Target size, WIDTHxHEIGHT.
    #[arg(long, default_value = "640x360")]
    size: Size,
    /// Measured frames per mode (after 5 warm-up frames).
    #[arg(long, default_value = "100", value_parser = |s: &str| ranged(s, 1, 100_000))]
    frames: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    gpu: GpuArgs,
}

#[derive(Debug, Serialize)]
struct ModeResult {
    mode: &'static str,
    fps: f64,
    #[serde(flatten)]
    frame: Summary,
}

#[derive(Debug, Serialize)]
struct Report {
    benchmark: &'static str,
    adapter: String,
    backend: String,
    width: u32,
    height: u32,
    instances: u64,
    triangles: u64,
    triangles_per_instance: u64,
    frames: u64,
    cull: Summary,
    modes: Vec<ModeResult>,
    /// Mean frame time with read-back divided by mean frame time without.
    readback_cost_ratio: f64,
}

/// The benchmark scene: `instances` spheres in a grid filling the view, one light.
fn bench_scene(instances: u64, triangles: u64, aspect: f32) -> Result<(Scene, u64)> {
    // A UV sphere with s segments and s/2 rings has s·(s − 2) triangles.
    let per = (triangles / instances).max(8) as f64;
    let segments = (1.0 + (1.0 + per).sqrt()).round().max(4.0) as u32;
    let sphere = Mesh::uv_sphere(0.4, segments, segments / 2);
    let per_instance = sphere.triangle_count() as u64;
    let mut s = Scene::new();
    let mesh = s.add_mesh(sphere);
    let mat = s.add_material(Material::lit(Color::from_srgb8(200, 180, 150)))?;
    let cols = ((instances as f32 * aspect).sqrt().ceil() as u64).max(1);
    let rows = instances.div_ceil(cols);
    for i in 0..instances {
        let (c, r) = ((i % cols) as f32, (i / cols) as f32);
        let at = Vec3::new(
            c - (cols - 1) as f32 / 2.0,
            r - (rows - 1) as f32 / 2.0,
            0.0,
        );
        s.add(
            Node::mesh(mesh, mat).with_transform(Transform::from_translation(at)),
            None,
        )?;
    }
    s.add(
        Node::light(Light::directional(Color::WHITE, 1.0))
            .with_transform(Transform::IDENTITY.with_rotation(Quat::from_rotation_x(-0.6))),
        None,
    )?;
    let fov = 60f32.to_radians();
    let half_w = cols as f32 / 2.0 + 0.5;
    let half_h = rows as f32 / 2.0 + 0.5;
    let distance = (half_h / (fov / 2.0).tan()).max(half_w / ((fov / 2.0).tan() * aspect));
    let cam = s.add(
        Node::camera(Camera::perspective(fov, aspect, 0.1, distance * 2.0 + 10.0))
            .with_transform(Transform::from_translation(Vec3::new(0.0, 0.0, distance))),
        None,
    )?;
    s.active_camera = Some(cam);
    Ok((s, per_instance))
}

pub fn run_render(args: BenchRenderArgs) -> Result<()> {
    if args.triangles < args.instances {
        bail!(
            "--triangles {} is less than --instances {}: each instance needs at least one triangle",
            args.triangles,
            args.instances
        );
    }
    let gpu = args.gpu.open()?;
    let (w, h) = (args.size.width, args.size.height);
    let (scene, per_instance) = bench_scene(args.instances, args.triangles, w as f32 / h as f32)?;
    let target = OffscreenTarget::new(&gpu, w, h)?;
    let mut renderer = Renderer::new(&gpu, OffscreenTarget::FORMAT);
    let view = View::from_camera(
        &scene,
        scene.active_camera.expect("bench scene has a camera"),
    )?;
    let mut list = DrawList::default();
    let mut pixels = Vec::new();
    let n = args.frames as usize;
    let (mut plain, mut readback, mut cull) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(2 * n),
    );

    let mut frame = |read: bool, cull_times: &mut Vec<Duration>| -> Result<Duration> {
        let start = Instant::now();
        list.cull(&scene, &view, 0)?;
        cull_times.push(start.elapsed());
        target.render(&gpu, &mut renderer, &scene, &list, read)?;
        if read {
            target.read_into(&gpu, &mut pixels)?;
        } else {
            gpu.wait_idle()?;
        }
        Ok(start.elapsed())
    };
    let mut warmup = Vec::new();
    for i in 0..5 {
        frame(i % 2 == 1, &mut warmup)?;
    }
    for _ in 0..n {
        plain.push(frame(false, &mut cull)?);
        readback.push(frame(true, &mut cull)?);
    }
    let summary = |v: &[Duration]| Summary::of(v).expect("at least one frame was measured");
    let (plain, readback) = (summary(&plain), summary(&readback));
    let report = Report {
        benchmark: "render",
        adapter: gpu.summary.name.clone(),
        backend: gpu.summary.backend.clone(),
        width: w,
        height: h,
        instances: args.instances,
        triangles: per_instance * args.instances,
        triangles_per_instance: per_instance,
        frames: args.frames,
        cull: summary(&cull),
        readback_cost_ratio: readback.mean_ms / plain.mean_ms,
        modes: vec![
            ModeResult {
                mode: "no_readback",
                fps: plain.fps(),
                frame: plain,
            },
            ModeResult {
                mode: "readback",
                fps: readback.fps(),
                frame: readback,
            },
        ],
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "lockstep bench render: {}x{}, {} instances x {} triangles = {} triangles, {} frames per mode",
        report.width,
        report.height,
        report.instances,
        per_instance,
        report.triangles,
        report.frames
    );
    println!("adapter: {} ({})", report.adapter, report.backend);
    println!(
        "{:<14} {:>9} {:>11} {:>9}",
        "mode", "fps", "median ms", "p95 ms"
    );
    for m in &report.modes {
        println!(
            "{:<14} {:>9.1} {:>11.2} {:>9.2}",
            m.mode, m.fps, m.frame.median_ms, m.frame.p95_ms
        );
    }
    println!(
        "cull: median {:.3} ms, p95 {:.3} ms; read-back makes a frame {:.2}x as long",
        report.cull.median_ms, report.cull.p95_ms, report.readback_cost_ratio
    );
    Ok(())
}
