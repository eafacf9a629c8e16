/*!
Display geometry: the cluster file and what each render node derives from it.

- [`ClusterConfig::load`] reads and validates a cluster file (TOML): hosts, windows, viewports,
  screens (three corners, or a Panda3D-style camera offset and lens), tiled walls with bezels,
  stereo and the head pose. Every mistake is reported with file, line and column.
- [`projection::off_axis`] is the generalised perspective projection (Kooima, "Generalized
  Perspective Projection", 2008): an eye and a screen rectangle give a view matrix and an
  off-axis frustum.
- [`ClusterConfig::change_to`] checks a run-time reconfiguration against the running file.
- [`ClusterConfig::views`] lists, for one node, every (viewport, eye) it renders with its pixel
  rectangle, colour mask and projection.
- [`split`] cuts a viewport helped by other nodes into strips (sort-first) and balances the
  cuts from measured times.
*/
#![deny(missing_docs)]

mod change;
mod config;
mod error;
mod names;
pub mod projection;
mod raw;
mod screen;
pub mod split;
mod threading;
mod tracking;
mod transport;
mod views;

pub use change::ConfigChange;
pub use config::{
    AssetsConfig, ClusterConfig, DEFAULT_DAEMON_PORT, DEFAULT_MAX_ASSET_MB, Endpoint, HeadPose,
    HeadTracker, LaunchConfig, MAX_HELPERS, NodeConfig, StereoConfig, StereoMode, ViewportConfig,
    WindowConfig,
};
pub use error::{ConfigError, ConfigErrors};
pub use names::{MAX_NAME, check_name};
pub use screen::{Eye, PandaLens, Screen, ScreenSpace, hpr_to_quat};
pub use threading::{MAX_THREAD_NAME, ThreadingModel};
pub use tracking::{DeviceHost, DeviceKind, InputDevice, TrackerRemap};
pub use transport::{DEFAULT_GROUP, DEFAULT_MULTICAST_PORT, MulticastConfig, Transport};
pub use views::{ColorMask, ViewSpec};
