/*!
GPU copies of scene data. Each is created once from its scene object and kept until the scene
replaces that object (checked by `Arc` identity), so Draw uploads only what changed.
*/
use std::sync::Arc;

use image::{RgbaImage, imageops::FilterType};
use lockstep_scene::{Mesh, Texture};
use wgpu::util::DeviceExt;

use crate::RenderError;
use crate::raw::VertexRaw;

/// A mesh's vertex and index buffers.
pub(crate) struct GpuMesh {
    pub source: Arc<Mesh>,
    pub vertices: wgpu::Buffer,
    pub indices: wgpu::Buffer,
    pub index_count: u32,
}

impl GpuMesh {
    pub fn new(device: &wgpu::Device, mesh: &Arc<Mesh>) -> Self {
        let raw: Vec<VertexRaw> = mesh
            .vertices
            .iter()
            .map(|v| VertexRaw {
                position: v.position.to_array(),
                normal: v.normal.to_array(),
                uv: v.uv.to_array(),
            })
            .collect();
        let label = mesh.name.as_deref().unwrap_or("mesh");
        GpuMesh {
            source: mesh.clone(),
            vertices: device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(&raw),
                usage: wgpu::BufferUsages::VERTEX,
            }),
            indices: device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(&mesh.indices),
                usage: wgpu::BufferUsages::INDEX,
            }),
            index_count: mesh.indices.len() as u32,
        }
    }
}

/// A texture with its full mip chain, and the bind group that samples it.
pub(crate) struct GpuTexture {
    pub source: Arc<Texture>,
    pub bind_group: wgpu::BindGroup,
}

impl GpuTexture {
    pub fn new(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        layout: &wgpu::BindGroupLayout,
        sampler: &wgpu::Sampler,
        texture: &Arc<Texture>,
    ) -> Result<Self, RenderError> {
        let expected = texture.width as usize * texture.height as usize * 4;
        if texture.rgba8.len() != expected || expected == 0 {
            return Err(RenderError::Gpu(format!(
                "texture '{}' is {}x{} but holds {} bytes",
                texture.name,
                texture.width,
                texture.height,
                texture.rgba8.len()
            )));
        }
        let levels = mip_chain(texture);
        let gpu = device.create_texture(&wgpu::TextureDescriptor {
            label: Some(&texture.name),
            size: wgpu::Extent3d {
                width: texture.width,
                height: texture.height,
                depth_or_array_layers: 1,
            },
            mip_level_count: levels.len() as u32 + 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba8UnormSrgb,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        let base = (texture.width, texture.height, &texture.rgba8[..]);
        let rest = levels
            .iter()
            .map(|l| (l.width(), l.height(), l.as_raw().as_slice()));
        for (level, (w, h, data)) in std::iter::once(base).chain(rest).enumerate() {
            queue.write_texture(
                wgpu::TexelCopyTextureInfo {
                    texture: &gpu,
                    mip_level: level as u32,
                    origin: wgpu::Origin3d::ZERO,
                    aspect: wgpu::TextureAspect::All,
                },
                data,
                wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(4 * w),
                    rows_per_image: Some(h),
                },
                wgpu::Extent3d {
                    width: w,
                    height: h,
                    depth_or_array_layers: 1,
                },
            );
        }
        let view = gpu.create_view(&wgpu::TextureViewDescriptor::default());
        Ok(GpuTexture {
            source: texture.clone(),
            bind_group: material_bind_group(device, layout, &view, sampler, &texture.name),
        })
    }
}

pub(crate) fn material_bind_group(
    device: &wgpu::Device,
    layout: &wgpu::BindGroupLayout,
    view: &wgpu::TextureView,
    sampler: &wgpu::Sampler,
    label: &str,
) -> wgpu::BindGroup {
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout,
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::TextureView(view),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: wgpu::BindingResource::Sampler(sampler),
            },
        ],
    })
}

/// Mip levels 1.. of a texture, each half the size of the one before (at least 1 pixel),
/// filtered from the previous level so the chain costs about a third of the base image.
fn mip_chain(texture: &Texture) -> Vec<RgbaImage> {
    let mut levels: Vec<RgbaImage> = Vec::new();
    let (mut w, mut h) = (texture.width, texture.height);
    while w > 1 || h > 1 {
        w = (w / 2).max(1);
        h = (h / 2).max(1);
        let next = match levels.last() {
            Some(prev) => image::imageops::resize(prev, w, h, FilterType::Triangle),
            None => {
                // GpuTexture::new checked the size, so this only fails on a bad caller.
                let Some(base) = image::ImageBuffer::<image::Rgba<u8>, &[u8]>::from_raw(
                    texture.width,
                    texture.height,
                    &texture.rgba8[..],
                ) else {
                    return levels;
                };
                image::imageops::resize(&base, w, h, FilterType::Triangle)
            }
        };
        levels.push(next);
    }
    levels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mip_chain_halves_to_one_pixel() {
        let t = Texture::checker("c", 64, 2, [255, 0, 0, 255], [0, 0, 255, 255]);
        let sizes: Vec<_> = mip_chain(&t).iter().map(|l| l.dimensions()).collect();
        assert_eq!(
            sizes,
            vec![(32, 32), (16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]
        );
        let t = Texture::new("r", 8, 2, vec![0u8; 64]).unwrap();
        let sizes: Vec<_> = mip_chain(&t).iter().map(|l| l.dimensions()).collect();
        assert_eq!(sizes, vec![(4, 1), (2, 1), (1, 1)]);
    }
}
