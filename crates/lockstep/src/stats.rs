/*!
Summaries of timing samples: what benchmarks and per-stage statistics print; and the present
skew of a cluster — for every frame, the spread between the earliest and the latest node's
present of it, from the present times the nodes list (`--stats-out`).
*/
use std::collections::HashMap;
use std::time::Duration;

/// Now on `CLOCK_MONOTONIC`, in nanoseconds: the clock every process of one machine shares,
/// so that present times from several nodes compare. Each machine's has its own origin:
/// times from different machines do not compare at all.
pub fn monotonic_ns() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(t) => (t.tv_sec() as u64).saturating_mul(1_000_000_000) + t.tv_nsec() as u64,
        // The monotonic clock is always there on Linux; 0 makes a spread nobody trusts.
        Err(_) => 0,
    }
}

/// CPU time the calling thread has used, in nanoseconds (`CLOCK_THREAD_CPUTIME_ID`): what a
/// loop costs its thread, whatever else the machine runs meanwhile.
pub fn thread_cpu_ns() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID) {
        Ok(t) => (t.tv_sec() as u64).saturating_mul(1_000_000_000) + t.tv_nsec() as u64,
        Err(_) => 0,
    }
}

/// The present skew of every frame that all of `nodes` presented: the latest present time
/// minus the earliest. Each node's list is (frame, `monotonic_ns` when it presented it).
pub fn present_skew(nodes: &[Vec<(u64, u64)>]) -> Vec<Duration> {
    // Per frame: earliest, latest, how many nodes, and the last node counted (a node that
    // lists a frame twice counts once).
    let mut frames: HashMap<u64, (u64, u64, usize, usize)> = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        for &(frame, at) in node {
            let e = frames.entry(frame).or_insert((u64::MAX, 0, 0, usize::MAX));
            let counted = if e.3 == i { e.2 } else { e.2 + 1 };
            *e = (e.0.min(at), e.1.max(at), counted, i);
        }
    }
    let mut all: Vec<(u64, Duration)> = frames
        .into_iter()
        .filter(|(_, (_, _, n, _))| *n == nodes.len() && nodes.len() > 1)
        .map(|(f, (lo, hi, _, _))| (f, Duration::from_nanos(hi - lo)))
        .collect();
    all.sort_unstable_by_key(|(f, _)| *f);
    all.into_iter().map(|(_, d)| d).collect()
}

/// Median, 95th percentile, mean and extremes of a set of durations, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Number of samples.
    pub count: usize,
    /// Middle sample (mean of the two middle ones for an even count).
    pub median_ms: f64,
    /// The sample 95% of samples are at or below (nearest rank).
    pub p95_ms: f64,
    /// The sample 99% of samples are at or below (nearest rank).
    pub p99_ms: f64,
    /// Arithmetic mean.
    pub mean_ms: f64,
    /// Smallest sample.
    pub min_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
}

impl Summary {
    /// Summarises `samples`; `None` when there are none.
    pub fn of(samples: &[Duration]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let n = ms.len();
        let median = if n % 2 == 1 {
            ms[n / 2]
        } else {
            (ms[n / 2 - 1] + ms[n / 2]) / 2.0
        };
        let rank = |p: f64| ms[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
        Some(Summary {
            count: n,
            median_ms: median,
            p95_ms: rank(0.95),
            p99_ms: rank(0.99),
            mean_ms: ms.iter().sum::<f64>() / n as f64,
            min_ms: ms[0],
            max_ms: ms[n - 1],
        })
    }

    /// Frames per second at the mean frame time.
    pub fn fps(&self) -> f64 {
        if self.mean_ms > 0.0 {
            1e3 / self.mean_ms
        } else {
            f64::INFINITY
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let s = Summary::of(&samples).unwrap();
        assert_eq!((s.median_ms, s.p95_ms, s.p99_ms), (50.5, 95.0, 99.0));
        assert_eq!((s.min_ms, s.max_ms, s.mean_ms), (1.0, 100.0, 50.5));
        let one = Summary::of(&[Duration::from_millis(4)]).unwrap();
        assert_eq!((one.median_ms, one.p95_ms, one.fps()), (4.0, 4.0, 250.0));
        assert_eq!(Summary::of(&[]), None);
    }

    #[test]
    fn skew_is_the_spread_of_each_frame_every_node_presented() {
        let a = vec![(1, 1_000), (2, 2_000), (3, 3_000)];
        let b = vec![(1, 1_040), (2, 1_990), (4, 4_000)];
        let c = vec![(1, 1_010), (2, 2_100)];
        // Frames 3 and 4 were not presented by every node: left out.
        assert_eq!(
            present_skew(&[a.clone(), b, c]),
            [Duration::from_nanos(40), Duration::from_nanos(110)]
        );
        assert!(
            present_skew(std::slice::from_ref(&a)).is_empty(),
            "one node has no skew"
        );
        // A node listing a frame twice does not stand in for one that missed it.
        let twice = vec![(1, 1_000), (1, 1_005)];
        assert!(present_skew(&[twice, vec![(2, 5)], a]).is_empty());
        let t = monotonic_ns();
        assert!(t > 0 && monotonic_ns() >= t);
    }
}
