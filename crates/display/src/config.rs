/*!
The validated cluster file. [`ClusterConfig::load`] parses the TOML (unknown keys refused),
expands tiled walls and Panda-style screens into corner screens, and checks everything that
can be checked before a cluster starts. Each problem becomes one [`ConfigError`] pointing at
the offending value; all of them are reported together.
*/
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use glam::{Quat, Vec3};

use crate::error::Locator;
use crate::raw::{RawCluster, RawScreen, RawWall, S};
use crate::screen::{Eye, PandaLens, Screen, ScreenSpace, hpr_to_quat};
use crate::tracking::{DeviceHost, DeviceKind, InputDevice, TrackerRemap};
use crate::{ConfigError, ConfigErrors, ThreadingModel};

/// Largest window side accepted, in pixels.
pub const MAX_WINDOW_SIZE: u32 = 16384;

/// The most helpers one viewport may name (each adds a strip to composite every frame).
pub const MAX_HELPERS: usize = 8;

/// A host and TCP port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Host name or address.
    pub host: String,
    /// TCP port (never 0).
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// How the two eyes' images reach the viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StereoMode {
    /// One image from the head's centre.
    Mono,
    /// Each viewport shows one eye (`eye = "left"` or `"right"`), e.g. two projectors with
    /// polarising filters per wall.
    Passive,
    /// Each viewport is split: left half left eye, right half right eye.
    SideBySide,
    /// Each viewport is split: top half left eye, bottom half right eye.
    TopBottom,
    /// Both eyes in one viewport: red from the left eye, green and blue from the right.
    Anaglyph,
}

impl StereoMode {
    /// The name used in cluster files.
    pub fn as_str(self) -> &'static str {
        match self {
            StereoMode::Mono => "mono",
            StereoMode::Passive => "passive",
            StereoMode::SideBySide => "side-by-side",
            StereoMode::TopBottom => "top-bottom",
            StereoMode::Anaglyph => "anaglyph",
        }
    }

    fn parse(s: &str) -> Option<StereoMode> {
        [
            StereoMode::Mono,
            StereoMode::Passive,
            StereoMode::SideBySide,
            StereoMode::TopBottom,
            StereoMode::Anaglyph,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

/// Stereo settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StereoConfig {
    /// How eyes are separated.
    pub mode: StereoMode,
    /// Distance between the eyes, metres.
    pub eye_separation: f32,
}

/// Where the viewer's head is, in tracker space; fixed in the file, later moved by tracking.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeadPose {
    /// Point between the eyes.
    pub position: Vec3,
    /// Orientation; the eyes lie along its X axis.
    pub rotation: Quat,
}

impl HeadPose {
    /// The position of `eye` for an eye separation of `separation` metres.
    pub fn eye_position(&self, eye: Eye, separation: f32) -> Vec3 {
        self.position + self.rotation * Vec3::X * (eye.side() * separation * 0.5)
    }
}

/// A rectangle of a window showing one screen.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewportConfig {
    /// Unique within its window.
    pub name: String,
    /// The screen it shows.
    pub screen: String,
    /// x, y (from the window's top-left), width, height in pixels.
    pub rect: [u32; 4],
    /// The eye it shows (passive stereo), or mono.
    pub eye: Eye,
    /// Other nodes that render strips of this viewport's view for it (sort-first), in file
    /// order; empty when its node renders it alone.
    pub helpers: Vec<String>,
    /// Whether its helpers send their strips LZ4-compressed (`strips = "lz4"`; "raw" by
    /// default): less to send on a slow link, more work at both ends.
    pub lz4_strips: bool,
}

/// A window (or offscreen target) of a node.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowConfig {
    /// Unique within its node.
    pub name: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Top-left position on the desktop, if placed.
    pub position: Option<[i32; 2]>,
    /// Covers its monitor.
    pub fullscreen: bool,
    /// Monitor index for fullscreen windows.
    pub monitor: Option<u32>,
    /// Rendered offscreen instead of shown.
    pub offscreen: bool,
    /// Viewports in file order.
    pub viewports: Vec<ViewportConfig>,
}

/// One render node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    /// Unique name.
    pub name: String,
    /// Where its cluster connection listens or dials from.
    pub endpoint: Endpoint,
    /// Which threads run Cull and Draw.
    pub threading_model: ThreadingModel,
    /// Windows in file order.
    pub windows: Vec<WindowConfig>,
}

/// A validated cluster file.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// The file it was read from.
    pub path: PathBuf,
    /// Cluster name; part of the handshake.
    pub name: String,
    /// Key file, resolved against the cluster file's folder.
    pub key_file: Option<PathBuf>,
    /// Where `key_file` is written (line, column), for errors about the key.
    key_file_at: (usize, usize),
    /// Where the master listens.
    pub master: Endpoint,
    /// Stereo settings.
    pub stereo: StereoConfig,
    /// The head pose used until tracking provides one.
    pub head: HeadPose,
    /// Every screen, walls expanded into tiles, in file order.
    pub screens: Vec<Screen>,
    /// Render nodes in file order.
    pub nodes: Vec<NodeConfig>,
    /// How `lockstep launch` brings the cluster up.
    pub launch: LaunchConfig,
    /// Whether the master sends a node the files its application loaded.
    pub assets: AssetsConfig,
    /// Input devices (`[[input]]`), in file order.
    pub input: Vec<InputDevice>,
    /// The tracker sensor that moves the head (`[head] tracker`, `sensor`), if any.
    pub head_tracker: Option<HeadTracker>,
    /// How frame data reaches the nodes (`transport`, `[multicast]`).
    pub transport: crate::Transport,
}

/// The tracker sensor that gives the head's pose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadTracker {
    /// The `[[input]]` device's name.
    pub device: String,
    /// Its sensor.
    pub sensor: u32,
    /// Late latching (`[head] latch`, on unless false; only for a tracker the master
    /// reads): the master sends the newest pose with each swap it releases, and every node
    /// projects the next frame from it in Draw.
    pub latch: bool,
}

/// The cluster file's `[assets]` section: what happens when a node's copy of a file the
/// application loads at setup is missing or differs from the master's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetsConfig {
    /// The master sends the node its copy (else the node is refused, naming the file).
    pub send: bool,
    /// Largest file a node accepts from the master, in bytes.
    pub max_file_bytes: u64,
    /// Where a node keeps the files it was sent, by digest, so that it is not sent them again
    /// (`cache`, below the cluster file's folder; by default `.lockstep-assets`).
    pub cache: PathBuf,
}

/// The largest file a node accepts from the master unless `[assets] max_file_mb` says
/// otherwise, in MiB.
pub const DEFAULT_MAX_ASSET_MB: u64 = 1024;

/// The cluster file's `[launch]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchConfig {
    /// Port of `lockstep daemon` on every host.
    pub daemon_port: u16,
    /// Extra files every host needs (models, textures), relative to the cluster file's
    /// folder, `/`-separated (the `scene`, if any, among them).
    pub files: Vec<String>,
    /// The application every host runs, by absolute path (its daemons' `programs` list must
    /// name it): it is started as `PROGRAM master …` and `PROGRAM node …`. None: `lockstep`.
    pub program: Option<String>,
    /// A glTF model the built-in viewer shows (`--scene`), relative to the cluster file's
    /// folder; shipped like `files`.
    pub scene: Option<String>,
}

/// A path that stays below the folder it is relative to: not empty, not absolute, no `..`.
fn plain_relative(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// The port `lockstep daemon` listens on unless told otherwise.
pub const DEFAULT_DAEMON_PORT: u16 = 7399;

impl ClusterConfig {
    /// Whether the head is latched: tracked by a tracker the master reads, `[head] latch`
    /// not false.
    pub fn latches_head(&self) -> bool {
        self.head_tracker.as_ref().is_some_and(|t| t.latch)
    }

    /// Reads and validates a cluster file.
    pub fn load(path: &Path) -> Result<ClusterConfig, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                path: path.to_path_buf(),
                line: 0,
                column: 0,
                message: format!("cannot read cluster file: {e}"),
            }])
        })?;
        Self::parse(path, &text)
    }

    /// Validates cluster-file text; `path` is used in messages and to resolve `key_file`.
    pub fn parse(path: &Path, text: &str) -> Result<ClusterConfig, ConfigErrors> {
        let loc = Locator { path, text };
        let raw: RawCluster = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start);
            ConfigErrors(vec![loc.at(at, e.message().trim().to_string())])
        })?;
        let mut v = Validator {
            loc,
            errors: Vec::new(),
            unusable: Vec::new(),
        };
        for (at, value) in crate::raw::unusable_numbers(text) {
            v.errors.push(v.loc.at(
                at,
                format!(
                    "{value} is not a usable number: every number must be finite and fit in 32 bits"
                ),
            ));
            v.unusable.push(at);
        }
        let config = v.cluster(raw);
        v.errors.sort_by_key(|e| (e.line, e.column));
        if v.errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(v.errors))
        }
    }

    /// An error about the key file, pointing at the `key_file` line (or at the file when it
    /// names none).
    pub fn key_file_error(&self, message: impl Into<String>) -> ConfigError {
        let (line, column) = self.key_file_at;
        ConfigError {
            path: self.path.clone(),
            line,
            column,
            message: message.into(),
        }
    }

    /// The node with this name.
    pub fn node(&self, name: &str) -> Option<&NodeConfig> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The screen with this name.
    pub fn screen(&self, name: &str) -> Option<&Screen> {
        self.screens.iter().find(|s| s.name == name)
    }

    /// The display nodes node `helper` renders strips for (sort-first), in file order.
    pub fn helped_by(&self, helper: &str) -> Vec<&NodeConfig> {
        self.nodes
            .iter()
            .filter(|n| {
                n.windows
                    .iter()
                    .flat_map(|w| &w.viewports)
                    .any(|v| v.helpers.iter().any(|h| h == helper))
            })
            .collect()
    }
}

pub(crate) struct Validator<'a> {
    loc: Locator<'a>,
    errors: Vec<ConfigError>,
    /// Where unusable numbers stand: a range check of one of them adds nothing.
    unusable: Vec<usize>,
}

/// Remembers where each name was first seen, to report duplicates with both places.
struct Names(HashMap<String, usize>);

impl Names {
    fn new() -> Self {
        Names(HashMap::new())
    }
}

impl Validator<'_> {
    pub(crate) fn err<T>(&mut self, at: &S<T>, message: impl Into<String>) {
        if !self.unusable.contains(&at.span().start) {
            self.errors.push(self.loc.at(at.span().start, message));
        }
    }

    /// The cluster file's folder, which relative paths in it start from.
    fn folder(&self) -> &Path {
        self.loc.path.parent().unwrap_or(Path::new(""))
    }

    fn line_of<T>(&self, at: &S<T>) -> usize {
        self.loc.at(at.span().start, "").line
    }

    /// Records `name`; reports it if it breaks the name rule or `names` has it already.
    fn unique(&mut self, names: &mut Names, name: &S<String>, what: &str) {
        let n = name.get_ref();
        if n.trim().is_empty() {
            self.err(name, format!("{what} name must not be empty"));
            return;
        }
        // Names become file names (`render --out`, `--hash-out`), thread names and log lines.
        if let Err(e) = crate::check_name(what, n) {
            self.err(name, e);
        }
        match names.0.get(n) {
            Some(first) => {
                let first = *first;
                self.err(
                    name,
                    format!("duplicate {what} name '{n}' (first used on line {first})"),
                );
            }
            None => {
                let line = self.line_of(name);
                names.0.insert(n.clone(), line);
            }
        }
    }

    fn space(&mut self, s: &Option<S<String>>) -> ScreenSpace {
        match s.as_ref().map(|s| (s, s.get_ref().as_str())) {
            None | Some((_, "tracker")) => ScreenSpace::Tracker,
            Some((_, "world")) => ScreenSpace::World,
            Some((at, other)) => {
                self.err(
                    at,
                    format!("unknown space '{other}': expected \"tracker\" or \"world\""),
                );
                ScreenSpace::Tracker
            }
        }
    }

    fn cluster(&mut self, raw: RawCluster) -> ClusterConfig {
        if raw.name.get_ref().trim().is_empty() {
            self.err(&raw.name, "cluster name must not be empty");
        } else if let Err(e) = crate::check_name("cluster", raw.name.get_ref()) {
            // A daemon keeps each cluster's files in a folder of that name.
            self.err(&raw.name, e);
        }
        let master = self.endpoint(&raw.master.host, &raw.master.port, "master");
        let stereo = match &raw.stereo {
            None => StereoConfig {
                mode: StereoMode::Mono,
                eye_separation: 0.064,
            },
            Some(s) => {
                let mode = StereoMode::parse(s.mode.get_ref()).unwrap_or_else(|| {
                    self.err(
                        &s.mode,
                        format!(
                            "unknown stereo mode '{}': expected mono, passive, side-by-side, top-bottom or anaglyph",
                            s.mode.get_ref()
                        ),
                    );
                    StereoMode::Mono
                });
                let sep = s.eye_separation.as_ref().map_or(0.064, |e| {
                    let v = *e.get_ref();
                    if !(0.0..=0.5).contains(&v) {
                        self.err(e, format!("eye_separation {v} m is outside 0 to 0.5 m"));
                    }
                    v
                });
                StereoConfig {
                    mode,
                    eye_separation: sep,
                }
            }
        };
        let head = match &raw.head {
            None => HeadPose {
                position: Vec3::new(0.0, 1.7, 0.0),
                rotation: Quat::IDENTITY,
            },
            Some(h) => HeadPose {
                position: Vec3::from_array(*h.position.get_ref()),
                rotation: h
                    .hpr
                    .as_ref()
                    .map_or(Quat::IDENTITY, |r| hpr_to_quat(*r.get_ref())),
            },
        };

        // Screens, with tiled walls expanded in place of their declaration order.
        let mut screen_names = Names::new();
        let mut screens = Vec::new();
        let mut screen_lines: HashMap<String, usize> = HashMap::new();
        for s in &raw.screens {
            self.unique(&mut screen_names, &s.name, "screen");
            if let Some(screen) = self.screen(s, &head) {
                screen_lines.insert(screen.name.clone(), self.line_of(&s.name));
                screens.push(screen);
            }
        }
        for w in &raw.walls {
            for tile in self.wall(w) {
                let name = S::new(w.name.span(), tile.name.clone());
                self.unique(&mut screen_names, &name, "screen");
                screen_lines.insert(tile.name.clone(), self.line_of(&w.name));
                screens.push(tile);
            }
        }

        // Nodes, windows, viewports.
        let mut node_names = Names::new();
        let mut endpoints: HashMap<Endpoint, (String, usize)> = HashMap::new();
        endpoints.insert(
            master.clone(),
            ("the master".into(), self.line_of(&raw.master.host)),
        );
        let mut nodes = Vec::new();
        let mut used_screens: Vec<(S<String>, String)> = Vec::new();
        for n in &raw.nodes {
            if !n.name.get_ref().starts_with('@') {
                self.unique(&mut node_names, &n.name, "node");
            } else {
                self.err(
                    &n.name,
                    format!(
                        "node name '{}': names starting with '@' are kept for lockstep's own connections (such as `lockstep ctl`)",
                        n.name.get_ref()
                    ),
                );
            }
            let endpoint = self.endpoint(&n.host, &n.port, &format!("node '{}'", n.name.get_ref()));
            if endpoint.port != 0 {
                let line = self.line_of(&n.host);
                match endpoints.get(&endpoint) {
                    Some((other, first)) => {
                        let msg = format!(
                            "node '{}' uses {endpoint}, as {other} does (line {first}): each needs its own host:port",
                            n.name.get_ref()
                        );
                        self.err(&n.port, msg);
                    }
                    None => {
                        endpoints.insert(
                            endpoint.clone(),
                            (format!("node '{}'", n.name.get_ref()), line),
                        );
                    }
                }
            }
            let mut window_names = Names::new();
            let mut windows = Vec::new();
            for w in &n.windows {
                self.unique(&mut window_names, &w.name, "window");
                let [width, height] = *w.size.get_ref();
                if width == 0 || height == 0 || width > MAX_WINDOW_SIZE || height > MAX_WINDOW_SIZE
                {
                    self.err(
                        &w.size,
                        format!("window size {width}x{height}: each side must be 1 to {MAX_WINDOW_SIZE} pixels"),
                    );
                }
                let offscreen = w.offscreen.as_ref().is_some_and(|o| *o.get_ref());
                if offscreen && w.fullscreen {
                    if let Some(o) = &w.offscreen {
                        self.err(o, "a window cannot be both offscreen and fullscreen");
                    }
                }
                let mut viewport_names = Names::new();
                let mut viewports = Vec::new();
                for vp in &w.viewports {
                    self.unique(&mut viewport_names, &vp.name, "viewport");
                    let rect = vp
                        .rect
                        .as_ref()
                        .map_or([0, 0, width, height], |r| *r.get_ref());
                    let [x, y, rw, rh] = rect;
                    if let Some(r) = &vp.rect {
                        if rw == 0 || rh == 0 {
                            self.err(
                                r,
                                format!("viewport '{}' has an empty rectangle", vp.name.get_ref()),
                            );
                        } else if x as u64 + rw as u64 > width as u64
                            || y as u64 + rh as u64 > height as u64
                        {
                            self.err(
                                r,
                                format!(
                                    "viewport '{}' [{x}, {y}, {rw}, {rh}] reaches past its {width}x{height} window '{}'",
                                    vp.name.get_ref(),
                                    w.name.get_ref()
                                ),
                            );
                        }
                    }
                    let eye = self.eye(vp.eye.as_ref(), stereo.mode);
                    used_screens.push((vp.screen.clone(), vp.name.get_ref().clone()));
                    let helpers = vp.helpers.as_ref().map_or_else(Vec::new, |h| {
                        h.get_ref().iter().map(|n| n.get_ref().clone()).collect()
                    });
                    let lz4_strips = match vp.strips.as_ref().map(|s| s.get_ref().as_str()) {
                        None | Some("raw") => false,
                        Some("lz4") => true,
                        Some(other) => {
                            if let Some(at) = &vp.strips {
                                self.err(
                                    at,
                                    format!(
                                        "viewport '{}': strips = \"{other}\": expected \"raw\" or \"lz4\"",
                                        vp.name.get_ref()
                                    ),
                                );
                            }
                            false
                        }
                    };
                    viewports.push(crate::ViewportConfig {
                        name: vp.name.get_ref().clone(),
                        screen: vp.screen.get_ref().clone(),
                        rect,
                        eye,
                        helpers,
                        lz4_strips,
                    });
                }
                windows.push(WindowConfig {
                    name: w.name.get_ref().clone(),
                    width,
                    height,
                    position: w.position,
                    fullscreen: w.fullscreen,
                    monitor: w.monitor,
                    offscreen,
                    viewports,
                });
            }
            nodes.push(NodeConfig {
                name: n.name.get_ref().clone(),
                endpoint,
                threading_model: match &n.threading_model {
                    None => ThreadingModel::SingleThreaded,
                    Some(t) => t.get_ref().parse().unwrap_or_else(|e: String| {
                        self.err(t, e);
                        ThreadingModel::SingleThreaded
                    }),
                },
                windows,
            });
        }
        for (screen, viewport) in &used_screens {
            match screens.iter().find(|s| &s.name == screen.get_ref()) {
                None => {
                    let mut known: Vec<&str> = screens.iter().map(|s| s.name.as_str()).collect();
                    known.sort_unstable();
                    self.err(
                        screen,
                        format!(
                            "viewport '{viewport}' shows screen '{}', which is not defined (screens: {})",
                            screen.get_ref(),
                            if known.is_empty() { "none".to_string() } else { known.join(", ") }
                        ),
                    );
                }
                Some(s) => {
                    // With the head in the file, an eye behind a screen means swapped corners.
                    let eye = head.position;
                    let d = crate::projection::off_axis(
                        s.lower_left,
                        s.lower_right,
                        s.upper_left,
                        eye,
                        0.1,
                        10.0,
                    )
                    .distance;
                    if d <= 1e-4 && s.space == ScreenSpace::Tracker {
                        let line = screen_lines.get(&s.name).copied().unwrap_or(0);
                        self.err(
                            screen,
                            format!(
                                "the head at {:?} is behind or on screen '{}' (defined on line {line}): its front, lower_right − lower_left × upper_left − lower_left, must face the viewer",
                                head.position.to_array(),
                                s.name
                            ),
                        );
                    }
                }
            }
        }
        self.helpers(&raw.nodes, stereo.mode);
        let launch = self.launch(raw.launch.as_ref());
        let assets = self.assets(raw.assets.as_ref());
        let input = self.input(&raw.input, &nodes);
        let head_tracker = self.head_tracker(raw.head.as_ref(), &input);
        let transport = self.transport(raw.transport.as_ref(), raw.multicast.as_ref());
        let key_file_at = raw.key_file.as_ref().map_or((0, 0), |k| {
            let e = self.loc.at(k.span().start, "");
            (e.line, e.column)
        });
        ClusterConfig {
            path: self.loc.path.to_path_buf(),
            name: raw.name.get_ref().clone(),
            key_file: raw
                .key_file
                .as_ref()
                .map(|k| self.folder().join(k.get_ref())),
            key_file_at,
            master,
            stereo,
            head,
            screens,
            nodes,
            launch,
            assets,
            input,
            head_tracker,
            transport,
        }
    }

    /// Checks every viewport's helpers: other nodes of the file, each at most once per
    /// viewport and per node it helps, and no two nodes helping each other (each would wait
    /// for the other's strip while drawing its own).
    fn helpers(&mut self, raw: &[crate::raw::RawNode], stereo: StereoMode) {
        let names: Vec<&str> = raw.iter().map(|n| n.name.get_ref().as_str()).collect();
        // A viewport drawn as two views (both eyes in it) cannot be split yet: the strips
        // of one eye would overwrite the other's.
        if matches!(
            stereo,
            StereoMode::SideBySide | StereoMode::TopBottom | StereoMode::Anaglyph
        ) {
            for vp in raw
                .iter()
                .flat_map(|n| n.windows.iter().flat_map(|w| &w.viewports))
            {
                if let Some(list) = &vp.helpers {
                    self.err(
                        list,
                        format!(
                            "viewport '{}' names helpers, but stereo mode {} draws both eyes into it: helpers work with mono and passive stereo",
                            vp.name.get_ref(),
                            stereo.as_str()
                        ),
                    );
                }
            }
        }
        // (helper, node helped), for the mutual-help check.
        let mut helps: Vec<(&str, &str, &S<String>)> = Vec::new();
        for n in raw {
            let node = n.name.get_ref().as_str();
            // The viewport each helper of this node is first listed for.
            let mut first: HashMap<&str, (&str, usize)> = HashMap::new();
            for vp in n.windows.iter().flat_map(|w| &w.viewports) {
                let Some(list) = &vp.helpers else { continue };
                let viewport = vp.name.get_ref().as_str();
                if list.get_ref().len() > MAX_HELPERS {
                    self.err(
                        list,
                        format!(
                            "viewport '{viewport}' of node '{node}' names {} helpers: at most {MAX_HELPERS}",
                            list.get_ref().len()
                        ),
                    );
                }
                for h in list.get_ref() {
                    let helper = h.get_ref().as_str();
                    if helper == node {
                        self.err(
                            h,
                            format!(
                                "viewport '{viewport}' of node '{node}' names '{node}' as its own helper: a helper is another node"
                            ),
                        );
                        continue;
                    }
                    if !names.contains(&helper) {
                        let mut known: Vec<&str> =
                            names.iter().copied().filter(|m| *m != node).collect();
                        known.sort_unstable();
                        self.err(
                            h,
                            format!(
                                "viewport '{viewport}' of node '{node}': helper '{helper}' is not a node of this file (nodes: {})",
                                if known.is_empty() { "none".to_string() } else { known.join(", ") }
                            ),
                        );
                        continue;
                    }
                    let line = self.line_of(h);
                    match first.get(helper) {
                        Some((other, at)) if *other == viewport => self.err(
                            h,
                            format!(
                                "viewport '{viewport}' of node '{node}' names helper '{helper}' twice (first on line {at})"
                            ),
                        ),
                        Some((other, at)) => self.err(
                            h,
                            format!(
                                "helper '{helper}' is listed for viewports '{other}' (line {at}) and '{viewport}' of node '{node}': a helper renders for one viewport of a node"
                            ),
                        ),
                        None => {
                            first.insert(helper, (viewport, line));
                            helps.push((helper, node, h));
                        }
                    }
                }
            }
        }
        for (helper, node, at) in &helps {
            if let Some((_, _, back)) = helps.iter().find(|(h, n, _)| h == node && n == helper) {
                // Told once, at the pair's later mention.
                if self.line_of(*at) > self.line_of(*back) {
                    self.err(
                        *at,
                        format!(
                            "nodes '{node}' and '{helper}' help each other (also on line {}): each would wait for the other's strip",
                            self.line_of(*back)
                        ),
                    );
                }
            }
        }
        // Longer rings (a helps b helps c helps a) stall the same way: found by following
        // who each node helps, told once at the ring's last mention in the file.
        let helps_of = |n: &str| -> Vec<&str> {
            helps
                .iter()
                .filter(|(h, _, _)| *h == n)
                .map(|(_, d, _)| *d)
                .collect()
        };
        let mut told: Vec<Vec<&str>> = Vec::new();
        for (start, _, _) in &helps {
            let mut path = vec![*start];
            let mut stack = vec![(*start, 0usize)];
            while let Some((at, i)) = stack.pop() {
                let next = helps_of(at);
                if i >= next.len() {
                    path.pop();
                    continue;
                }
                stack.push((at, i + 1));
                let n = next[i];
                if n == *start && path.len() > 2 {
                    let mut ring = path.clone();
                    ring.sort_unstable();
                    if !told.contains(&ring) {
                        told.push(ring);
                        let mention = helps
                            .iter()
                            .filter(|(h, d, _)| path.contains(h) && path.contains(d))
                            .max_by_key(|(_, _, s)| self.line_of(*s))
                            .map(|(_, _, s)| *s);
                        if let Some(s) = mention {
                            self.err(
                                s,
                                format!(
                                    "nodes {} help each other in a ring: each would wait for the next one's strip",
                                    path.iter().map(|p| format!("'{p}'")).collect::<Vec<_>>().join(" → ")
                                ),
                            );
                        }
                    }
                } else if !path.contains(&n) {
                    path.push(n);
                    stack.push((n, 0));
                }
            }
        }
    }

    fn input(&mut self, raw: &[crate::raw::RawInput], nodes: &[NodeConfig]) -> Vec<InputDevice> {
        let mut names = Names::new();
        let mut out = Vec::new();
        for d in raw {
            self.unique(&mut names, &d.name, "input device");
            let kind = match (d.device.get_ref().as_str(), &d.address) {
                ("vrpn", Some(a)) => {
                    let ok = a.get_ref().split_once('@').is_some_and(|(dev, server)| {
                        let server = ["x-vrpn://", "tcp://", "x-vrpn:", "tcp:"]
                            .iter()
                            .find_map(|p| server.strip_prefix(p))
                            .unwrap_or(server);
                        let (host, port) = match server.rsplit_once(':') {
                            Some((h, p)) => (h, p.parse::<u16>().is_ok_and(|p| p > 0)),
                            None => (server, true),
                        };
                        !dev.is_empty() && !host.is_empty() && port
                    });
                    if !ok {
                        self.err(
                            a,
                            format!(
                                "input '{}': address '{}' is not DEVICE@HOST[:PORT] (as in Tracker0@localhost)",
                                d.name.get_ref(),
                                a.get_ref()
                            ),
                        );
                    }
                    DeviceKind::Vrpn {
                        address: a.get_ref().clone(),
                    }
                }
                ("vrpn", None) => {
                    self.err(
                        &d.device,
                        format!(
                            "input '{}': a vrpn device needs an address (DEVICE@HOST[:PORT])",
                            d.name.get_ref()
                        ),
                    );
                    continue;
                }
                ("gamepad", None) => DeviceKind::Gamepad {
                    script: d.script.as_ref().map(|f| self.folder().join(f.get_ref())),
                },
                ("gamepad", Some(a)) => {
                    self.err(
                        a,
                        format!(
                            "input '{}': gamepads are the host's own and have no address",
                            d.name.get_ref()
                        ),
                    );
                    continue;
                }
                (other, _) => {
                    self.err(
                        &d.device,
                        format!(
                            "input '{}': device '{other}' is not vrpn or gamepad",
                            d.name.get_ref()
                        ),
                    );
                    continue;
                }
            };
            if let (DeviceKind::Vrpn { .. }, Some(script)) = (&kind, &d.script) {
                self.err(
                    script,
                    format!(
                        "input '{}': only a gamepad plays a script (a tracker's is `lockstep vrpn serve PATH`)",
                        d.name.get_ref()
                    ),
                );
            }
            let host = match &d.host {
                None => DeviceHost::Master,
                Some(h) if h.get_ref() == "master" => DeviceHost::Master,
                Some(h) => {
                    if !nodes.iter().any(|n| &n.name == h.get_ref()) {
                        let known: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
                        self.err(
                            h,
                            format!(
                                "input '{}': host '{}' is neither master nor a node (nodes: {})",
                                d.name.get_ref(),
                                h.get_ref(),
                                known.join(", ")
                            ),
                        );
                    }
                    DeviceHost::Node(h.get_ref().clone())
                }
            };
            let mut remap = TrackerRemap::default();
            if let Some(a) = &d.axes {
                match TrackerRemap::parse_axes(a.get_ref()) {
                    Ok(m) => remap.axes = m,
                    Err(e) => self.err(a, format!("input '{}': {e}", d.name.get_ref())),
                }
            }
            if let Some(sc) = &d.scale {
                let v = *sc.get_ref();
                if v <= 0.0 {
                    self.err(
                        sc,
                        format!(
                            "input '{}': scale {v} must be above 0 (tracker units to metres)",
                            d.name.get_ref()
                        ),
                    );
                }
                remap.scale = v;
            }
            if let Some(p) = &d.position {
                remap.position = Vec3::from_array(*p.get_ref());
            }
            if let Some(r) = &d.hpr {
                remap.rotation = hpr_to_quat(*r.get_ref());
            }
            out.push(InputDevice {
                name: d.name.get_ref().clone(),
                kind,
                host,
                remap,
            });
        }
        out
    }

    fn head_tracker(
        &mut self,
        raw: Option<&crate::raw::RawHead>,
        input: &[InputDevice],
    ) -> Option<HeadTracker> {
        let raw = raw?;
        let Some(t) = &raw.tracker else {
            if let Some(s) = &raw.sensor {
                self.err(
                    s,
                    "head.sensor needs head.tracker, the input device it belongs to",
                );
            }
            if let Some(l) = &raw.latch {
                self.err(
                    l,
                    "head.latch needs head.tracker: only a tracked head is latched",
                );
            }
            return None;
        };
        let host = input
            .iter()
            .find(|d| &d.name == t.get_ref())
            .map(|d| &d.host);
        let on_master = !matches!(host, Some(DeviceHost::Node(_)));
        if let (Some(l), Some(DeviceHost::Node(node))) = (&raw.latch, host)
            && *l.get_ref()
        {
            self.err(
                l,
                format!(
                    "head.latch: the head's tracker is read on node '{node}', but only the master can latch a pose as it releases a swap"
                ),
            );
        }
        let latch = raw.latch.as_ref().is_none_or(|l| *l.get_ref()) && on_master;
        let trackers: Vec<&str> = input
            .iter()
            .filter(|d| matches!(d.kind, DeviceKind::Vrpn { .. }))
            .map(|d| d.name.as_str())
            .collect();
        if !trackers.contains(&t.get_ref().as_str()) {
            self.err(
                t,
                format!(
                    "head.tracker '{}' is no vrpn [[input]] (vrpn inputs: {})",
                    t.get_ref(),
                    if trackers.is_empty() {
                        "none".to_string()
                    } else {
                        trackers.join(", ")
                    }
                ),
            );
        }
        Some(HeadTracker {
            device: t.get_ref().clone(),
            sensor: raw.sensor.as_ref().map_or(0, |s| *s.get_ref()),
            latch,
        })
    }

    fn assets(&mut self, raw: Option<&crate::raw::RawAssets>) -> AssetsConfig {
        let send = raw
            .and_then(|r| r.send.as_ref())
            .is_some_and(|s| *s.get_ref());
        let mb = raw.and_then(|r| r.max_file_mb.as_ref());
        if let Some(mb) = mb
            && !(1..=1 << 20).contains(mb.get_ref())
        {
            self.err(
                mb,
                format!(
                    "assets.max_file_mb is {}: choose 1 to 1048576",
                    mb.get_ref()
                ),
            );
        }
        let cache = raw.and_then(|r| r.cache.as_ref());
        if let Some(c) = cache
            && !plain_relative(c.get_ref())
        {
            self.err(
                c,
                format!(
                    "assets.cache '{}' must be a folder below the cluster file's folder (no '..', not absolute)",
                    c.get_ref()
                ),
            );
        }
        AssetsConfig {
            send,
            max_file_bytes: mb.map_or(DEFAULT_MAX_ASSET_MB, |m| *m.get_ref()) << 20,
            cache: self
                .folder()
                .join(cache.map_or(".lockstep-assets", |c| c.get_ref().as_str())),
        }
    }

    fn launch(&mut self, raw: Option<&crate::raw::RawLaunch>) -> LaunchConfig {
        let Some(raw) = raw else {
            return LaunchConfig {
                daemon_port: DEFAULT_DAEMON_PORT,
                files: Vec::new(),
                program: None,
                scene: None,
            };
        };
        if let Some(p) = &raw.daemon_port
            && *p.get_ref() == 0
        {
            self.err(p, "launch.daemon_port is 0: choose a port from 1 to 65535");
        }
        if let Some(p) = &raw.program
            && !Path::new(p.get_ref()).is_absolute()
        {
            self.err(
                p,
                format!(
                    "launch.program '{}' must be an absolute path (the daemons' programs list names it)",
                    p.get_ref()
                ),
            );
        }
        if let (Some(_), Some(scene)) = (&raw.program, &raw.scene) {
            self.err(
                scene,
                "launch.scene is for the built-in viewer; an application of its own (launch.program) loads what it likes: set one of them",
            );
        }
        for f in raw.files.iter().chain(&raw.scene) {
            // Every host lays the files out under its workspace: they must stay inside it.
            if !plain_relative(f.get_ref()) {
                self.err(
                    f,
                    format!(
                        "launch file '{}' must be a path below the cluster file's folder (no '..', not absolute)",
                        f.get_ref()
                    ),
                );
                continue;
            }
            // Every process of the cluster reads the file as its host has it: a host without
            // it cannot run this cluster file (nor switch to it at run time).
            let full = self.folder().join(f.get_ref());
            match std::fs::metadata(&full) {
                Ok(m) if m.is_file() => {}
                Ok(_) => self.err(
                    f,
                    format!(
                        "launch file '{}': {} is not a file",
                        f.get_ref(),
                        full.display()
                    ),
                ),
                Err(e) => self.err(
                    f,
                    format!(
                        "launch file '{}' is not on this host: {}: {e}",
                        f.get_ref(),
                        full.display()
                    ),
                ),
            }
        }
        LaunchConfig {
            daemon_port: raw
                .daemon_port
                .as_ref()
                .map_or(DEFAULT_DAEMON_PORT, |p| *p.get_ref()),
            files: {
                let mut files: Vec<String> =
                    raw.files.iter().map(|f| f.get_ref().clone()).collect();
                if let Some(scene) = &raw.scene
                    && !files.contains(scene.get_ref())
                {
                    files.push(scene.get_ref().clone());
                }
                files
            },
            program: raw.program.as_ref().map(|p| p.get_ref().clone()),
            scene: raw.scene.as_ref().map(|s| s.get_ref().clone()),
        }
    }

    fn endpoint(&mut self, host: &S<String>, port: &S<u16>, who: &str) -> Endpoint {
        if host.get_ref().trim().is_empty() {
            self.err(host, format!("{who} has an empty host"));
        }
        if *port.get_ref() == 0 {
            self.err(
                port,
                format!("{who} has port 0: choose a port from 1 to 65535"),
            );
        }
        Endpoint {
            host: host.get_ref().clone(),
            port: *port.get_ref(),
        }
    }

    fn eye(&mut self, eye: Option<&S<String>>, mode: StereoMode) -> Eye {
        let Some(at) = eye else { return Eye::Mono };
        let e = match at.get_ref().as_str() {
            "mono" => Eye::Mono,
            "left" => Eye::Left,
            "right" => Eye::Right,
            other => {
                self.err(
                    at,
                    format!("unknown eye '{other}': expected mono, left or right"),
                );
                return Eye::Mono;
            }
        };
        if e != Eye::Mono && mode != StereoMode::Passive {
            self.err(
                at,
                format!(
                    "eye = \"{}\" needs stereo mode \"passive\"; with \"{}\" viewports are mono and lockstep splits the eyes itself",
                    e.as_str(),
                    mode.as_str()
                ),
            );
        }
        e
    }

    fn screen(&mut self, s: &RawScreen, head: &HeadPose) -> Option<Screen> {
        let space = self.space(&s.space);
        let name = s.name.get_ref().clone();
        match (&s.lower_left, &s.lower_right, &s.upper_left, &s.camera) {
            (Some(ll), Some(lr), Some(ul), None) => {
                let (ll3, lr3, ul3) = (
                    Vec3::from_array(*ll.get_ref()),
                    Vec3::from_array(*lr.get_ref()),
                    Vec3::from_array(*ul.get_ref()),
                );
                if let Some(problem) = Screen::rectangle_problem(ll3, lr3, ul3) {
                    self.err(ll, format!("screen '{name}': {problem}"));
                    return None;
                }
                Some(Screen {
                    name,
                    space,
                    lower_left: ll3,
                    lower_right: lr3,
                    upper_left: ul3,
                })
            }
            (None, None, None, Some(cam)) => {
                let c = cam.get_ref();
                let lens = match (c.fov, c.film_size, c.focal_length) {
                    (Some([h, v]), None, None) => {
                        if !(h > 0.0 && h < 180.0 && v > 0.0 && v < 180.0) {
                            self.err(cam, format!("screen '{name}': fov [{h}, {v}] must lie strictly between 0 and 180 degrees"));
                            return None;
                        }
                        PandaLens::Fov {
                            horizontal: h,
                            vertical: v,
                        }
                    }
                    (None, Some(size), Some(f)) => {
                        if !(size[0] > 0.0 && size[1] > 0.0 && f > 0.0) {
                            self.err(
                                cam,
                                format!(
                                    "screen '{name}': film_size and focal_length must be positive"
                                ),
                            );
                            return None;
                        }
                        PandaLens::Film {
                            size,
                            offset: c.film_offset.unwrap_or([0.0, 0.0]),
                            focal_length: f,
                        }
                    }
                    _ => {
                        self.err(
                            cam,
                            format!("screen '{name}': camera needs either fov = [h, v], or film_size and focal_length (film_offset optional)"),
                        );
                        return None;
                    }
                };
                let distance = c.distance.unwrap_or(1.0);
                if distance <= 0.0 || !distance.is_finite() {
                    self.err(cam, format!("screen '{name}': distance must be positive"));
                    return None;
                }
                Some(Screen::from_camera_offset(
                    name,
                    space,
                    head,
                    Vec3::from_array(c.pos.unwrap_or([0.0; 3])),
                    c.hpr.unwrap_or([0.0; 3]),
                    lens,
                    distance,
                ))
            }
            _ => {
                self.err(
                    &s.name,
                    format!("screen '{name}' needs either all of lower_left, lower_right, upper_left, or a camera (Panda-style offset and lens), not both"),
                );
                None
            }
        }
    }

    fn wall(&mut self, w: &RawWall) -> Vec<Screen> {
        let space = self.space(&w.space);
        let name = w.name.get_ref();
        let (rows, cols) = (*w.rows.get_ref(), *w.columns.get_ref());
        let mut ok = true;
        for (v, at, what) in [(rows, &w.rows, "rows"), (cols, &w.columns, "columns")] {
            if !(1..=64).contains(&v) {
                self.err(at, format!("wall '{name}': {what} = {v}, expected 1 to 64"));
                ok = false;
            }
        }
        let [tw, th] = *w.tile_size.get_ref();
        if !(tw > 0.0 && th > 0.0 && tw.is_finite() && th.is_finite()) {
            self.err(
                &w.tile_size,
                format!("wall '{name}': tile_size must be positive"),
            );
            ok = false;
        }
        let [bx, by] = w.bezel.as_ref().map_or([0.0, 0.0], |b| *b.get_ref());
        if let Some(b) = &w.bezel
            && !(bx >= 0.0 && by >= 0.0 && bx.is_finite() && by.is_finite())
        {
            self.err(
                b,
                format!("wall '{name}': bezel widths must be zero or positive"),
            );
            ok = false;
        }
        let right = w
            .right
            .as_ref()
            .map_or(Vec3::X, |r| Vec3::from_array(*r.get_ref()));
        let up =
            w.up.as_ref()
                .map_or(Vec3::Y, |u| Vec3::from_array(*u.get_ref()));
        let ll = Vec3::from_array(*w.lower_left.get_ref());
        if let Some(problem) = Screen::rectangle_problem(ll, ll + right, ll + up) {
            let at = w.right.as_ref().or(w.up.as_ref()).unwrap_or(&w.lower_left);
            self.err(
                at,
                format!(
                    "wall '{name}': right and up {}",
                    problem.replace("the corners are not a rectangle: ", "")
                ),
            );
            ok = false;
        }
        if !ok {
            return Vec::new();
        }
        let (right, up) = (right.normalize(), up.normalize());
        let mut tiles = Vec::with_capacity((rows * cols) as usize);
        for row in 0..rows {
            for col in 0..cols {
                // Row 0 is the top row; each tile's image sits inside a frame of bezel widths.
                let x = bx + col as f32 * (tw + 2.0 * bx);
                let y = by + (rows - 1 - row) as f32 * (th + 2.0 * by);
                let tile_ll = ll + right * x + up * y;
                tiles.push(Screen {
                    name: format!("{name}-r{row}c{col}"),
                    space,
                    lower_left: tile_ll,
                    lower_right: tile_ll + right * tw,
                    upper_left: tile_ll + up * th,
                });
            }
        }
        tiles
    }
}
