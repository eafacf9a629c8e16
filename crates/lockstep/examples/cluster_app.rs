//! A cluster application of your own: a spinning cube and a counter shared by every process.
//!
//! The same binary runs as the master and as each render node of a cluster file:
//!
//! ```text
//! cargo build --release --example cluster_app
//! APP=target/release/examples/cluster_app
//! $APP master --config configs/cave.toml --frames 600 &
//! for wall in left front right floor; do $APP node --config configs/cave.toml --name $wall & done
//! ```
//!
//! Set `CLUSTER_APP_TRACE=1` to have every node print the counter it sees in each frame.
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use lockstep::app::{ClusterApp, MasterFrame, NodeFrame, Setup};
use lockstep::cluster::plugins::{FIRST_APP_PLUGIN, Shared};
use lockstep::cluster::{ClusterManager, PluginError};
use lockstep::prelude::*;

/// The shared counter's wire id: application plugins start at `FIRST_APP_PLUGIN`.
const COUNTER: u16 = FIRST_APP_PLUGIN;

#[derive(Default)]
struct SpinningCube {
    cube: Option<NodeId>,
    trace: bool,
}

impl ClusterApp for SpinningCube {
    fn name(&self) -> &str {
        "cluster_app"
    }

    fn plugins(&self, plugins: &mut ClusterManager) -> Result<(), PluginError> {
        // Set on the master each frame; every node sees the value of the frame it shows.
        plugins.register(Shared::new(COUNTER, "counter", 0u64))
    }

    fn setup(&mut self, setup: &mut Setup<'_>) -> Result<()> {
        // Every process builds the same scene; only changes travel afterwards.
        let scene = &mut *setup.scene;
        let mesh = scene.add_mesh(Mesh::cube(0.6));
        let orange = scene.add_material(Material::lit(Color::rgb(1.0, 0.5, 0.1)))?;
        let cube = Node::mesh(mesh, orange)
            .named("cube")
            .with_transform(Transform::from_translation(Vec3::new(0.0, 1.5, -1.0)));
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
        Ok(())
    }

    fn node_frame(&mut self, frame: &NodeFrame<'_>) -> Result<()> {
        let counter = *frame.shared::<u64>(COUNTER)?.get();
        if self.trace {
            println!(
                "{} frame {} counter {counter}",
                frame.node, frame.info.frame
            );
        }
        if counter != frame.info.frame {
            bail!(
                "the counter reads {counter} in frame {}: shared data lags its frame",
                frame.info.frame
            );
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    lockstep::app::main(SpinningCube::default)
}
