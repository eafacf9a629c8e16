/*!
Draw: records one render pass from a [`DrawList`] into a colour and depth target.

The [`Renderer`] owns every GPU object that outlives a frame — pipelines, layouts, the globals
uniform buffer, the instance buffer and the caches of uploaded meshes and textures — as fields,
created in [`Renderer::new`] and freed when it drops.
*/
mod resources;

use std::collections::HashMap;
use std::mem::size_of;

use lockstep_scene::{MeshId, Scene, TextureFilter, TextureId};

use crate::cull::{DrawList, PipelineKind};
use crate::raw::{GlobalsRaw, InstanceRaw, LightRaw, MAX_LIGHTS, VertexRaw};
use crate::{GpuContext, RenderError};
use resources::{GpuMesh, GpuTexture, material_bind_group};

/// Depth buffer format of every target.
pub const DEPTH_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Depth32Float;

/// A depth buffer of `width` × `height` for any target (offscreen or a window's surface).
pub fn depth_view(device: &wgpu::Device, width: u32, height: u32) -> wgpu::TextureView {
    device
        .create_texture(&wgpu::TextureDescriptor {
            label: Some("depth"),
            size: wgpu::Extent3d {
                width,
                height,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: DEPTH_FORMAT,
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT,
            view_formats: &[],
        })
        .create_view(&Default::default())
}

/// The colour and depth views one pass draws into, and the part of them it covers.
pub struct PassTarget<'a> {
    /// Colour attachment (format as given to [`Renderer::new`]).
    pub color: &'a wgpu::TextureView,
    /// Depth attachment ([`DEPTH_FORMAT`]).
    pub depth: &'a wgpu::TextureView,
    /// Pixel rectangle (x, y, width, height) to draw into; `None` for the whole target.
    pub viewport: Option<[u32; 4]>,
    /// Of that, the pixels actually drawn (a strip of the view, sort-first); the rest keeps
    /// what it held. `None` for the whole viewport. The view's pixels inside it come out as
    /// they would drawing the whole view: the projection is the whole viewport's.
    pub scissor: Option<[u32; 4]>,
    /// Whether to clear the colour first (the first view of a target does); depth is always
    /// cleared, since it belongs to one view.
    pub clear: bool,
    /// Channels written: all, or e.g. red for the left eye of anaglyph stereo.
    pub color_writes: wgpu::ColorWrites,
}

/// Draws draw lists. One per target format; meshes and textures are uploaded once each.
pub struct Renderer {
    shader: wgpu::ShaderModule,
    layout: wgpu::PipelineLayout,
    color_format: wgpu::TextureFormat,
    /// Built on first use for each (pipeline, colour-write mask): most targets only ever
    /// need the two with every channel.
    pipelines: HashMap<(PipelineKind, u32), wgpu::RenderPipeline>,
    globals: wgpu::Buffer,
    globals_bind_group: wgpu::BindGroup,
    material_layout: wgpu::BindGroupLayout,
    linear: wgpu::Sampler,
    nearest: wgpu::Sampler,
    /// Bound for materials without a texture: one white texel, so one shader serves both.
    white: wgpu::BindGroup,
    instances: wgpu::Buffer,
    instance_capacity: usize,
    meshes: HashMap<MeshId, GpuMesh>,
    textures: HashMap<TextureId, GpuTexture>,
}

impl Renderer {
    /// Builds pipelines for targets of `color_format`.
    pub fn new(gpu: &GpuContext, color_format: wgpu::TextureFormat) -> Self {
        let device = &gpu.device;
        let shader = device.create_shader_module(wgpu::include_wgsl!("shader.wgsl"));
        let globals_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("globals"),
            entries: &[wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::VERTEX_FRAGMENT,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: wgpu::BufferSize::new(size_of::<GlobalsRaw>() as u64),
                },
                count: None,
            }],
        });
        let material_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("material"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Texture {
                        sample_type: wgpu::TextureSampleType::Float { filterable: true },
                        view_dimension: wgpu::TextureViewDimension::D2,
                        multisampled: false,
                    },
                    count: None,
                },
                wgpu::BindGroupLayoutEntry {
                    binding: 1,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering),
                    count: None,
                },
            ],
        });
        let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("mesh"),
            bind_group_layouts: &[Some(&globals_layout), Some(&material_layout)],
            immediate_size: 0,
        });

        let globals = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("globals"),
            size: size_of::<GlobalsRaw>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let globals_bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("globals"),
            layout: &globals_layout,
            entries: &[wgpu::BindGroupEntry {
                binding: 0,
                resource: globals.as_entire_binding(),
            }],
        });
        let sampler = |label, filter, mipmap_filter| {
            device.create_sampler(&wgpu::SamplerDescriptor {
                label: Some(label),
                address_mode_u: wgpu::AddressMode::Repeat,
                address_mode_v: wgpu::AddressMode::Repeat,
                address_mode_w: wgpu::AddressMode::Repeat,
                mag_filter: filter,
                min_filter: filter,
                mipmap_filter,
                ..Default::default()
            })
        };
        let linear = sampler(
            "linear",
            wgpu::FilterMode::Linear,
            wgpu::MipmapFilterMode::Linear,
        );
        let nearest = sampler(
            "nearest",
            wgpu::FilterMode::Nearest,
            wgpu::MipmapFilterMode::Nearest,
        );
        let white_texture = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("white"),
            size: wgpu::Extent3d {
                width: 1,
                height: 1,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba8UnormSrgb,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        gpu.queue.write_texture(
            white_texture.as_image_copy(),
            &[255; 4],
            wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(4),
                rows_per_image: Some(1),
            },
            white_texture.size(),
        );
        let white_view = white_texture.create_view(&Default::default());
        let white = material_bind_group(device, &material_layout, &white_view, &linear, "white");
        let instance_capacity = 256;
        let mut renderer = Renderer {
            shader,
            layout,
            color_format,
            pipelines: HashMap::new(),
            globals,
            globals_bind_group,
            material_layout,
            linear,
            nearest,
            white,
            instances: instance_buffer(device, instance_capacity),
            instance_capacity,
            meshes: HashMap::new(),
            textures: HashMap::new(),
        };
        for kind in [PipelineKind::Lit, PipelineKind::Unlit] {
            renderer.ensure_pipeline(device, kind, wgpu::ColorWrites::ALL);
        }
        renderer
    }

    fn ensure_pipeline(
        &mut self,
        device: &wgpu::Device,
        kind: PipelineKind,
        writes: wgpu::ColorWrites,
    ) {
        let key = (kind, writes.bits());
        if self.pipelines.contains_key(&key) {
            return;
        }
        let (label, fragment) = match kind {
            PipelineKind::Lit => ("lit", "fs_lit"),
            PipelineKind::Unlit => ("unlit", "fs_unlit"),
        };
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some(label),
            layout: Some(&self.layout),
            vertex: wgpu::VertexState {
                module: &self.shader,
                entry_point: Some("vs_main"),
                compilation_options: Default::default(),
                buffers: &[Some(VERTEX_LAYOUT), Some(INSTANCE_LAYOUT)],
            },
            primitive: wgpu::PrimitiveState {
                topology: wgpu::PrimitiveTopology::TriangleList,
                front_face: wgpu::FrontFace::Ccw,
                cull_mode: Some(wgpu::Face::Back),
                ..Default::default()
            },
            depth_stencil: Some(wgpu::DepthStencilState {
                format: DEPTH_FORMAT,
                depth_write_enabled: Some(true),
                depth_compare: Some(wgpu::CompareFunction::Less),
                stencil: Default::default(),
                bias: Default::default(),
            }),
            multisample: Default::default(),
            fragment: Some(wgpu::FragmentState {
                module: &self.shader,
                entry_point: Some(fragment),
                compilation_options: Default::default(),
                targets: &[Some(wgpu::ColorTargetState {
                    format: self.color_format,
                    blend: None,
                    write_mask: writes,
                })],
            }),
            multiview_mask: None,
            cache: None,
        });
        self.pipelines.insert(key, pipeline);
    }

    /// Uploads what `list` needs and the scene changed since the last frame: meshes and
    /// textures not yet on the GPU (or replaced), this frame's instances and globals.
    fn prepare(
        &mut self,
        gpu: &GpuContext,
        scene: &Scene,
        list: &DrawList,
    ) -> Result<(), RenderError> {
        let device = &gpu.device;
        for batch in &list.batches {
            let mesh = scene.mesh(batch.mesh)?;
            let stale = self
                .meshes
                .get(&batch.mesh)
                .is_none_or(|m| !std::sync::Arc::ptr_eq(&m.source, mesh));
            if stale {
                self.meshes.insert(batch.mesh, GpuMesh::new(device, mesh));
            }
            if let Some(t) = scene.material(batch.material)?.texture {
                let texture = scene.texture(t)?;
                let stale = self
                    .textures
                    .get(&t)
                    .is_none_or(|g| !std::sync::Arc::ptr_eq(&g.source, texture));
                if stale {
                    let sampler = match texture.filter {
                        TextureFilter::Linear => &self.linear,
                        TextureFilter::Nearest => &self.nearest,
                    };
                    let g = GpuTexture::new(
                        device,
                        &gpu.queue,
                        &self.material_layout,
                        sampler,
                        texture,
                    )?;
                    self.textures.insert(t, g);
                }
            }
        }
        if list.instances.len() > self.instance_capacity {
            self.instance_capacity = list.instances.len().next_power_of_two();
            self.instances = instance_buffer(device, self.instance_capacity);
        }
        if !list.instances.is_empty() {
            gpu.queue
                .write_buffer(&self.instances, 0, bytemuck::cast_slice(&list.instances));
        }
        let mut lights = [LightRaw {
            position_or_direction: [0.0; 4],
            color_range: [0.0; 4],
        }; MAX_LIGHTS];
        let n = list.lights.len().min(MAX_LIGHTS);
        lights[..n].copy_from_slice(&list.lights[..n]);
        let a = scene.ambient;
        let globals = GlobalsRaw {
            view_proj: list.view_proj.to_cols_array_2d(),
            camera_position: list.eye.extend(1.0).to_array(),
            ambient: [a.r, a.g, a.b, 1.0],
            light_count: [n as u32, 0, 0, 0],
            lights,
        };
        gpu.queue
            .write_buffer(&self.globals, 0, bytemuck::bytes_of(&globals));
        Ok(())
    }

    /// Uploads what `list` needs and records its pass into `encoder`.
    ///
    /// One renderer draws one view per submission: the globals buffer holds one view, so a
    /// second `draw` before `queue.submit` would overwrite the first view's camera.
    pub fn draw(
        &mut self,
        gpu: &GpuContext,
        scene: &Scene,
        list: &DrawList,
        encoder: &mut wgpu::CommandEncoder,
        target: PassTarget<'_>,
    ) -> Result<(), RenderError> {
        self.prepare(gpu, scene, list)?;
        for kind in [PipelineKind::Lit, PipelineKind::Unlit] {
            self.ensure_pipeline(&gpu.device, kind, target.color_writes);
        }
        let bg = scene.background;
        let color_load = if target.clear {
            wgpu::LoadOp::Clear(wgpu::Color {
                r: bg.r as f64,
                g: bg.g as f64,
                b: bg.b as f64,
                a: bg.a as f64,
            })
        } else {
            wgpu::LoadOp::Load
        };
        // Depth belongs to one view: another eye or viewport drawn before into the same
        // target must not occlude this one, so depth is cleared for every pass.
        let depth_load = wgpu::LoadOp::Clear(1.0);
        let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("scene"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: target.color,
                depth_slice: None,
                resolve_target: None,
                ops: wgpu::Operations {
                    load: color_load,
                    store: wgpu::StoreOp::Store,
                },
            })],
            depth_stencil_attachment: Some(wgpu::RenderPassDepthStencilAttachment {
                view: target.depth,
                depth_ops: Some(wgpu::Operations {
                    load: depth_load,
                    store: wgpu::StoreOp::Store,
                }),
                stencil_ops: None,
            }),
            ..Default::default()
        });
        if let Some([x, y, w, h]) = target.viewport {
            pass.set_viewport(x as f32, y as f32, w as f32, h as f32, 0.0, 1.0);
            pass.set_scissor_rect(x, y, w, h);
        }
        if let Some([x, y, w, h]) = target.scissor {
            pass.set_scissor_rect(x, y, w, h);
        }
        pass.set_bind_group(0, &self.globals_bind_group, &[]);
        pass.set_vertex_buffer(1, self.instances.slice(..));
        let mut bound: (
            Option<PipelineKind>,
            Option<Option<TextureId>>,
            Option<MeshId>,
        ) = (None, None, None);
        for batch in &list.batches {
            if bound.0 != Some(batch.pipeline) {
                let Some(pipeline) = self
                    .pipelines
                    .get(&(batch.pipeline, target.color_writes.bits()))
                else {
                    continue;
                };
                pass.set_pipeline(pipeline);
                bound.0 = Some(batch.pipeline);
            }
            let texture = scene.material(batch.material)?.texture;
            if bound.1 != Some(texture) {
                let group = match texture {
                    Some(t) => self.textures.get(&t).map(|g| &g.bind_group),
                    None => Some(&self.white),
                };
                pass.set_bind_group(1, group.unwrap_or(&self.white), &[]);
                bound.1 = Some(texture);
            }
            let Some(mesh) = self.meshes.get(&batch.mesh) else {
                continue;
            };
            if bound.2 != Some(batch.mesh) {
                pass.set_vertex_buffer(0, mesh.vertices.slice(..));
                pass.set_index_buffer(mesh.indices.slice(..), wgpu::IndexFormat::Uint32);
                bound.2 = Some(batch.mesh);
            }
            pass.draw_indexed(0..mesh.index_count, 0, batch.instances.clone());
        }
        Ok(())
    }
}

fn instance_buffer(device: &wgpu::Device, capacity: usize) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("instances"),
        size: (capacity * size_of::<InstanceRaw>()) as u64,
        usage: wgpu::BufferUsages::VERTEX | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

const VERTEX_LAYOUT: wgpu::VertexBufferLayout<'static> = wgpu::VertexBufferLayout {
    array_stride: size_of::<VertexRaw>() as u64,
    step_mode: wgpu::VertexStepMode::Vertex,
    attributes: &wgpu::vertex_attr_array![0 => Float32x3, 1 => Float32x3, 2 => Float32x2],
};

const INSTANCE_LAYOUT: wgpu::VertexBufferLayout<'static> = wgpu::VertexBufferLayout {
    array_stride: size_of::<InstanceRaw>() as u64,
    step_mode: wgpu::VertexStepMode::Instance,
    attributes: &wgpu::vertex_attr_array![
        3 => Float32x4, 4 => Float32x4, 5 => Float32x4, 6 => Float32x4,
        7 => Float32x4, 8 => Float32x4, 9 => Float32x4,
        10 => Float32x4,
    ],
};
