//! How a cluster behaves when its application fails (the tests run it): an application that
//! panics where the environment says.
//!
//! - `FAILING_APP_MASTER_PANIC_AT=N`: the master's update panics in frame N. The master exits
//!   2 with the panic's message; every node is told why and ends.
//! - `FAILING_APP_NODE_PANIC=NAME:N`: node NAME's hook panics in frame N. That node exits 2;
//!   the master drops it and the others go on.
use std::process::ExitCode;

use anyhow::Result;
use lockstep::app::{ClusterApp, MasterFrame, NodeFrame, Setup};

#[derive(Default)]
struct Failing {
    master_at: Option<u64>,
    node_at: Option<(String, u64)>,
}

impl ClusterApp for Failing {
    fn name(&self) -> &str {
        "failing_app"
    }

    fn setup(&mut self, _setup: &mut Setup<'_>) -> Result<()> {
        let var = |k| std::env::var(k).ok();
        self.master_at = var("FAILING_APP_MASTER_PANIC_AT").and_then(|v| v.parse().ok());
        self.node_at = var("FAILING_APP_NODE_PANIC").and_then(|v| {
            let (name, at) = v.split_once(':')?;
            Some((name.to_string(), at.parse().ok()?))
        });
        Ok(())
    }

    fn update(&mut self, frame: &mut MasterFrame<'_>) -> Result<()> {
        if self.master_at == Some(frame.info.frame) {
            panic!("the master's update gave up");
        }
        Ok(())
    }

    fn node_frame(&mut self, frame: &mut NodeFrame<'_>) -> Result<()> {
        if let Some((name, at)) = &self.node_at
            && name == frame.node
            && *at == frame.info.frame
        {
            panic!("the node's hook gave up");
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    lockstep::app::main(Failing::default)
}
