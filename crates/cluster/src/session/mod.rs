/*!
The session's protocol logic without I/O (the quinn-proto shape): state machines that take
what arrived and the time, and say what to send and when to be woken. The master's and the
nodes' drivers own the sockets: the master's session (`master.rs`: where each node stands,
what goes to whom, the barriers, heartbeats), the swap barrier of one frame it runs
(`barrier.rs`), the heartbeats between frames (`liveness.rs`), and a node's stream from the
master once fed by multicast (`node.rs`: connection and group in order, repairs, silence,
shutdown). `harness.rs` (tests) runs a master and N nodes on them in memory.
*/
pub mod barrier;
pub mod liveness;
pub mod master;
pub mod node;

#[cfg(test)]
mod harness;

/// A node's connection, as the master's driver numbered it: a node that connects again is a
/// new one.
pub type NodeId = u64;
