/*!
`lockstep daemon`: runs on every host of a cluster, and starts and stops its node processes
when an authenticated launcher asks. It only runs programs from its allow-list, in allowed
folders, never through a shell, and the built-in roles only with paths inside the cluster's
workspace (see [`confine`]).
*/
pub mod config;
pub mod confine;
pub mod server;
pub mod store;
pub mod supervisor;

pub use config::{DEFAULT_PORT, DaemonConfig, Overrides};
pub use server::Daemon;
