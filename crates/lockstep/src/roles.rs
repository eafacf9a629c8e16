/*!
The two roles of a cluster process. A **node** runs the pipeline with an App stage that
receives the master's frame (clock, scene changes, application data) and a Draw stage that
stops at the swap barrier before presenting. The **master** runs the application and sends
each frame; to render a view as well, a master process also runs a node (see
`lockstep master --render`).
*/
use lockstep_launch::state::{NodeState, announce};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use lockstep_cluster::plugins::{Events, HeadTracking, SceneReplication};
use lockstep_cluster::{ClusterManager, FrameInfo, Master, NodeSession, SwapLink, SwapReport};
use lockstep_display::{ClusterConfig, HeadPose, HeadTracker, InputDevice};
use lockstep_scene::Scene;
use lockstep_scene::glam::Mat4;
use lockstep_wire::{ClusterKey, NodeStats};

use crate::app::{ClusterApp, MasterFrame, NodeFrame, Outbox, guard};
use crate::devices::Devices;
use crate::node_views::NodeViews;
use crate::pipeline::{App, FrameContext, FrameGate, FrameTag, ViewPass};
use lockstep_input::record::{Recorder, Replay};
use lockstep_input::{InputEvent, InputReplication};

/// The cluster key: `LOCKSTEP_KEY` if set, else the cluster file's `key_file`. An error
/// names the cluster file and the `key_file` line.
pub fn load_key(config: &ClusterConfig) -> Result<ClusterKey> {
    if let Some(k) = std::env::var_os("LOCKSTEP_KEY") {
        return ClusterKey::new(k.into_encoded_bytes()).context("LOCKSTEP_KEY");
    }
    let Some(path) = &config.key_file else {
        bail!(
            "{}: no key_file, and LOCKSTEP_KEY is not set: create a key with `lockstep key new FILE`",
            config.path.display()
        );
    };
    read_key_file(config, path)
}

/// The key in `path`, the file `config` names as its `key_file`; an error names the cluster
/// file and the `key_file` line.
pub fn read_key_file(config: &ClusterConfig, path: &std::path::Path) -> Result<ClusterKey> {
    ClusterKey::from_file(path).map_err(|e| {
        let hint = if path.exists() {
            String::new()
        } else {
            format!(" (create it with `lockstep key new {}`)", path.display())
        };
        anyhow::anyhow!("{}", config.key_file_error(format!("{e}{hint}")))
    })
}

/// The plugins every process of a cluster registers, in this order (see
/// [`lockstep_cluster::plugins`]); the head starts where the cluster file puts it.
pub fn default_plugins(config: &ClusterConfig) -> ClusterManager {
    let mut m = ClusterManager::new();
    m.register(SceneReplication::default())
        .expect("the built-in plugins have distinct ids");
    m.register(HeadTracking::new(config.head))
        .expect("the built-in plugins have distinct ids");
    m.register(Events::default())
        .expect("the built-in plugins have distinct ids");
    m.register(InputReplication::new())
        .expect("the built-in plugins have distinct ids");
    m
}

/// The rig: where the display's tracker space sits in the world — the node named `rig`, if
/// the scene has one.
pub fn rig(scene: &Scene) -> Mat4 {
    scene
        .find("rig")
        .and_then(|r| scene.world_transform(r).ok())
        .unwrap_or(Mat4::IDENTITY)
}

/// Where a render node's frames come from.
pub enum FrameSource {
    /// The master's frames.
    Cluster(Box<NodeSession>),
    /// The application's own update, run in this process on the pipeline's clock with these
    /// plugins: what the node would draw with no cluster around it (`bench cluster` compares
    /// the two).
    Alone(Box<ClusterManager>),
}

/// Why a node's App stage ended its run early.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeExit {
    /// The master shut the cluster down, or the run was stopped.
    Done,
    /// The master switched to a cluster file that changes this node's threading model or
    /// windows: the node starts again with it (and rejoins).
    Restart(Box<ClusterConfig>),
}

/// The App stage of a render node.
pub struct NodeApp<'a> {
    source: FrameSource,
    /// The application: its node hook after each frame (alone: its update).
    app: &'a mut dyn ClusterApp,
    /// Events the application sent this frame, on their way to the master.
    outbox: Outbox,
    /// Where this node's window input goes (the master's own view, whose window steers the
    /// master's application): each frame's events, when there are any.
    pub input_to: Option<Sender<Vec<InputEvent>>>,
    /// The input devices the cluster file places on this node, sent to the master.
    pub devices: Option<&'a mut Devices>,
    /// Print every frame's input events, and what this node's devices sent (`--trace-input`).
    pub trace_input: bool,
    /// What the devices read this frame (kept to reuse its memory).
    read: Vec<InputEvent>,
    /// The scene the application's setup built, which every session starts from.
    baseline: Scene,
    config: Arc<ClusterConfig>,
    name: Arc<str>,
    /// The frame's passes (kept to reuse their memory).
    passes: Vec<ViewPass>,
    /// Also digest every frame's views (for `--hash-out` and `--views-out`, which list them).
    pub keep_views: bool,
    /// Digest every frame's scene (for `--hash-out` and `--report-state`; only what changed
    /// since the last frame is rehashed).
    pub record_hashes: bool,
    hasher: lockstep_cluster::SceneHasher,
    /// Why the run ended early, if it did.
    pub exit: NodeExit,
}

impl<'a> NodeApp<'a> {
    /// A node app for `name` running `app`, whose setup built `baseline`, with frames from
    /// `source`.
    pub fn new(
        source: FrameSource,
        app: &'a mut dyn ClusterApp,
        baseline: Scene,
        config: ClusterConfig,
        name: &str,
    ) -> Self {
        NodeApp {
            source,
            app,
            outbox: Outbox::new(),
            input_to: None,
            devices: None,
            trace_input: false,
            read: Vec::new(),
            baseline,
            config: Arc::new(config),
            name: Arc::from(name),
            passes: Vec::new(),
            keep_views: false,
            record_hashes: false,
            hasher: lockstep_cluster::SceneHasher::default(),
            exit: NodeExit::Done,
        }
    }

    /// The cluster file in force (the master's latest).
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }
}

impl App for NodeApp<'_> {
    fn setup(&mut self, scene: &mut Scene) -> Result<()> {
        // The master's frames bring what changed since setup.
        *scene = self.baseline.clone();
        Ok(())
    }

    fn update(&mut self, ctx: &mut FrameContext<'_>) -> Result<()> {
        let (info, head) = match &mut self.source {
            FrameSource::Cluster(session) => {
                let Some(info) = session.next_frame(ctx.scene)? else {
                    // The master shut down: no further frame will be swapped, so none is
                    // drawn.
                    ctx.end_now();
                    return Ok(());
                };
                if let Some(new) = session.take_config() {
                    let restart = match (self.config.node(&self.name), new.node(&self.name)) {
                        (Some(old), Some(now)) => old.pipeline_differs(now),
                        _ => false,
                    };
                    if restart {
                        tracing::info!(
                            "node '{}': the new cluster file changes its pipeline; restarting at frame {}",
                            self.name,
                            info.frame
                        );
                        self.exit = NodeExit::Restart(Box::new(new));
                        ctx.end_now();
                        return Ok(());
                    }
                    self.config = Arc::new(new);
                }
                let what = || {
                    format!(
                        "node '{}': the application's node hook in frame {}",
                        self.name, info.frame
                    )
                };
                let (app, outbox) = (&mut self.app, &mut self.outbox);
                guard(what, || {
                    app.node_frame(&mut NodeFrame {
                        node: &self.name,
                        scene: ctx.scene,
                        info,
                        plugins: &session.manager,
                        outbox,
                    })
                })?;
                if let Some(events) = session.manager.get_mut::<Events>() {
                    events.seen();
                }
                for e in self.outbox.drain(..) {
                    session.send_event(&e.name, &e.payload)?;
                }
                if self.trace_input {
                    trace_input(&self.name, info.frame, &session.manager);
                }
                let read = &mut self.read;
                if let Some(batch) = self.devices.as_mut().and_then(|d| d.batch(read)) {
                    if self.trace_input {
                        trace_read(&self.name, info.frame, read);
                    }
                    session.send_input(&batch)?;
                }
                if let Some(to) = &self.input_to
                    && !ctx.input.events().is_empty()
                {
                    // The master's loop gone means the run is ending anyway.
                    let _ = to.send(ctx.input.events().to_vec());
                }
                // The head as the master last sent it (the file's until a tracker moves it).
                let head = session
                    .manager
                    .get::<HeadTracking>()
                    .map_or(self.config.head, |h| *h.pose());
                (info, head)
            }
            FrameSource::Alone(plugins) => {
                // The master's update, done here.
                let info = FrameInfo {
                    frame: ctx.frame,
                    time: ctx.time,
                    dt: ctx.dt,
                };
                let what = || format!("the application's update of frame {}", info.frame);
                // Alone, this process is the master: last frame's events are this frame's,
                // and its window's input is the frame's input.
                if let Some(events) = plugins.get_mut::<Events>() {
                    events.deliver(std::mem::take(&mut self.outbox));
                }
                if let Some(input) = plugins.get_mut::<InputReplication>() {
                    input.begin(ctx.input.events().iter().cloned());
                }
                let (app, outbox) = (&mut self.app, &mut self.outbox);
                guard(what, || {
                    app.update(&mut MasterFrame::new(ctx.scene, info, plugins, outbox))
                })?;
                (info, self.config.head)
            }
        };
        // The master's frame number and the digests travel with the frame to the swap gate.
        // The views digest only for the files that list presented frames (`--report-state`
        // alone sends just the scene digest).
        let state = self.record_hashes.then(|| self.hasher.hash(ctx.scene));
        let node_views = NodeViews::new(self.config.clone(), self.name.clone(), rig(ctx.scene));
        let views = (self.record_hashes && self.keep_views)
            .then(|| node_views.digest(&head))
            .flatten();
        ctx.tag(FrameTag {
            frame: info.frame,
            state,
            views,
        });
        let mut passes = std::mem::take(&mut self.passes);
        if !node_views.passes(&head, &mut passes) {
            bail!("no node '{}' in {}", self.name, self.config.path.display());
        }
        ctx.set_views(passes.drain(..));
        self.passes = passes;
        // Draw projects the frame again from the newer head pose the master latched for it.
        if self.config.latches_head() && matches!(self.source, FrameSource::Cluster(_)) {
            ctx.latch_with(node_views);
        }
        Ok(())
    }
}

/// The head pose a `SwapNow` latched, as the display's maths takes it.
pub fn head_pose(h: lockstep_wire::LatchedHead) -> HeadPose {
    HeadPose {
        position: lockstep_scene::glam::Vec3::from_array(h.position),
        rotation: lockstep_scene::glam::Quat::from_array(h.rotation),
    }
}

/// What a node's swap gate saw, read once the run is over.
#[derive(Debug, Default)]
pub struct Presented {
    /// Keep `frames` (for `--hash-out` and `--views-out`).
    pub keep: bool,
    /// (master frame, state digest, views digest) of every frame presented, when kept.
    pub frames: Vec<(u64, u64, u64)>,
    /// How many frames were presented.
    pub shown: u64,
    /// Time spent waiting at the barrier, per frame presented.
    pub waits: Vec<Duration>,
    /// Also list when each frame was presented (for `--stats-out`).
    pub keep_times: bool,
    /// (master frame, [`crate::stats::monotonic_ns`]) of every frame presented, when kept.
    pub times: Vec<(u64, u64)>,
}

/// The node's swap barrier, in Draw: `SwapReady` with the frame's tag, then wait for
/// `SwapNow`. Without a link (a node alone) every frame drawn is shown.
pub struct SwapGate {
    link: Option<SwapLink>,
    /// Only Draw's thread touches it during the run (never waited for by another stage).
    pub presented: Arc<Mutex<Presented>>,
    /// This node's part in sort-first, if the cluster file gives it one.
    pub sort_first: Option<crate::sort_first::SortFirst>,
}

impl SwapGate {
    /// A gate over `link` (none: alone); with `keep`, it lists the frames presented.
    pub fn new(link: Option<SwapLink>, keep: bool) -> Self {
        SwapGate {
            link,
            presented: Arc::new(Mutex::new(Presented {
                keep,
                ..Presented::default()
            })),
            sort_first: None,
        }
    }
}

impl FrameGate for SwapGate {
    fn is_barrier(&self) -> bool {
        self.link.is_some()
    }

    fn sort_first(&mut self) -> Option<&mut crate::sort_first::SortFirst> {
        self.sort_first.as_mut()
    }

    fn latched(&mut self, _local: u64, tag: Option<FrameTag>) -> Result<Option<HeadPose>> {
        let (Some(link), Some(tag)) = (&mut self.link, tag) else {
            return Ok(None);
        };
        Ok(link.latched_for(tag.frame)?.map(head_pose))
    }

    fn ready(&mut self, local: u64, tag: Option<FrameTag>, drawn: Duration) -> Result<bool> {
        let t = Instant::now();
        let tag = tag.with_context(|| format!("pipeline frame {local} has no master frame"))?;
        let shown = match &mut self.link {
            Some(link) => {
                let stats = NodeStats {
                    cull_ms: 0.0,
                    draw_ms: drawn.as_secs_f32() * 1e3,
                    ready_ms: drawn.as_secs_f32() * 1e3,
                    state: tag.state,
                };
                link.swap(tag.frame, stats)?
            }
            None => true,
        };
        if shown && let Ok(mut p) = self.presented.lock() {
            if p.shown == 0 && self.link.is_some() {
                // The first frame is presented: this node is in the cluster's step.
                announce(NodeState::Running);
            }
            p.shown += 1;
            if self.link.is_some() {
                p.waits.push(t.elapsed());
                if p.keep_times {
                    p.times.push((tag.frame, crate::stats::monotonic_ns()));
                }
            }
            if p.keep
                && let Some(state) = tag.state
            {
                p.frames.push((tag.frame, state, tag.views.unwrap_or(0)));
            }
        }
        Ok(shown)
    }
}

/// What the master measured.
#[derive(Debug, Clone, Default)]
pub struct MasterReport {
    /// Frames sent and swapped.
    pub frames: u64,
    /// Barrier wait per frame.
    pub swap_waits: Vec<Duration>,
    /// Nodes dropped, with frame and reason.
    pub dropped: Vec<(u64, String, String)>,
    /// Nodes that got in step after the start (late joins and rejoins), with the frame.
    pub joined: Vec<(u64, String)>,
    /// With verification: node states that differed from the master's.
    pub mismatches: Vec<lockstep_cluster::Mismatch>,
    /// With verification: node states compared.
    pub verified: usize,
    /// Frames at which a new cluster file took effect.
    pub reconfigured: Vec<u64>,
    /// Scene hash per frame, as the master sent it (when asked for).
    pub hashes: Vec<u64>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// How [`master_loop`] runs.
pub struct MasterLoop<'a> {
    /// Stop after this many frames.
    pub frames: Option<u64>,
    /// A fixed clock step per frame instead of wall-clock time.
    pub fixed_dt: Option<f64>,
    /// At most one frame per this period (paced), else as fast as the nodes go.
    pub frame_period: Option<Duration>,
    /// How long to wait for the nodes at the start, and for one to come back.
    pub start_timeout: Duration,
    /// Start once these nodes have joined (else: all of the cluster file's).
    pub wait_for: Option<&'a [String]>,
    /// Keep the scene digest of every frame.
    pub record_hashes: bool,
    /// Set to end after the current frame.
    pub stop: &'a std::sync::atomic::AtomicBool,
    /// The master's input: its own window's (`--render`), its devices, the head tracker.
    pub input: MasterInput,
}

/// Prints the input events of `frame` as `who` sees them (`--trace-input`).
pub fn trace_input(who: &str, frame: u64, plugins: &lockstep_cluster::ClusterManager) {
    if let Some(input) = plugins.get::<InputReplication>() {
        for e in input.input().events() {
            println!("{who} input frame {frame}: {e:?}");
        }
    }
}

/// Prints what `who`'s own devices read during `frame` and sent to the master.
pub fn trace_read(who: &str, frame: u64, events: &[InputEvent]) {
    for e in events {
        println!("{who} input read at frame {frame}: {e:?}");
    }
}

/// Where the master's input comes from each frame.
#[derive(Default)]
pub struct MasterInput {
    /// Events of the master's own window (`--render`), a batch per frame it drew.
    pub window: Option<Receiver<Vec<InputEvent>>>,
    /// The devices the master reads itself.
    pub devices: Devices,
    /// The tracker sensor that moves the head.
    pub head: Option<HeadTracker>,
    /// The cluster file's devices: a node may send the input of those it holds.
    pub placed: Vec<InputDevice>,
    /// Batches from nodes refused so far (told now and then, not at each).
    refused: u64,
    /// Print every frame's input events (`--trace-input`).
    pub trace: bool,
    /// Sample input after the oldest frame's barrier, not before it (pipelined two deep,
    /// unpaced): a frame younger at the walls, for a little speed. On with a tracked head
    /// that is not latched (`[head] latch = false`).
    pub sample_late: bool,
    /// The frame's events and the nodes' batches, kept to reuse their memory.
    events: Vec<InputEvent>,
    from_nodes: Vec<(String, Vec<u8>)>,
    /// Where every frame's input is written (`--record`).
    pub record: Option<Recorder>,
    /// The recorded input played instead of the window's and the devices' (`--replay`).
    pub replay: Option<Replay>,
}

impl MasterInput {
    /// The input of a master of `config`: the head's tracker and where devices are placed
    /// come from the file (sampling late with a tracked head that is not latched); no
    /// window, devices, trace, recording or replay until set.
    pub fn for_cluster(config: &ClusterConfig) -> MasterInput {
        MasterInput {
            head: config.head_tracker.clone(),
            placed: config.input.clone(),
            // A tracked head is what input latency is felt in. Latched, its pose is a frame
            // old at the walls anyway, and sampling late would only cost frames.
            sample_late: config.head_tracker.as_ref().is_some_and(|t| !t.latch),
            ..MasterInput::default()
        }
    }

    /// Hands the input plugin the events of `frame`, about to begin, records them, and
    /// moves the head when its sensor reported.
    fn begin_frame(&mut self, frame: u64, master: &mut Master) {
        // Reused frame after frame: no allocation once they have grown.
        let mut events = std::mem::take(&mut self.events);
        let mut from_nodes = std::mem::take(&mut self.from_nodes);
        master.take_node_input(&mut from_nodes);
        let window = self.window.as_ref().map(|rx| rx.try_iter());
        match &mut self.replay {
            Some(replay) => {
                // The window's input is not the recording's: it is dropped.
                window.into_iter().flatten().for_each(drop);
                events.extend_from_slice(replay.frame(frame));
            }
            None => {
                for batch in window.into_iter().flatten() {
                    events.extend(batch);
                }
                self.devices.poll(&mut events);
                for (node, bytes) in from_nodes.drain(..) {
                    match crate::devices::decode_batch(&node, &bytes, &self.placed) {
                        Ok(batch) => events.extend(batch),
                        Err(why) => {
                            self.refused += 1;
                            if self.refused.is_power_of_two() {
                                tracing::warn!("{why}; dropped ({} so far)", self.refused);
                            }
                        }
                    }
                }
            }
        }
        from_nodes.clear();
        self.from_nodes = from_nodes;
        let plugins = &mut master.manager;
        let Some(input) = plugins.get_mut::<InputReplication>() else {
            return;
        };
        input.begin(events.drain(..));
        self.events = events;
        if let Some(r) = &mut self.record
            && let Err(e) = r.frame(frame, input.input().events())
        {
            // The show goes on; the recording ends here.
            tracing::warn!("input recording stopped at frame {frame}: {e}");
            self.record = None;
        }
        let head = self
            .head
            .as_ref()
            .and_then(|t| crate::devices::head_from(input.input(), t));
        if let (Some(pose), Some(h)) = (head, plugins.get_mut::<HeadTracking>()) {
            h.set(pose);
        }
    }

    /// What latches the head pose as the master releases a swap: the recording's latched
    /// poses when replaying, else the head tracker's newest pose if the master reads it;
    /// none unless the cluster file latches (`[head] latch`).
    fn latch(&self) -> Option<Box<dyn lockstep_cluster::HeadLatch>> {
        let tracker = self.head.as_ref().filter(|t| t.latch)?;
        match &self.replay {
            Some(replay) => Some(crate::devices::replay_latch(replay)),
            None => self.devices.head_latch(tracker),
        }
    }

    /// After a swap was released: records the pose it latched, if it did.
    fn swapped(&mut self, master: &mut Master) {
        let Some((frame, head)) = master.take_latched() else {
            return;
        };
        let pose = lockstep_input::Pose {
            position: head.position,
            rotation: head.rotation,
        };
        if let Some(r) = &mut self.record
            && let Err(e) = r.latched(frame, pose)
        {
            tracing::warn!("input recording stopped at frame {frame}: {e}");
            self.record = None;
        }
    }

    /// Writes out the rest of the recording.
    fn finish(&mut self) -> Result<()> {
        if let Some(r) = self.record.take() {
            r.finish()?;
        }
        Ok(())
    }
}

/// Runs the master: waits for every node (or those of `wait_for`), then for each frame lets `update` edit the scene
/// and sends the frame. Unpaced, frames are pipelined: `update` of frame F+1 runs while the
/// nodes draw F, and F's barrier completes when F+1 is sent. Paced (at most one frame per
/// `frame_period`), each frame's barrier runs right after it is sent, so a frame is presented
/// as soon as every node has drawn it rather than a period later, and the rest of the period
/// keeps the connections alive ([`Master::idle`]). When every node has left, the master waits
/// up to `start_timeout` for one to come back. Ends after `frames` frames, when `stop` is
/// set, or when no node is left.
pub fn master_loop(
    master: &mut Master,
    scene: &mut Scene,
    run: MasterLoop<'_>,
    mut update: impl FnMut(&mut MasterFrame<'_>) -> Result<()>,
) -> Result<MasterReport> {
    let MasterLoop {
        frames,
        fixed_dt,
        frame_period,
        start_timeout,
        wait_for,
        record_hashes,
        stop,
        mut input,
    } = run;
    match wait_for {
        Some(names) => master.wait_for_unless(names, start_timeout, stop)?,
        None => master.wait_for_nodes_unless(start_timeout, stop)?,
    }
    let mut hasher = lockstep_cluster::SceneHasher::default();
    let mut outbox = Outbox::new();
    master.set_latch(input.latch());
    announce(NodeState::Running);
    let mut report = MasterReport::default();
    let start = Instant::now();
    let mut last = 0.0;
    for frame in 0.. {
        if frames.is_some_and(|n| frame >= n) || stop.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        let time = match fixed_dt {
            Some(dt) => frame as f64 * dt,
            None => start.elapsed().as_secs_f64(),
        };
        let info = FrameInfo {
            frame,
            time,
            dt: time - last,
        };
        last = time;
        // Sampling late (a tracked head), pipelined two deep: the oldest frame's barrier
        // comes first, so that this frame's input is sampled after the wait, not before it,
        // and is about a frame younger when the walls show it. The nodes draw the frame in
        // between meanwhile, but this frame reaches them later by the update's time.
        if input.sample_late
            && frame_period.is_none()
            && master.pipeline_depth() >= 2
            && let Some(due) = master.due()
        {
            let mut swap = SwapReport::default();
            master.swap(due, scene, &mut swap)?;
            input.swapped(master);
            report.count(swap, due);
        }
        // Input is sampled as late as it can be: right before the frame begins.
        input.begin_frame(frame, master);
        if input.trace {
            trace_input("master", frame, &master.manager);
        }
        master.begin_frame(&info, scene)?;
        let what = || format!("the application's update of frame {frame}");
        guard(what, || {
            update(&mut MasterFrame::new(
                scene,
                info,
                &mut master.manager,
                &mut outbox,
            ))
        })?;
        for e in outbox.drain(..) {
            master
                .queue_accepted(e)
                .map_err(anyhow::Error::msg)
                .with_context(what)?;
        }
        let mut swap = master.send_frame(&info, scene)?;
        input.swapped(master);
        if record_hashes {
            let digest = master
                .digest_of(frame)
                .unwrap_or_else(|| hasher.hash(scene));
            report.hashes.push(digest);
        }
        if let Some(period) = frame_period {
            master.swap(frame, scene, &mut swap)?;
            input.swapped(master);
            report.count(swap, frame);
            // Pace like an application running at a fixed rate, keeping the nodes'
            // connections alive meanwhile: never a busy wait.
            let next = start + period * (frame as u32 + 1);
            master.idle(next.saturating_duration_since(Instant::now()))?;
        } else {
            report.count(swap, frame);
        }
        if master.node_names().is_empty() && !stop.load(std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(
                "every node has left the cluster (at frame {frame}); waiting for one to come back"
            );
            let back = master.wait_for_any_unless(start_timeout, stop);
            // Told to stop while waiting: an ordinary end.
            if !stop.load(std::sync::atomic::Ordering::Relaxed) {
                back.with_context(|| {
                    format!("every node has left the cluster (at frame {frame})")
                })?;
            }
        }
    }
    while let Some(frame) = master.in_flight() {
        let mut swap = SwapReport::default();
        master.swap(frame, scene, &mut swap)?;
        input.swapped(master);
        report.count(swap, frame);
    }
    report.elapsed = start.elapsed();
    input.finish()?;
    Ok(report)
}

impl MasterReport {
    /// Adds what one `send_frame` or `swap` of frame `sent` reported: its barrier, if it ran
    /// one, and what happened to nodes (at the barrier's frame, else at the frame sent).
    fn count(&mut self, swap: SwapReport, sent: u64) {
        if swap.swapped.is_some() {
            self.frames += 1;
            self.swap_waits.push(swap.waited);
        }
        let at = swap.swapped.unwrap_or(sent);
        self.dropped
            .extend(swap.dropped.into_iter().map(|(n, why)| (at, n, why)));
        self.joined.extend(swap.joined.into_iter().map(|n| (at, n)));
        self.mismatches.extend(swap.mismatches);
        self.verified += swap.verified;
        self.reconfigured.extend(swap.reconfigured);
    }
}
