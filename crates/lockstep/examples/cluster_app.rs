//! A cluster application of your own: a spinning cube, a counter shared by every process, and
//! a `hello` event each node sends when it starts (`lockstep ctl FILE event hello '"hi"'`
//! sends one too), which every process sees in the same frame.
//!
//! The same binary runs as the master and as each render node of a cluster file:
//!
//! ```text
//! cargo build --example cluster_app && APP=target/debug/examples/cluster_app
//! $APP master --config configs/cave.toml --frames 600 &
//! for wall in left front right floor; do $APP node --config configs/cave.toml --name $wall & done
//! ```
//!
//! With `CLUSTER_APP_TRACE=1` every process prints the counter and the events it sees.
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use lockstep::app::{ClusterApp, Event, MasterFrame, NodeFrame, Setup};
use lockstep::cluster::plugins::{FIRST_APP_PLUGIN, Shared};
use lockstep::cluster::{ClusterManager, PluginError};
use lockstep::prelude::*;

/// The shared counter's wire id: application plugins start at `FIRST_APP_PLUGIN`.
const COUNTER: u16 = FIRST_APP_PLUGIN;

#[derive(Default)]
struct SpinningCube {
    cube: Option<NodeId>,
    trace: bool,
    greeted: bool,
}

impl ClusterApp for SpinningCube {
    fn name(&self) -> &str {
        "cluster_app"
    }

    fn plugins(&self, plugins: &mut ClusterManager) -> Result<(), PluginError> {
        // Set on the master each frame; every node sees the value of the frame it shows.
        plugins.register(Shared::new(COUNTER, "counter", 0u64))?;
        plugins.declare_event::<String>("hello")
    }

    fn setup(&mut self, setup: &mut Setup<'_>) -> Result<()> {
        // Every process builds the same scene; only changes travel afterwards.
        let scene = &mut *setup.scene;
        let mesh = scene.add_mesh(Mesh::cube(0.6));
        let orange = scene.add_material(Material::lit(Color::rgb(1.0, 0.5, 0.1)))?;
        let at = Transform::from_translation(Vec3::new(0.0, 1.5, -1.0));
        let cube = Node::mesh(mesh, orange).named("cube").with_transform(at);
        self.cube = Some(scene.add(cube, None)?);
        let sun = Light::directional(Color::rgb(1.0, 1.0, 1.0), 3.0);
        scene.add(Node::light(sun), None)?;
        self.trace = std::env::var_os("CLUSTER_APP_TRACE").is_some();
        Ok(())
    }

    fn update(&mut self, frame: &mut MasterFrame<'_>) -> Result<()> {
        let cube = self.cube.context("update before setup")?;
        let angle = frame.info.time as f32;
        frame.scene.node_mut(cube)?.transform.rotation = Quat::from_rotation_y(angle);
        let n = frame.info.frame;
        frame.shared_mut::<u64>(COUNTER)?.set(n);
        self.show("master", n, None, frame.events())
    }

    fn node_frame(&mut self, frame: &mut NodeFrame<'_>) -> Result<()> {
        let (node, n) = (frame.node, frame.info.frame);
        let counter = *frame.shared::<u64>(COUNTER)?.get();
        if counter != n {
            bail!("the counter reads {counter} in frame {n}: shared data lags its frame");
        }
        self.show(node, n, Some(counter), frame.events())?;
        if !std::mem::replace(&mut self.greeted, true) {
            frame.send_event("hello", &format!("from {node}"))?;
        }
        Ok(())
    }
}

impl SpinningCube {
    /// With tracing on: the counter and the events of frame `n`, as process `who` sees them.
    fn show(&self, who: &str, n: u64, counter: Option<u64>, events: &[Event]) -> Result<()> {
        if !self.trace {
            return Ok(());
        }
        if let Some(c) = counter {
            println!("{who} frame {n} counter {c}");
        }
        for e in events {
            println!("{who} frame {n} event {}: {}", e.name, e.value::<String>()?);
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    lockstep::app::main(SpinningCube::default)
}
