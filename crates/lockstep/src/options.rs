/*!
Command-line pieces shared by the `lockstep` commands and by applications run through
[`crate::app::main`]: the GPU option, range-checked numbers, the Ctrl-C flag, and the log
set-up.
*/
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use clap::Args;

use crate::render::{BackendChoice, GpuContext};

/// Options every command that renders takes.
#[derive(Debug, Clone, Args)]
pub struct GpuArgs {
    /// Graphics API: auto (Vulkan, else GL), vulkan or gl.
    #[arg(long, default_value = "auto", value_parser = parse_backend)]
    pub backend: BackendChoice,
}

impl GpuArgs {
    /// Opens the device and says which adapter was chosen.
    pub fn open(&self) -> Result<GpuContext> {
        let gpu = GpuContext::new(self.backend)?;
        eprintln!("adapter: {}", gpu.summary);
        Ok(gpu)
    }
}

fn parse_backend(s: &str) -> Result<BackendChoice, String> {
    BackendChoice::from_str(s)
}

/// A whole number within `lo..=hi`, named in the error.
pub fn ranged(s: &str, lo: u64, hi: u64) -> Result<u64, String> {
    let v: u64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a whole number"))?;
    if v < lo || v > hi {
        return Err(format!("{v} is out of range: expected {lo} to {hi}"));
    }
    Ok(v)
}

/// The Ctrl-C (and TERM) flag: the first one lets the run end cleanly after the frame in
/// flight, a second one leaves at once.
pub fn stop_on_ctrl_c() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::Relaxed) {
            std::process::exit(130);
        }
    })
    .map_err(|e| anyhow::anyhow!("cannot install the Ctrl-C handler: {e}"))?;
    Ok(stop)
}

/// Logs to stderr: warnings, and the launcher's and node's progress; `RUST_LOG` overrides.
/// winit warns about things only virtual X servers lack (XSETTINGS, monitor size); those are
/// not the user's problem, so its warnings show only with `RUST_LOG` set.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(
                    "warn,winit=error,lockstep_launch=info,lockstep_cluster::node=info,lockstep_cluster::assets=info",
                )
            }),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        // An application may have set its own up already.
        .try_init()
        .ok();
}
