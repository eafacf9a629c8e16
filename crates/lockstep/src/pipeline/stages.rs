/*!
The three stages. Each is a struct owning its state, so the runner can place it on whichever
thread the threading model says and move it there.
*/
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use lockstep_render::{DrawList, GpuContext, Image, OffscreenTarget, Renderer, View};
use lockstep_scene::Scene;

use super::app::{App, FrameContext};
use super::frame::{CulledFrame, FrameSnapshot, FrameTag, StageTime};
use super::stats::{FrameStats, StageStats, ms};
use super::window::{WindowProperties, WindowRequest};
use lockstep_display::HeadPose;
use lockstep_input::{Input, InputEvent};

/// The applied window properties, written by Draw and read by App. The version lets App skip
/// the lock (and the copy) on frames where nothing changed.
pub(crate) struct SharedProperties {
    version: AtomicU64,
    props: Mutex<WindowProperties>,
}

impl SharedProperties {
    pub fn new(props: WindowProperties) -> Self {
        SharedProperties {
            version: AtomicU64::new(1),
            props: Mutex::new(props),
        }
    }

    fn update(&self, f: impl FnOnce(&mut WindowProperties)) {
        if let Ok(mut p) = self.props.lock() {
            f(&mut p);
        }
        self.version.fetch_add(1, Ordering::Release);
    }
}

/// The name of the thread running this code, for statistics.
fn thread_name() -> Arc<str> {
    Arc::from(std::thread::current().name().unwrap_or("main"))
}

/// App: runs the user's `update` and publishes a snapshot per frame.
pub(crate) struct AppStage<'a> {
    app: &'a mut dyn App,
    pub scene: Scene,
    frame: u64,
    start: Option<Instant>,
    last_time: f64,
    fixed_dt: Option<f64>,
    frames: Option<u64>,
    stop: Arc<AtomicBool>,
    shared: Arc<SharedProperties>,
    seen_version: u64,
    applied: WindowProperties,
    /// The window's input as of the frame being made.
    pub input: Input,
    /// Window events since the last frame, applied at the next one.
    pub pending_input: Vec<InputEvent>,
    request: WindowRequest,
    views: Vec<super::ViewPass>,
    exit: bool,
    /// Time blocked handing the previous snapshot on, charged to the next frame.
    pub wait: Duration,
}

impl<'a> AppStage<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        app: &'a mut dyn App,
        scene: Scene,
        fixed_dt: Option<f64>,
        frames: Option<u64>,
        stop: Arc<AtomicBool>,
        shared: Arc<SharedProperties>,
        applied: WindowProperties,
    ) -> Self {
        AppStage {
            app,
            scene,
            frame: 0,
            start: None,
            last_time: 0.0,
            fixed_dt,
            frames,
            stop,
            shared,
            seen_version: 0,
            applied,
            input: Input::default(),
            pending_input: Vec::new(),
            request: WindowRequest::default(),
            views: Vec::new(),
            exit: false,
            wait: Duration::ZERO,
        }
    }

    /// Frames produced so far.
    pub fn frames_done(&self) -> u64 {
        self.frame
    }

    /// Runs one App frame; `None` once the run should end.
    pub fn next(&mut self) -> Result<Option<FrameSnapshot>> {
        if self.exit
            || self.stop.load(Ordering::Relaxed)
            || self.frames.is_some_and(|n| self.frame >= n)
        {
            return Ok(None);
        }
        let t0 = Instant::now();
        let start = *self.start.get_or_insert(t0);
        let time = match self.fixed_dt {
            Some(dt) => self.frame as f64 * dt,
            None => t0.duration_since(start).as_secs_f64(),
        };
        let version = self.shared.version.load(Ordering::Acquire);
        if version != self.seen_version {
            if let Ok(p) = self.shared.props.lock() {
                self.applied.clone_from(&p);
            }
            self.seen_version = version;
        }
        // What went down or up since the last frame went down or up in this one.
        self.input.advance(&self.pending_input);
        self.pending_input.clear();
        let mut skip = false;
        let mut tag = None;
        let mut latch = None;
        let mut ctx = FrameContext {
            scene: &mut self.scene,
            frame: self.frame,
            time,
            dt: time - self.last_time,
            input: &self.input,
            window: &mut self.request,
            views: &mut self.views,
            applied: &self.applied,
            exit: &mut self.exit,
            skip: &mut skip,
            tag: &mut tag,
            latch: &mut latch,
        };
        self.app
            .update(&mut ctx)
            .with_context(|| format!("App update of frame {}", self.frame))?;
        if skip {
            return Ok(None);
        }
        let snapshot = FrameSnapshot {
            frame: self.frame,
            tag,
            scene: self.scene.clone(),
            window: std::mem::take(&mut self.request),
            views: std::mem::take(&mut self.views),
            latch,
            app: StageTime {
                busy: t0.elapsed(),
                wait: std::mem::take(&mut self.wait),
            },
            app_done: Instant::now(),
        };
        self.last_time = time;
        self.frame += 1;
        Ok(Some(snapshot))
    }

    /// Calls the user's `exit`.
    pub fn finish(&mut self) {
        self.app.exit(&self.scene);
    }
}

/// Cull: one draw list per view of the snapshot.
pub(crate) struct CullStage {
    /// Lists Draw is done with, reused so Cull allocates nothing once warm.
    recycled: Receiver<Vec<DrawList>>,
    thread: Option<Arc<str>>,
    pub wait: Duration,
}

impl CullStage {
    pub fn new(recycled: Receiver<Vec<DrawList>>) -> Self {
        CullStage {
            recycled,
            thread: None,
            wait: Duration::ZERO,
        }
    }

    pub fn run(&mut self, snapshot: FrameSnapshot) -> Result<CulledFrame> {
        let t0 = Instant::now();
        let thread = self.thread.get_or_insert_with(thread_name).clone();
        let mut lists = self.recycled.try_recv().unwrap_or_default();
        let mut snapshot = snapshot;
        let passes = if snapshot.views.is_empty() {
            let scene = &snapshot.scene;
            let camera = scene.active_camera.with_context(|| {
                format!("frame {}: the scene has no active camera", snapshot.frame)
            })?;
            let view = View::from_camera(scene, camera).with_context(|| {
                format!(
                    "frame {}: the active camera is not a camera node",
                    snapshot.frame
                )
            })?;
            vec![super::ViewPass {
                view,
                rect: None,
                color_writes: lockstep_render::wgpu::ColorWrites::ALL,
                share: super::PassShare::Own,
            }]
        } else {
            std::mem::take(&mut snapshot.views)
        };
        lists.resize_with(passes.len(), DrawList::default);
        for (list, pass) in lists.iter_mut().zip(&passes) {
            list.cull(&snapshot.scene, &pass.view, snapshot.frame)
                .with_context(|| format!("Cull of frame {}", snapshot.frame))?;
        }
        Ok(CulledFrame {
            snapshot,
            lists,
            passes,
            cull_thread: thread,
            cull: StageTime {
                busy: t0.elapsed(),
                wait: std::mem::take(&mut self.wait),
            },
        })
    }
}

/// A captured frame.
#[derive(Debug, Clone)]
pub struct CapturedFrame {
    /// Frame number.
    pub frame: u64,
    /// Its pixels.
    pub image: Image,
}

/// Which frames Draw reads back, and where they go.
pub struct Capture {
    /// Read back frames whose number is a multiple of this (1 = every frame).
    pub every: u64,
    /// Where captured frames are sent; if the receiver goes away, Draw stops the run.
    pub sink: Sender<CapturedFrame>,
}

/// Called by Draw once frame `frame` is drawn and before it is shown: the place for a
/// cluster's swap barrier (send `SwapReady`, wait for `SwapNow`).
pub trait FrameGate: Send {
    /// Blocks until frame `frame` (tagged `tag` by App) may be presented; `false` if it must
    /// not be shown at all (a node catching up with its cluster drew a frame the others have
    /// presented already). An error ends the run.
    fn ready(&mut self, frame: u64, tag: Option<FrameTag>, drawn: Duration) -> Result<bool>;

    /// Whether `ready` waits for others (a swap barrier): Draw then finishes the frame on
    /// the GPU first, so that the wait starts with the frame truly drawn.
    fn is_barrier(&self) -> bool {
        true
    }

    /// Before Draw draws frame `frame` (tagged `tag`): a head pose newer than the one App
    /// made it with, to project it from (late latching), if the gate has one.
    fn latched(&mut self, _frame: u64, _tag: Option<FrameTag>) -> Result<Option<HeadPose>> {
        Ok(None)
    }

    /// This node's part in sort-first, if it has one: Draw draws and sends the strips
    /// other nodes ask of it, and composites the strips its helpers send.
    fn sort_first(&mut self) -> Option<&mut crate::sort_first::SortFirst> {
        None
    }
}

/// The scissors `pass` is drawn with by this node: the whole pass (`None`) without
/// sort-first, else what [`crate::sort_first::SortFirst::scissors`] says.
pub(crate) fn own_scissors(
    sort_first: Option<&crate::sort_first::SortFirst>,
    pass: &super::ViewPass,
    out: &mut Vec<Option<[u32; 4]>>,
) {
    match sort_first {
        Some(sf) => sf.scissors(pass, out),
        None => {
            out.clear();
            // A helper's pass without its part in sort-first draws nothing here.
            if !matches!(pass.share, super::PassShare::Helper { .. }) {
                out.push(None);
            }
        }
    }
}

/// Where Draw draws.
pub(crate) enum DrawTarget {
    Offscreen(OffscreenTarget),
    Window(super::winit_target::WindowTarget),
}

/// Draw: uploads, records, submits, presents or reads back.
pub(crate) struct DrawStage {
    pub gpu: GpuContext,
    renderer: Renderer,
    target: DrawTarget,
    recycle: Sender<Vec<DrawList>>,
    stats: Option<Sender<FrameStats>>,
    capture: Option<Capture>,
    shared: Arc<SharedProperties>,
    gate: Option<Box<dyn FrameGate>>,
    thread: Option<Arc<str>>,
    main: Arc<str>,
    reported_size: (u32, u32),
    pub wait: Duration,
}

impl DrawStage {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: GpuContext,
        target: DrawTarget,
        recycle: Sender<Vec<DrawList>>,
        stats: Option<Sender<FrameStats>>,
        capture: Option<Capture>,
        shared: Arc<SharedProperties>,
        gate: Option<Box<dyn FrameGate>>,
    ) -> Self {
        let format = match &target {
            DrawTarget::Offscreen(_) => OffscreenTarget::FORMAT,
            DrawTarget::Window(w) => w.format(),
        };
        let renderer = Renderer::new(&gpu, format);
        let mut stage = DrawStage {
            gpu,
            renderer,
            target,
            recycle,
            stats,
            capture,
            shared,
            gate,
            thread: None,
            main: Arc::from("main"),
            reported_size: (0, 0),
            wait: Duration::ZERO,
        };
        stage.reported_size = stage.size();
        stage
    }

    fn apply(&mut self, frame: u64, request: &WindowRequest) -> Result<()> {
        if request.is_empty() {
            return Ok(());
        }
        match &mut self.target {
            DrawTarget::Offscreen(t) => {
                if let Some((w, h)) = request.size {
                    t.resize(&self.gpu, w, h)?;
                }
            }
            DrawTarget::Window(w) => w.request(request),
        }
        let size = self.size();
        self.reported_size = size;
        self.shared.update(|p| {
            p.size = size;
            if let Some(t) = &request.title {
                p.title.clone_from(t);
            }
            p.fullscreen = request.fullscreen.unwrap_or(p.fullscreen);
            p.cursor_visible = request.cursor_visible.unwrap_or(p.cursor_visible);
            p.changed_at_frame = frame;
        });
        Ok(())
    }

    fn size(&self) -> (u32, u32) {
        match &self.target {
            DrawTarget::Offscreen(t) => (t.width(), t.height()),
            DrawTarget::Window(w) => w.size(),
        }
    }

    pub fn run(&mut self, culled: CulledFrame) -> Result<()> {
        let t0 = Instant::now();
        let draw_thread = self.thread.get_or_insert_with(thread_name).clone();
        let CulledFrame {
            mut snapshot,
            mut lists,
            mut passes,
            cull_thread,
            cull,
        } = culled;
        let frame = snapshot.frame;
        self.apply(frame, &snapshot.window)?;
        if let (Some(latch), Some(gate)) = (&snapshot.latch, &mut self.gate)
            && let Some(head) = gate.latched(frame, snapshot.tag)?
        {
            let relatched = latch
                .relatch(&head, &snapshot.scene, frame, &mut passes, &mut lists)
                .with_context(|| format!("Draw of frame {frame}, projected again"))?;
            if relatched
                && let Some(tag) = &mut snapshot.tag
                && tag.views.is_some()
            {
                tag.views = latch.digest(&head);
            }
        }
        match &mut self.target {
            DrawTarget::Offscreen(target) => {
                let capture = self
                    .capture
                    .as_ref()
                    .is_some_and(|c| frame.is_multiple_of(c.every.max(1)));
                let (gpu, renderer, scene) = (&self.gpu, &mut self.renderer, &snapshot.scene);
                let mut sort_first = self.gate.as_deref_mut().and_then(|g| g.sort_first());
                if let (Some(sf), Some(tag)) = (sort_first.as_deref_mut(), snapshot.tag) {
                    sf.begin(
                        gpu,
                        renderer,
                        OffscreenTarget::FORMAT,
                        scene,
                        &lists,
                        &passes,
                        tag.frame,
                    )?;
                }
                let mut scissors = Vec::with_capacity(4);
                let mut cleared = false;
                for (list, pass) in lists.iter().zip(&passes) {
                    own_scissors(sort_first.as_deref(), pass, &mut scissors);
                    for scissor in &scissors {
                        let options = lockstep_render::DrawOptions {
                            clear: !cleared,
                            color_writes: pass.color_writes,
                            viewport: pass.rect,
                            scissor: *scissor,
                        };
                        cleared = true;
                        let list = match sort_first.as_deref_mut() {
                            Some(sf) => sf.strip_list(scene, list, pass, *scissor)?,
                            None => list,
                        };
                        target.render_with(gpu, renderer, scene, list, options, false)?;
                    }
                }
                if let Some(sf) = sort_first {
                    let target = &*target;
                    // The strips that did not come, drawn here after all (each culled for
                    // its strip like the rest).
                    let mut strip = lockstep_render::DrawList::default();
                    let missing = sf.finish(gpu, &passes, |rect, pixels| {
                        Ok(target.write_region(gpu, rect, pixels)?)
                    })?;
                    for (i, rect) in missing {
                        crate::sort_first::cull_strip(&mut strip, scene, &passes[i], rect, frame)?;
                        let options = lockstep_render::DrawOptions {
                            clear: false,
                            color_writes: passes[i].color_writes,
                            viewport: passes[i].rect,
                            scissor: Some(rect),
                        };
                        target.render_with(gpu, renderer, scene, &strip, options, false)?;
                    }
                }
                if capture {
                    // After every strip is in: the copy is the submission's last command.
                    target.copy_back(gpu)?;
                }
                let mut shown = true;
                if let Some(gate) = &mut self.gate {
                    if gate.is_barrier() {
                        self.gpu.wait_idle()?;
                    }
                    shown = gate.ready(frame, snapshot.tag, t0.elapsed())?;
                }
                if capture && shown {
                    // The image leaves this thread, so it gets its own buffer.
                    let mut pixels = Vec::new();
                    target.read_into(&self.gpu, &mut pixels)?;
                    let image = Image {
                        width: target.width(),
                        height: target.height(),
                        rgba8: pixels,
                    };
                    if let Some(c) = &self.capture
                        && c.sink.send(CapturedFrame { frame, image }).is_err()
                    {
                        bail!("frame {frame}: nobody receives captured frames any more");
                    }
                } else {
                    self.gpu.wait_idle()?;
                }
            }
            DrawTarget::Window(w) => {
                let size = w.render(
                    &self.gpu,
                    &mut self.renderer,
                    &snapshot.scene,
                    &lists,
                    &passes,
                    (frame, snapshot.tag),
                    self.gate.as_deref_mut(),
                    t0,
                )?;
                if size != self.reported_size {
                    self.reported_size = size;
                    self.shared.update(|p| p.size = size);
                }
            }
        }
        let busy = t0.elapsed();
        if let Some(stats) = &self.stats {
            let mut s = lists[0].stats;
            for l in &lists[1..] {
                s.drawn += l.stats.drawn;
                s.culled += l.stats.culled;
                s.triangles += l.stats.triangles;
            }
            let record = FrameStats {
                frame,
                app: StageStats {
                    thread: self.main.clone(),
                    busy_ms: ms(snapshot.app.busy),
                    wait_ms: ms(snapshot.app.wait),
                },
                cull: StageStats {
                    thread: cull_thread,
                    busy_ms: ms(cull.busy),
                    wait_ms: ms(cull.wait),
                },
                draw: StageStats {
                    thread: draw_thread,
                    busy_ms: ms(busy),
                    wait_ms: ms(std::mem::take(&mut self.wait)),
                },
                drawn: s.drawn,
                culled: s.culled,
                triangles: s.triangles,
                latency_ms: ms(snapshot.app_done.elapsed()),
            };
            // A closed statistics receiver only means nobody reads them any more.
            let _ = stats.send(record);
        }
        // Cull may have ended already; then the lists are simply dropped.
        let _ = self.recycle.send(lists);
        Ok(())
    }
}
