/*!
lockstep's renderer. A frame passes two stages here:

- **Cull** ([`cull`]): a scene and a [`View`] become a [`DrawList`] — world transforms resolved,
  objects outside the frustum dropped, instances grouped and sorted by pipeline, material and
  mesh. Cull needs no GPU, so it runs (and is tested) anywhere.
- **Draw** ([`Renderer`]): uploads what changed, records one render pass from the draw list and
  submits it to a target; [`OffscreenTarget`] reads the pixels back.

[`GpuContext`] picks the adapter (Vulkan when present, else GL) and owns device and queue.
[`import`] turns glTF 2.0 files into scene nodes.
*/
#![deny(missing_docs)]

mod capture;
pub mod cull;
mod draw;
mod error;
mod gpu;
pub mod import;
mod raw;
pub mod strip;
mod target;

pub use capture::{Image, write_png};
pub use cull::{Batch, CullStats, DrawList, PipelineKind, View, cull};
pub use draw::Renderer;
pub use draw::{DEPTH_FORMAT, PassTarget, depth_view};
pub use error::RenderError;
pub use gpu::{AdapterSummary, BackendChoice, GpuContext};
pub use raw::{InstanceRaw, LightRaw, MAX_LIGHTS};
pub use target::{DrawOptions, MAX_TARGET_SIZE, OFFSCREEN_FORMAT, OffscreenTarget};

/// Re-exported so users name wgpu types (e.g. `ColorWrites`) without matching its version.
pub use wgpu;
