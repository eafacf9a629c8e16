/*!
The cluster runtime. So far: scene replication — what the master sends each frame so that
every node holds the same scene — and the scene hash that tests and the soak compare across
processes. The ClusterManager, its plugins and the master and node sessions build on these.
*/
#![deny(missing_docs)]

pub mod replication;

pub use replication::{ReplicationError, apply_changes, scene_hash, write_changes};
