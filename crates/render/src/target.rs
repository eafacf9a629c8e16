/*!
Offscreen targets: a colour and a depth texture plus a buffer to read the colour back, all
sized together and rebuilt together by [`OffscreenTarget::resize`].
*/
use std::sync::mpsc;

use lockstep_scene::Scene;

use crate::draw::{PassTarget, depth_view};
use crate::{DrawList, GpuContext, Image, RenderError, Renderer};

/// Largest width or height lockstep accepts for a target, whatever the device allows.
pub const MAX_TARGET_SIZE: u32 = 16384;

/// Colour format of offscreen targets: 8-bit sRGB, what PNG files hold.
pub const OFFSCREEN_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8UnormSrgb;

/// How one view is drawn into a target that may already hold another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrawOptions {
    /// Clear the colour before drawing (depth is cleared for every view regardless).
    pub clear: bool,
    /// Channels written.
    pub color_writes: wgpu::ColorWrites,
    /// Pixel rectangle (x, y, width, height) to draw into; `None` for the whole target.
    pub viewport: Option<[u32; 4]>,
    /// Of that, the only pixels drawn (a strip of the view); `None` for all of them.
    pub scissor: Option<[u32; 4]>,
}

impl Default for DrawOptions {
    fn default() -> Self {
        DrawOptions {
            clear: true,
            color_writes: wgpu::ColorWrites::ALL,
            viewport: None,
            scissor: None,
        }
    }
}

/// A render target in GPU memory whose pixels can be read back.
pub struct OffscreenTarget {
    width: u32,
    height: u32,
    color: wgpu::Texture,
    color_view: wgpu::TextureView,
    depth_view: wgpu::TextureView,
    readback: wgpu::Buffer,
    /// Bytes per row in `readback`: wgpu requires multiples of 256.
    padded_row: u32,
}

impl OffscreenTarget {
    /// The colour format renderers for this target must be built with.
    pub const FORMAT: wgpu::TextureFormat = OFFSCREEN_FORMAT;

    /// Creates a `width` × `height` target; zero or oversized dimensions are refused.
    pub fn new(gpu: &GpuContext, width: u32, height: u32) -> Result<Self, RenderError> {
        let limit = gpu
            .device
            .limits()
            .max_texture_dimension_2d
            .min(MAX_TARGET_SIZE);
        if width == 0 || height == 0 {
            return Err(RenderError::TargetSize {
                width,
                height,
                reason: "width and height must be at least 1".into(),
            });
        }
        if width > limit || height > limit {
            return Err(RenderError::TargetSize {
                width,
                height,
                reason: format!("the largest supported side is {limit} pixels"),
            });
        }
        let color = gpu.device.create_texture(&wgpu::TextureDescriptor {
            label: Some("offscreen colour"),
            size: wgpu::Extent3d {
                width,
                height,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: OFFSCREEN_FORMAT,
            // Copied from for read-back, to for strips other nodes rendered (sort-first).
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT
                | wgpu::TextureUsages::COPY_SRC
                | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        let padded_row = (width * 4).div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT)
            * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT;
        let readback = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("offscreen read-back"),
            size: padded_row as u64 * height as u64,
            usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
            mapped_at_creation: false,
        });
        Ok(OffscreenTarget {
            width,
            height,
            color_view: color.create_view(&Default::default()),
            depth_view: depth_view(&gpu.device, width, height),
            color,
            readback,
            padded_row,
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Width / height.
    pub fn aspect(&self) -> f32 {
        self.width as f32 / self.height as f32
    }

    /// Rebuilds the size-bound textures and buffer.
    pub fn resize(&mut self, gpu: &GpuContext, width: u32, height: u32) -> Result<(), RenderError> {
        if (width, height) != (self.width, self.height) {
            *self = OffscreenTarget::new(gpu, width, height)?;
        }
        Ok(())
    }

    /// Draws `list` covering the whole target, clearing it first, and submits the work.
    /// With `read_back`, the pixels are copied to the read-back buffer in the same submission
    /// (then call [`OffscreenTarget::read_into`]).
    pub fn render(
        &self,
        gpu: &GpuContext,
        renderer: &mut Renderer,
        scene: &Scene,
        list: &DrawList,
        read_back: bool,
    ) -> Result<wgpu::SubmissionIndex, RenderError> {
        self.render_with(
            gpu,
            renderer,
            scene,
            list,
            DrawOptions::default(),
            read_back,
        )
    }

    /// Like [`OffscreenTarget::render`], choosing whether to clear first and which channels
    /// to write: anaglyph stereo draws the left eye into red, then the right eye into green
    /// and blue of the same image.
    pub fn render_with(
        &self,
        gpu: &GpuContext,
        renderer: &mut Renderer,
        scene: &Scene,
        list: &DrawList,
        options: DrawOptions,
        read_back: bool,
    ) -> Result<wgpu::SubmissionIndex, RenderError> {
        let mut encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("offscreen frame"),
            });
        renderer.draw(
            gpu,
            scene,
            list,
            &mut encoder,
            PassTarget {
                color: &self.color_view,
                depth: &self.depth_view,
                viewport: options.viewport,
                scissor: options.scissor,
                clear: options.clear,
                color_writes: options.color_writes,
            },
        )?;
        if read_back {
            self.encode_copy(&mut encoder);
        }
        let index = gpu.queue.submit([encoder.finish()]);
        gpu.check_errors()?;
        Ok(index)
    }

    fn encode_copy(&self, encoder: &mut wgpu::CommandEncoder) {
        encoder.copy_texture_to_buffer(
            self.color.as_image_copy(),
            wgpu::TexelCopyBufferInfo {
                buffer: &self.readback,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(self.padded_row),
                    rows_per_image: Some(self.height),
                },
            },
            self.color.size(),
        );
    }

    /// Waits for a frame submitted by [`OffscreenTarget::render`] with `read_back` and copies
    /// its pixels (RGBA8 sRGB, rows top to bottom) into `out`, reusing its allocation.
    pub fn read_into(&self, gpu: &GpuContext, out: &mut Vec<u8>) -> Result<(), RenderError> {
        self.map_rows(gpu, self.padded_row, self.width, self.height, out)
    }

    /// Copies what was drawn (and written) so far to the read-back buffer in a submission
    /// of its own (then call [`OffscreenTarget::read_into`]): for frames composited from
    /// strips after their last draw.
    pub fn copy_back(&self, gpu: &GpuContext) -> Result<wgpu::SubmissionIndex, RenderError> {
        let mut encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("offscreen read-back"),
            });
        self.encode_copy(&mut encoder);
        let index = gpu.queue.submit([encoder.finish()]);
        gpu.check_errors()?;
        Ok(index)
    }

    /// Reads back the pixels of `rect` (x, y, width, height) of what was drawn, once the
    /// GPU has drawn it, into `out` (RGBA8 sRGB, rows top to bottom), reusing its
    /// allocation: a strip to send to the node that shows it.
    pub fn read_region_into(
        &self,
        gpu: &GpuContext,
        rect: [u32; 4],
        out: &mut Vec<u8>,
    ) -> Result<(), RenderError> {
        self.check_region(rect)?;
        let [x, y, w, h] = rect;
        let padded = (w * 4).div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT)
            * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT;
        let mut encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("strip read-back"),
            });
        encoder.copy_texture_to_buffer(
            wgpu::TexelCopyTextureInfo {
                texture: &self.color,
                mip_level: 0,
                origin: wgpu::Origin3d { x, y, z: 0 },
                aspect: wgpu::TextureAspect::All,
            },
            wgpu::TexelCopyBufferInfo {
                buffer: &self.readback,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(padded),
                    rows_per_image: Some(h),
                },
            },
            wgpu::Extent3d {
                width: w,
                height: h,
                depth_or_array_layers: 1,
            },
        );
        gpu.queue.submit([encoder.finish()]);
        self.map_rows(gpu, padded, w, h, out)
    }

    /// Writes `rgba8` (RGBA8 sRGB, rows top to bottom, `rect`'s width × height) into `rect`
    /// of this target: a strip another node rendered, composited where it belongs. It lands
    /// before the next submission's work; [`GpuContext::wait_idle`] after a submission sees
    /// it done.
    pub fn write_region(
        &self,
        gpu: &GpuContext,
        rect: [u32; 4],
        rgba8: &[u8],
    ) -> Result<(), RenderError> {
        self.check_region(rect)?;
        crate::strip::write_strip(&gpu.queue, &self.color, rect, rgba8)
    }

    fn check_region(&self, [x, y, w, h]: [u32; 4]) -> Result<(), RenderError> {
        let fits = w > 0
            && h > 0
            && x.checked_add(w).is_some_and(|r| r <= self.width)
            && y.checked_add(h).is_some_and(|b| b <= self.height);
        if fits {
            Ok(())
        } else {
            Err(RenderError::TargetSize {
                width: w,
                height: h,
                reason: format!(
                    "the region at ({x}, {y}) is empty or reaches past the {}x{} target",
                    self.width, self.height
                ),
            })
        }
    }

    /// Maps the read-back buffer once the GPU is done and copies `h` rows of `w` pixels,
    /// `padded` bytes apart, into `out`.
    fn map_rows(
        &self,
        gpu: &GpuContext,
        padded: u32,
        w: u32,
        h: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), RenderError> {
        let slice = self.readback.slice(..);
        let (tx, rx) = mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            // The receiver lives until recv below returns; a failed send cannot happen.
            let _ = tx.send(r);
        });
        gpu.wait_idle()?;
        rx.recv()
            .map_err(|_| RenderError::Gpu("read-back was never answered".into()))?
            .map_err(|e| RenderError::Gpu(format!("cannot map read-back buffer: {e}")))?;
        {
            let data = slice
                .get_mapped_range()
                .map_err(|e| RenderError::Gpu(format!("cannot read mapped buffer: {e}")))?;
            let row = (w * 4) as usize;
            out.clear();
            out.reserve(row * h as usize);
            for y in 0..h as usize {
                let start = y * padded as usize;
                out.extend_from_slice(&data[start..start + row]);
            }
        }
        self.readback.unmap();
        gpu.check_errors()
    }

    /// Draws `list`, reads the result back and returns it as an image.
    pub fn render_to_image(
        &self,
        gpu: &GpuContext,
        renderer: &mut Renderer,
        scene: &Scene,
        list: &DrawList,
    ) -> Result<Image, RenderError> {
        self.render(gpu, renderer, scene, list, true)?;
        let mut pixels = Vec::new();
        self.read_into(gpu, &mut pixels)?;
        Ok(Image {
            width: self.width,
            height: self.height,
            rgba8: pixels,
        })
    }
}
