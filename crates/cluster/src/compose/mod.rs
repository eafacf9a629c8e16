/*!
Sort-first: one viewport's view rendered by its display node and helper nodes together, each
drawing a strip (the whole view's projection, scissored to its strip, so every pixel comes
out as the display node alone would draw it), the helpers' strips read back and sent to the
display node, which composites them before it reports `SwapReady`.

- `round.rs`: the display node's side, sans IO — requests per frame, strips checked as they
  come (frame, rectangle, size, sender), the deadline, the strips it must draw itself, and
  the load balancer (`lockstep_display::split`) fed with what each part took.
- `display.rs`: its driver — a listener on the display node's own address for its helpers
  (authenticated with the cluster key, only the helpers its viewports name), a reader
  thread per helper, [`StripExchange`] for the Draw side.
- `helper.rs`: a helper's driver — [`StripClient`] dials each display node it helps, takes
  its requests and sends the strips back.

Strips travel on their own connections, never between a frame's blocks: the master's
stream to every node is untouched.
*/
pub mod display;
pub mod helper;
pub mod round;

pub use display::{Arrived, StripExchange};
pub use helper::{StripClient, StripJob};
pub use round::{Helped, Request, StripError, StripRound, rgba_len};
