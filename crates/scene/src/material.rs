use std::sync::Arc;

use crate::{Color, SceneError};

/// Index of a [`Material`] in its [`crate::Scene`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MaterialId(pub u32);

/// Index of a [`Texture`] in its [`crate::Scene`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TextureId(pub u32);

/// How a surface looks: a base colour, optionally multiplied by a texture, lit or unlit.
#[derive(Debug, Clone, PartialEq)]
pub struct Material {
    /// Optional name (from glTF or user code), for diagnostics.
    pub name: Option<String>,
    /// Linear base colour; multiplies the texture.
    pub base_color: Color,
    /// Base-colour texture, sampled with the mesh's UVs.
    pub texture: Option<TextureId>,
    /// Lit materials get per-pixel diffuse and specular light; unlit show `base_color` as is.
    pub lit: bool,
}

impl Material {
    /// A lit material of one colour.
    pub fn lit(base_color: Color) -> Self {
        Material {
            name: None,
            base_color,
            texture: None,
            lit: true,
        }
    }

    /// An unlit material of one colour: the pixel shows exactly this colour.
    pub fn unlit(base_color: Color) -> Self {
        Material {
            lit: false,
            ..Material::lit(base_color)
        }
    }

    /// Adds a base-colour texture.
    pub fn with_texture(mut self, texture: TextureId) -> Self {
        self.texture = Some(texture);
        self
    }

    /// Sets the name.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// How a texture is filtered between texels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TextureFilter {
    /// Trilinear: smooth magnification, mipmapped minification.
    #[default]
    Linear,
    /// Nearest texel, nearest mip level: crisp pixel art, UI, test patterns.
    Nearest,
}

/// An RGBA8 image, stored sRGB-encoded as image files are.
#[derive(Debug, Clone, PartialEq)]
pub struct Texture {
    /// Name for diagnostics (file name or glTF image name).
    pub name: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height` RGBA8 pixels, rows top to bottom; shared, never copied per frame.
    pub rgba8: Arc<[u8]>,
    /// Filtering when sampled.
    pub filter: TextureFilter,
}

impl Texture {
    /// Checks that the buffer holds exactly `width * height` pixels.
    pub fn new(
        name: impl Into<String>,
        width: u32,
        height: u32,
        rgba8: impl Into<Arc<[u8]>>,
    ) -> Result<Self, SceneError> {
        let name = name.into();
        let rgba8 = rgba8.into();
        let expected = width as usize * height as usize * 4;
        if rgba8.len() != expected || width == 0 || height == 0 {
            return Err(SceneError::TextureSize {
                name,
                width,
                height,
                len: rgba8.len(),
                expected,
            });
        }
        Ok(Texture {
            name,
            width,
            height,
            rgba8,
            filter: TextureFilter::Linear,
        })
    }

    /// Sets the filter.
    pub fn with_filter(mut self, filter: TextureFilter) -> Self {
        self.filter = filter;
        self
    }

    /// A checkerboard of `cells` × `cells` squares of two colours, `size` pixels wide.
    pub fn checker(name: &str, size: u32, cells: u32, a: [u8; 4], b: [u8; 4]) -> Self {
        let size = size.max(1);
        let cell = (size / cells.max(1)).max(1);
        let mut px = Vec::with_capacity((size * size * 4) as usize);
        for y in 0..size {
            for x in 0..size {
                let c = if ((x / cell) + (y / cell)).is_multiple_of(2) {
                    a
                } else {
                    b
                };
                px.extend_from_slice(&c);
            }
        }
        Texture::new(name, size, size, px).expect("checker size is consistent by construction")
    }
}
