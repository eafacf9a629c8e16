/*!
The cluster runtime. So far: the [`ClusterManager`] with its plugins, scene replication —
what the master sends each frame so that every node holds the same scene — and the scene hash
that tests compare across processes. The master and node sessions build on these.
*/
#![deny(missing_docs)]

mod error;
mod frame;
mod link;
pub mod master;
pub mod node;
mod plugin;
pub mod plugins;
pub mod replication;

pub use error::ClusterError;
pub use master::{FailurePolicy, Master, MasterConfig, SwapReport};
pub use node::{DirectNode, NodeConfig, NodeSession, SwapLink};
pub use plugin::{ClusterManager, ClusterPlugin, FrameInfo, Hook, PluginError, PluginId};
pub use replication::{ReplicationError, apply_changes, scene_hash, write_changes};
