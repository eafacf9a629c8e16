/*!
GPU memory layouts, apart from the scene's CPU types (as wgpu's examples keep `Light` and
`LightRaw`). Cull writes them, Draw uploads them as they are with `bytemuck::cast_slice`.
Each must match its struct in `draw/shader.wgsl`.
*/
use bytemuck::{Pod, Zeroable};

/// Most lights one view is shaded with; more are dropped, nearest first kept.
pub const MAX_LIGHTS: usize = 8;

/// One mesh vertex as the vertex shader reads it (slot 0).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct VertexRaw {
    pub position: [f32; 3],
    pub normal: [f32; 3],
    pub uv: [f32; 2],
}

/// One drawn object (slot 1, stepped per instance): its world matrix, the matrix for its
/// normals, and its colour (material base colour × node tint).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, PartialEq)]
pub struct InstanceRaw {
    /// Object-to-world matrix, column-major.
    pub model: [[f32; 4]; 4],
    /// Inverse-transpose of the model matrix's 3×3 part, columns padded to vec4.
    pub normal: [[f32; 4]; 3],
    /// Linear RGBA.
    pub color: [f32; 4],
}

/// One light in world space.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, PartialEq)]
pub struct LightRaw {
    /// xyz: direction the light travels (w = 0) or position (w = 1).
    pub position_or_direction: [f32; 4],
    /// rgb: colour × intensity; a: range of a point light (0 for directional).
    pub color_range: [f32; 4],
}

/// Per-view uniforms (group 0, binding 0).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct GlobalsRaw {
    pub view_proj: [[f32; 4]; 4],
    pub camera_position: [f32; 4],
    pub ambient: [f32; 4],
    /// x: number of lights used.
    pub light_count: [u32; 4],
    pub lights: [LightRaw; MAX_LIGHTS],
}
