/*!
Sort-first: one viewport's view cut into strips, one per node that renders it — the display
node first, then its helpers in file order — and the load balancer that moves the cuts each
frame toward equal finish times.

The viewport is cut along its longer side, so strips stay as square as they can (less
per-strip overhead at the edges). The balancer is the shape of Equalizer's load equalizer:
the last frame's measured time of each strip, spread evenly over its pixels, estimates what
every pixel costs; new cuts share the estimated cost so that all finish together, the display
node's share smaller by its compositing time; each cut then moves only half-way there
(damping 0.5), so an estimate that is off does not make the split swing back and forth.
*/
use std::time::Duration;

/// How one viewport is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// Into columns, side by side (a viewport wider than tall).
    X,
    /// Into rows, one above the other.
    Y,
}

/// A viewport's strips: the pixels along the cut axis each part renders, in order; a part
/// without pixels (dropped from the split) renders nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// The axis it is cut along.
    pub axis: Axis,
    /// The viewport's width and height in pixels.
    pub size: [u32; 2],
    /// Where each part's strip ends along the axis (its start is the one before's end, 0
    /// for the first); the last is the viewport's side.
    ends: Vec<u32>,
}

impl Split {
    /// A `width` × `height` viewport cut evenly into `parts` strips along its longer side.
    pub fn even(width: u32, height: u32, parts: usize) -> Split {
        let axis = if width >= height { Axis::X } else { Axis::Y };
        let len = if axis == Axis::X { width } else { height };
        let parts = parts.max(1) as u64;
        let ends = (1..=parts)
            .map(|i| (u64::from(len) * i / parts) as u32)
            .collect();
        Split {
            axis,
            size: [width, height],
            ends,
        }
    }

    /// How many parts it has (dropped ones too).
    pub fn parts(&self) -> usize {
        self.ends.len()
    }

    /// The length of the cut side.
    pub fn len(&self) -> u32 {
        match self.axis {
            Axis::X => self.size[0],
            Axis::Y => self.size[1],
        }
    }

    /// Whether the viewport has no pixels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Part `i`'s pixels along the axis.
    pub fn span(&self, i: usize) -> std::ops::Range<u32> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        start..self.ends[i]
    }

    /// Part `i`'s rectangle within the viewport: x, y (from the top-left), width, height.
    pub fn rect(&self, i: usize) -> [u32; 4] {
        let s = self.span(i);
        let [w, h] = self.size;
        match self.axis {
            Axis::X => [s.start, 0, s.end - s.start, h],
            Axis::Y => [0, s.start, w, s.end - s.start],
        }
    }

    /// Where every strip ends along the axis.
    pub fn ends(&self) -> &[u32] {
        &self.ends
    }
}

/// What one part measured for the last frame it rendered with the current split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measured {
    /// Rendered its strip in this time (for a helper: render, read back and transfer; for
    /// the display node: render alone, its compositing given apart).
    Took(Duration),
    /// Missed the frame or left: dropped from the split from the next frame on.
    Missed,
    /// Rendered nothing this frame (it was not asked): its estimate stays as it was.
    Skipped,
}

/// The damping of each cut's move: half-way to where the estimate puts it.
pub const DAMPING: f64 = 0.5;

/// Moves a viewport's cuts toward equal finish times, frame by frame.
#[derive(Debug, Clone)]
pub struct LoadBalancer {
    split: Split,
    /// Parts still in the split.
    active: Vec<bool>,
    /// Estimated cost per pixel along the axis (seconds) from the last frames measured; 0
    /// where nothing was measured yet (counted as the average of the rest).
    cost: Vec<f64>,
    /// Each part's cost share, and where its strip would end: kept so an update allocates
    /// nothing.
    share: Vec<f64>,
    target: Vec<f64>,
}

impl LoadBalancer {
    /// A balancer for a `width` × `height` viewport shared by `parts` (the display node and
    /// its helpers), starting from an even split.
    pub fn new(width: u32, height: u32, parts: usize) -> LoadBalancer {
        let split = Split::even(width, height, parts);
        let len = split.len() as usize;
        let parts = split.parts();
        LoadBalancer {
            active: vec![true; parts],
            cost: vec![0.0; len],
            share: Vec::with_capacity(parts),
            target: Vec::with_capacity(parts),
            split,
        }
    }

    /// The split for the next frame.
    pub fn split(&self) -> &Split {
        &self.split
    }

    /// Whether part `i` is still in the split.
    pub fn is_active(&self, i: usize) -> bool {
        self.active.get(i).copied().unwrap_or(false)
    }

    /// Part `i` is back (its helper connected again): in the split from the next frame, the
    /// parts still in sharing the viewport evenly again, as nothing is known of its speed.
    pub fn rejoin(&mut self, i: usize) {
        if i >= self.active.len() || self.active[i] {
            return;
        }
        self.active[i] = true;
        let parts = self.active.iter().filter(|a| **a).count() as u64;
        let len = u64::from(self.split.len());
        let mut seen = 0;
        for (a, end) in self.active.iter().zip(&mut self.split.ends) {
            seen += u64::from(*a);
            *end = (len * seen / parts) as u32;
        }
    }

    /// Takes what each part measured for the frame rendered with the current split (one
    /// entry per part; parts already dropped are not looked at) and the display node's
    /// compositing time, and moves the cuts. A part that missed is dropped: its pixels go to
    /// the others at once, by the estimate, with no damping — no frame has a hole.
    pub fn update(&mut self, measured: &[Measured], composite: Duration) {
        let mut dropped = false;
        for (i, m) in measured.iter().enumerate().take(self.active.len()) {
            if !self.active[i] {
                continue;
            }
            match m {
                Measured::Missed if i > 0 => {
                    self.active[i] = false;
                    dropped = true;
                }
                // The display node composites what came: it is never dropped.
                Measured::Missed | Measured::Skipped => {}
                Measured::Took(t) => {
                    let span = self.split.span(i);
                    let n = (span.end - span.start) as f64;
                    if n > 0.0 {
                        // Spread evenly over its pixels: the best a single time can say.
                        let per = t.as_secs_f64().max(1e-9) / n;
                        for c in &mut self.cost[span.start as usize..span.end as usize] {
                            *c = per;
                        }
                    }
                }
            }
        }
        self.targets(composite.as_secs_f64());
        let damping = if dropped { 1.0 } else { DAMPING };
        let len = self.split.len();
        // The last part still in takes the cut side's end; parts after it have no pixels.
        let last = self.active.iter().rposition(|a| *a).unwrap_or(0);
        let mut prev = 0;
        for i in 0..self.split.ends.len() {
            let end = if i >= last {
                len
            } else if !self.active[i] {
                prev
            } else {
                let old = f64::from(self.split.ends[i]);
                let moved = old + damping * (self.target[i] - old);
                // Whole pixels, in order; every part still in keeps at least one.
                let rest = self.active[i + 1..].iter().filter(|a| **a).count() as u32;
                let max = len.saturating_sub(rest);
                (moved.round().max(0.0) as u32).clamp((prev + 1).min(max), max)
            };
            self.split.ends[i] = end;
            prev = end;
        }
    }

    /// Where each part's strip would end for equal finish times, by the estimate: every
    /// active part the same time, the display node's less its compositing.
    fn targets(&mut self, composite: f64) {
        let (sum, n) = self
            .cost
            .iter()
            .filter(|c| **c > 0.0)
            .fold((0.0, 0usize), |(s, n), c| (s + c, n + 1));
        let unknown = if n > 0 { sum / n as f64 } else { 1.0 };
        let cost = |c: f64| if c > 0.0 { c } else { unknown };
        let total: f64 = self.cost.iter().map(|c| cost(*c)).sum();
        let parts = self.active.iter().filter(|a| **a).count().max(1) as f64;
        // Equal finish F: the display node renders F − composite, every helper F.
        let finish = (total + composite) / parts;
        self.share.clear();
        self.share
            .extend(self.active.iter().enumerate().map(|(i, a)| match (i, a) {
                (_, false) => 0.0,
                (0, true) => (finish - composite).max(0.0),
                (_, true) => finish,
            }));
        // Scaled so the shares cover exactly the viewport's cost.
        let sum: f64 = self.share.iter().sum();
        let scale = if sum > 0.0 { total / sum } else { 0.0 };
        self.target.clear();
        let (mut acc, mut px, mut want) = (0.0, 0usize, 0.0);
        for s in &self.share {
            want += s * scale;
            // The fractional pixel where the running cost reaches `want`.
            while px < self.cost.len() && acc + cost(self.cost[px]) <= want {
                acc += cost(self.cost[px]);
                px += 1;
            }
            let frac = if px < self.cost.len() {
                ((want - acc) / cost(self.cost[px])).clamp(0.0, 1.0)
            } else {
                0.0
            };
            self.target.push(px as f64 + frac);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_even_split_cuts_the_longer_side_and_covers_every_pixel_once() {
        let s = Split::even(1280, 720, 3);
        assert_eq!(s.axis, Axis::X);
        assert_eq!(s.ends(), [426, 853, 1280]);
        assert_eq!(s.rect(0), [0, 0, 426, 720]);
        assert_eq!(s.rect(1), [426, 0, 427, 720]);
        assert_eq!(s.rect(2), [853, 0, 427, 720]);
        let tall = Split::even(300, 900, 2);
        assert_eq!(tall.axis, Axis::Y);
        assert_eq!(tall.rect(1), [0, 450, 300, 450]);
    }

    /// Times from a cost that sits mostly in the left fifth (a heavy model there), each part
    /// as fast as the others.
    fn simulate(split: &Split, cost: &dyn Fn(u32) -> f64, composite: f64) -> Vec<f64> {
        (0..split.parts())
            .map(|i| {
                let t: f64 = split.span(i).map(cost).sum();
                if i == 0 { t + composite } else { t }
            })
            .collect()
    }

    fn heavy_left(px: u32) -> f64 {
        if px < 256 { 10e-6 } else { 1e-6 }
    }

    fn step(b: &mut LoadBalancer, cost: &dyn Fn(u32) -> f64, composite: f64) -> Vec<f64> {
        let finish = simulate(b.split(), cost, composite);
        let measured: Vec<Measured> = finish
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let render = if i == 0 { t - composite } else { *t };
                Measured::Took(Duration::from_secs_f64(render))
            })
            .collect();
        b.update(&measured, Duration::from_secs_f64(composite));
        finish
    }

    fn spread(finish: &[f64]) -> f64 {
        let max = finish.iter().copied().fold(f64::MIN, f64::max);
        let min = finish.iter().copied().fold(f64::MAX, f64::min);
        (max - min) / max
    }

    #[test]
    fn the_balancer_reaches_equal_finish_times_within_ten_frames_without_swinging() {
        let composite = 0.4e-3;
        let mut b = LoadBalancer::new(1280, 720, 3);
        let first = spread(&simulate(b.split(), &heavy_left, composite));
        assert!(first > 0.5, "the even split is unbalanced: {first}");
        let mut history = vec![b.split().ends().to_vec()];
        for _ in 0..10 {
            step(&mut b, &heavy_left, composite);
            history.push(b.split().ends().to_vec());
        }
        let last = spread(&simulate(b.split(), &heavy_left, composite));
        assert!(
            last < 0.05,
            "finish times within 5 % after 10 frames: {last}"
        );
        // No swinging: each cut moves one way only (give or take a pixel of rounding).
        for cut in 0..2 {
            let moves: Vec<i64> = history
                .windows(2)
                .map(|w| i64::from(w[1][cut]) - i64::from(w[0][cut]))
                .filter(|d| d.abs() > 1)
                .collect();
            assert!(
                moves.iter().all(|d| *d < 0) || moves.iter().all(|d| *d > 0),
                "cut {cut} moved back and forth: {history:?}"
            );
        }
        // And it stays there.
        for _ in 0..20 {
            step(&mut b, &heavy_left, composite);
        }
        assert!(spread(&simulate(b.split(), &heavy_left, composite)) < 0.05);
    }

    #[test]
    fn the_display_node_gets_less_by_its_compositing_time() {
        let flat = |_: u32| 1e-6;
        let mut b = LoadBalancer::new(1000, 500, 2);
        for _ in 0..20 {
            step(&mut b, &flat, 100e-6);
        }
        // 1,000 µs of rendering: the display node 450 + 100 compositing, its helper 550.
        let s = b.split();
        assert!((448..=452).contains(&s.span(0).end), "{:?}", s.ends());
    }

    #[test]
    fn a_helper_that_misses_is_dropped_and_its_pixels_go_to_the_others_at_once() {
        let flat = |_: u32| 1e-6;
        let mut b = LoadBalancer::new(900, 300, 3);
        let t = Duration::from_micros(300);
        b.update(
            &[Measured::Took(t), Measured::Missed, Measured::Took(t)],
            Duration::ZERO,
        );
        assert!(!b.is_active(1));
        let s = b.split().clone();
        assert_eq!(s.span(1).len(), 0, "{:?}", s.ends());
        assert_eq!(s.span(0).start, 0);
        assert_eq!(s.span(2).end, 900);
        assert_eq!(s.span(0).end, s.span(2).start, "no hole: {:?}", s.ends());
        assert!((440..=460).contains(&s.span(0).end), "{:?}", s.ends());
        // It stays out; the rest go on balancing.
        for _ in 0..5 {
            step(&mut b, &flat, 0.0);
            assert_eq!(b.split().span(1).len(), 0);
        }
    }

    #[test]
    fn a_part_that_rejoins_shares_evenly_with_those_still_in() {
        let mut b = LoadBalancer::new(900, 300, 3);
        let t = Duration::from_micros(300);
        b.update(
            &[Measured::Took(t), Measured::Missed, Measured::Missed],
            Duration::ZERO,
        );
        assert_eq!(b.split().ends(), [900, 900, 900]);
        b.rejoin(2);
        assert_eq!(b.split().ends(), [450, 450, 900]);
        assert!(b.is_active(2) && !b.is_active(1));
        // The part out of the split is not looked at; the two in balance.
        b.update(
            &[Measured::Took(t * 2), Measured::Skipped, Measured::Took(t)],
            Duration::ZERO,
        );
        assert_eq!(b.split().ends(), [394, 394, 900]);
    }

    #[test]
    fn every_part_keeps_a_pixel_however_slow_it_measured() {
        let mut b = LoadBalancer::new(100, 10, 3);
        for _ in 0..30 {
            b.update(
                &[
                    Measured::Took(Duration::from_millis(1)),
                    Measured::Took(Duration::from_secs(5)),
                    Measured::Took(Duration::from_millis(1)),
                ],
                Duration::ZERO,
            );
            let s = b.split();
            assert!((0..3).all(|i| !s.span(i).is_empty()), "{:?}", s.ends());
            assert_eq!(s.ends()[2], 100);
        }
    }
}
