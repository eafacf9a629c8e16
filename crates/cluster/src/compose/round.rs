/*!
The display node's side of sort-first, sans IO: for each frame, which strip of each helped
viewport every helper is asked for, which strips came back whole and in time, which the
display node must render itself, and what the load balancer learns from it.

Its driver (`compose/display.rs`) sends each [`Request`], hands over each strip that arrives
([`StripRound::handle_strip`]) and the time, renders the display node's own strips (and any
[`StripRound::missing`] at the deadline) and composites what came.
*/
use std::time::{Duration, Instant};

use lockstep_display::split::{LoadBalancer, Measured, Split};

/// One helped viewport of the display node.
#[derive(Debug, Clone)]
pub struct Helped {
    /// Its place among the node's views.
    pub view: u16,
    /// x, y (in the window), width, height.
    pub rect: [u32; 4],
    /// Its helpers, in file order (part `i + 1` of its split).
    pub helpers: Vec<String>,
    /// How they send their strips: `lockstep_wire::STRIP_RGBA8` or `STRIP_LZ4`.
    pub codec: u8,
}

/// A strip to ask a helper for. Every connected helper gets one per frame it helps in, with
/// an empty rectangle when it has nothing to draw (out of the split for now): it then
/// never waits for a request in vain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The helper's name.
    pub helper: String,
    /// The frame.
    pub frame: u64,
    /// The viewport's place among the display node's views.
    pub view: u16,
    /// The strip, in window pixels.
    pub rect: [u32; 4],
    /// How to send it back.
    pub codec: u8,
}

/// Why a strip was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StripError {
    /// Not a helper of that viewport, or a viewport this node does not have.
    #[error("'{helper}' is not a helper of view {view}")]
    NotAHelper {
        /// Who sent it.
        helper: String,
        /// The view it named.
        view: u16,
    },
    /// For a frame other than the one being composited.
    #[error("'{helper}' sent a strip of frame {got} while frame {want} is composited")]
    WrongFrame {
        /// Who sent it.
        helper: String,
        /// What it named.
        got: u64,
        /// The frame under way (none: no frame is).
        want: u64,
    },
    /// Not the rectangle it was asked for, or not its size in bytes.
    #[error(
        "'{helper}' sent strip {got:?} of {bytes} bytes for view {view}; it was asked for {want:?} ({need} bytes)"
    )]
    WrongStrip {
        /// Who sent it.
        helper: String,
        /// The view.
        view: u16,
        /// What it sent.
        got: [u32; 4],
        /// Its length.
        bytes: usize,
        /// What was asked for.
        want: [u32; 4],
        /// The length that takes.
        need: usize,
    },
    /// A second strip for the same request.
    #[error("'{helper}' sent view {view}'s strip of frame {frame} twice")]
    Twice {
        /// Who sent it.
        helper: String,
        /// The view.
        view: u16,
        /// The frame.
        frame: u64,
    },
}

/// One part of a helped viewport in the frame under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Asked for at that time; not here yet.
    Asked(Instant),
    /// Here, after this long.
    Came(Duration),
    /// Not asked for (out of the split, or its helper not connected).
    Idle,
    /// Missed the deadline: the display node renders it.
    Missed,
}

/// How long a helper that missed its strip but stays connected sits out before it is asked
/// again: a hiccup does not cost the wall its helper for good.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

struct Viewport {
    helped: Helped,
    balancer: LoadBalancer,
    /// Whether each helper is connected.
    connected: Vec<bool>,
    /// When each helper last missed its strip, if it did and is still connected.
    missed: Vec<Option<Instant>>,
    /// Whether each connected helper has had a request: its first is empty, so that it
    /// knows this node is drawing before it is asked to draw (it waits only for display
    /// nodes that asked for the frame before).
    warm: Vec<bool>,
    /// Helpers that connected since the last frame began: back in the split from the next
    /// (not during a frame, whose times are of the split it began with).
    rejoin: Vec<bool>,
    /// The split the frame under way uses, and each helper's part of it.
    split: Split,
    parts: Vec<Part>,
}

/// The strips of every helped viewport of one display node, frame by frame.
pub struct StripRound {
    viewports: Vec<Viewport>,
    /// What each part of a viewport took, gathered at each frame's end (kept for reuse).
    measured: Vec<Measured>,
    deadline: Duration,
    /// The frame under way and when its strips are due.
    frame: Option<(u64, Instant)>,
}

impl StripRound {
    /// Strips for `helped`, each due within `deadline` of its request.
    pub fn new(helped: Vec<Helped>, deadline: Duration) -> StripRound {
        let viewports = helped
            .into_iter()
            .map(|h| {
                let [_, _, w, hgt] = h.rect;
                let parts = h.helpers.len() + 1;
                let balancer = LoadBalancer::new(w, hgt, parts);
                Viewport {
                    split: balancer.split().clone(),
                    connected: vec![false; h.helpers.len()],
                    missed: vec![None; h.helpers.len()],
                    warm: vec![false; h.helpers.len()],
                    rejoin: vec![false; h.helpers.len()],
                    parts: vec![Part::Idle; h.helpers.len()],
                    balancer,
                    helped: h,
                }
            })
            .collect();
        StripRound {
            viewports,
            measured: Vec::new(),
            deadline,
            frame: None,
        }
    }

    /// Helper `name` connected (or came back): it is in every split it belongs to from the
    /// next frame begun.
    pub fn handle_connected(&mut self, name: &str) {
        for v in &mut self.viewports {
            if let Some(i) = v.helped.helpers.iter().position(|h| h == name) {
                v.connected[i] = true;
                v.missed[i] = None;
                v.warm[i] = false;
                v.rejoin[i] = true;
            }
        }
    }

    /// Helper `name`'s connection ended: whatever it was asked for and has not sent is the
    /// display node's to render, and it is out of the split.
    pub fn handle_disconnected(&mut self, name: &str) {
        for v in &mut self.viewports {
            if let Some(i) = v.helped.helpers.iter().position(|h| h == name) {
                v.connected[i] = false;
                v.missed[i] = None;
                v.rejoin[i] = false;
                if matches!(v.parts[i], Part::Asked(_)) {
                    v.parts[i] = Part::Missed;
                }
            }
        }
    }

    /// Begins frame `frame` at `now`: the requests to send, one per connected helper and
    /// viewport it helps (an empty one for a helper out of the split).
    pub fn begin_frame(&mut self, frame: u64, now: Instant, out: &mut Vec<Request>) {
        out.clear();
        self.frame = Some((frame, now + self.deadline));
        for v in &mut self.viewports {
            for (i, m) in v.missed.iter_mut().enumerate() {
                let retry = m.is_some_and(|t| now >= t + RETRY_AFTER);
                if retry || std::mem::take(&mut v.rejoin[i]) {
                    *m = None;
                    v.balancer.rejoin(i + 1);
                }
            }
            v.split.clone_from(v.balancer.split());
            for (i, helper) in v.helped.helpers.iter().enumerate() {
                let part = i + 1;
                let asked = v.connected[i]
                    && v.warm[i]
                    && v.balancer.is_active(part)
                    && !v.split.span(part).is_empty();
                v.parts[i] = if asked { Part::Asked(now) } else { Part::Idle };
                if v.connected[i] {
                    v.warm[i] = true;
                    out.push(Request {
                        helper: helper.clone(),
                        frame,
                        view: v.helped.view,
                        rect: if asked {
                            in_window(&v.helped, &v.split, part)
                        } else {
                            [0; 4]
                        },
                        codec: v.helped.codec,
                    });
                }
            }
        }
    }

    /// The strips the display node renders itself in the frame under way, in window
    /// pixels, with the view they belong to: its own part, and parts of helpers not asked.
    pub fn own(&self) -> impl Iterator<Item = (u16, [u32; 4])> + '_ {
        self.viewports.iter().flat_map(|v| {
            (0..v.split.parts())
                .filter(|p| !v.split.span(*p).is_empty())
                .filter(|p| *p == 0 || v.parts[p - 1] == Part::Idle)
                .map(|p| (v.helped.view, in_window(&v.helped, &v.split, p)))
        })
    }

    /// A strip came from `helper` at `now`: `Ok` if it is one asked for in the frame under
    /// way, the right size ([`rgba_len`] bytes for its rectangle), and the first.
    pub fn handle_strip(
        &mut self,
        helper: &str,
        frame: u64,
        view: u16,
        rect: [u32; 4],
        bytes: usize,
        now: Instant,
    ) -> Result<(), StripError> {
        let not_a_helper = || StripError::NotAHelper {
            helper: helper.to_string(),
            view,
        };
        let v = self
            .viewports
            .iter_mut()
            .find(|v| v.helped.view == view)
            .ok_or_else(not_a_helper)?;
        let i = v
            .helped
            .helpers
            .iter()
            .position(|h| h == helper)
            .ok_or_else(not_a_helper)?;
        let want = self.frame.map_or(u64::MAX, |(f, _)| f);
        if frame != want {
            return Err(StripError::WrongFrame {
                helper: helper.to_string(),
                got: frame,
                want,
            });
        }
        let asked = in_window(&v.helped, &v.split, i + 1);
        let need = rgba_len(asked);
        match v.parts[i] {
            Part::Asked(at) if rect == asked && bytes == need => {
                v.parts[i] = Part::Came(now.saturating_duration_since(at));
                Ok(())
            }
            Part::Asked(_) | Part::Idle => Err(StripError::WrongStrip {
                helper: helper.to_string(),
                view,
                got: rect,
                bytes,
                want: asked,
                need,
            }),
            Part::Came(_) | Part::Missed => Err(StripError::Twice {
                helper: helper.to_string(),
                view,
                frame,
            }),
        }
    }

    /// When the frame under way's strips are due, while some are still awaited.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.frame.map(|(_, t)| t).filter(|_| !self.is_done())
    }

    /// Whether every strip asked for came (or was given up).
    pub fn is_done(&self) -> bool {
        self.viewports
            .iter()
            .all(|v| v.parts.iter().all(|p| !matches!(p, Part::Asked(_))))
    }

    /// Time passes: at the deadline, every strip still awaited is missed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some((_, due)) = self.frame else { return };
        if now < due {
            return;
        }
        for v in &mut self.viewports {
            for p in &mut v.parts {
                if matches!(p, Part::Asked(_)) {
                    *p = Part::Missed;
                }
            }
        }
    }

    /// The strips that were missed, which the display node must render itself before it
    /// composites (so the frame shows no hole), with their views.
    pub fn missing(&self) -> impl Iterator<Item = (u16, [u32; 4])> + '_ {
        self.viewports.iter().flat_map(|v| {
            v.parts
                .iter()
                .enumerate()
                .filter(|(_, p)| **p == Part::Missed)
                .map(|(i, _)| (v.helped.view, in_window(&v.helped, &v.split, i + 1)))
        })
    }

    /// Ends the frame under way: each viewport's balancer learns what every part took (the
    /// display node's own rendering `own` and compositing `composite` times); a helper that
    /// missed leaves the split. Returns the helpers that missed.
    pub fn end_frame(&mut self, own: Duration, composite: Duration) -> Vec<String> {
        // A miss dates from the frame's deadline.
        let due = self.frame.take().map(|(_, t)| t);
        let mut missed = Vec::new();
        let measured = &mut self.measured;
        for v in &mut self.viewports {
            measured.clear();
            measured.push(Measured::Took(own));
            for (i, p) in v.parts.iter_mut().enumerate() {
                measured.push(match *p {
                    Part::Came(t) => Measured::Took(t),
                    Part::Missed => {
                        missed.push(v.helped.helpers[i].clone());
                        if v.connected[i] {
                            v.missed[i] = due;
                        }
                        Measured::Missed
                    }
                    // Not connected: out of the split until it is.
                    Part::Idle | Part::Asked(_) if !v.connected[i] => Measured::Missed,
                    // Not asked this frame: nothing learnt.
                    Part::Idle | Part::Asked(_) => Measured::Skipped,
                });
                *p = Part::Idle;
            }
            v.balancer.update(measured, composite);
        }
        missed
    }
}

/// Part `part` of `split` in window pixels.
fn in_window(h: &Helped, split: &Split, part: usize) -> [u32; 4] {
    let [x, y, w, hgt] = split.rect(part);
    [h.rect[0] + x, h.rect[1] + y, w, hgt]
}

/// Bytes of an RGBA8 strip of `rect`.
pub fn rgba_len([_, _, w, h]: [u32; 4]) -> usize {
    w as usize * h as usize * 4
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn round() -> StripRound {
        let mut r = StripRound::new(
            vec![Helped {
                view: 1,
                rect: [10, 20, 300, 100],
                helpers: vec!["h1".into(), "h2".into()],
                codec: lockstep_wire::STRIP_RGBA8,
            }],
            50 * MS,
        );
        r.handle_connected("h1");
        r.handle_connected("h2");
        // A first frame with empty requests: each helper hears this node draws.
        let mut out = Vec::new();
        r.begin_frame(0, Instant::now(), &mut out);
        assert!(out.iter().all(|q| q.rect == [0; 4]), "{out:?}");
        // Nothing to composite: the split stays even.
        r.end_frame(MS, Duration::ZERO);
        r
    }

    #[test]
    fn each_connected_helper_is_asked_for_its_strip_and_the_display_node_draws_the_first() {
        let t0 = Instant::now();
        let mut r = round();
        let mut out = Vec::new();
        r.begin_frame(7, t0, &mut out);
        assert_eq!(
            out,
            [
                Request {
                    helper: "h1".into(),
                    frame: 7,
                    view: 1,
                    rect: [110, 20, 100, 100],
                    codec: lockstep_wire::STRIP_RGBA8,
                },
                Request {
                    helper: "h2".into(),
                    frame: 7,
                    view: 1,
                    rect: [210, 20, 100, 100],
                    codec: lockstep_wire::STRIP_RGBA8,
                },
            ]
        );
        assert_eq!(r.own().collect::<Vec<_>>(), [(1, [10, 20, 100, 100])]);
        assert_eq!(r.poll_timeout(), Some(t0 + 50 * MS));
        r.handle_strip("h2", 7, 1, [210, 20, 100, 100], 40_000, t0 + 3 * MS)
            .unwrap();
        assert!(!r.is_done());
        r.handle_strip("h1", 7, 1, [110, 20, 100, 100], 40_000, t0 + 5 * MS)
            .unwrap();
        assert!(r.is_done());
        assert_eq!(r.poll_timeout(), None);
        assert_eq!(r.missing().count(), 0);
        assert_eq!(r.end_frame(4 * MS, MS), Vec::<String>::new());
    }

    #[test]
    fn strips_for_another_frame_place_size_or_sender_or_twice_are_refused() {
        let t0 = Instant::now();
        let mut r = round();
        let mut out = Vec::new();
        r.begin_frame(7, t0, &mut out);
        let h1 = [110, 20, 100, 100];
        let e = r.handle_strip("h1", 6, 1, h1, 40_000, t0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "'h1' sent a strip of frame 6 while frame 7 is composited"
        );
        let e = r
            .handle_strip("h1", 7, 1, [110, 20, 100, 99], 39_600, t0)
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("it was asked for [110, 20, 100, 100] (40000 bytes)"),
            "{e}"
        );
        let e = r.handle_strip("h1", 7, 1, h1, 39_999, t0).unwrap_err();
        assert!(
            matches!(e, StripError::WrongStrip { bytes: 39_999, .. }),
            "{e}"
        );
        let e = r
            .handle_strip("intruder", 7, 1, h1, 40_000, t0)
            .unwrap_err();
        assert_eq!(e.to_string(), "'intruder' is not a helper of view 1");
        let e = r.handle_strip("h1", 7, 0, h1, 40_000, t0).unwrap_err();
        assert!(matches!(e, StripError::NotAHelper { view: 0, .. }));
        r.handle_strip("h1", 7, 1, h1, 40_000, t0).unwrap();
        let e = r.handle_strip("h1", 7, 1, h1, 40_000, t0).unwrap_err();
        assert_eq!(e.to_string(), "'h1' sent view 1's strip of frame 7 twice");
    }

    #[test]
    fn a_strip_missing_at_the_deadline_is_the_display_nodes_and_its_helper_leaves_the_split() {
        let t0 = Instant::now();
        let mut r = round();
        let mut out = Vec::new();
        r.begin_frame(7, t0, &mut out);
        r.handle_strip("h1", 7, 1, [110, 20, 100, 100], 40_000, t0 + MS)
            .unwrap();
        r.handle_timeout(t0 + 49 * MS);
        assert_eq!(r.missing().count(), 0);
        r.handle_timeout(t0 + 50 * MS);
        assert!(r.is_done());
        assert_eq!(r.missing().collect::<Vec<_>>(), [(1, [210, 20, 100, 100])]);
        assert_eq!(r.end_frame(4 * MS, MS), ["h2"]);
        // From the next frame the split has two parts covering the whole viewport.
        r.begin_frame(8, t0 + 60 * MS, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].helper, "h1");
        assert_eq!(
            (out[1].helper.as_str(), out[1].rect),
            ("h2", [0; 4]),
            "nothing to draw"
        );
        let own: Vec<_> = r.own().collect();
        assert_eq!(own.len(), 1);
        let [x0, _, w0, _] = own[0].1;
        let [x1, _, w1, _] = out[0].rect;
        assert_eq!(
            (x0, x0 + w0, x1 + w1),
            (10, x1, 310),
            "no hole: {own:?} {out:?}"
        );
    }

    #[test]
    fn a_helper_that_missed_but_stays_connected_is_asked_again_after_a_while() {
        let t0 = Instant::now();
        let mut r = round();
        let mut out = Vec::new();
        r.begin_frame(10, t0, &mut out);
        r.handle_strip("h1", 10, 1, [110, 20, 100, 100], 40_000, t0)
            .unwrap();
        r.handle_timeout(t0 + 50 * MS);
        assert_eq!(r.end_frame(MS, MS), ["h2"]);
        // It missed at frame 10's deadline, t0 + 50 ms: out until a second after that.
        let due = t0 + 50 * MS + RETRY_AFTER;
        for f in 11..20u32 {
            let at = t0 + 50 * MS + RETRY_AFTER * (f - 11) / 9;
            assert!(at < due);
            r.begin_frame(u64::from(f), at, &mut out);
            let drawn: Vec<_> = out.iter().filter(|q| q.rect[2] > 0).collect();
            assert!(drawn.iter().all(|q| q.helper == "h1"), "frame {f}: {out:?}");
            r.end_frame(MS, MS);
        }
        r.begin_frame(20, due, &mut out);
        assert!(
            out.iter().any(|q| q.helper == "h2" && q.rect[2] > 0),
            "{out:?}"
        );
    }

    #[test]
    fn a_helper_that_disconnects_mid_frame_is_missed_at_once_and_one_never_connected_is_left_out() {
        let t0 = Instant::now();
        let mut r = StripRound::new(
            vec![Helped {
                view: 0,
                rect: [0, 0, 200, 100],
                helpers: vec!["h1".into(), "h2".into()],
                codec: lockstep_wire::STRIP_RGBA8,
            }],
            50 * MS,
        );
        r.handle_connected("h1");
        let mut out = Vec::new();
        r.begin_frame(0, t0, &mut out);
        assert_eq!(out[0].rect, [0; 4], "the first request is empty");
        r.end_frame(MS, Duration::ZERO);
        r.begin_frame(1, t0, &mut out);
        assert_eq!(out.len(), 1, "only h1 is connected: {out:?}");
        // h2, never connected, left the split at frame 0: two parts.
        assert_eq!(out[0].rect, [100, 0, 100, 100]);
        let own: Vec<_> = r.own().collect();
        assert_eq!(own, [(0, [0, 0, 100, 100])]);
        r.handle_disconnected("h1");
        assert!(r.is_done());
        assert_eq!(r.missing().collect::<Vec<_>>(), [(0, [100, 0, 100, 100])]);
        let missed = r.end_frame(MS, MS);
        assert_eq!(missed, ["h1"]);
        r.begin_frame(2, t0 + MS, &mut out);
        assert!(out.is_empty(), "neither is connected");
        assert_eq!(r.own().collect::<Vec<_>>(), [(0, [0, 0, 200, 100])]);
        // Back: told first, then in the split again.
        r.handle_connected("h1");
        r.begin_frame(3, t0 + 2 * MS, &mut out);
        assert_eq!((out.len(), out[0].rect), (1, [0; 4]));
        r.end_frame(MS, MS);
        r.begin_frame(4, t0 + 3 * MS, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].helper, "h1");
        assert!(out[0].rect[2] > 0);
    }
}
