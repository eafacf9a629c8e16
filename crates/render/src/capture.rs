/*!
Captured frames and PNG output.
*/
use std::path::Path;

use crate::RenderError;

/// An RGBA8 sRGB image read back from a target, rows top to bottom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 4` bytes.
    pub rgba8: Vec<u8>,
}

impl Image {
    /// The pixel at (x, y), (0, 0) being the top-left; `None` outside the image.
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 4]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = ((y * self.width + x) * 4) as usize;
        self.rgba8.get(i..i + 4).map(|p| [p[0], p[1], p[2], p[3]])
    }

    /// Writes the image as a PNG file.
    pub fn write_png(&self, path: &Path) -> Result<(), RenderError> {
        write_png(path, self.width, self.height, &self.rgba8)
    }
}

/// Writes RGBA8 pixels as a PNG file, creating missing parent folders.
pub fn write_png(path: &Path, width: u32, height: u32, rgba8: &[u8]) -> Result<(), RenderError> {
    let fail = |reason: String| RenderError::WriteImage {
        path: path.to_path_buf(),
        reason,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| fail(e.to_string()))?;
    }
    image::save_buffer_with_format(
        path,
        rgba8,
        width,
        height,
        image::ExtendedColorType::Rgba8,
        image::ImageFormat::Png,
    )
    .map_err(|e| fail(e.to_string()))
}
