/*!
Adapter selection. lockstep prefers Vulkan (lavapipe on machines without a GPU) and falls back to
OpenGL; within a backend it prefers a discrete GPU over an integrated one over a CPU renderer.
*/
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use crate::RenderError;

/// Which graphics API to render with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// Vulkan when an adapter exists, else GL.
    #[default]
    Auto,
    /// Vulkan only.
    Vulkan,
    /// OpenGL (ES) only.
    Gl,
}

impl FromStr for BackendChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(BackendChoice::Auto),
            "vulkan" | "vk" => Ok(BackendChoice::Vulkan),
            "gl" | "gles" | "opengl" => Ok(BackendChoice::Gl),
            other => Err(format!(
                "unknown backend '{other}': expected one of auto, vulkan, gl"
            )),
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Vulkan => "vulkan",
            BackendChoice::Gl => "gl",
        })
    }
}

/// What was chosen, for the start-up line and for statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterSummary {
    /// Adapter name as the driver reports it (e.g. "llvmpipe (LLVM 15.0.6, 256 bits)").
    pub name: String,
    /// "Vulkan" or "Gl".
    pub backend: String,
    /// "DiscreteGpu", "IntegratedGpu", "Cpu", …
    pub device_type: String,
    /// Driver name and version, where reported.
    pub driver: String,
}

impl fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (backend {}, device type {}",
            self.name, self.backend, self.device_type
        )?;
        if !self.driver.is_empty() {
            write!(f, ", driver {}", self.driver)?;
        }
        f.write_str(")")
    }
}

/// The device and queue every renderer of a process shares.
pub struct GpuContext {
    /// The instance the adapter came from; window surfaces are created from it.
    pub instance: wgpu::Instance,
    /// The adapter the device was opened on.
    pub adapter: wgpu::Adapter,
    /// The logical device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// What was chosen, printable.
    pub summary: AdapterSummary,
    /// Validation and out-of-memory errors wgpu reported outside an error scope. wgpu's default
    /// handler panics; lockstep turns them into a [`RenderError`] at the next check instead.
    errors: Arc<Mutex<Vec<String>>>,
}

/// Higher is better: real GPUs before virtual ones before software renderers.
fn device_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 4,
        wgpu::DeviceType::IntegratedGpu => 3,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 1,
        wgpu::DeviceType::Other => 0,
    }
}

impl GpuContext {
    /// Opens a device on the best adapter of the chosen backend.
    pub fn new(choice: BackendChoice) -> Result<Self, RenderError> {
        let order: &[wgpu::Backends] = match choice {
            BackendChoice::Auto => &[wgpu::Backends::VULKAN, wgpu::Backends::GL],
            BackendChoice::Vulkan => &[wgpu::Backends::VULKAN],
            BackendChoice::Gl => &[wgpu::Backends::GL],
        };
        // One instance per backend, created only when the previous one found nothing: starting
        // the GL backend probes window systems (and complains on headless machines) for nothing
        // when Vulkan is there.
        for backends in order {
            let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
            desc.backends = *backends;
            desc.flags = wgpu::InstanceFlags::from_build_config().with_env();
            let instance = wgpu::Instance::new(desc);
            let adapters = pollster::block_on(instance.enumerate_adapters(*backends));
            let best = adapters
                .into_iter()
                .max_by_key(|a| device_rank(a.get_info().device_type));
            if let Some(adapter) = best {
                return Self::open(instance, adapter);
            }
        }
        Err(RenderError::NoAdapter {
            backend: match choice {
                BackendChoice::Auto => "Vulkan or GL".into(),
                other => other.to_string(),
            },
            hint: match choice {
                BackendChoice::Gl => " (is Mesa's EGL installed? Debian: libegl1 libgl1-mesa-dri)",
                _ => " (install a Vulkan driver; without a GPU: Debian's mesa-vulkan-drivers)",
            },
        })
    }

    fn open(instance: wgpu::Instance, adapter: wgpu::Adapter) -> Result<Self, RenderError> {
        let info = adapter.get_info();
        let summary = AdapterSummary {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: [info.driver.as_str(), info.driver_info.as_str()]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(" "),
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("lockstep device"),
            required_features: wgpu::Features::empty(),
            // Asking for what the adapter has lets large targets work on large GPUs; lockstep
            // itself needs no more than WebGPU's defaults.
            required_limits: adapter.limits(),
            ..Default::default()
        }))
        .map_err(|e| RenderError::Device {
            adapter: summary.name.clone(),
            reason: e.to_string(),
        })?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            tracing::error!("wgpu: {e}");
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        Ok(GpuContext {
            instance,
            adapter,
            device,
            queue,
            summary,
            errors,
        })
    }

    /// Returns the first GPU error reported since the last check, if any.
    pub fn check_errors(&self) -> Result<(), RenderError> {
        let mut errors = self
            .errors
            .lock()
            .map_err(|_| RenderError::Gpu("the GPU error log was poisoned by a panic".into()))?;
        match errors.drain(..).next() {
            Some(first) => Err(RenderError::Gpu(first)),
            None => Ok(()),
        }
    }

    /// Waits until the GPU finished all submitted work.
    pub fn wait_idle(&self) -> Result<(), RenderError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| RenderError::Gpu(e.to_string()))
    }
}
