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

/// The one light of both benchmark scenes: white, from above and in front.
fn add_key_light(s: &mut Scene) -> Result<()> {
    s.add(
        Node::light(Light::directional(Color::WHITE, 1.0))
            .with_transform(Transform::IDENTITY.with_rotation(Quat::from_rotation_x(-0.6))),
        None,
    )?;
    Ok(())
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
    add_key_light(&mut s)?;
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

/// Arguments of `lockstep bench pipeline`.
#[derive(Debug, Args)]
pub struct BenchPipelineArgs {
    /// Milliseconds of CPU work the App stage does per frame (simulated user code). Default:
    /// as long as Cull + Draw take, measured single-threaded before the run.
    #[arg(long = "app-ms", value_parser = parse_ms)]
    app_ms: Option<f64>,
    /// Mesh nodes Cull traverses and tests each frame (outside the view, so never drawn).
    #[arg(long = "cull-nodes", default_value = "20000", value_parser = |s: &str| ranged(s, 0, 2_000_000))]
    cull_nodes: u64,
    /// Triangles Draw renders each frame (one lit sphere).
    #[arg(long, default_value = "100000", value_parser = |s: &str| ranged(s, 8, 20_000_000))]
    triangles: u64,
    /// Target size, WIDTHxHEIGHT.
    #[arg(long, default_value = "640x360")]
    size: Size,
    /// Measured frames per threading model (after 10 warm-up frames).
    #[arg(long, default_value = "120", value_parser = |s: &str| ranged(s, 2, 100_000))]
    frames: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    gpu: GpuArgs,
}

fn parse_ms(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number of milliseconds"))?;
    if !(0.0..=1000.0).contains(&v) {
        return Err(format!("{v} ms is outside 0 to 1000"));
    }
    Ok(v)
}

/// The workload: App burns `app_ms` of CPU and moves a node; Cull walks and tests `nodes`
/// small cubes, all placed beside the view so that they cost Cull but not Draw; Draw renders
/// one sphere of about `triangles` triangles. Each stage's cost is thus set by one option.
struct Workload {
    app_ms: f64,
    nodes: u64,
    triangles: u64,
    aspect: f32,
    spinner: Option<lockstep::scene::NodeId>,
    clock: std::sync::Arc<std::sync::Mutex<Vec<Instant>>>,
    warmup: u64,
}

impl lockstep::pipeline::App for Workload {
    fn setup(&mut self, s: &mut Scene) -> anyhow::Result<()> {
        let seg = (1.0 + (1.0 + self.triangles as f64).sqrt())
            .round()
            .max(4.0) as u32;
        let sphere = s.add_mesh(Mesh::uv_sphere(1.0, seg, seg / 2));
        let cube = s.add_mesh(Mesh::cube(0.02));
        let mat = s.add_material(Material::lit(Color::from_srgb8(200, 180, 150)))?;
        self.spinner = Some(s.add(Node::mesh(sphere, mat), None)?);
        let side = (self.nodes as f64).sqrt().ceil().max(1.0) as u64;
        for i in 0..self.nodes {
            let (x, y) = (
                (i % side) as f32 / side as f32,
                (i / side) as f32 / side as f32,
            );
            // Beside the view (x ≥ 20 m at 4 m distance): tested by Cull, never drawn.
            let at = Vec3::new(20.0 + x * 6.0, y * 3.4 - 1.7, -0.5);
            s.add(
                Node::mesh(cube, mat).with_transform(Transform::from_translation(at)),
                None,
            )?;
        }
        add_key_light(s)?;
        let cam = s.add(
            Node::camera(Camera::perspective(
                60f32.to_radians(),
                self.aspect,
                0.1,
                50.0,
            ))
            .with_transform(Transform::from_translation(Vec3::new(0.0, 0.0, 4.0))),
            None,
        )?;
        s.active_camera = Some(cam);
        Ok(())
    }

    fn update(&mut self, ctx: &mut lockstep::pipeline::FrameContext<'_>) -> anyhow::Result<()> {
        if ctx.frame >= self.warmup {
            if let Ok(mut c) = self.clock.lock() {
                c.push(Instant::now());
            }
        }
        // Simulated application work: real computation for the requested time.
        let budget = Duration::from_secs_f64(self.app_ms / 1e3);
        let start = Instant::now();
        let mut x = ctx.frame;
        while start.elapsed() < budget {
            for i in 0..256u64 {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i);
            }
            std::hint::black_box(x);
        }
        if let Some(id) = self.spinner {
            let r = Quat::from_rotation_y(ctx.frame as f32 * 0.02);
            ctx.scene
                .set_transform(id, Transform::IDENTITY.with_rotation(r))?;
        }
        Ok(())
    }
}

#[derive(Debug, Serialize)]
struct ModelResult {
    threading_model: String,
    threads: usize,
    fps: f64,
    speedup: f64,
    app_ms: f64,
    cull_ms: f64,
    draw_ms: f64,
    latency_ms: f64,
    latency_frames: f64,
    added_latency_frames: f64,
}

pub fn run_pipeline(args: BenchPipelineArgs) -> Result<()> {
    use lockstep::pipeline::{self, FrameStats, PipelineConfig};
    const WARMUP: u64 = 10;
    let models = ["", "/Draw", "Cull", "Cull/Draw"];
    let mut results: Vec<ModelResult> = Vec::new();
    let mut adapter = String::new();
    let run_model = |model: &str,
                     app_ms: f64,
                     frames: u64|
     -> Result<(Vec<FrameStats>, Vec<Instant>, pipeline::RunReport)> {
        let clock = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut app = Workload {
            app_ms,
            nodes: args.cull_nodes,
            triangles: args.triangles,
            aspect: args.size.width as f32 / args.size.height as f32,
            spinner: None,
            clock: clock.clone(),
            warmup: WARMUP,
        };
        let (tx, rx) = std::sync::mpsc::channel::<FrameStats>();
        let mut config = PipelineConfig::offscreen(args.size.width, args.size.height);
        config.threading = model.parse().map_err(anyhow::Error::msg)?;
        config.frames = Some(WARMUP + frames);
        config.backend = args.gpu.backend;
        config.stats = Some(tx);
        let report = pipeline::run(&mut app, config)?;
        let stats: Vec<FrameStats> = rx.try_iter().filter(|s| s.frame >= WARMUP).collect();
        let times = clock.lock().map(|c| c.clone()).unwrap_or_default();
        Ok((stats, times, report))
    };
    let med = |stats: &[FrameStats], pick: fn(&FrameStats) -> f64| {
        let v: Vec<Duration> = stats
            .iter()
            .map(|s| Duration::from_secs_f64(pick(s) / 1e3))
            .collect();
        Summary::of(&v).map_or(0.0, |s| s.median_ms)
    };
    let (app_ms, calibrated) = match args.app_ms {
        Some(ms) => (ms, false),
        None => {
            let (stats, _, _) = run_model("", 0.0, 30)?;
            (
                med(&stats, |s| s.cull.busy_ms) + med(&stats, |s| s.draw.busy_ms),
                true,
            )
        }
    };
    for model in models {
        let (stats, times, report) = run_model(model, app_ms, args.frames)?;
        adapter = report.adapter.to_string();
        let (first, last) = (times.first().copied(), times.last().copied());
        let fps = match (first, last) {
            (Some(a), Some(b)) if times.len() > 1 => {
                (times.len() - 1) as f64 / b.duration_since(a).as_secs_f64()
            }
            _ => 0.0,
        };
        let med = |pick: fn(&FrameStats) -> f64| med(&stats, pick);
        let latency_ms = med(|s| s.latency_ms);
        let latency_frames = latency_ms * fps / 1e3;
        results.push(ModelResult {
            threading_model: model.to_string(),
            threads: report.threading.thread_count(),
            fps,
            speedup: 0.0,
            app_ms: med(|s| s.app.busy_ms),
            cull_ms: med(|s| s.cull.busy_ms),
            draw_ms: med(|s| s.draw.busy_ms),
            latency_ms,
            latency_frames,
            added_latency_frames: 0.0,
        });
    }
    let (base_fps, base_latency) = (results[0].fps, results[0].latency_frames);
    for r in &mut results {
        r.speedup = if base_fps > 0.0 {
            r.fps / base_fps
        } else {
            0.0
        };
        r.added_latency_frames = r.latency_frames - base_latency;
    }
    if args.json {
        #[derive(Serialize)]
        struct Out<'a> {
            benchmark: &'static str,
            adapter: String,
            app_ms: f64,
            app_ms_calibrated: bool,
            cull_nodes: u64,
            triangles: u64,
            width: u32,
            height: u32,
            frames: u64,
            models: &'a [ModelResult],
        }
        let out = Out {
            benchmark: "pipeline",
            adapter,
            app_ms,
            app_ms_calibrated: calibrated,
            cull_nodes: args.cull_nodes,
            triangles: args.triangles,
            width: args.size.width,
            height: args.size.height,
            frames: args.frames,
            models: &results,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "lockstep bench pipeline: App {app_ms:.2} ms of work{}, {} nodes to cull, {} triangles, {}x{}, {} frames per model",
        if calibrated {
            " (= Cull + Draw, measured)"
        } else {
            ""
        },
        args.cull_nodes,
        args.triangles,
        args.size.width,
        args.size.height,
        args.frames
    );
    println!("adapter: {adapter}");
    println!(
        "{:<12} {:>7} {:>7} {:>9} {:>8} {:>8} {:>8} {:>16} {:>7}",
        "model",
        "threads",
        "fps",
        "speed-up",
        "app ms",
        "cull ms",
        "draw ms",
        "latency frames",
        "added"
    );
    for r in &results {
        println!(
            "{:<12} {:>7} {:>7.1} {:>8.2}x {:>8.2} {:>8.2} {:>8.2} {:>16.2} {:>+7.2}",
            format!("\"{}\"", r.threading_model),
            r.threads,
            r.fps,
            r.speedup,
            r.app_ms,
            r.cull_ms,
            r.draw_ms,
            r.latency_frames,
            r.added_latency_frames
        );
    }
    Ok(())
}
