/*!
Model import. [`load_gltf`] reads glTF 2.0 (`.gltf` with its buffers and images, or `.glb`).
*/
mod gltf;

pub use self::gltf::{ImportError, ImportErrorKind, ImportReport, load_gltf, model_files};
