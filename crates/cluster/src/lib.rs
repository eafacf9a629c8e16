/*!
The cluster runtime: the [`ClusterManager`] with its plugins, scene replication — what the
master sends each frame so that every node holds the same scene — and the scene hash that
tests and the master's verification compare across processes; the master and node sessions
(swap barrier, late join, heartbeats, run-time reconfiguration) and the control connection
`lockstep ctl` uses.
*/
#![deny(missing_docs)]

pub mod assets;
pub mod compose;
pub mod control;
mod digest;
mod error;
mod frame;
pub mod fuzzing;
pub mod join;
mod link;
pub mod master;
mod multicast;
pub mod node;
mod plugin;
pub mod plugins;
pub mod replication;
pub mod session;

pub use assets::{ASSETS_NAME, AssetClient, AssetInfo};
pub use control::{CONTROL_NAME, ClusterStatus, ControlClient, NodeReport};
pub use digest::{SceneHasher, scene_hash};
pub use error::ClusterError;
pub use join::AppIdentity;
pub use master::{FailurePolicy, HeadLatch, Master, MasterConfig, Mismatch, SwapReport};
pub use multicast::MulticastStats;
pub use node::{DirectNode, NodeConfig, NodeSession, SwapLink};
pub use plugin::{ClusterManager, ClusterPlugin, FrameInfo, Hook, PluginError, PluginId};
pub use replication::{ReplicationError, apply_changes, write_changes};
