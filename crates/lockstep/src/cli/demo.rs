/*!
`lockstep demo`: a whole CAVE on this machine — the master and a node process per wall —
its hashes checked, its walls unfolded into one picture.
*/
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;

use super::cluster::{local_cave, run_all, scene_args, strings};
use super::ranged;

/// Arguments of `lockstep demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Frames to run.
    #[arg(long, default_value = "120", value_parser = |s: &str| ranged(s, 1, 1 << 30))]
    frames: u64,
    /// Open a window per wall instead of rendering offscreen.
    #[arg(long)]
    window: bool,
    /// Folder for each wall's last frame and the unfolded CAVE picture.
    #[arg(long)]
    out: PathBuf,
    /// Show this glTF model (`lockstep view`) instead of the demo.
    #[arg(long)]
    scene: Option<PathBuf>,
}

pub fn run_demo(args: DemoArgs) -> Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let (cfg_path, config, key) = local_cave(&args.out, None)?;
    let exe = std::env::current_exe().context("cannot find the lockstep executable")?;
    let cfg = cfg_path.to_string_lossy().to_string();
    let hash_file = |who: &str| {
        args.out
            .join(format!("{who}.hashes"))
            .to_string_lossy()
            .to_string()
    };
    let master = strings(&[
        "master",
        "--config",
        &cfg,
        "--frames",
        &args.frames.to_string(),
        "--fixed-dt",
        &format!("{}", 1.0 / 60.0),
        "--hash-out",
        &hash_file("master"),
    ]);
    let scene = scene_args(args.scene.as_deref())?;
    let mut master = master;
    master.extend(scene.iter().cloned());
    let mut runs = vec![("master".to_string(), master)];
    for n in &config.nodes {
        let mut a = strings(&[
            "node",
            "--config",
            &cfg,
            "--name",
            &n.name,
            "--hash-out",
            &hash_file(&n.name),
        ]);
        if !args.window {
            a.extend(strings(&[
                "--offscreen",
                "--out",
                &args.out.to_string_lossy(),
            ]));
        }
        a.extend(scene.iter().cloned());
        runs.push((n.name.clone(), a));
    }
    eprintln!(
        "starting a master and {} nodes of cluster '{}' on this machine",
        config.nodes.len(),
        config.name
    );
    let lines = run_all(&exe, &key, runs).context("the demo cluster failed")?;
    for l in &lines {
        println!("{l}");
    }
    // Every node drew the scene the master sent, frame by frame.
    let read = |who: &str| {
        std::fs::read_to_string(hash_file(who)).with_context(|| format!("no hashes from {who}"))
    };
    let master = read("master")?;
    for n in &config.nodes {
        if read(&n.name)? != master {
            bail!(
                "node '{}' drew other scenes than the master sent (see {})",
                n.name,
                hash_file(&n.name)
            );
        }
    }
    println!(
        "all {} nodes drew the same scene as the master in all {} frames",
        config.nodes.len(),
        args.frames
    );
    if !args.window {
        let path = args.out.join("cave.png");
        unfold(&args.out, &path)?;
        println!(
            "wrote {} (the walls unfolded) and each wall's last frame in {}",
            path.display(),
            args.out.display()
        );
    }
    Ok(())
}

/// Lays the CAVE's walls out as seen unfolded: left, front, right in a row, the floor below
/// the front wall.
fn unfold(dir: &Path, out: &Path) -> Result<()> {
    let load = |n: &str| -> Result<image::RgbaImage> {
        Ok(image::open(dir.join(format!("{n}.png")))
            .with_context(|| format!("no image from node '{n}'"))?
            .to_rgba8())
    };
    let (left, front, right, floor) = (
        load("left")?,
        load("front")?,
        load("right")?,
        load("floor")?,
    );
    let (w, h) = front.dimensions();
    let mut img = image::RgbaImage::from_pixel(3 * w, 2 * h, image::Rgba([0, 0, 0, 255]));
    image::imageops::overlay(&mut img, &left, 0, 0);
    image::imageops::overlay(&mut img, &front, w as i64, 0);
    image::imageops::overlay(&mut img, &right, 2 * w as i64, 0);
    image::imageops::overlay(&mut img, &floor, w as i64, h as i64);
    img.save(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}
