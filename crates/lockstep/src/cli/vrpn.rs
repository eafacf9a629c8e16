//! `lockstep vrpn serve` (a tracker that follows a scripted path, to try a tracked display
//! without a tracker) and `lockstep vrpn print` (what a VRPN device reports, as lockstep
//! reads it).
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Subcommand;
use lockstep::input::vrpn::server::{Path, Server};
use lockstep::input::vrpn::{Address, Device};
use lockstep::options::ranged;

/// The `vrpn` subcommands.
#[derive(Debug, Subcommand)]
pub enum VrpnCommand {
    /// Serve a VRPN tracker whose sensor 0 follows a path (one keyframe per line:
    /// `SECONDS X Y Z [HEADING PITCH ROLL]`), until Ctrl-C.
    Serve {
        /// The path file.
        path: PathBuf,
        /// The device's name (clients ask for DEVICE@HOST).
        #[arg(long, default_value = "Tracker0")]
        device: String,
        /// Address and port to listen on.
        #[arg(long, default_value = "0.0.0.0:3883")]
        listen: SocketAddr,
        /// Reports per second.
        #[arg(long, default_value = "120", value_parser = |s: &str| ranged(s, 1, 10_000))]
        rate: u64,
        /// Start the path again after its last keyframe (else the last pose holds).
        #[arg(long = "loop")]
        looped: bool,
    },
    /// Print what a VRPN device reports (DEVICE@HOST[:PORT]), as lockstep reads it.
    Print {
        /// The device.
        address: String,
        /// Stop after this many seconds.
        #[arg(long, default_value = "10", value_parser = |s: &str| ranged(s, 1, 86_400))]
        seconds: u64,
    },
}

pub fn run(cmd: VrpnCommand) -> Result<()> {
    match cmd {
        VrpnCommand::Serve {
            path,
            device,
            listen,
            rate,
            looped,
        } => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let mut p =
                Path::parse(&text, &path.display().to_string()).map_err(anyhow::Error::msg)?;
            p.looped = looped;
            let stop = super::ctrl_c()?;
            let server = Server::start(listen, &device, p, rate as f64)
                .with_context(|| format!("cannot listen on {listen}"))?;
            println!(
                "serving VRPN tracker {device}@{} ({rate} reports a second); Ctrl-C ends",
                server.local_addr()
            );
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(())
        }
        VrpnCommand::Print { address, seconds } => {
            let parsed: Address = address.parse().map_err(anyhow::Error::msg)?;
            let device = Device::start(parsed, &address)?;
            let stop = super::ctrl_c()?;
            let end = Instant::now() + Duration::from_secs(seconds);
            let mut reports = 0;
            while Instant::now() < end && !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let r = device.take();
                reports += r.received;
                for (sensor, p) in &r.poses {
                    println!(
                        "sensor {sensor}: position ({:.4}, {:.4}, {:.4}) quaternion ({:.4}, {:.4}, {:.4}, {:.4})",
                        p.position[0],
                        p.position[1],
                        p.position[2],
                        p.rotation[0],
                        p.rotation[1],
                        p.rotation[2],
                        p.rotation[3]
                    );
                }
                for (b, down) in &r.buttons {
                    println!("button {b}: {}", if *down { "down" } else { "up" });
                }
                if let Some(a) = &r.analog {
                    println!("channels: {a:?}");
                }
            }
            println!("{reports} reports from {address}");
            if reports == 0 {
                anyhow::bail!("{address} reported nothing in {seconds} s");
            }
            Ok(())
        }
    }
}
