//! A real window under Xvfb (started here on a free display): App requests a new size and
//! title, Draw applies them, App reads them back, and a screenshot taken by the X server
//! (`xwd`) shows the scene at the new size.
//!
//! winit must own the process's main thread, so this test has its own `main` (harness = false)
//! and runs one window per process.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lockstep::pipeline::{App, FrameContext, PipelineConfig, Target, WindowRequest};
use lockstep::prelude::*;
use lockstep::scene::Node as SceneNode;

/// An X server for this test, killed on drop.
struct Xvfb {
    child: Child,
    display: String,
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_xvfb() -> Xvfb {
    let n = (90..200)
        .find(|n| {
            !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
        })
        .expect("a free X display number");
    let display = format!(":{n}");
    let child = Command::new("Xvfb")
        .args([&display, "-screen", "0", "800x600x24", "-nolisten", "tcp"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xvfb (scripts/setup.sh installs it)");
    let socket = format!("/tmp/.X11-unix/X{n}");
    support::wait_until(
        &format!("Xvfb {display} listening"),
        Duration::from_secs(10),
        || Path::new(&socket).exists().then_some(()),
    );
    Xvfb { child, display }
}

/// The root window as RGB pixels, from `xwd` (X Window Dump, ZPixmap, 24/32 bits).
struct Screenshot {
    width: usize,
    height: usize,
    rgb: Vec<[u8; 3]>,
}

fn screenshot(display: &str) -> Screenshot {
    let out = Command::new("xwd")
        .args(["-root", "-silent", "-display", display])
        .output()
        .expect("xwd (package x11-apps)");
    assert!(
        out.status.success(),
        "xwd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = out.stdout;
    let field = |i: usize| {
        u32::from_be_bytes([d[i * 4], d[i * 4 + 1], d[i * 4 + 2], d[i * 4 + 3]]) as usize
    };
    let (header, format, width, height) = (field(0), field(2), field(4), field(5));
    let (byte_order, bpp, stride) = (field(7), field(11), field(12));
    let (rmask, gmask, bmask, ncolors) = (
        field(14) as u32,
        field(15) as u32,
        field(16) as u32,
        field(19),
    );
    assert_eq!((format, bpp), (2, 32), "expected a 32-bit ZPixmap dump");
    let data = &d[header + ncolors * 12..];
    let channel = |p: u32, mask: u32| ((p & mask) >> mask.trailing_zeros()) as u8;
    let mut rgb = Vec::with_capacity(width * height);
    for y in 0..height {
        for x in 0..width {
            let b = &data[y * stride + x * 4..y * stride + x * 4 + 4];
            let p = if byte_order == 0 {
                u32::from_le_bytes([b[0], b[1], b[2], b[3]])
            } else {
                u32::from_be_bytes([b[0], b[1], b[2], b[3]])
            };
            rgb.push([channel(p, rmask), channel(p, gmask), channel(p, bmask)]);
        }
    }
    Screenshot { width, height, rgb }
}

/// (frame, applied size, applied title) as App saw them at the start of each frame.
type Seen = Arc<Mutex<Vec<(u64, (u32, u32), String)>>>;

/// A green square in the middle of a dark window; at frame 10 it asks for 400×300 and a new
/// title, and once Draw reports the new size it takes a screenshot and ends the run.
struct ResizeApp {
    display: String,
    shot: Arc<Mutex<Option<Screenshot>>>,
    seen: Seen,
    applied_at: Option<u64>,
}

impl App for ResizeApp {
    fn setup(&mut self, scene: &mut Scene) -> anyhow::Result<()> {
        scene.background = Color::from_srgb8(20, 20, 30);
        let quad = scene.add_mesh(Mesh::quad(2.0, 2.0));
        let green = scene.add_material(Material::unlit(Color::rgb(0.0, 1.0, 0.0)))?;
        scene.add(SceneNode::mesh(quad, green), None)?;
        let cam = scene.add(
            SceneNode::camera(Camera::perspective(
                60f32.to_radians(),
                640.0 / 360.0,
                0.1,
                50.0,
            ))
            .named("camera")
            .with_transform(Transform::from_translation(Vec3::new(0.0, 0.0, 5.0))),
            None,
        )?;
        scene.active_camera = Some(cam);
        Ok(())
    }

    fn update(&mut self, ctx: &mut FrameContext<'_>) -> anyhow::Result<()> {
        let applied = ctx.window().clone();
        self.seen
            .lock()
            .unwrap()
            .push((ctx.frame, applied.size, applied.title.clone()));
        // Keep the camera's aspect equal to the window's, as a real app would.
        let (w, h) = applied.size;
        let cam = ctx.scene.find("camera").unwrap();
        ctx.scene.node_mut(cam)?.content = lockstep::scene::NodeContent::Camera(
            Camera::perspective(60f32.to_radians(), w as f32 / h as f32, 0.1, 50.0),
        );
        if ctx.frame == 10 {
            ctx.request_window(WindowRequest {
                size: Some((400, 300)),
                title: Some("lockstep resized".into()),
                ..Default::default()
            });
        }
        if applied.size == (400, 300) {
            let at = *self.applied_at.get_or_insert(ctx.frame);
            // A few frames later the new size has been drawn and presented.
            if ctx.frame == at + 5 {
                *self.shot.lock().unwrap() = Some(screenshot(&self.display));
                ctx.request_exit();
            }
        }
        anyhow::ensure!(ctx.frame < 600, "the window never reached 400x300");
        Ok(())
    }
}

fn main() {
    let xvfb = start_xvfb();
    // SAFETY: set before any other thread exists in this process.
    unsafe {
        std::env::set_var("DISPLAY", &xvfb.display);
        if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
            std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
        }
    }
    let shot = Arc::new(Mutex::new(None));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut app = ResizeApp {
        display: xvfb.display.clone(),
        shot: shot.clone(),
        seen: seen.clone(),
        applied_at: None,
    };
    let mut config = PipelineConfig::offscreen(640, 360);
    config.target = Target::Window {
        width: 640,
        height: 360,
        title: "lockstep window test".into(),
        vsync: false,
    };
    config.threading = "Cull/Draw".parse().unwrap();
    let report = lockstep::pipeline::run(&mut app, config).expect("the window run ends cleanly");

    let seen = seen.lock().unwrap();
    let mut passed = 0;
    // 1. Properties: the initial size, then the requested size and title, never before frame 10.
    assert_eq!(seen[0].1, (640, 360), "initial size");
    assert!(
        seen.iter().all(|(f, s, _)| *f > 10 || *s == (640, 360)),
        "applied before it was requested: {seen:?}"
    );
    let last = seen.last().unwrap();
    assert_eq!((last.1, last.2.as_str()), ((400, 300), "lockstep resized"));
    assert_eq!(report.frames, last.0 + 1, "ended after the exit request");
    println!("test window properties are requested by App, applied by Draw, read back ... ok");
    passed += 1;

    // 2. The X server's picture: the window (at the root's top-left, no window manager) is
    //    400×300 and shows the green square centred in it, the background around it.
    let shot = shot.lock().unwrap().take().expect("a screenshot was taken");
    assert!(shot.width >= 400 && shot.height >= 300);
    let px = |x: usize, y: usize| shot.rgb[y * shot.width + x];
    let green = |p: [u8; 3]| p[1] > 200 && p[0] < 40 && p[2] < 40;
    let (mut minx, mut maxx, mut miny, mut maxy, mut n) = (usize::MAX, 0, usize::MAX, 0, 0);
    for y in 0..shot.height {
        for x in 0..shot.width {
            if green(px(x, y)) {
                (minx, maxx, miny, maxy) = (minx.min(x), maxx.max(x), miny.min(y), maxy.max(y));
                n += 1;
            }
        }
    }
    assert!(n > 0, "no green on screen");
    // A 2 m square at 5 m with a 60° vertical field of view in a 300 px high window:
    // 2 / (2 · 5 · tan 30°) · 300 = 103.9 px on each side, centred on (200, 150).
    let side = 2.0 / (2.0 * 5.0 * 30f64.to_radians().tan()) * 300.0;
    let (w, h) = ((maxx - minx + 1) as f64, (maxy - miny + 1) as f64);
    assert!(
        (w - side).abs() <= 2.0 && (h - side).abs() <= 2.0,
        "square is {w}x{h}, expected {side:.1}"
    );
    let (cx, cy) = (
        (minx + maxx + 1) as f64 / 2.0,
        (miny + maxy + 1) as f64 / 2.0,
    );
    assert!(
        (cx - 200.0).abs() <= 1.5 && (cy - 150.0).abs() <= 1.5,
        "square centred at ({cx}, {cy})"
    );
    assert_eq!(
        px(10, 10),
        [20, 20, 30],
        "the window's background at its top-left"
    );
    assert!(
        !green(px(450, 150)),
        "nothing drawn beyond the resized window"
    );
    println!("test a screenshot of the resized window shows the scene ... ok");
    passed += 1;

    // 3. The command line, in a window, under the other threading models.
    for model in ["", "/Draw", "Cull"] {
        let o = Command::new(support::BIN)
            .args([
                "run",
                "--window",
                "--frames",
                "40",
                "--size",
                "320x180",
                "--no-vsync",
                "--threading-model",
                model,
            ])
            .env("DISPLAY", &xvfb.display)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "model '{model}': {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            out.contains("ran 40 frames") && out.contains(&format!("threading model '{model}'")),
            "{out}"
        );
    }
    println!("test lockstep run --window works under every threading model ... ok");
    passed += 1;

    // 4. The demo cluster with a window per wall: every wall shows every frame, in step.
    let out_dir = std::env::temp_dir().join(format!("lockstep-window-demo-{}", std::process::id()));
    let o = Command::new(support::BIN)
        .args(["demo", "--window", "--frames", "30", "--out"])
        .arg(&out_dir)
        .env("DISPLAY", &xvfb.display)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "demo --window: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("all 4 nodes drew the same scene as the master in all 30 frames"),
        "{out}"
    );
    for wall in ["left", "front", "right", "floor"] {
        assert!(out.contains(&format!("node {wall}: 30 frames")), "{out}");
    }
    let _ = std::fs::remove_dir_all(&out_dir);
    println!("test lockstep demo --window runs a window per wall in step ... ok");
    passed += 1;

    drop(xvfb);
    println!("\nwindow: {passed} passed, 0 failed");
}
