/*!
Sort-first in a node's Draw stage: one heavy viewport drawn by its display node and its
helpers together (`helpers = [...]` in the cluster file).

Each frame, a helper first draws what the display nodes it helps asked of it — their view,
with their viewport in a target the size of their window, scissored to the strip asked for
— reads the strip back and sends it; a display node asks its helpers, draws only the
strips it keeps of its helped viewports, then waits for the helpers' strips until the
deadline, draws any that did not come itself, and writes the others into its target before
it reports `SwapReady`. Every pass is the whole view's projection, so the wall is the same
bytes as if the display node had drawn it alone.
*/
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use lockstep_cluster::compose::{Helped, StripClient, StripExchange};
use lockstep_display::ClusterConfig;
use lockstep_render::{DrawList, DrawOptions, GpuContext, OffscreenTarget, Renderer};
use lockstep_scene::Scene;
use lockstep_wire::ClusterKey;

use crate::pipeline::{PassShare, ViewPass};

/// How long a display node waits for a helper's strip after asking, and how long a helper
/// waits for a display node's request, before drawing the strip itself (or giving up): well
/// within the master's default swap deadline (1 s), so a late strip never costs the display
/// node its place in the cluster.
pub const STRIP_DEADLINE: Duration = Duration::from_millis(500);

/// A node's part in sort-first: display node, helper, or both.
pub struct SortFirst {
    exchange: Option<StripExchange>,
    client: Option<StripClient>,
    /// The strips this display node keeps this frame, with their views.
    own: Vec<(u16, [u32; 4])>,
    /// This frame's requests to this helper (kept for reuse).
    jobs: Vec<lockstep_cluster::compose::StripJob>,
    /// Where a helper draws other nodes' views, and (for a window's format) its renderer.
    /// One per display node helped (their windows may differ in size).
    strip_targets: Vec<Option<OffscreenTarget>>,
    strip_renderer: Option<Renderer>,
    pixels: Vec<u8>,
    started: Instant,
    name: String,
    /// A strip's own draw list: the pass's list culled again for the strip alone.
    strip_list: DrawList,
    /// Strips composited from helpers, drawn in their stead, and drawn for others.
    composited: u64,
    missed: u64,
    served: u64,
    /// Per frame (at most [`SAMPLES`]): waiting for the helpers' strips once
    /// this node's own were drawn, writing them in; per strip served, drawing, reading back
    /// and sending it.
    waits: Vec<Duration>,
    composites: Vec<Duration>,
    serves: Vec<Duration>,
}

/// Timing samples kept at most (the summary's medians are of the first ones).
const SAMPLES: usize = 100_000;

impl SortFirst {
    /// Node `name`'s part in `config`, if it has one: a listener for its helpers on
    /// `listen` if it has helped viewports, a client of every display node it helps.
    pub fn new(
        config: &ClusterConfig,
        name: &str,
        key: &ClusterKey,
        listen: SocketAddr,
        resolve: impl Fn(&lockstep_display::Endpoint) -> Result<SocketAddr>,
    ) -> Result<Option<SortFirst>> {
        let helped: Vec<Helped> = config
            .views(name)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .filter(|(_, v)| !v.helpers.is_empty())
            .map(|(i, v)| Helped {
                view: i as u16,
                rect: v.rect,
                helpers: v.helpers,
                codec: if v.lz4_strips {
                    lockstep_wire::STRIP_LZ4
                } else {
                    lockstep_wire::STRIP_RGBA8
                },
            })
            .collect();
        let displays: Vec<(String, SocketAddr)> = config
            .helped_by(name)
            .into_iter()
            .map(|d| Ok((d.name.clone(), resolve(&d.endpoint)?)))
            .collect::<Result<_>>()?;
        if helped.is_empty() && displays.is_empty() {
            return Ok(None);
        }
        let exchange = if helped.is_empty() {
            None
        } else {
            let x =
                StripExchange::listen(listen, key.clone(), &config.name, helped, STRIP_DEADLINE)
                    .with_context(|| format!("node '{name}' cannot listen for its helpers"))?;
            eprintln!("node '{name}': helpers connect to {}", x.local_addr());
            Some(x)
        };
        let client = if displays.is_empty() {
            None
        } else {
            Some(StripClient::new(name, key.clone(), &config.name, displays)?)
        };
        Ok(Some(SortFirst {
            exchange,
            client,
            own: Vec::new(),
            jobs: Vec::new(),
            strip_targets: Vec::new(),
            strip_renderer: None,
            pixels: Vec::new(),
            started: Instant::now(),
            name: name.to_string(),
            strip_list: DrawList::default(),
            composited: 0,
            missed: 0,
            served: 0,
            waits: Vec::with_capacity(1024),
            composites: Vec::with_capacity(1024),
            serves: Vec::with_capacity(1024),
        }))
    }

    /// Frame `frame` (the master's number) begins in Draw. As a helper: every strip asked
    /// for is drawn from `passes` (its `PassShare::Helper` ones), read back and sent. As a
    /// display node: its helpers are asked for theirs.
    #[allow(clippy::too_many_arguments)]
    pub fn begin(
        &mut self,
        gpu: &GpuContext,
        renderer: &mut Renderer,
        format: lockstep_render::wgpu::TextureFormat,
        scene: &Scene,
        lists: &[DrawList],
        passes: &[ViewPass],
        frame: u64,
    ) -> Result<()> {
        if let Some(client) = &mut self.client {
            self.jobs.clear();
            self.jobs
                .extend_from_slice(client.jobs(frame, STRIP_DEADLINE));
            for &job in &self.jobs {
                let Some((_list, pass, window)) =
                    lists.iter().zip(passes).find_map(|(l, p)| match p.share {
                        PassShare::Helper {
                            display,
                            view,
                            window,
                        } if usize::from(display) == job.display && view == job.view => {
                            Some((l, p, window))
                        }
                        _ => None,
                    })
                else {
                    tracing::warn!(
                        "display node '{}' asked for view {}, which this node does not draw for it",
                        client.displays()[job.display],
                        job.view
                    );
                    continue;
                };
                // A request must lie within the view it names.
                let Some(rect) = pass.rect.filter(|r| inside(job.rect, *r)) else {
                    tracing::warn!(
                        "display node '{}' asked for strip {:?} outside its view {:?}",
                        client.displays()[job.display],
                        job.rect,
                        pass.rect
                    );
                    continue;
                };
                if self.strip_targets.len() <= job.display {
                    self.strip_targets.resize_with(job.display + 1, || None);
                }
                let target = match &mut self.strip_targets[job.display] {
                    Some(t) => {
                        t.resize(gpu, window[0], window[1])?;
                        t
                    }
                    slot @ None => slot.insert(OffscreenTarget::new(gpu, window[0], window[1])?),
                };
                let r = if format == OffscreenTarget::FORMAT {
                    &mut *renderer
                } else {
                    self.strip_renderer
                        .get_or_insert_with(|| Renderer::new(gpu, OffscreenTarget::FORMAT))
                };
                let options = DrawOptions {
                    clear: true,
                    color_writes: pass.color_writes,
                    viewport: Some(rect),
                    scissor: Some(job.rect),
                };
                // Only what reaches the strip is drawn (the whole view's projection kept).
                cull_strip(&mut self.strip_list, scene, pass, job.rect, frame)?;
                target.render_with(gpu, r, scene, &self.strip_list, options, false)?;
                target.read_region_into(gpu, job.rect, &mut self.pixels)?;
                let took = job.since.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                client.send(&job, &self.pixels, took);
                self.served += 1;
                sample(&mut self.serves, job.since.elapsed());
            }
        }
        self.own.clear();
        if let Some(x) = &mut self.exchange {
            x.begin_frame_into(frame, &mut self.own);
        }
        self.started = Instant::now();
        Ok(())
    }

    /// What to draw `pass` with inside `scissor`: `list` (Cull's, for the whole view), or
    /// for a strip, that list culled again for the strip alone — objects wholly outside it
    /// dropped, the whole view's projection kept, so the strip's pixels are the same.
    pub fn strip_list<'a>(
        &'a mut self,
        scene: &Scene,
        list: &'a DrawList,
        pass: &ViewPass,
        scissor: Option<[u32; 4]>,
    ) -> Result<&'a DrawList> {
        match (scissor, pass.rect) {
            (Some(strip), Some(rect)) if strip != rect => {
                cull_strip(&mut self.strip_list, scene, pass, strip, list.frame)?;
                Ok(&self.strip_list)
            }
            _ => Ok(list),
        }
    }

    /// The scissors to draw `pass` with, into `out`: one `None` (the whole pass) for a view
    /// of this node alone, this node's strips of a helped view, nothing for a helper pass.
    pub fn scissors(&self, pass: &ViewPass, out: &mut Vec<Option<[u32; 4]>>) {
        out.clear();
        match pass.share {
            PassShare::Own => out.push(None),
            PassShare::Helped { view } if self.exchange.is_some() => out.extend(
                self.own
                    .iter()
                    .filter(|(v, _)| *v == view)
                    .map(|(_, r)| Some(*r)),
            ),
            // Without its exchange (it could not listen) the node draws it whole.
            PassShare::Helped { .. } => out.push(None),
            PassShare::Helper { .. } => {}
        }
    }

    /// This node's own passes are drawn: as a helper, display nodes connected since are told
    /// it takes requests; as a display node, waits for the helpers' strips, hands those that
    /// came to `write(rect, pixels)`, which puts them into the target, and returns those
    /// that did not (pass index and strip), for the caller to draw itself.
    pub fn finish(
        &mut self,
        gpu: &GpuContext,
        passes: &[ViewPass],
        mut write: impl FnMut([u32; 4], &mut [u8]) -> Result<()>,
    ) -> Result<Vec<(usize, [u32; 4])>> {
        if let Some(client) = &mut self.client {
            // A frame of this node's own is drawn, so its pipeline is warm: display nodes
            // connected since may ask from their next frame.
            for d in client.ready() {
                eprintln!(
                    "node '{}' helps display node '{}'",
                    self.name,
                    client.displays()[d]
                );
            }
        }
        let Some(x) = &mut self.exchange else {
            return Ok(Vec::new());
        };
        // This node's part is measured drawn, not submitted (the GPU works on after
        // submission): what the load balancer weighs against the helpers' finish times.
        gpu.wait_idle()?;
        let drawn_own = self.started.elapsed();
        let waited = Instant::now();
        let (arrived, missing) = x.gather();
        let written = Instant::now();
        for a in arrived.iter_mut() {
            write(a.rect, &mut a.pixels)?;
            self.composited += 1;
        }
        let composite = written.elapsed();
        sample(&mut self.waits, written.duration_since(waited));
        sample(&mut self.composites, composite);
        let missing: Vec<(usize, [u32; 4])> = missing
            .into_iter()
            .filter_map(|(view, rect)| {
                let i = passes
                    .iter()
                    .position(|p| p.share == PassShare::Helped { view })?;
                Some((i, rect))
            })
            .collect();
        self.missed += missing.len() as u64;
        x.end_frame(drawn_own, composite);
        Ok(missing)
    }
}

impl Drop for SortFirst {
    /// What it did, for the node's log (and the tests).
    fn drop(&mut self) {
        eprintln!(
            "node '{}' sort-first: {} strips from helpers, {} drawn in a helper's stead, {} strips drawn for others; waited for strips median {:.3} ms, wrote them in median {:.3} ms; a strip drawn, read back and sent median {:.3} ms",
            self.name,
            self.composited,
            self.missed,
            self.served,
            median(&self.waits),
            median(&self.composites),
            median(&self.serves)
        );
    }
}

/// Culls `scene` into `list` for the part `strip` (window pixels) of `pass`'s view, then
/// gives the list the whole view's projection back: what it draws inside `strip` is what the
/// whole view draws there, with less to draw.
pub(crate) fn cull_strip(
    list: &mut DrawList,
    scene: &Scene,
    pass: &ViewPass,
    strip: [u32; 4],
    frame: u64,
) -> Result<()> {
    use lockstep_scene::glam::{Mat4, Vec4};
    let Some([vx, vy, vw, vh]) = pass.rect else {
        list.cull(scene, &pass.view, frame)?;
        return Ok(());
    };
    let [sx, sy, sw, sh] = strip;
    // The strip's range in normalised device coordinates (y up).
    let fx = |px: u32| (f64::from(px) - f64::from(vx)) / f64::from(vw.max(1));
    let fy = |px: u32| (f64::from(px) - f64::from(vy)) / f64::from(vh.max(1));
    let (x0, x1) = (2.0 * fx(sx) - 1.0, 2.0 * fx(sx + sw) - 1.0);
    let (y0, y1) = (1.0 - 2.0 * fy(sy + sh), 1.0 - 2.0 * fy(sy));
    // Clip space scaled so that range fills [-1, 1]: x' = (2x − (x0 + x1) w) / (x1 − x0).
    let (ax, bx) = (2.0 / (x1 - x0), -(x0 + x1) / (x1 - x0));
    let (ay, by) = (2.0 / (y1 - y0), -(y0 + y1) / (y1 - y0));
    let to_strip = Mat4::from_cols(
        Vec4::new(ax as f32, 0.0, 0.0, 0.0),
        Vec4::new(0.0, ay as f32, 0.0, 0.0),
        Vec4::new(0.0, 0.0, 1.0, 0.0),
        Vec4::new(bx as f32, by as f32, 0.0, 1.0),
    );
    let view = lockstep_render::View {
        view: pass.view.view,
        projection: to_strip * pass.view.projection,
    };
    list.cull(scene, &view, frame)?;
    list.view_proj = pass.view.projection * pass.view.view;
    Ok(())
}

/// Keeps `d`, while there is room.
fn sample(into: &mut Vec<Duration>, d: Duration) {
    if into.len() < SAMPLES {
        into.push(d);
    }
}

/// The median of `v` in milliseconds (NaN if empty).
fn median(v: &[Duration]) -> f64 {
    crate::stats::Summary::of(v).map_or(f64::NAN, |s| s.median_ms)
}

/// Whether `inner` lies within `outer` (both x, y, width, height).
fn inside(inner: [u32; 4], outer: [u32; 4]) -> bool {
    let end = |a: u32, b: u32| u64::from(a) + u64::from(b);
    inner[0] >= outer[0]
        && inner[1] >= outer[1]
        && end(inner[0], inner[2]) <= end(outer[0], outer[2])
        && end(inner[1], inner[3]) <= end(outer[1], outer[3])
}
