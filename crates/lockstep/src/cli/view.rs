/*!
`lockstep view MODEL --config FILE [flags]`: the no-code viewer ([`lockstep::view::ViewApp`])
in either role. Without `--name` it is the master (the flags of `lockstep master`); with
`--name NODE` it is that render node (the flags of `lockstep node`). `lockstep master --scene
MODEL` and `lockstep node --scene MODEL` are the same.
*/
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser};
use lockstep::app::{MasterArgs, NodeArgs, run_master, run_node};
use lockstep::demo::DemoCluster;
use lockstep::view::ViewApp;

/// Arguments of `lockstep view`.
#[derive(Debug, Args)]
pub struct ViewArgs {
    /// The glTF 2.0 model (.glb, or .gltf with its files), by the same path on every host.
    model: PathBuf,
    /// `--config FILE` and the flags of `lockstep master`, or with `--name NODE` those of
    /// `lockstep node`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    flags: Vec<String>,
}

/// Arguments of `lockstep master`: the built-in demo, or a model.
#[derive(Debug, Args)]
pub struct BuiltinMaster {
    /// Show this glTF model (`lockstep view`) instead of the demo.
    #[arg(long)]
    scene: Option<PathBuf>,
    #[command(flatten)]
    args: MasterArgs,
}

/// Arguments of `lockstep node`: the built-in demo, or a model.
#[derive(Debug, Args)]
pub struct BuiltinNode {
    /// Show this glTF model (`lockstep view`) instead of the demo.
    #[arg(long)]
    scene: Option<PathBuf>,
    #[command(flatten)]
    args: NodeArgs,
}

#[derive(Debug, Parser)]
#[command(name = "lockstep view MODEL")]
struct AsMaster {
    #[command(flatten)]
    args: MasterArgs,
}

#[derive(Debug, Parser)]
#[command(name = "lockstep view MODEL")]
struct AsNode {
    #[command(flatten)]
    args: NodeArgs,
}

pub fn run_master_cmd(b: BuiltinMaster) -> Result<()> {
    match b.scene {
        Some(model) => run_master(move || ViewApp::new(model.clone()), b.args),
        None => run_master(DemoCluster::default, b.args),
    }
}

pub fn run_node_cmd(b: BuiltinNode) -> Result<()> {
    match b.scene {
        Some(model) => run_node(move || ViewApp::new(model.clone()), b.args),
        None => run_node(DemoCluster::default, b.args),
    }
}

pub fn run(v: ViewArgs) -> Result<()> {
    let is_node = v
        .flags
        .iter()
        .any(|f| f == "--name" || f.starts_with("--name="));
    let argv = std::iter::once("lockstep view MODEL".to_string()).chain(v.flags);
    let model = v.model;
    if is_node {
        let args = AsNode::try_parse_from(argv)
            .unwrap_or_else(|e| e.exit())
            .args;
        run_node(move || ViewApp::new(model.clone()), args)
    } else {
        let args = AsMaster::try_parse_from(argv)
            .unwrap_or_else(|e| e.exit())
            .args;
        run_master(move || ViewApp::new(model.clone()), args)
    }
}
