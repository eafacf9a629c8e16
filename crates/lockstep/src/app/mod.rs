/*!
One application on every process of a cluster, as in Panda3D's cluster mode, VR Juggler and
Vizard: the same program runs as the master, whose logic edits the scene and shared data each
frame, and as every render node, which applies the master's frames and renders its views.

An application implements [`ClusterApp`] and hands it to [`main`] (or [`run`] with parsed
[`Role`] arguments):

```no_run
use lockstep::app::{ClusterApp, MasterFrame, Setup};
use lockstep::cluster::{ClusterManager, PluginError, plugins::Shared};

const SCORE: u16 = 100;

struct Score;

impl ClusterApp for Score {
    fn name(&self) -> &str {
        "score"
    }
    fn plugins(&self, plugins: &mut ClusterManager) -> Result<(), PluginError> {
        plugins.register(Shared::new(SCORE, "score", 0u64))
    }
    fn setup(&mut self, _setup: &mut Setup<'_>) -> anyhow::Result<()> {
        Ok(())
    }
    fn update(&mut self, frame: &mut MasterFrame<'_>) -> anyhow::Result<()> {
        let n = frame.info.frame;
        frame.shared_mut::<u64>(SCORE)?.set(n);
        Ok(())
    }
}

fn main() -> std::process::ExitCode {
    // `score master --config cave.toml`, `score node --config cave.toml --name front`
    lockstep::app::main(|| Score)
}
```

Every role registers the same plugins and runs the same setup; the master checks both when a
node joins (see [`lockstep_cluster::join`]) and refuses one that differs, naming how. Only
what changed after setup travels over the network: each process loads its own copy of the
models.
*/
mod assets;
mod master;
mod node;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
pub use lockstep_cluster::plugins::Event;
use lockstep_cluster::plugins::{Events, MAX_EVENTS_SENT_PER_FRAME, SceneReplication, Shared};
use lockstep_cluster::{AppIdentity, ClusterManager, FrameInfo, PluginError, PluginId};
use lockstep_display::ClusterConfig;
use lockstep_scene::{NodeId, Scene};

use lockstep_input::InputReplication;
pub use lockstep_input::{Input, InputEvent};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use assets::Fetcher;
pub use master::{MasterArgs, Policy, resolve, run_master};
pub use node::{NodeArgs, RendererKind, run_node};

/// A cluster application: the same value type runs on the master and on every node.
pub trait ClusterApp: Send + 'static {
    /// The application's name: a node running another application is refused.
    fn name(&self) -> &str;

    /// Registers the application's plugins (its [`Shared`] values, its own plugins) after
    /// the built-in ones. Runs on every role, in the same order.
    fn plugins(&self, _plugins: &mut ClusterManager) -> Result<(), PluginError> {
        Ok(())
    }

    /// Builds the scene before the first frame, on every role: load the models here (with
    /// [`Setup::load_gltf`], so that the master can check every node loaded the same file).
    fn setup(&mut self, setup: &mut Setup<'_>) -> Result<()>;

    /// Master, each frame: edit the scene and the shared data. What it leaves is what every
    /// node shows for this frame.
    fn update(&mut self, frame: &mut MasterFrame<'_>) -> Result<()>;

    /// Node, each frame, once the master's frame is applied (read shared data and events,
    /// send events here). It sees the scene but cannot change it: replicated state comes only
    /// from the master.
    fn node_frame(&mut self, _frame: &mut NodeFrame<'_>) -> Result<()> {
        Ok(())
    }
}

/// What [`ClusterApp::setup`] builds.
pub struct Setup<'a> {
    /// The scene, empty at first.
    pub scene: &'a mut Scene,
    /// The files loaded so far, named as setup named them, with their SHA-256.
    assets: &'a mut Vec<(String, [u8; 32])>,
    /// On a node whose cluster file lets the master send files: where the master's copies
    /// come from.
    fetch: Option<&'a mut Fetcher>,
}

impl Setup<'_> {
    /// Imports a glTF model (`.glb`, or `.gltf` with its files) under `parent`, and records
    /// the digest of each of its files for the master's check. Returns the model's root node.
    ///
    /// On a node whose copy is missing or differs from the master's, the master's is read
    /// instead when the cluster file allows it (`[assets] send = true`).
    pub fn load_gltf(&mut self, path: &Path, parent: Option<NodeId>) -> Result<NodeId> {
        let read = match &mut self.fetch {
            Some(f) => f.model(path)?,
            None => path.to_path_buf(),
        };
        let report = lockstep_render::import::load_gltf(&read, self.scene, parent)?;
        for w in &report.warnings {
            tracing::warn!("{}: {w}", path.display());
        }
        // Named as the master names them: the model as setup wrote it, the files beside it
        // by their place next to it.
        for (i, file) in lockstep_render::import::model_files(&read)?
            .iter()
            .enumerate()
        {
            let name = match i {
                0 => path.to_path_buf(),
                _ => assets::master_name(path, &read, file),
            };
            self.record(&name, file)?;
        }
        Ok(report.root)
    }

    /// Records that setup reads the file at `path`, and returns the file to read: `path`, or
    /// on a node whose copy is missing or differs, the master's copy when the cluster file
    /// allows it (`[assets] send = true`). The master refuses a node whose copy differs (or
    /// that has none).
    pub fn asset(&mut self, path: &Path) -> Result<AssetFile> {
        let read = match &mut self.fetch {
            Some(f) => f.file(path)?,
            None => path.to_path_buf(),
        };
        self.record(path, &read)?;
        Ok(AssetFile(read))
    }

    /// Records the file setup named `name`, read at `read`.
    fn record(&mut self, name: &Path, read: &Path) -> Result<()> {
        let (digest, _) = lockstep_launch::daemon::store::digest_file(read)
            .with_context(|| format!("cannot read {}", read.display()))?;
        self.assets.push((name.display().to_string(), digest));
        Ok(())
    }
}

/// The file [`Setup::asset`] says to read: the one asked for, or on a node, the master's
/// copy of it.
#[must_use = "read this file, not the one asked for: on a node it may be the master's copy"]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetFile(std::path::PathBuf);

impl AssetFile {
    /// Where to read it.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

/// Events an application sent in one frame, checked against their declarations as they were
/// sent.
pub type Outbox = Vec<Event>;

/// What [`ClusterApp::update`] sees and changes on the master.
pub struct MasterFrame<'a> {
    /// The scene to edit.
    pub scene: &'a mut Scene,
    /// The frame's number and clock.
    pub info: FrameInfo,
    /// Every plugin (the application's shared values among them).
    pub plugins: &'a mut ClusterManager,
    outbox: &'a mut Outbox,
}

impl<'a> MasterFrame<'a> {
    /// The master's frame `info` over `scene` and `plugins`; events sent go to `outbox`.
    pub fn new(
        scene: &'a mut Scene,
        info: FrameInfo,
        plugins: &'a mut ClusterManager,
        outbox: &'a mut Outbox,
    ) -> Self {
        MasterFrame {
            scene,
            info,
            plugins,
            outbox,
        }
    }

    /// This frame's input — the master's window, trackers, gamepads, devices read on nodes —
    /// as every process sees it.
    pub fn input(&self) -> &Input {
        input_in(self.plugins)
    }

    /// This frame's cluster events, as every process sees them.
    pub fn events(&self) -> &[Event] {
        self.plugins.events()
    }

    /// Sends the cluster event `name` (declared with type `T`): every process, this one
    /// too, sees it in the next frame.
    pub fn send_event<T: Serialize>(&mut self, name: &str, value: &T) -> Result<()> {
        send(self.plugins, self.outbox, name, value)
    }

    /// The shared value registered with id `id`, to set.
    pub fn shared_mut<T: Serialize + DeserializeOwned + Send + 'static>(
        &mut self,
        id: PluginId,
    ) -> Result<&mut Shared<T>> {
        self.plugins
            .by_id_mut::<Shared<T>>(id)
            .with_context(|| no_shared::<T>(id))
    }

    /// The shared value registered with id `id`.
    pub fn shared<T: Serialize + DeserializeOwned + Send + 'static>(
        &self,
        id: PluginId,
    ) -> Result<&Shared<T>> {
        shared_in(self.plugins, id)
    }
}

/// What [`ClusterApp::node_frame`] sees on a node.
pub struct NodeFrame<'a> {
    /// This node's name.
    pub node: &'a str,
    /// The scene as the master's frame left it.
    pub scene: &'a Scene,
    /// The frame's number and clock (the master's).
    pub info: FrameInfo,
    /// Every plugin, as of this frame.
    pub plugins: &'a ClusterManager,
    pub(crate) outbox: &'a mut Outbox,
}

impl NodeFrame<'_> {
    /// This frame's input, as every process sees it.
    pub fn input(&self) -> &Input {
        input_in(self.plugins)
    }

    /// This frame's cluster events, as every process sees them.
    pub fn events(&self) -> &[Event] {
        self.plugins.events()
    }

    /// Sends the cluster event `name` (declared with type `T`) to the master, which delivers
    /// it to every process, this one too, in the next frame it begins.
    pub fn send_event<T: Serialize>(&mut self, name: &str, value: &T) -> Result<()> {
        send(self.plugins, self.outbox, name, value)
    }

    /// The shared value registered with id `id`.
    pub fn shared<T: Serialize + DeserializeOwned + Send + 'static>(
        &self,
        id: PluginId,
    ) -> Result<&Shared<T>> {
        shared_in(self.plugins, id)
    }
}

/// Runs application code (`what`, for the error's context), turning a panic into an error
/// with its message: a master whose update panics ends the cluster cleanly (the nodes are
/// told why), and a node whose hook panics exits 2 without taking the others down.
pub(crate) fn guard<T>(what: impl Fn() -> String, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            Err(anyhow::anyhow!("panicked: {msg}"))
        }
    }
    .with_context(what)
}

/// Encodes an event and checks it as the master will (declared name, its type, its size),
/// so that a mistake fails where it is made.
fn send<T: Serialize>(
    plugins: &ClusterManager,
    outbox: &mut Outbox,
    name: &str,
    value: &T,
) -> Result<()> {
    let bytes =
        postcard::to_stdvec(value).with_context(|| format!("cannot encode event '{name}'"))?;
    let events = plugins
        .get::<Events>()
        .context("no events plugin is registered")?;
    let event = events
        .accept(name, &bytes, false)
        .map_err(anyhow::Error::msg)?;
    if outbox.len() >= MAX_EVENTS_SENT_PER_FRAME {
        anyhow::bail!(
            "event '{name}': at most {MAX_EVENTS_SENT_PER_FRAME} events may be sent per frame"
        );
    }
    outbox.push(event);
    Ok(())
}

/// The input the input plugin holds (none registered: no input).
fn input_in(plugins: &ClusterManager) -> &Input {
    static NONE: std::sync::LazyLock<Input> = std::sync::LazyLock::new(Input::default);
    plugins
        .get::<InputReplication>()
        .map_or(&*NONE, InputReplication::input)
}

/// The shared value of type `T` registered with id `id` in `plugins`.
fn shared_in<T: Serialize + DeserializeOwned + Send + 'static>(
    plugins: &ClusterManager,
    id: PluginId,
) -> Result<&Shared<T>> {
    plugins
        .by_id::<Shared<T>>(id)
        .with_context(|| no_shared::<T>(id))
}

fn no_shared<T>(id: PluginId) -> String {
    format!(
        "no shared value of type {} registered with id {id}",
        std::any::type_name::<T>()
    )
}

/// An application set up on this process: its plugins, the scene its setup built (the
/// baseline every frame's changes apply to), and the identity a node sends when it joins.
pub struct Prepared {
    /// The built-in plugins, then the application's.
    pub manager: ClusterManager,
    /// The scene after setup.
    pub scene: Scene,
    /// Name, plugins, files loaded and the scene's digest.
    pub identity: AppIdentity,
}

/// Registers `app`'s plugins after the built-in ones of `config` and runs its setup, which
/// reads the master's copy of a file through `fetch` where the node's own is missing or
/// differs.
pub fn prepare(
    app: &mut dyn ClusterApp,
    config: &ClusterConfig,
    fetch: Option<&mut Fetcher>,
) -> Result<Prepared> {
    let mut manager = crate::roles::default_plugins(config);
    app.plugins(&mut manager)
        .with_context(|| format!("application '{}': its plugins", app.name()))?;
    let mut scene = Scene::new();
    let mut assets = Vec::new();
    let name = app.name().to_string();
    guard(
        || format!("application '{name}': setup"),
        || {
            app.setup(&mut Setup {
                scene: &mut scene,
                assets: &mut assets,
                fetch,
            })
        },
    )?;
    if let Some(r) = manager.get_mut::<SceneReplication>() {
        r.set_baseline(scene.clone());
    }
    let mut identity = AppIdentity::new(app.name(), &manager);
    identity.assets = assets;
    identity.baseline = lockstep_cluster::scene_hash(&scene);
    Ok(Prepared {
        manager,
        scene,
        identity,
    })
}

/// Which role this process plays.
#[derive(Debug, Subcommand)]
pub enum Role {
    /// Run the application's logic and send every node its frames.
    Master(MasterArgs),
    /// Render node NAME of the cluster file.
    Node(NodeArgs),
}

#[derive(Debug, Parser)]
#[command(about = "A lockstep cluster application: run it as the master or as a render node.")]
struct AppCommand {
    #[command(subcommand)]
    role: Role,
}

/// Runs `make()`'s application as `role`. The master may make a second instance (for the
/// view it renders itself, `--render`).
pub fn run<A: ClusterApp>(make: impl Fn() -> A + Send + Sync + 'static, role: Role) -> Result<()> {
    match role {
        Role::Master(args) => run_master(make, args),
        Role::Node(args) => run_node(make, args),
    }
}

/// The whole `main` of a cluster application: parses `master …` or `node …` from the
/// command line (the flags of `lockstep master` and `lockstep node`), logs to stderr, runs
/// the role, and exits 0, or 2 with the error's whole chain.
pub fn main<A: ClusterApp>(make: impl Fn() -> A + Send + Sync + 'static) -> ExitCode {
    let cmd = AppCommand::parse();
    crate::options::init_logging();
    match run(make, cmd.role) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
