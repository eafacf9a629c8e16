/*!
A real window as a Draw target: a winit window with a wgpu surface and its own depth buffer.
The window lives on the main thread (winit requires it); the surface and this struct move to
whichever thread runs Draw. Size changes are requested from Draw and picked up when the window
system has applied them.
*/
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use lockstep_render::wgpu;
use lockstep_render::{DrawList, GpuContext, PassTarget, Renderer, depth_view};
use lockstep_scene::Scene;
use winit::window::{Fullscreen, Window};

use super::window::WindowRequest;

pub(crate) struct WindowTarget {
    window: Arc<Window>,
    surface: wgpu::Surface<'static>,
    config: wgpu::SurfaceConfiguration,
    depth: wgpu::TextureView,
}

impl WindowTarget {
    pub fn new(gpu: &GpuContext, window: Arc<Window>, vsync: bool) -> Result<Self> {
        let surface = gpu
            .instance
            .create_surface(window.clone())
            .context("cannot create a drawing surface for the window")?;
        if !gpu.adapter.is_surface_supported(&surface) {
            bail!(
                "adapter '{}' cannot present to this window (try --backend vulkan or --offscreen)",
                gpu.summary.name
            );
        }
        let size = window.inner_size();
        let (w, h) = (size.width.max(1), size.height.max(1));
        let mut config = surface
            .get_default_config(&gpu.adapter, w, h)
            .context("the window's surface offers no usable configuration")?;
        let caps = surface.get_capabilities(&gpu.adapter);
        // An sRGB format, like offscreen targets, so both show the same colours.
        if let Some(f) = caps.formats.iter().find(|f| f.is_srgb()) {
            config.format = *f;
        }
        // Strips other nodes drew (sort-first) are copied in, where the surface allows it.
        if caps.usages.contains(wgpu::TextureUsages::COPY_DST) {
            config.usage |= wgpu::TextureUsages::COPY_DST;
        }
        config.present_mode = if vsync {
            wgpu::PresentMode::AutoVsync
        } else {
            wgpu::PresentMode::AutoNoVsync
        };
        surface.configure(&gpu.device, &config);
        Ok(WindowTarget {
            depth: depth_view(&gpu.device, w, h),
            window,
            surface,
            config,
        })
    }

    pub fn format(&self) -> wgpu::TextureFormat {
        self.config.format
    }

    pub fn size(&self) -> (u32, u32) {
        (self.config.width, self.config.height)
    }

    /// Passes App's requests to the window system.
    pub fn request(&mut self, r: &WindowRequest) {
        if let Some((w, h)) = r.size {
            // The new size arrives asynchronously; `render` notices it.
            let _ = self
                .window
                .request_inner_size(winit::dpi::PhysicalSize::new(w.max(1), h.max(1)));
        }
        if let Some(t) = &r.title {
            self.window.set_title(t);
        }
        if let Some(f) = r.fullscreen {
            self.window
                .set_fullscreen(f.then_some(Fullscreen::Borderless(None)));
        }
        if let Some(c) = r.cursor_visible {
            self.window.set_cursor_visible(c);
        }
    }

    fn reconfigure(&mut self, gpu: &GpuContext, w: u32, h: u32) {
        self.config.width = w;
        self.config.height = h;
        self.surface.configure(&gpu.device, &self.config);
        self.depth = depth_view(&gpu.device, w, h);
    }

    /// Draws one frame's views, waits at the gate, presents; returns the size drawn at.
    #[allow(clippy::too_many_arguments)]
    pub fn render(
        &mut self,
        gpu: &GpuContext,
        renderer: &mut Renderer,
        scene: &Scene,
        lists: &[DrawList],
        passes: &[super::ViewPass],
        (frame_number, tag): (u64, Option<super::FrameTag>),
        gate: Option<&mut (dyn super::FrameGate + 'static)>,
        started: std::time::Instant,
    ) -> Result<(u32, u32)> {
        use wgpu::CurrentSurfaceTexture;
        let size = self.window.inner_size();
        if size.width > 0 && size.height > 0 && (size.width, size.height) != self.size() {
            self.reconfigure(gpu, size.width, size.height);
        }
        let frame = match self.surface.get_current_texture() {
            CurrentSurfaceTexture::Success(t) | CurrentSurfaceTexture::Suboptimal(t) => t,
            CurrentSurfaceTexture::Timeout | CurrentSurfaceTexture::Occluded => {
                return Ok(self.size());
            }
            CurrentSurfaceTexture::Outdated | CurrentSurfaceTexture::Lost => {
                let (w, h) = self.size();
                self.reconfigure(gpu, w, h);
                return Ok(self.size());
            }
            CurrentSurfaceTexture::Validation => {
                gpu.check_errors()?;
                bail!("the window surface reported a validation error");
            }
        };
        let view = frame.texture.create_view(&Default::default());
        let mut gate = gate;
        let mut sort_first = gate.as_deref_mut().and_then(|g| g.sort_first());
        let format = self.config.format;
        if let (Some(sf), Some(tag)) = (sort_first.as_deref_mut(), tag) {
            sf.begin(gpu, renderer, format, scene, lists, passes, tag.frame)?;
        }
        let depth = &self.depth;
        // One submission per view: the renderer holds one view's uniforms at a time.
        let draw = |renderer: &mut Renderer,
                    list: &DrawList,
                    pass: &super::ViewPass,
                    scissor: Option<[u32; 4]>,
                    clear: bool|
         -> Result<()> {
            let mut encoder = gpu
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("window view"),
                });
            renderer.draw(
                gpu,
                scene,
                list,
                &mut encoder,
                PassTarget {
                    color: &view,
                    depth,
                    viewport: pass.rect,
                    scissor,
                    clear,
                    color_writes: pass.color_writes,
                },
            )?;
            gpu.queue.submit([encoder.finish()]);
            Ok(())
        };
        let mut scissors = Vec::with_capacity(4);
        let mut cleared = false;
        for (list, pass) in lists.iter().zip(passes) {
            super::stages::own_scissors(sort_first.as_deref(), pass, &mut scissors);
            for scissor in &scissors {
                let list = match sort_first.as_deref_mut() {
                    Some(sf) => sf.strip_list(scene, list, pass, *scissor)?,
                    None => list,
                };
                draw(renderer, list, pass, *scissor, !cleared)?;
                cleared = true;
            }
        }
        if let Some(sf) = sort_first {
            if !self.config.usage.contains(wgpu::TextureUsages::COPY_DST) {
                bail!(
                    "this window's surface cannot take strips from helpers (no COPY_DST): use --offscreen"
                );
            }
            let texture = &frame.texture;
            let missing = sf.finish(gpu, passes, |rect, pixels| {
                lockstep_render::strip::to_target_order(format, pixels)?;
                lockstep_render::strip::write_strip(&gpu.queue, texture, rect, pixels)?;
                Ok(())
            })?;
            let mut strip = DrawList::default();
            for (i, rect) in missing {
                crate::sort_first::cull_strip(&mut strip, scene, &passes[i], rect, frame_number)?;
                draw(renderer, &strip, &passes[i], Some(rect), false)?;
            }
            // The strips' writes land before this (empty) submission's work.
            gpu.queue.submit([]);
        }
        if let Some(gate) = gate {
            if gate.is_barrier() {
                gpu.wait_idle()?;
            }
            if !gate.ready(frame_number, tag, started.elapsed())? {
                // Not to be shown: the texture goes back to the surface unpresented.
                drop(frame);
                return Ok(self.size());
            }
        }
        self.window.pre_present_notify();
        gpu.queue.present(frame);
        gpu.check_errors()?;
        Ok(self.size())
    }
}
