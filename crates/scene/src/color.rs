use glam::Vec4;

/// A linear-light RGBA colour. Shading happens in linear space; targets store sRGB.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Color {
    /// Red, linear.
    pub r: f32,
    /// Green, linear.
    pub g: f32,
    /// Blue, linear.
    pub b: f32,
    /// Alpha (coverage, not light).
    pub a: f32,
}

impl Color {
    /// Opaque white.
    pub const WHITE: Color = Color::rgb(1.0, 1.0, 1.0);
    /// Opaque black.
    pub const BLACK: Color = Color::rgb(0.0, 0.0, 0.0);

    /// An opaque linear colour.
    pub const fn rgb(r: f32, g: f32, b: f32) -> Self {
        Color { r, g, b, a: 1.0 }
    }

    /// A linear colour with alpha.
    pub const fn rgba(r: f32, g: f32, b: f32, a: f32) -> Self {
        Color { r, g, b, a }
    }

    /// The linear colour that an sRGB target stores as these 8-bit values.
    pub fn from_srgb8(r: u8, g: u8, b: u8) -> Self {
        Color::rgb(srgb_to_linear(r), srgb_to_linear(g), srgb_to_linear(b))
    }

    /// The 8-bit sRGB values an sRGB target stores for this colour (alpha kept linear).
    pub fn to_srgb8(self) -> [u8; 4] {
        [
            linear_to_srgb(self.r),
            linear_to_srgb(self.g),
            linear_to_srgb(self.b),
            (self.a.clamp(0.0, 1.0) * 255.0).round() as u8,
        ]
    }

    /// As a `Vec4` (r, g, b, a).
    pub fn to_vec4(self) -> Vec4 {
        Vec4::new(self.r, self.g, self.b, self.a)
    }
}

impl std::ops::Mul for Color {
    type Output = Color;

    /// Component-wise product, e.g. a material colour tinted by a node colour.
    fn mul(self, other: Color) -> Color {
        Color::rgba(
            self.r * other.r,
            self.g * other.g,
            self.b * other.b,
            self.a * other.a,
        )
    }
}

/// The sRGB transfer function, decoding one 8-bit channel to linear light.
pub fn srgb_to_linear(v: u8) -> f32 {
    let c = v as f32 / 255.0;
    if c <= 0.04045 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

/// The sRGB transfer function, encoding linear light to one 8-bit channel.
pub fn linear_to_srgb(c: f32) -> u8 {
    let c = c.clamp(0.0, 1.0);
    let s = if c <= 0.003_130_8 {
        c * 12.92
    } else {
        1.055 * c.powf(1.0 / 2.4) - 0.055
    };
    (s * 255.0).round() as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srgb_round_trips_every_byte() {
        for v in 0..=255u8 {
            assert_eq!(linear_to_srgb(srgb_to_linear(v)), v, "byte {v}");
        }
    }
}
