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
/// waits for a display node's request, before drawing the strip itself (or giving up).
pub const STRIP_DEADLINE: Duration = Duration::from_millis(250);

/// A node's part in sort-first: display node, helper, or both.
pub struct SortFirst {
    exchange: Option<StripExchange>,
    client: Option<StripClient>,
    /// The strips this display node keeps this frame, with their views.
    own: Vec<(u16, [u32; 4])>,
    /// Where a helper draws other nodes' views, and (for a window's format) its renderer.
    strip_target: Option<OffscreenTarget>,
    strip_renderer: Option<Renderer>,
    pixels: Vec<u8>,
    started: Instant,
    drawn_own: Duration,
    name: String,
    /// Strips composited from helpers, drawn in their stead, and drawn for others.
    composited: u64,
    missed: u64,
    served: u64,
}

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
            strip_target: None,
            strip_renderer: None,
            pixels: Vec::new(),
            started: Instant::now(),
            drawn_own: Duration::ZERO,
            name: name.to_string(),
            composited: 0,
            missed: 0,
            served: 0,
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
        self.started = Instant::now();
        if let Some(client) = &mut self.client {
            let jobs = client.jobs(frame, STRIP_DEADLINE).to_vec();
            for job in jobs {
                let Some((list, pass, window)) =
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
                let target = match &mut self.strip_target {
                    Some(t) => {
                        t.resize(gpu, window[0], window[1])?;
                        t
                    }
                    None => self
                        .strip_target
                        .insert(OffscreenTarget::new(gpu, window[0], window[1])?),
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
                target.render_with(gpu, r, scene, list, options, false)?;
                target.read_region_into(gpu, job.rect, &mut self.pixels)?;
                let took = job.since.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                client.send(&job, &self.pixels, took);
                self.served += 1;
            }
        }
        self.own.clear();
        if let Some(x) = &mut self.exchange {
            self.own = x.begin_frame(frame);
        }
        self.started = Instant::now();
        Ok(())
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
    /// it takes requests; as a display node, waits for the helpers' strips,
    /// draws those that did not come with `draw(pass index, scissor)`, and hands the others
    /// to `write(rect, pixels)`, which puts them into the target.
    pub fn finish(
        &mut self,
        passes: &[ViewPass],
        mut draw: impl FnMut(usize, [u32; 4]) -> Result<()>,
        mut write: impl FnMut([u32; 4], &mut [u8]) -> Result<()>,
    ) -> Result<()> {
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
            return Ok(());
        };
        self.drawn_own = self.started.elapsed();
        let (arrived, missing) = x.gather();
        for a in arrived.iter_mut() {
            write(a.rect, &mut a.pixels)?;
            self.composited += 1;
        }
        let composite = self.started.elapsed().saturating_sub(self.drawn_own);
        for (view, rect) in missing {
            let Some(i) = passes
                .iter()
                .position(|p| p.share == PassShare::Helped { view })
            else {
                continue;
            };
            draw(i, rect)?;
            self.missed += 1;
        }
        x.end_frame(self.drawn_own, composite);
        Ok(())
    }
}

impl Drop for SortFirst {
    /// What it did, for the node's log (and the tests).
    fn drop(&mut self) {
        eprintln!(
            "node '{}' sort-first: {} strips from helpers, {} drawn in a helper's stead, {} strips drawn for others",
            self.name, self.composited, self.missed, self.served
        );
    }
}

/// Whether `inner` lies within `outer` (both x, y, width, height).
fn inside(inner: [u32; 4], outer: [u32; 4]) -> bool {
    let end = |a: u32, b: u32| u64::from(a) + u64::from(b);
    inner[0] >= outer[0]
        && inner[1] >= outer[1]
        && end(inner[0], inner[2]) <= end(outer[0], outer[2])
        && end(inner[1], inner[3]) <= end(outer[1], outer[3])
}
