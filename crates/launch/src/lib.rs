/*!
Bringing a cluster up and down from one command.

- [`daemon`]: `lockstep daemon` runs on every host. It authenticates launchers with the cluster
  key (the cluster protocol's handshake), keeps the files a cluster needs in a
  content-addressed store, and starts only allow-listed programs, each in its own process
  group, passing their output and exit statuses back.
- [`launcher`]: `lockstep launch`, `stop` and `status`: read the cluster file, sync files to
  every host, start the nodes then the master, follow them.
- [`protocol`]: the requests and replies between the two; [`conn`]: the authenticated
  connection they travel on; [`state`]: how a launched process reports its progress.
*/
#![deny(missing_docs)]

pub mod conn;
pub mod daemon;
mod error;
pub mod fuzzing;
pub mod launcher;
pub mod protocol;
pub mod state;

pub use error::LaunchError;
