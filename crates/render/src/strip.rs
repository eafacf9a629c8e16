/*!
Strips of a view rendered by other nodes (sort-first): written into the texture of the node
that shows the view, where they belong. A strip travels as RGBA8 sRGB, rows top to bottom,
whatever the format of the target it came from or goes to; [`to_target_order`] turns it into
a BGRA target's byte order in place.
*/
use crate::RenderError;

/// Writes `rgba8` (`rect`'s width × height pixels, rows top to bottom, in the byte order of
/// `texture`'s format) into `rect` of `texture`, which must allow `COPY_DST`. The write lands
/// before the work of the next submission to `queue`.
pub fn write_strip(
    queue: &wgpu::Queue,
    texture: &wgpu::Texture,
    [x, y, w, h]: [u32; 4],
    rgba8: &[u8],
) -> Result<(), RenderError> {
    let want = w as usize * h as usize * 4;
    if rgba8.len() != want {
        return Err(RenderError::TargetSize {
            width: w,
            height: h,
            reason: format!(
                "a strip of {w}x{h} pixels holds {want} bytes, not {}",
                rgba8.len()
            ),
        });
    }
    let size = texture.size();
    if x.saturating_add(w) > size.width || y.saturating_add(h) > size.height {
        return Err(RenderError::TargetSize {
            width: w,
            height: h,
            reason: format!(
                "a strip at ({x}, {y}) reaches past the {}x{} target",
                size.width, size.height
            ),
        });
    }
    queue.write_texture(
        wgpu::TexelCopyTextureInfo {
            texture,
            mip_level: 0,
            origin: wgpu::Origin3d { x, y, z: 0 },
            aspect: wgpu::TextureAspect::All,
        },
        rgba8,
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(w * 4),
            rows_per_image: Some(h),
        },
        wgpu::Extent3d {
            width: w,
            height: h,
            depth_or_array_layers: 1,
        },
    );
    Ok(())
}

/// Puts an RGBA8 strip into the byte order of a target of `format`, in place; an error for
/// a format a strip cannot be written into as it is (not 8-bit RGBA or BGRA sRGB).
pub fn to_target_order(format: wgpu::TextureFormat, pixels: &mut [u8]) -> Result<(), RenderError> {
    match format {
        wgpu::TextureFormat::Rgba8UnormSrgb => Ok(()),
        wgpu::TextureFormat::Bgra8UnormSrgb => {
            for p in pixels.chunks_exact_mut(4) {
                p.swap(0, 2);
            }
            Ok(())
        }
        other => Err(RenderError::Gpu(format!(
            "strips from other nodes are RGBA8 sRGB; a {other:?} target cannot take them"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bgra_target_gets_red_and_blue_swapped_and_other_formats_are_refused() {
        let mut px = vec![1, 2, 3, 4, 5, 6, 7, 8];
        to_target_order(wgpu::TextureFormat::Rgba8UnormSrgb, &mut px).unwrap();
        assert_eq!(px, [1, 2, 3, 4, 5, 6, 7, 8]);
        to_target_order(wgpu::TextureFormat::Bgra8UnormSrgb, &mut px).unwrap();
        assert_eq!(px, [3, 2, 1, 4, 7, 6, 5, 8]);
        let e = to_target_order(wgpu::TextureFormat::Rgba16Float, &mut px).unwrap_err();
        assert!(
            e.to_string()
                .contains("Rgba16Float target cannot take them"),
            "{e}"
        );
    }
}
