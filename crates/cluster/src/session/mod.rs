/*!
The session's protocol logic without I/O (the quinn-proto shape): state machines that take
what arrived and the time, and say what to send and when to be woken. The master's and the
nodes' drivers own the sockets. So far: the swap barrier of one frame (`barrier.rs`) and the
heartbeats between frames (`liveness.rs`).
*/
pub mod barrier;
pub mod liveness;
