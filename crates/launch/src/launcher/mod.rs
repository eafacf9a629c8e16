/*!
The operator's side: `lockstep launch`, `stop` and `status`.
*/
pub mod client;
pub mod plan;
pub mod run;
pub mod screen;

pub use plan::{LaunchOptions, Plan};
pub use run::{Outcome, launch, status, stop_cluster};
