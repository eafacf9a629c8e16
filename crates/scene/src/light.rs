use crate::Color;

/// What kind of light a node emits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LightKind {
    /// Parallel light along the node's -Z axis (like the sun).
    Directional,
    /// Light from the node's origin in all directions, fading to zero at `range`.
    Point {
        /// Distance at which the light's contribution reaches zero.
        range: f32,
    },
}

/// A light attached to a node; position and direction come from the node's world transform.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Light {
    /// Directional or point.
    pub kind: LightKind,
    /// Linear colour of the light.
    pub color: Color,
    /// Multiplier on `color`.
    pub intensity: f32,
}

impl Light {
    /// A directional light shining along the node's -Z axis.
    pub fn directional(color: Color, intensity: f32) -> Self {
        Light {
            kind: LightKind::Directional,
            color,
            intensity,
        }
    }

    /// A point light at the node's origin.
    pub fn point(color: Color, intensity: f32, range: f32) -> Self {
        Light {
            kind: LightKind::Point { range },
            color,
            intensity,
        }
    }
}
