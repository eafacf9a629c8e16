use std::path::PathBuf;

/// What can go wrong while setting up the GPU, drawing, or writing images.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// No adapter of the requested backend exists on this machine.
    #[error("no {backend} adapter found{hint}")]
    NoAdapter {
        /// The backend(s) that were searched.
        backend: String,
        /// What to install or try instead.
        hint: &'static str,
    },
    /// The adapter refused to create a device.
    #[error("cannot open a device on adapter '{adapter}': {reason}")]
    Device {
        /// Adapter name.
        adapter: String,
        /// wgpu's reason.
        reason: String,
    },
    /// A target size that is zero or beyond what the device supports.
    #[error("target size {width}x{height} is invalid: {reason}")]
    TargetSize {
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
        /// Why it was refused.
        reason: String,
    },
    /// The GPU reported an error while drawing or reading back.
    #[error("GPU error: {0}")]
    Gpu(String),
    /// The draw list names a mesh, material or texture that the scene does not have.
    #[error("draw list does not match the scene: {0}")]
    Scene(#[from] lockstep_scene::SceneError),
    /// Writing an image file failed.
    #[error("cannot write image {path}: {reason}")]
    WriteImage {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}
