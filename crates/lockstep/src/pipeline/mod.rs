/*!
The frame loop every lockstep process runs: App (user code) → Cull (scene → draw list) →
Draw (GPU), placed on one, two or three threads by a Panda3D `threading-model` string.

Stages hand frames over through rendezvous channels (`sync_channel(0)`): a stage gives frame F
to the next only when that one is ready to take it. So App runs at most two frames ahead of
Draw, and at most three versions of changed scene data are alive at once (App's working copy,
Cull's snapshot, Draw's snapshot). Scene snapshots are O(1) clones of a copy-on-write scene.

Shutdown is by closing channels: when App stops (frame limit, exit request, Ctrl-C, window
closed) it drops its sender and each stage ends after the frame it holds; when a stage fails it
drops its ends, the stages around it see closed channels and stop, and [`run`] joins every
thread and returns the first error. No stage waits on anything but a channel, so no shutdown
can deadlock.
*/
mod app;
mod frame;
mod stages;
mod stats;
mod window;
mod winit_target;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
pub use lockstep_display::ThreadingModel;
use lockstep_render::{AdapterSummary, BackendChoice, GpuContext, OffscreenTarget};
use lockstep_scene::Scene;

pub use app::{App, FrameContext};
pub use frame::{FrameTag, PassShare, StageTime, ViewPass};
pub use stages::{Capture, CapturedFrame, FrameGate};
pub use stats::{FrameStats, RollingTable, StageStats, ThreadTotals, thread_totals};
pub use window::{WindowProperties, WindowRequest};

use frame::{CulledFrame, FrameSnapshot};
use stages::{AppStage, CullStage, DrawStage, DrawTarget, SharedProperties};

/// Where frames are drawn.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// An offscreen image (read back only for captured frames).
    Offscreen {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// A window on the desktop (X11).
    Window {
        /// Initial inner width.
        width: u32,
        /// Initial inner height.
        height: u32,
        /// Title.
        title: String,
        /// Wait for the display's refresh before presenting.
        vsync: bool,
    },
}

/// How to run the loop.
pub struct PipelineConfig {
    /// Which threads run Cull and Draw.
    pub threading: ThreadingModel,
    /// Window or offscreen.
    pub target: Target,
    /// Stop after this many frames (`None`: until closed or stopped).
    pub frames: Option<u64>,
    /// A fixed time step per frame instead of wall-clock time (frame F at F · dt seconds).
    pub fixed_dt: Option<f64>,
    /// Graphics API.
    pub backend: BackendChoice,
    /// Frames to read back (offscreen only).
    pub capture: Option<Capture>,
    /// Where per-frame statistics go.
    pub stats: Option<Sender<FrameStats>>,
    /// Set to stop the loop after the current frame (Ctrl-C handlers, tests).
    pub stop: Arc<AtomicBool>,
    /// Called by Draw before each frame is shown (a cluster's swap barrier).
    pub gate: Option<Box<dyn FrameGate>>,
}

impl PipelineConfig {
    /// Single-threaded, offscreen at `width` × `height`, until stopped.
    pub fn offscreen(width: u32, height: u32) -> Self {
        PipelineConfig {
            threading: ThreadingModel::SingleThreaded,
            target: Target::Offscreen { width, height },
            frames: None,
            fixed_dt: None,
            backend: BackendChoice::Auto,
            capture: None,
            stats: None,
            stop: Arc::new(AtomicBool::new(false)),
            gate: None,
        }
    }
}

/// What a finished run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Frames App produced (all of them were drawn when the run ended without error).
    pub frames: u64,
    /// The adapter used.
    pub adapter: AdapterSummary,
    /// The threading model used.
    pub threading: ThreadingModel,
}

/// Runs `app` until it ends, then joins every stage thread.
pub fn run(app: &mut dyn App, config: PipelineConfig) -> Result<RunReport> {
    let gpu = GpuContext::new(config.backend)?;
    let adapter = gpu.summary.clone();
    let threading = config.threading.clone();
    let mut scene = Scene::new();
    app.setup(&mut scene).context("App setup")?;
    let frames = match config.target.clone() {
        Target::Offscreen { width, height } => {
            let target = OffscreenTarget::new(&gpu, width, height)?;
            let props = WindowProperties {
                size: (width, height),
                title: String::new(),
                fullscreen: false,
                cursor_visible: true,
                changed_at_frame: 0,
            };
            let mut driver = Driver::start(
                app,
                scene,
                gpu,
                DrawTarget::Offscreen(target),
                props,
                config,
            )?;
            let stepped = loop {
                match driver.step() {
                    Ok(true) => {}
                    Ok(false) => break Ok(()),
                    Err(e) => break Err(e),
                }
            };
            let finished = driver.finish();
            stepped.and(finished)?
        }
        Target::Window {
            width,
            height,
            title,
            vsync,
        } => run_window(app, scene, gpu, config, width, height, title, vsync)?,
    };
    Ok(RunReport {
        frames,
        adapter,
        threading,
    })
}

/// How snapshots reach Cull and Draw.
enum Downstream {
    /// `""`: everything on this thread.
    Inline {
        cull: CullStage,
        draw: Box<DrawStage>,
    },
    /// `"/Draw"`: Cull here, Draw on its thread.
    DrawThread {
        cull: CullStage,
        to_draw: SyncSender<CulledFrame>,
        handle: (String, JoinHandle<Result<()>>),
    },
    /// `"Cull"` or `"Cull/Draw"`: Cull (and Draw) on other threads.
    Threads {
        to_cull: SyncSender<FrameSnapshot>,
        handles: Vec<(String, JoinHandle<Result<()>>)>,
    },
}

struct Driver<'a> {
    app: AppStage<'a>,
    down: Option<Downstream>,
}

fn spawn(
    name: &str,
    body: impl FnOnce() -> Result<()> + Send + 'static,
) -> Result<(String, JoinHandle<Result<()>>)> {
    let handle = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(body)
        .with_context(|| format!("cannot start thread '{name}'"))?;
    Ok((name.to_string(), handle))
}

/// Draw's loop on its own thread: until the channel closes or drawing fails.
fn draw_loop(mut draw: DrawStage, frames: mpsc::Receiver<CulledFrame>) -> Result<()> {
    loop {
        let t = Instant::now();
        let Ok(frame) = frames.recv() else {
            return Ok(());
        };
        draw.wait += t.elapsed();
        draw.run(frame)?;
    }
}

impl<'a> Driver<'a> {
    fn start(
        app: &'a mut dyn App,
        scene: Scene,
        gpu: GpuContext,
        target: DrawTarget,
        props: WindowProperties,
        config: PipelineConfig,
    ) -> Result<Self> {
        let shared = Arc::new(SharedProperties::new(props.clone()));
        let (recycle_tx, recycle_rx) = mpsc::channel();
        let cull = CullStage::new(recycle_rx);
        let draw = DrawStage::new(
            gpu,
            target,
            recycle_tx,
            config.stats,
            config.capture,
            shared.clone(),
            config.gate,
        );
        let app = AppStage::new(
            app,
            scene,
            config.fixed_dt,
            config.frames,
            config.stop,
            shared,
            props,
        );
        let down = match &config.threading {
            ThreadingModel::SingleThreaded => Downstream::Inline {
                cull,
                draw: Box::new(draw),
            },
            ThreadingModel::DrawThread { draw: name } => {
                let (to_draw, frames) = mpsc::sync_channel(0);
                let handle = spawn(name, move || draw_loop(draw, frames))?;
                Downstream::DrawThread {
                    cull,
                    to_draw,
                    handle,
                }
            }
            ThreadingModel::CullDrawThread { name } => {
                let (to_cull, snapshots) = mpsc::sync_channel::<FrameSnapshot>(0);
                let (mut cull, mut draw) = (cull, draw);
                let handle = spawn(name, move || {
                    loop {
                        let t = Instant::now();
                        let Ok(snapshot) = snapshots.recv() else {
                            return Ok(());
                        };
                        cull.wait += t.elapsed();
                        let culled = cull.run(snapshot)?;
                        draw.run(culled)?;
                    }
                })?;
                Downstream::Threads {
                    to_cull,
                    handles: vec![handle],
                }
            }
            ThreadingModel::ThreeThreads {
                cull: cull_name,
                draw: draw_name,
            } => {
                let (to_cull, snapshots) = mpsc::sync_channel::<FrameSnapshot>(0);
                let (to_draw, culled) = mpsc::sync_channel::<CulledFrame>(0);
                // Draw first, so that Cull's sends always have a receiver.
                let draw_handle = spawn(draw_name, move || draw_loop(draw, culled))?;
                let mut cull = cull;
                let cull_handle = spawn(cull_name, move || {
                    loop {
                        let t = Instant::now();
                        let Ok(snapshot) = snapshots.recv() else {
                            return Ok(());
                        };
                        cull.wait += t.elapsed();
                        let frame = cull.run(snapshot)?;
                        let t = Instant::now();
                        if to_draw.send(frame).is_err() {
                            return Ok(());
                        }
                        cull.wait += t.elapsed();
                    }
                })?;
                Downstream::Threads {
                    to_cull,
                    handles: vec![cull_handle, draw_handle],
                }
            }
        };
        Ok(Driver {
            app,
            down: Some(down),
        })
    }

    /// Runs one App frame and hands it on; `false` once the run is over (App stopped, or a
    /// stage thread ended — [`Driver::finish`] reports why).
    fn step(&mut self) -> Result<bool> {
        let Some(snapshot) = self.app.next()? else {
            return Ok(false);
        };
        match self.down.as_mut() {
            None => Ok(false),
            Some(Downstream::Inline { cull, draw }) => {
                let culled = cull.run(snapshot)?;
                draw.run(culled)?;
                Ok(true)
            }
            Some(Downstream::DrawThread { cull, to_draw, .. }) => {
                let culled = cull.run(snapshot)?;
                let t = Instant::now();
                if to_draw.send(culled).is_err() {
                    return Ok(false);
                }
                cull.wait += t.elapsed();
                Ok(true)
            }
            Some(Downstream::Threads { to_cull, .. }) => {
                let t = Instant::now();
                if to_cull.send(snapshot).is_err() {
                    return Ok(false);
                }
                self.app.wait += t.elapsed();
                Ok(true)
            }
        }
    }

    /// Closes the channels, joins every stage thread, calls the App's `exit`, and returns the
    /// number of frames produced or the first stage error.
    fn finish(mut self) -> Result<u64> {
        let handles = match self.down.take() {
            None | Some(Downstream::Inline { .. }) => Vec::new(),
            Some(Downstream::DrawThread {
                to_draw, handle, ..
            }) => {
                drop(to_draw);
                vec![handle]
            }
            Some(Downstream::Threads { to_cull, handles }) => {
                drop(to_cull);
                handles
            }
        };
        let mut first = None;
        for (name, h) in handles {
            let outcome = match h.join() {
                Ok(r) => r.with_context(|| format!("stage thread '{name}'")),
                Err(panic) => {
                    let msg = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "no message".into());
                    Err(anyhow!("stage thread '{name}' panicked: {msg}"))
                }
            };
            if let Err(e) = outcome {
                tracing::error!("{e:#}");
                first.get_or_insert(e);
            }
        }
        self.app.finish();
        match first {
            Some(e) => Err(e),
            None => Ok(self.app.frames_done()),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run_window(
    app: &mut dyn App,
    scene: Scene,
    gpu: GpuContext,
    config: PipelineConfig,
    width: u32,
    height: u32,
    title: String,
    vsync: bool,
) -> Result<u64> {
    use lockstep_input::InputEvent;
    use winit::application::ApplicationHandler;
    use winit::event::{ElementState, MouseButton, MouseScrollDelta, WindowEvent};
    use winit::event_loop::{ActiveEventLoop, ControlFlow, EventLoop};
    use winit::keyboard::Key;

    struct Handler<'a> {
        pending: Option<(&'a mut dyn App, Scene, GpuContext, PipelineConfig)>,
        driver: Option<Driver<'a>>,
        width: u32,
        height: u32,
        title: String,
        vsync: bool,
        stop: Arc<AtomicBool>,
        error: Option<anyhow::Error>,
        /// The name each physical key held down was pressed as: its release (perhaps with
        /// another modifier, `W` for `w`) takes that name away.
        held: Vec<(winit::keyboard::PhysicalKey, String)>,
        /// The window has the keyboard.
        focused: bool,
    }

    impl Handler<'_> {
        fn fail(&mut self, event_loop: &ActiveEventLoop, e: anyhow::Error) {
            self.error.get_or_insert(e);
            event_loop.exit();
        }
    }

    impl ApplicationHandler for Handler<'_> {
        fn resumed(&mut self, event_loop: &ActiveEventLoop) {
            let Some((app, scene, gpu, config)) = self.pending.take() else {
                return;
            };
            let attrs = winit::window::Window::default_attributes()
                .with_title(self.title.clone())
                .with_inner_size(winit::dpi::PhysicalSize::new(self.width, self.height));
            let window = match event_loop.create_window(attrs) {
                Ok(w) => Arc::new(w),
                Err(e) => return self.fail(event_loop, anyhow!("cannot create a window: {e}")),
            };
            let target = match winit_target::WindowTarget::new(&gpu, window, self.vsync) {
                Ok(t) => t,
                Err(e) => return self.fail(event_loop, e),
            };
            let props = WindowProperties {
                size: target.size(),
                title: self.title.clone(),
                fullscreen: false,
                cursor_visible: true,
                changed_at_frame: 0,
            };
            match Driver::start(app, scene, gpu, DrawTarget::Window(target), props, config) {
                Ok(d) => self.driver = Some(d),
                Err(e) => self.fail(event_loop, e),
            }
            event_loop.set_control_flow(ControlFlow::Poll);
        }

        fn window_event(
            &mut self,
            event_loop: &ActiveEventLoop,
            _id: winit::window::WindowId,
            event: WindowEvent,
        ) {
            let Some(driver) = self.driver.as_mut() else {
                return;
            };
            let input = &mut driver.app.pending_input;
            match event {
                WindowEvent::CloseRequested | WindowEvent::Destroyed => {
                    self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    event_loop.exit();
                }
                WindowEvent::KeyboardInput { event, .. } => {
                    let name = match &event.logical_key {
                        Key::Character(c) => c.to_string(),
                        Key::Named(n) => format!("{n:?}"),
                        other => format!("{other:?}"),
                    };
                    // Released by the name it went down as, whatever it reads as now (`W`
                    // for `w`, with shift pressed in between).
                    let was = self
                        .held
                        .iter()
                        .position(|(k, _)| *k == event.physical_key)
                        .map(|i| self.held.remove(i).1);
                    if event.state == ElementState::Pressed {
                        if let Some(was) = was.filter(|w| *w != name) {
                            input.push(InputEvent::Key {
                                key: was,
                                down: false,
                            });
                        }
                        self.held.push((event.physical_key, name.clone()));
                        input.push(InputEvent::Key {
                            key: name,
                            down: true,
                        });
                    } else {
                        input.push(InputEvent::Key {
                            key: was.unwrap_or(name),
                            down: false,
                        });
                    }
                }
                WindowEvent::Focused(focused) => {
                    self.focused = focused;
                    if !focused {
                        // Releases while away never come: nothing stays held.
                        self.held.clear();
                        input.push(InputEvent::FocusLost);
                    }
                }
                WindowEvent::CursorMoved { position, .. } => input.push(InputEvent::Cursor {
                    position: Some([position.x as f32, position.y as f32]),
                }),
                WindowEvent::CursorLeft { .. } => input.push(InputEvent::Cursor { position: None }),
                WindowEvent::MouseWheel { delta, .. } => {
                    let delta = match delta {
                        MouseScrollDelta::LineDelta(x, y) => [x, y],
                        // A touchpad's pixels, as lines of about 20 pixels.
                        MouseScrollDelta::PixelDelta(p) => [p.x as f32 / 20.0, p.y as f32 / 20.0],
                    };
                    input.push(InputEvent::Wheel { delta });
                }
                WindowEvent::MouseInput { state, button, .. } => {
                    let name = match button {
                        MouseButton::Left => "left".to_string(),
                        MouseButton::Right => "right".to_string(),
                        MouseButton::Middle => "middle".to_string(),
                        MouseButton::Back => "back".to_string(),
                        MouseButton::Forward => "forward".to_string(),
                        MouseButton::Other(n) => format!("other{n}"),
                    };
                    input.push(InputEvent::MouseButton {
                        button: name,
                        down: state == ElementState::Pressed,
                    });
                }
                _ => {}
            }
        }

        fn device_event(
            &mut self,
            _event_loop: &ActiveEventLoop,
            _id: winit::event::DeviceId,
            event: winit::event::DeviceEvent,
        ) {
            // Raw motion goes on at the window's edge (mouse look); only while the window
            // has the keyboard, as other applications' motion is not ours.
            if let (Some(driver), true, winit::event::DeviceEvent::MouseMotion { delta }) =
                (self.driver.as_mut(), self.focused, event)
            {
                driver.app.pending_input.push(InputEvent::Motion {
                    delta: [delta.0 as f32, delta.1 as f32],
                });
            }
        }

        fn about_to_wait(&mut self, event_loop: &ActiveEventLoop) {
            let Some(driver) = self.driver.as_mut() else {
                return;
            };
            match driver.step() {
                Ok(true) => {}
                Ok(false) => event_loop.exit(),
                Err(e) => self.fail(event_loop, e),
            }
        }
    }

    let event_loop = EventLoop::new().map_err(|e| {
        anyhow!("cannot open a window: {e} (is DISPLAY set? without a display, use --offscreen)")
    })?;
    let stop = config.stop.clone();
    let mut handler = Handler {
        pending: Some((app, scene, gpu, config)),
        driver: None,
        width,
        height,
        title,
        vsync,
        stop,
        error: None,
        held: Vec::new(),
        focused: true,
    };
    event_loop
        .run_app(&mut handler)
        .map_err(|e| anyhow!("the window's event loop failed: {e}"))?;
    let finished = match handler.driver.take() {
        Some(d) => d.finish(),
        None => Ok(0),
    };
    match handler.error {
        Some(e) => Err(e),
        None => finished,
    }
}
