/*!
Plugins and the [`ClusterManager`] (VR Juggler's model, registered like Bevy plugins).

A frame has three hooks ([`Hook`]). On the master, at each hook, every plugin may write one
block: frame-start blocks before the App stage's update, pre-draw blocks after it, post-frame
blocks once the frame's swap barrier has released. Each hook's blocks are closed by an
`EndBlock` naming the hook. On every node each plugin reads its own blocks back, hook by hook
and in registration order, once the frame's last `EndBlock` has arrived (post-frame blocks of
frame F before anything of frame F+1). Plugins are reached only through the manager, by type.
*/
use std::any::Any;

use lockstep_display::ClusterConfig;
use lockstep_scene::Scene;
pub use lockstep_wire::Hook;

/// A plugin's id on the wire; unique within a cluster.
pub type PluginId = u16;

/// The master's clock for one frame (sent in `FrameBegin`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FrameInfo {
    /// Frame number.
    pub frame: u64,
    /// Seconds since the cluster's first frame.
    pub time: f64,
    /// Seconds since the previous frame.
    pub dt: f64,
}

/// What went wrong in a plugin; names the plugin.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("plugin '{plugin}': {reason}")]
pub struct PluginError {
    /// The plugin's name.
    pub plugin: &'static str,
    /// What happened.
    pub reason: String,
}

/// A part of the cluster's per-frame data. Written on the master, read on every node.
pub trait ClusterPlugin: Any + Send {
    /// Wire id, unique in the cluster.
    fn id(&self) -> PluginId;

    /// Name for logs and errors.
    fn name(&self) -> &'static str;

    /// What this plugin's blocks hold, as text: a node whose plugin of the same id says
    /// otherwise is refused at the handshake. By default the plugin's Rust type (for
    /// [`crate::plugins::Shared`], with its value's type); override it to add a version when
    /// the bytes' layout changes under the same type name.
    fn schema(&self) -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed(std::any::type_name::<Self>())
    }

    /// Master, at `hook` of `frame`: append this plugin's data to `out` (leave it empty to
    /// send nothing). `scene` is the master's scene as it is at that point.
    fn write(
        &mut self,
        hook: Hook,
        frame: &FrameInfo,
        scene: &Scene,
        out: &mut Vec<u8>,
    ) -> Result<(), PluginError>;

    /// Node: apply the block the master wrote at `hook` of `frame`.
    fn read(
        &mut self,
        hook: Hook,
        frame: &FrameInfo,
        scene: &mut Scene,
        bytes: &[u8],
    ) -> Result<(), PluginError>;

    /// Master: append, for `hook` of `frame`, everything a node that holds nothing needs —
    /// the first frame of a node that joins late or rejoins. The other nodes get `write`'s
    /// changes as usual, so this must not change what the next `write` sends.
    fn snapshot(
        &mut self,
        hook: Hook,
        frame: &FrameInfo,
        scene: &Scene,
        out: &mut Vec<u8>,
    ) -> Result<(), PluginError>;

    /// Master and nodes: the cluster's configuration changed (display geometry, head, nodes).
    fn reconfigure(&mut self, _config: &ClusterConfig) {}
}

/// Registered plugins, in order. The only way to reach a plugin.
#[derive(Default)]
pub struct ClusterManager {
    plugins: Vec<Box<dyn ClusterPlugin>>,
    scratch: Vec<u8>,
}

impl ClusterManager {
    /// An empty manager.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a plugin; a second plugin with the same id or name is refused.
    pub fn register(&mut self, plugin: impl ClusterPlugin) -> Result<(), PluginError> {
        if let Some(other) = self
            .plugins
            .iter()
            .find(|p| p.id() == plugin.id() || p.name() == plugin.name())
        {
            return Err(PluginError {
                plugin: plugin.name(),
                reason: format!(
                    "id {} or name clashes with plugin '{}' (id {})",
                    plugin.id(),
                    other.name(),
                    other.id()
                ),
            });
        }
        self.plugins.push(Box::new(plugin));
        Ok(())
    }

    /// The plugin of type `P`, if registered.
    pub fn get<P: ClusterPlugin>(&self) -> Option<&P> {
        self.plugins
            .iter()
            .find_map(|p| (p.as_ref() as &dyn Any).downcast_ref::<P>())
    }

    /// The plugin of type `P`, mutably.
    pub fn get_mut<P: ClusterPlugin>(&mut self) -> Option<&mut P> {
        self.plugins
            .iter_mut()
            .find_map(|p| (p.as_mut() as &mut dyn Any).downcast_mut::<P>())
    }

    /// Names and ids in registration order.
    pub fn plugins(&self) -> impl Iterator<Item = (PluginId, &'static str)> + '_ {
        self.plugins.iter().map(|p| (p.id(), p.name()))
    }

    /// Ids, names and schemas in registration order: what a node's `Join` lists.
    pub fn signatures(
        &self,
    ) -> impl Iterator<Item = (PluginId, &'static str, std::borrow::Cow<'static, str>)> + '_ {
        self.plugins.iter().map(|p| (p.id(), p.name(), p.schema()))
    }

    /// The plugin with wire id `id`, if it is registered and of type `P` (e.g. one of several
    /// [`crate::plugins::Shared`] values of the same type).
    pub fn by_id<P: ClusterPlugin>(&self, id: PluginId) -> Option<&P> {
        let p = self.plugins.iter().find(|p| p.id() == id)?;
        (p.as_ref() as &dyn Any).downcast_ref::<P>()
    }

    /// The plugin with wire id `id`, mutably.
    pub fn by_id_mut<P: ClusterPlugin>(&mut self, id: PluginId) -> Option<&mut P> {
        let p = self.plugins.iter_mut().find(|p| p.id() == id)?;
        (p.as_mut() as &mut dyn Any).downcast_mut::<P>()
    }

    /// Master: every plugin writes at `hook`; `emit(id, bytes)` is called for each non-empty
    /// block.
    pub fn write_all(
        &mut self,
        hook: Hook,
        frame: &FrameInfo,
        scene: &Scene,
        mut emit: impl FnMut(PluginId, &[u8]),
    ) -> Result<(), PluginError> {
        self.each_block(&mut emit, |p, out| p.write(hook, frame, scene, out))
    }

    /// Lets every plugin fill the scratch buffer with `fill`, and emits each non-empty block.
    fn each_block(
        &mut self,
        emit: &mut impl FnMut(PluginId, &[u8]),
        mut fill: impl FnMut(&mut dyn ClusterPlugin, &mut Vec<u8>) -> Result<(), PluginError>,
    ) -> Result<(), PluginError> {
        for p in &mut self.plugins {
            self.scratch.clear();
            fill(p.as_mut(), &mut self.scratch)?;
            if !self.scratch.is_empty() {
                emit(p.id(), &self.scratch);
            }
        }
        Ok(())
    }

    /// Node: hands a block written at `hook` to its plugin.
    pub fn read(
        &mut self,
        hook: Hook,
        id: PluginId,
        frame: &FrameInfo,
        scene: &mut Scene,
        bytes: &[u8],
    ) -> Result<(), PluginError> {
        let p = self.plugins.iter_mut().find(|p| p.id() == id).ok_or(PluginError {
            plugin: "manager",
            reason: format!("a block for plugin id {id}, which is not registered here (is the node's build the master's?)"),
        })?;
        p.read(hook, frame, scene, bytes)
    }

    /// Master: every plugin writes its whole state at `hook`, for a node that joins;
    /// `emit(id, bytes)` is called for each non-empty block.
    pub fn snapshot_all(
        &mut self,
        hook: Hook,
        frame: &FrameInfo,
        scene: &Scene,
        mut emit: impl FnMut(PluginId, &[u8]),
    ) -> Result<(), PluginError> {
        self.each_block(&mut emit, |p, out| p.snapshot(hook, frame, scene, out))
    }

    /// Every plugin learns of a new configuration.
    pub fn reconfigure(&mut self, config: &ClusterConfig) {
        for p in &mut self.plugins {
            p.reconfigure(config);
        }
    }
}
