/*!
`lockstep run`: the demo app (or a model) through the App → Cull → Draw pipeline, in a window
or offscreen, with a threading model, statistics and optional frame capture.
*/
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use lockstep::demo::DemoApp;
use lockstep::display::ThreadingModel;
use lockstep::pipeline::{
    self, App, Capture, CapturedFrame, FrameContext, FrameStats, PipelineConfig, RollingTable,
    Target, thread_totals,
};
use lockstep::scene::Scene;
use lockstep::scene::glam::Vec3;
use lockstep::stats::Summary;
use serde::Serialize;

use super::{GpuArgs, Size, ctrl_c, parse_fov, ranged};

/// Arguments of `lockstep run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// `demo` for the built-in animated demo, or a glTF 2.0 file.
    #[arg(long, default_value = "demo")]
    scene: String,
    /// Panda3D threading model: "" (one thread), "/Draw", "Cull", "Cull/Draw"…
    #[arg(long = "threading-model", default_value = "", value_parser = parse_model, allow_hyphen_values = true)]
    threading_model: ThreadingModel,
    /// Open a window (the default when a display is available).
    #[arg(long, conflicts_with = "offscreen")]
    window: bool,
    /// Render offscreen.
    #[arg(long)]
    offscreen: bool,
    /// Stop after N frames (default: until the window closes or Ctrl-C).
    #[arg(long, value_parser = |s: &str| ranged(s, 1, 1 << 40))]
    frames: Option<u64>,
    /// Window or target size, WIDTHxHEIGHT.
    #[arg(long, default_value = "960x540")]
    size: Size,
    /// Vertical field of view in degrees.
    #[arg(long, default_value = "60", value_parser = parse_fov)]
    fov: f32,
    /// Present as fast as possible instead of at the display's refresh.
    #[arg(long)]
    no_vsync: bool,
    /// Print a rolling table of per-stage times once a second.
    #[arg(long)]
    stats: bool,
    /// Write every frame's statistics to this JSON file at the end.
    #[arg(long = "stats-out")]
    stats_out: Option<PathBuf>,
    /// Offscreen: write every Nth frame as OUT/frame-NNNNNN.png.
    #[arg(long = "capture-every", value_parser = |s: &str| ranged(s, 1, 1 << 40), requires = "out")]
    capture_every: Option<u64>,
    /// Folder for captured frames.
    #[arg(long, requires = "capture_every")]
    out: Option<PathBuf>,
    #[command(flatten)]
    gpu: GpuArgs,
}

fn parse_model(s: &str) -> Result<ThreadingModel, String> {
    s.parse()
}

/// A model file shown with a camera circling it.
struct ModelApp {
    path: PathBuf,
    fov_y: f32,
    center: Vec3,
    radius: f32,
    camera: Option<lockstep::scene::NodeId>,
}

impl App for ModelApp {
    fn setup(&mut self, scene: &mut Scene) -> anyhow::Result<()> {
        *scene = super::render::model_scene(&self.path, self.fov_y, 16.0 / 9.0, None, None)?;
        let b = scene.world_bounds();
        self.center = b.map_or(Vec3::ZERO, |b| b.center());
        self.radius = b.map_or(1.0, |b| b.radius().max(1e-3));
        self.camera = scene.active_camera;
        Ok(())
    }

    fn update(&mut self, ctx: &mut FrameContext<'_>) -> anyhow::Result<()> {
        let Some(cam) = self.camera else {
            bail!("the model scene has no camera")
        };
        let a = ((ctx.time % 20.0) / 20.0) as f32 * std::f32::consts::TAU;
        let d = self.radius / (self.fov_y * 0.5).sin() * 1.2;
        let eye = self.center + Vec3::new(a.sin(), 0.35, a.cos()).normalize() * d;
        let (w, h) = ctx.window().size;
        let node = ctx.scene.node_mut(cam)?;
        node.transform = lockstep::scene::Transform::looking_at(eye, self.center, Vec3::Y);
        node.content = lockstep::scene::NodeContent::Camera(lockstep::scene::Camera::perspective(
            self.fov_y,
            w.max(1) as f32 / h.max(1) as f32,
            (d * 1e-3).max(1e-3),
            d * 4.0 + self.radius * 4.0,
        ));
        Ok(())
    }
}

#[derive(Serialize)]
struct StatsFile<'a> {
    threading_model: String,
    adapter: String,
    frames: u64,
    seconds: f64,
    fps: f64,
    app_busy: Option<Summary>,
    cull_busy: Option<Summary>,
    draw_busy: Option<Summary>,
    threads: Vec<pipeline::ThreadTotals>,
    per_frame: &'a [FrameStats],
}

pub fn run(args: RunArgs) -> Result<()> {
    let has_display = std::env::var_os("DISPLAY").is_some_and(|d| !d.is_empty());
    let window = args.window || (!args.offscreen && has_display);
    if args.window && !has_display {
        bail!("--window needs a display: DISPLAY is not set (use --offscreen, or run under Xvfb)");
    }
    if window && args.capture_every.is_some() {
        bail!("--capture-every works with --offscreen only");
    }
    let (w, h) = (args.size.width, args.size.height);
    let stop = ctrl_c()?;

    let (stats_tx, stats_rx) = mpsc::channel::<FrameStats>();
    let keep = args.stats_out.is_some();
    let print = args.stats;
    let printer = std::thread::Builder::new()
        .name("stats".into())
        .spawn(move || {
            let mut all = Vec::new();
            let mut table = RollingTable::new();
            let mut since = Instant::now();
            for s in stats_rx {
                if print {
                    table.push(s.clone());
                    if since.elapsed() >= Duration::from_secs(1) {
                        if let Some(line) = table.flush(since.elapsed()) {
                            println!("{line}");
                        }
                        since = Instant::now();
                    }
                }
                if keep {
                    all.push(s);
                }
            }
            if print && let Some(line) = table.flush(since.elapsed()) {
                println!("{line}");
            }
            all
        })?;

    let (capture, writer) = match (&args.capture_every, &args.out) {
        (Some(every), Some(dir)) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let (tx, rx) = mpsc::channel::<CapturedFrame>();
            let dir = dir.clone();
            let writer = std::thread::Builder::new().name("capture".into()).spawn(
                move || -> Result<()> {
                    for f in rx {
                        let path = dir.join(format!("frame-{:06}.png", f.frame));
                        f.image.write_png(&path)?;
                    }
                    Ok(())
                },
            )?;
            (
                Some(Capture {
                    every: *every,
                    sink: tx,
                }),
                Some(writer),
            )
        }
        _ => (None, None),
    };

    let config = PipelineConfig {
        threading: args.threading_model.clone(),
        target: if window {
            Target::Window {
                width: w,
                height: h,
                title: format!("lockstep — {}", args.scene),
                vsync: !args.no_vsync,
            }
        } else {
            Target::Offscreen {
                width: w,
                height: h,
            }
        },
        frames: args.frames,
        fixed_dt: None,
        backend: args.gpu.backend,
        capture,
        stats: Some(stats_tx),
        stop,
        gate: None,
    };
    eprintln!(
        "running '{}' {} at {w}x{h}, threading model '{}' ({} thread{})",
        args.scene,
        if window { "in a window" } else { "offscreen" },
        args.threading_model,
        args.threading_model.thread_count(),
        if args.threading_model.thread_count() == 1 {
            ""
        } else {
            "s"
        }
    );
    let fov = args.fov.to_radians();
    let started = Instant::now();
    let result = if args.scene == "demo" {
        pipeline::run(&mut DemoApp::new(fov), config)
    } else {
        let mut app = ModelApp {
            path: Path::new(&args.scene).to_path_buf(),
            fov_y: fov,
            center: Vec3::ZERO,
            radius: 1.0,
            camera: None,
        };
        pipeline::run(&mut app, config)
    };
    let seconds = started.elapsed().as_secs_f64();
    let all = printer.join().unwrap_or_default();
    if let Some(w) = writer {
        match w.join() {
            Ok(r) => r?,
            Err(_) => bail!("the capture writer thread panicked"),
        }
    }
    let report = result?;
    eprintln!("adapter: {}", report.adapter);
    let fps = report.frames as f64 / seconds.max(1e-9);
    println!(
        "ran {} frames in {seconds:.2} s ({fps:.1} fps) with threading model '{}'",
        report.frames, report.threading
    );
    if let Some(path) = &args.stats_out {
        let ms = |pick: fn(&FrameStats) -> f64| {
            let v: Vec<Duration> = all
                .iter()
                .map(|f| Duration::from_secs_f64(pick(f) / 1e3))
                .collect();
            Summary::of(&v)
        };
        let file = StatsFile {
            threading_model: report.threading.to_string(),
            adapter: report.adapter.to_string(),
            frames: report.frames,
            seconds,
            fps,
            app_busy: ms(|f| f.app.busy_ms),
            cull_busy: ms(|f| f.cull.busy_ms),
            draw_busy: ms(|f| f.draw.busy_ms),
            threads: thread_totals(&all),
            per_frame: &all,
        };
        let json = serde_json::to_string_pretty(&file)?;
        std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?;
        println!(
            "wrote statistics of {} frames to {}",
            all.len(),
            path.display()
        );
    }
    Ok(())
}
