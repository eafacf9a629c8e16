/*!
What `lockstep ctl status` shows: rates over the last second, and each node's standing.
*/
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{Master, Standing};
use crate::control::{ClusterStatus, NodeReport};

/// Events of the last second, each with a duration (a barrier's wait, or none). The queue
/// keeps its capacity, so recording allocates nothing once warm.
#[derive(Debug, Default)]
pub(super) struct Rates {
    events: VecDeque<(Instant, Duration)>,
}

const WINDOW: Duration = Duration::from_secs(1);

impl Rates {
    pub fn push(&mut self, at: Instant, value: Duration) {
        self.trim(at);
        self.events.push_back((at, value));
    }

    fn trim(&mut self, now: Instant) {
        while let Some((t, _)) = self.events.front() {
            if now.duration_since(*t) <= WINDOW {
                break;
            }
            self.events.pop_front();
        }
    }

    /// Events per second over the last second.
    pub fn per_second(&mut self) -> f32 {
        self.trim(Instant::now());
        self.events.len() as f32 / WINDOW.as_secs_f32()
    }

    /// The median duration over the last second, in milliseconds.
    pub fn median_ms(&mut self) -> f32 {
        self.trim(Instant::now());
        let mut v: Vec<Duration> = self.events.iter().map(|(_, d)| *d).collect();
        v.sort();
        v.get(v.len() / 2).map_or(0.0, |d| d.as_secs_f32() * 1e3)
    }
}

impl Master {
    /// The cluster now: every node of the cluster file (and connected nodes it no longer
    /// names), its standing, last frame, rate and timings.
    pub fn status(&mut self) -> ClusterStatus {
        let mut nodes = Vec::new();
        let mut names = self.config.nodes.clone();
        for n in &self.nodes {
            if !names.contains(&n.name) {
                names.push(n.name.clone());
            }
        }
        for name in names {
            let joins = self.joins.get(&name).copied().unwrap_or(0);
            let report = match self.nodes.iter_mut().find(|n| n.name == name) {
                Some(n) => {
                    let Some(peer) = self.session.peer(n.id) else {
                        continue;
                    };
                    let state = match peer.standing {
                        Standing::Joining => "joining".to_string(),
                        Standing::CatchingUp { first, .. } => {
                            format!("catching up (joined at frame {first})")
                        }
                        Standing::InStep { .. } => "in step".to_string(),
                        Standing::Leaving { .. } => "leaving to restart".to_string(),
                    };
                    let (frame, ready_ms) = peer.ready.map_or((0, 0.0), |(f, s)| (f, s.ready_ms));
                    NodeReport {
                        name,
                        state,
                        frame,
                        fps: n.rate.per_second(),
                        ready_ms,
                        joins,
                    }
                }
                None => NodeReport {
                    state: match self.gone.get(&name) {
                        Some(why) => format!("absent (dropped: {why})"),
                        None => "absent".to_string(),
                    },
                    name,
                    frame: 0,
                    fps: 0.0,
                    ready_ms: 0.0,
                    joins,
                },
            };
            nodes.push(report);
        }
        ClusterStatus {
            frame: self.next.saturating_sub(1),
            fps: self.swaps.per_second(),
            sync_ms: self.swaps.median_ms(),
            nodes,
        }
    }

    /// How many times each node has joined since the master started.
    pub fn joins(&self) -> impl Iterator<Item = (&str, u32)> {
        self.joins.iter().map(|(n, c)| (n.as_str(), *c))
    }
}
