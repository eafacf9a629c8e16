//! The App → Cull → Draw pipeline under every threading model, rendering for real.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::time::Duration;

use lockstep::pipeline::{
    App, Capture, CapturedFrame, FrameContext, FrameStats, PipelineConfig, RunReport, Target,
    ThreadingModel,
};
use lockstep::prelude::*;
use lockstep::scene::{MaterialId, MeshId, Node as SceneNode};

const MODELS: [&str; 4] = ["", "/Draw", "Cull", "Cull/Draw"];
const W: u32 = 64;
const H: u32 = 48;

/// A red square whose x position and green tint are functions of the frame number.
struct Slider {
    square: Option<NodeId>,
    fail_at: Option<(u64, &'static str)>,
}

fn x_of(frame: u64) -> f32 {
    -2.0 + 0.1 * (frame % 40) as f32
}

fn green_of(frame: u64) -> u8 {
    ((frame * 37) % 200) as u8
}

fn add_camera(scene: &mut Scene) {
    let cam = scene
        .add(
            SceneNode::camera(Camera::perspective(
                60f32.to_radians(),
                W as f32 / H as f32,
                0.1,
                50.0,
            ))
            .named("camera")
            .with_transform(Transform::from_translation(Vec3::new(0.0, 0.0, 5.0))),
            None,
        )
        .unwrap();
    scene.active_camera = Some(cam);
}

impl App for Slider {
    fn setup(&mut self, scene: &mut Scene) -> anyhow::Result<()> {
        scene.background = Color::BLACK;
        add_camera(scene);
        let quad = scene.add_mesh(Mesh::quad(1.0, 1.0));
        let mat = scene.add_material(Material::unlit(Color::WHITE))?;
        self.square = Some(scene.add(SceneNode::mesh(quad, mat).named("square"), None)?);
        Ok(())
    }

    fn update(&mut self, ctx: &mut FrameContext<'_>) -> anyhow::Result<()> {
        if let Some((at, what)) = self.fail_at
            && ctx.frame == at
        {
            match what {
                "app" => anyhow::bail!("the app gives up"),
                "cull" => {
                    let cam = ctx.scene.find("camera").unwrap();
                    ctx.scene.remove(cam)?;
                }
                "exit" => ctx.request_exit(),
                _ => {}
            }
        }
        let id = self.square.unwrap();
        let f = ctx.frame;
        ctx.scene.set_transform(
            id,
            Transform::from_translation(Vec3::new(x_of(f), 0.0, 0.0)),
        )?;
        ctx.scene.node_mut(id)?.tint = Color::from_srgb8(255, green_of(f), 0);
        Ok(())
    }
}

fn config(model: &str, frames: u64) -> PipelineConfig {
    let mut c = PipelineConfig::offscreen(W, H);
    c.threading = model.parse().unwrap();
    c.frames = Some(frames);
    c.fixed_dt = Some(1.0 / 60.0);
    c
}

/// Runs on another thread and fails the test if the pipeline does not end within a minute.
fn run_guarded(
    app: impl App + Send + 'static,
    config: PipelineConfig,
) -> anyhow::Result<RunReport> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut app = app;
        let _ = tx.send(lockstep::pipeline::run(&mut app, config));
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the pipeline ended within 60 s (no deadlock)")
}

/// Where frame F's square centre lands, in pixels: x · (W/2) / (5 · tan 30° · aspect).
fn expected_x(frame: u64) -> f32 {
    let half_w = 5.0 * 30f32.to_radians().tan() * W as f32 / H as f32;
    (x_of(frame) / half_w * 0.5 + 0.5) * W as f32
}

#[test]
fn every_captured_frame_shows_exactly_its_own_app_state() {
    for model in MODELS {
        let (tx, rx) = mpsc::channel::<CapturedFrame>();
        let mut c = config(model, 45);
        c.capture = Some(Capture { every: 1, sink: tx });
        let report = run_guarded(
            Slider {
                square: None,
                fail_at: None,
            },
            c,
        )
        .unwrap();
        assert_eq!(report.frames, 45, "model '{model}'");
        let frames: Vec<CapturedFrame> = rx.try_iter().collect();
        assert_eq!(
            frames.iter().map(|f| f.frame).collect::<Vec<_>>(),
            (0..45).collect::<Vec<_>>(),
            "model '{model}'"
        );
        for f in &frames {
            let img = &f.image;
            let (mut sx, mut n, mut green) = (0f32, 0f32, HashSet::new());
            for y in 0..img.height {
                for x in 0..img.width {
                    let p = img.pixel(x, y).unwrap();
                    if p[0] > 200 {
                        sx += x as f32 + 0.5;
                        n += 1.0;
                        green.insert(p[1]);
                    }
                }
            }
            assert!(
                n > 40.0,
                "model '{model}' frame {}: square not drawn",
                f.frame
            );
            let cx = sx / n;
            assert!(
                (cx - expected_x(f.frame)).abs() < 0.75,
                "model '{model}' frame {}: square at x {cx}, expected {}",
                f.frame,
                expected_x(f.frame)
            );
            assert_eq!(
                green.into_iter().collect::<Vec<_>>(),
                vec![green_of(f.frame)],
                "model '{model}' frame {}: tint of another frame",
                f.frame
            );
        }
    }
}

#[test]
fn stages_run_on_the_threads_the_model_names() {
    let cases: [(&str, [&str; 3]); 5] = [
        ("", ["main", "main", "main"]),
        ("/Draw", ["main", "main", "Draw"]),
        ("Cull", ["main", "Cull", "Cull"]),
        ("Cull/Cull", ["main", "Cull", "Cull"]),
        ("Cull/Draw", ["main", "Cull", "Draw"]),
    ];
    for (model, [app, cull, draw]) in cases {
        let (tx, rx) = mpsc::channel::<FrameStats>();
        let mut c = config(model, 5);
        c.stats = Some(tx);
        run_guarded(
            Slider {
                square: None,
                fail_at: None,
            },
            c,
        )
        .unwrap();
        let stats: Vec<FrameStats> = rx.try_iter().collect();
        assert_eq!(stats.len(), 5);
        for s in &stats {
            let got = [&*s.app.thread, &*s.cull.thread, &*s.draw.thread];
            // The pipeline's "main" is the thread that called run (here a test thread).
            let want = [app, cull, draw].map(|t| if t == "main" { None } else { Some(t) });
            for (g, w) in got.iter().zip(want) {
                if let Some(w) = w {
                    assert_eq!(*g, w, "model '{model}'");
                } else {
                    assert!(
                        *g != "Cull" && *g != "Draw",
                        "model '{model}': {g} should be the caller's thread"
                    );
                }
            }
            assert!(s.draw.busy_ms > 0.0);
        }
    }
}

/// Records, for the OS, which thread names exist while frames run.
struct ThreadSpy {
    inner: Slider,
    names: Arc<std::sync::Mutex<HashSet<String>>>,
}

impl App for ThreadSpy {
    fn setup(&mut self, scene: &mut Scene) -> anyhow::Result<()> {
        self.inner.setup(scene)
    }
    fn update(&mut self, ctx: &mut FrameContext<'_>) -> anyhow::Result<()> {
        if ctx.frame == 3 {
            for task in std::fs::read_dir("/proc/self/task")? {
                let comm = std::fs::read_to_string(task?.path().join("comm"))?;
                self.names.lock().unwrap().insert(comm.trim().to_string());
            }
        }
        self.inner.update(ctx)
    }
}

#[test]
fn the_os_sees_the_thread_names() {
    let names = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let spy = ThreadSpy {
        inner: Slider {
            square: None,
            fail_at: None,
        },
        names: names.clone(),
    };
    let mut c = config("CullStage/DrawStage", 6);
    c.threading = "CullStage/DrawStage".parse().unwrap();
    run_guarded(spy, c).unwrap();
    let names = names.lock().unwrap();
    assert!(
        names.contains("CullStage") && names.contains("DrawStage"),
        "{names:?}"
    );
}

/// Edits one node every frame and counts how many versions of it are still alive.
struct VersionCounter {
    square: Option<NodeId>,
    versions: Vec<Weak<SceneNode>>,
    most_alive: Arc<std::sync::atomic::AtomicUsize>,
}

impl App for VersionCounter {
    fn setup(&mut self, scene: &mut Scene) -> anyhow::Result<()> {
        let mut s = Slider {
            square: None,
            fail_at: None,
        };
        s.setup(scene)?;
        self.square = s.square;
        Ok(())
    }
    fn update(&mut self, ctx: &mut FrameContext<'_>) -> anyhow::Result<()> {
        let id = self.square.unwrap();
        ctx.scene.set_transform(
            id,
            Transform::from_translation(Vec3::X * ctx.frame as f32 * 0.001),
        )?;
        self.versions
            .push(Arc::downgrade(ctx.scene.node_shared(id)?));
        self.versions.retain(|w| w.strong_count() > 0);
        self.most_alive
            .fetch_max(self.versions.len(), Ordering::Relaxed);
        Ok(())
    }
}

#[test]
fn at_most_three_versions_of_changed_data_are_alive() {
    for model in MODELS {
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let app = VersionCounter {
            square: None,
            versions: Vec::new(),
            most_alive: most.clone(),
        };
        run_guarded(app, config(model, 200)).unwrap();
        let most = most.load(Ordering::Relaxed);
        assert!(
            (1..=3).contains(&most),
            "model '{model}': {most} versions alive at once"
        );
    }
}

/// Heavy edits: moves hundreds of nodes, adds and removes nodes, recolours materials.
struct Churn {
    mesh: Option<MeshId>,
    mats: Vec<MaterialId>,
    nodes: Vec<NodeId>,
}

impl App for Churn {
    fn setup(&mut self, scene: &mut Scene) -> anyhow::Result<()> {
        add_camera(scene);
        self.mesh = Some(scene.add_mesh(Mesh::cube(0.05)));
        for i in 0..4 {
            self.mats.push(scene.add_material(Material::lit(Color::rgb(
                i as f32 / 4.0,
                0.5,
                0.5,
            )))?);
        }
        for i in 0..300 {
            let n = SceneNode::mesh(self.mesh.unwrap(), self.mats[i % 4]);
            self.nodes.push(scene.add(n, None)?);
        }
        Ok(())
    }
    fn update(&mut self, ctx: &mut FrameContext<'_>) -> anyhow::Result<()> {
        let f = ctx.frame as f32;
        for (i, id) in self.nodes.iter().enumerate() {
            let a = f * 0.01 + i as f32;
            ctx.scene.set_transform(
                *id,
                Transform::from_translation(Vec3::new(a.cos() * 2.0, a.sin() * 1.5, 0.0)),
            )?;
        }
        // Replace ten nodes and recolour one material every frame.
        for k in 0..10 {
            let i = (ctx.frame as usize * 10 + k) % self.nodes.len();
            ctx.scene.remove(self.nodes[i])?;
            let n = SceneNode::mesh(self.mesh.unwrap(), self.mats[k % 4]);
            self.nodes[i] = ctx.scene.add(n, None)?;
        }
        let m = self.mats[ctx.frame as usize % 4];
        ctx.scene.set_material(
            m,
            Material::lit(Color::rgb((f * 0.1).sin().abs(), 0.4, 0.6)),
        )?;
        Ok(())
    }
}

#[test]
fn five_thousand_frames_of_heavy_edits_end_cleanly_under_every_model() {
    for model in MODELS {
        let mut c = config(model, 5000);
        c.target = Target::Offscreen {
            width: 16,
            height: 16,
        };
        let (tx, rx) = mpsc::channel::<FrameStats>();
        c.stats = Some(tx);
        let report = run_guarded(
            Churn {
                mesh: None,
                mats: Vec::new(),
                nodes: Vec::new(),
            },
            c,
        )
        .unwrap_or_else(|e| panic!("model '{model}': {e:#}"));
        assert_eq!(report.frames, 5000, "model '{model}'");
        // Every frame went through all three stages, once and in order, on as many threads
        // as the model names.
        let stats: Vec<FrameStats> = rx.try_iter().collect();
        assert_eq!(
            stats.iter().map(|s| s.frame).collect::<Vec<_>>(),
            (0..5000).collect::<Vec<_>>(),
            "model '{model}'"
        );
        let threads: HashSet<&str> = stats
            .iter()
            .flat_map(|s| [&*s.app.thread, &*s.cull.thread, &*s.draw.thread])
            .collect();
        assert_eq!(
            threads.len(),
            model.parse::<ThreadingModel>().unwrap().thread_count(),
            "model '{model}': {threads:?}"
        );
    }
}

#[test]
fn a_failure_in_any_stage_ends_the_run_with_its_reason_and_no_deadlock() {
    for model in MODELS {
        // App: update returns an error.
        let err = run_guarded(
            Slider {
                square: None,
                fail_at: Some((20, "app")),
            },
            config(model, 100),
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("App update of frame 20: the app gives up"),
            "model '{model}': {err:#}"
        );

        // Cull: the scene loses its camera.
        let err = run_guarded(
            Slider {
                square: None,
                fail_at: Some((20, "cull")),
            },
            config(model, 100),
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("frame 20: the scene has no active camera"),
            "model '{model}': {err:#}"
        );

        // Draw: the receiver of captured frames goes away.
        let (tx, rx) = mpsc::channel::<CapturedFrame>();
        drop(rx);
        let mut c = config(model, 100);
        c.capture = Some(Capture {
            every: 10,
            sink: tx,
        });
        let err = run_guarded(
            Slider {
                square: None,
                fail_at: None,
            },
            c,
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("frame 0: nobody receives captured frames"),
            "model '{model}': {err:#}"
        );

        // App asks to exit: a clean end after that frame.
        let r = run_guarded(
            Slider {
                square: None,
                fail_at: Some((30, "exit")),
            },
            config(model, 100),
        )
        .unwrap();
        assert_eq!(r.frames, 31, "model '{model}'");

        // Stopped from outside (as Ctrl-C does), while running without a frame limit: once
        // frame 10 has been drawn.
        let stop = Arc::new(AtomicBool::new(false));
        let mut c = config(model, 0);
        c.frames = None;
        c.stop = stop.clone();
        let (tx, rx) = mpsc::channel::<FrameStats>();
        c.stats = Some(tx);
        let stopper = std::thread::spawn(move || {
            for s in rx {
                if s.frame == 10 {
                    stop.store(true, Ordering::Relaxed);
                }
            }
        });
        let r = run_guarded(
            Slider {
                square: None,
                fail_at: None,
            },
            c,
        )
        .unwrap();
        stopper.join().unwrap();
        // It ended (no deadlock: run_guarded's watchdog) after frame 10 was drawn.
        assert!(r.frames >= 11, "model '{model}': {}", r.frames);
    }
}

#[test]
fn window_size_requests_resize_an_offscreen_target_and_are_reported_back() {
    /// (frame, applied size App saw at its start)
    type Seen = Arc<std::sync::Mutex<Vec<(u64, (u32, u32))>>>;
    struct Resizer {
        inner: Slider,
        seen: Seen,
    }
    impl App for Resizer {
        fn setup(&mut self, scene: &mut Scene) -> anyhow::Result<()> {
            self.inner.setup(scene)
        }
        fn update(&mut self, ctx: &mut FrameContext<'_>) -> anyhow::Result<()> {
            self.seen
                .lock()
                .unwrap()
                .push((ctx.frame, ctx.window().size));
            if ctx.frame == 5 {
                ctx.request_window(lockstep::pipeline::WindowRequest {
                    size: Some((32, 24)),
                    title: Some("resized".into()),
                    ..Default::default()
                });
            }
            self.inner.update(ctx)
        }
    }
    for model in MODELS {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<CapturedFrame>();
        let mut c = config(model, 12);
        c.capture = Some(Capture { every: 1, sink: tx });
        run_guarded(
            Resizer {
                inner: Slider {
                    square: None,
                    fail_at: None,
                },
                seen: seen.clone(),
            },
            c,
        )
        .unwrap();
        let sizes: Vec<(u64, (u32, u32))> = rx
            .try_iter()
            .map(|f| (f.frame, (f.image.width, f.image.height)))
            .collect();
        // Draw applies frame 5's request when it draws frame 5.
        for (frame, size) in &sizes {
            let want = if *frame < 5 { (W, H) } else { (32, 24) };
            assert_eq!(*size, want, "model '{model}' frame {frame}");
        }
        // App reads the applied size back a few frames later (Draw may lag by two frames).
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].1, (W, H));
        assert_eq!(
            seen.last().unwrap().1,
            (32, 24),
            "model '{model}': {seen:?}"
        );
        assert!(
            seen.iter().all(|(f, s)| *f > 5 || *s == (W, H)),
            "model '{model}': applied too early {seen:?}"
        );
    }
}
