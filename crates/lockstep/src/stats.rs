/*!
Summaries of timing samples: what benchmarks and per-stage statistics print.
*/
use std::time::Duration;

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
}
