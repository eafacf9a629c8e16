/*!
`lockstep config`: check a cluster file, show what a node derives from it, draw its layout, or
print a sample.
*/
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};
use lockstep::display::{ClusterConfig, Eye};
use lockstep::scene::glam::{Mat4, Quat, Vec3};

use super::Size;

/// The `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a cluster file and print its nodes, windows, viewports and screens.
    Check {
        /// The cluster file.
        file: PathBuf,
    },
    /// Print the view and off-axis projection of every viewport (and eye) of one node.
    Show {
        /// The cluster file.
        file: PathBuf,
        /// The node.
        #[arg(long)]
        node: String,
        /// A report of the head's tracker, "X Y Z [QX QY QZ QW]" in the tracker's own space:
        /// show the head pose the cluster file's remap makes of it, and the views from there.
        #[arg(long = "tracker-report", allow_hyphen_values = true)]
        tracker_report: Option<String>,
    },
    /// Print a commented sample cluster file (the same as configs/NAME.toml).
    Example {
        /// Which sample.
        #[arg(value_enum)]
        name: Example,
    },
    /// Draw the screens, labelled with their nodes, and the head, from above and from the front.
    Draw {
        /// The cluster file.
        file: PathBuf,
        /// Output PNG.
        #[arg(long)]
        out: PathBuf,
        /// Picture size, WIDTHxHEIGHT.
        #[arg(long, default_value = "1200x600")]
        size: Size,
    },
}

/// The sample cluster files.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Example {
    /// Left, front and right walls and the floor of a 3 m cube, one node each.
    Cave,
    /// A 3 × 2 tiled video wall with bezels, one node per tile.
    Wall,
    /// Passive stereo: two walls, two nodes (one per eye) each.
    Stereo,
}

pub fn run(cmd: ConfigCommand) -> Result<()> {
    match cmd {
        ConfigCommand::Check { file } => {
            let c = ClusterConfig::load(&file)?;
            // Every process needs the key: a missing or unreadable one fails here, with the
            // `key_file` line, not later in each process.
            let key = match &c.key_file {
                // Read even when LOCKSTEP_KEY is set here: the other hosts read the file.
                Some(path) => {
                    lockstep::roles::read_key_file(&c, path)?;
                    format!("key: {} (readable)", path.display())
                }
                None => {
                    "key: no key_file; every process needs LOCKSTEP_KEY (lockstep launch gives it)"
                        .to_string()
                }
            };
            print!("{}", summary(&c));
            println!("{key}");
            Ok(())
        }
        ConfigCommand::Show {
            file,
            node,
            tracker_report,
        } => {
            let mut c = ClusterConfig::load(&file)?;
            if let Some(report) = tracker_report {
                print!("{}", tracked_head(&mut c, &report)?);
            }
            print!("{}", show(&c, &node)?);
            Ok(())
        }
        ConfigCommand::Example { name } => {
            print!(
                "{}",
                match name {
                    Example::Cave => include_str!("../../../../configs/cave.toml"),
                    Example::Wall => include_str!("../../../../configs/wall-3x2.toml"),
                    Example::Stereo => include_str!("../../../../configs/stereo.toml"),
                }
            );
            Ok(())
        }
        ConfigCommand::Draw { file, out, size } => {
            let c = ClusterConfig::load(&file)?;
            let img = super::layout::draw(&c, size.width, size.height);
            lockstep::render::write_png(&out, img.width(), img.height(), img.as_raw())?;
            println!("wrote {} ({}x{})", out.display(), size.width, size.height);
            Ok(())
        }
    }
}

fn v3(v: Vec3) -> String {
    // Adding 0.0 turns -0.0 into 0.0, so no "-0.000" is printed.
    format!("({:.3}, {:.3}, {:.3})", v.x + 0.0, v.y + 0.0, v.z + 0.0)
}

/// Pads every column of `rows` to its widest cell.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, cell)| format!("{cell:<w$}", w = widths[i]))
            .collect();
        let _ = writeln!(out, "  {}", line.join("  ").trim_end());
    }
    out
}

fn summary(c: &ClusterConfig) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "cluster '{}' ({}): master {}, stereo {} (eye separation {} m), head at {}",
        c.name,
        c.path.display(),
        c.master,
        c.stereo.mode.as_str(),
        c.stereo.eye_separation,
        v3(c.head.position)
    );
    let _ = writeln!(out, "frame data: {}", c.transport);
    let mut rows = vec![
        [
            "node",
            "address",
            "threading",
            "window",
            "size",
            "mode",
            "viewport",
            "rect",
            "eye",
            "screen",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let (mut windows, mut viewports) = (0, 0);
    for n in &c.nodes {
        for w in &n.windows {
            windows += 1;
            let mode = if w.offscreen {
                "offscreen".to_string()
            } else if w.fullscreen {
                format!(
                    "fullscreen{}",
                    w.monitor.map(|m| format!(" #{m}")).unwrap_or_default()
                )
            } else {
                "window".to_string()
            };
            for vp in &w.viewports {
                viewports += 1;
                let [x, y, vw, vh] = vp.rect;
                rows.push(vec![
                    n.name.clone(),
                    n.endpoint.to_string(),
                    match n.threading_model.to_string() {
                        s if s.is_empty() => "\"\"".into(),
                        s => s,
                    },
                    w.name.clone(),
                    format!("{}x{}", w.width, w.height),
                    mode.clone(),
                    vp.name.clone(),
                    format!("{x},{y} {vw}x{vh}"),
                    vp.eye.as_str().into(),
                    vp.screen.clone(),
                ]);
            }
        }
    }
    let _ = writeln!(out, "nodes:");
    out += &table(&rows);
    let mut rows = vec![
        ["screen", "space", "width m", "height m", "centre", "facing"]
            .map(String::from)
            .to_vec(),
    ];
    for s in &c.screens {
        rows.push(vec![
            s.name.clone(),
            format!("{:?}", s.space).to_lowercase(),
            format!("{:.3}", s.width()),
            format!("{:.3}", s.height()),
            v3(s.center()),
            v3(s.normal()),
        ]);
    }
    let _ = writeln!(out, "screens:");
    out += &table(&rows);
    let _ = writeln!(
        out,
        "ok: {} nodes, {windows} windows, {viewports} viewports, {} screens",
        c.nodes.len(),
        c.screens.len()
    );
    out
}

fn matrix(m: &Mat4) -> String {
    let mut out = String::new();
    for r in 0..4 {
        let row = m.row(r);
        let _ = writeln!(
            out,
            "    [{:>10.5} {:>10.5} {:>10.5} {:>10.5}]",
            row.x, row.y, row.z, row.w
        );
    }
    out
}

/// Moves `c`'s head to where its head tracker's `report` ("X Y Z [QX QY QZ QW]") puts it, and
/// says where that is.
fn tracked_head(c: &mut ClusterConfig, report: &str) -> Result<String> {
    let tracker = c.head_tracker.clone().with_context(|| {
        format!(
            "{}: no tracker moves the head (set [head] tracker to an [[input]] vrpn device)",
            c.path.display()
        )
    })?;
    let device = c
        .input
        .iter()
        .find(|d| d.name == tracker.device)
        .with_context(|| format!("no input device '{}'", tracker.device))?;
    let v: Vec<f32> = report
        .split([' ', ','])
        .filter(|w| !w.is_empty())
        .map(|w| w.parse::<f32>().ok().filter(|x| x.is_finite()))
        .collect::<Option<_>>()
        .with_context(|| format!("--tracker-report '{report}' is not numbers"))?;
    let (position, rotation) = match v[..] {
        [x, y, z] => (Vec3::new(x, y, z), Quat::IDENTITY),
        [x, y, z, qx, qy, qz, qw] => {
            let q = Quat::from_xyzw(qx, qy, qz, qw);
            if !(0.5..=2.0).contains(&q.length()) {
                bail!(
                    "--tracker-report: the quaternion ({qx}, {qy}, {qz}, {qw}) is not a rotation"
                );
            }
            (Vec3::new(x, y, z), q.normalize())
        }
        _ => bail!("--tracker-report '{report}' is not X Y Z [QX QY QZ QW]"),
    };
    let (p, r) = device.remap.apply(position, rotation);
    c.head = lockstep::display::HeadPose {
        position: p,
        rotation: r,
    };
    let (h, pitch, roll) = hpr_of(r);
    Ok(format!(
        "head: tracker '{}' sensor {} reports {} → position {}, heading {h:.1}°, pitch {pitch:.1}°, roll {roll:.1}°\n",
        tracker.device,
        tracker.sensor,
        v3(position),
        v3(p)
    ))
}

/// Heading (about y), pitch (about x), roll (about −z), in degrees: the inverse of
/// `hpr_to_quat`.
fn hpr_of(q: Quat) -> (f32, f32, f32) {
    let (h, p, r) = q.to_euler(lockstep::scene::glam::EulerRot::YXZ);
    let d = |a: f32| a.to_degrees() + 0.0;
    (d(h), d(p), d(-r))
}

fn show(c: &ClusterConfig, node: &str) -> Result<String> {
    let views = c.views(node).with_context(|| {
        let names: Vec<&str> = c.nodes.iter().map(|n| n.name.as_str()).collect();
        format!(
            "{}: no node named '{node}' (nodes: {})",
            c.path.display(),
            names.join(", ")
        )
    })?;
    let mut out = String::new();
    for v in &views {
        let f = v.frustum;
        let eye = match v.eye {
            Eye::Mono => "mono eye".to_string(),
            e => format!("{} eye", e.as_str()),
        };
        let [x, y, w, h] = v.rect;
        let _ = writeln!(
            out,
            "{} / window {} / viewport {} -> screen '{}', {eye} at {}",
            v.node,
            v.window,
            v.viewport,
            v.screen,
            v3(v.eye_position)
        );
        let _ = writeln!(
            out,
            "  pixels: x {x}, y {y}, {w}x{h}, colour mask {:?}, file {}.png",
            v.mask,
            v.file_stem()
        );
        if !v.helpers.is_empty() {
            let split = lockstep::display::split::Split::even(w, h, v.helpers.len() + 1);
            let axis = match split.axis {
                lockstep::display::split::Axis::X => "columns",
                lockstep::display::split::Axis::Y => "rows",
            };
            let _ = writeln!(
                out,
                "  sort-first: {} strips in {axis}, this node first, then helpers {} (balanced every frame; starts {:?}); added latency: up to 1 frame (the strips' readback and transfer before this node's SwapReady)",
                split.parts(),
                v.helpers.join(", "),
                split.ends()
            );
        }
        let _ = writeln!(
            out,
            "  frustum at near {}: left {:.5} right {:.5} bottom {:.5} top {:.5}, far {}",
            f.near, f.left, f.right, f.bottom, f.top, f.far
        );
        let fov = |a: f32, b: f32| {
            ((a / f.near).atan() - (b / f.near).atan())
                .to_degrees()
                .abs()
        };
        let _ = writeln!(
            out,
            "  field of view: horizontal {:.2}°, vertical {:.2}°{}",
            fov(f.right, f.left),
            fov(f.top, f.bottom),
            if (f.left + f.right).abs() > 1e-6 || (f.bottom + f.top).abs() > 1e-6 {
                " (off-axis)"
            } else {
                ""
            }
        );
        let _ = writeln!(out, "  view (world to eye):");
        out += &matrix(&v.view);
        let _ = writeln!(out, "  projection:");
        out += &matrix(&f.projection());
    }
    Ok(out)
}
