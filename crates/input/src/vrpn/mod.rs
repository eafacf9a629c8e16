/*!
A VRPN client, written from VRPN's own `vrpn_Connection.C`, `vrpn_Tracker.C`, `vrpn_Button.C`
and `vrpn_Analog.C` (no Rust crate speaks VRPN, and the C++ library is not needed): trackers
(`vrpn_Tracker Pos_Quat`), buttons (`vrpn_Button Change`, `States`) and analog channels
(`vrpn_Analog Channel`) over TCP, with pings, and redialling a server that went away.

- [`codec`]: cookies and message framing, sans IO.
- [`session`]: one connection as a state machine (bytes in, reports out, time passed in).
- [`device`]: a device read on its own thread, its newest reports kept for the frame loop.
- [`server`]: a VRPN tracker server playing a scripted path, to try a display without a
  tracker (and for the tests).
*/
pub mod codec;
pub mod device;
pub mod server;
pub mod session;

pub use device::{Address, Device, PoseWatch, Reports};
pub use session::{Report, Session};

/// Why a VRPN connection ended.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VrpnError {
    /// The server's cookie is not VRPN 07's.
    #[error("bad cookie: {0}")]
    Cookie(String),
    /// Bytes that cannot be followed as VRPN messages.
    #[error("malformed stream: {0}")]
    Malformed(String),
    /// No connection could be made.
    #[error("{0}")]
    Unreachable(String),
    /// The connection failed.
    #[error("{0}")]
    Io(String),
}
