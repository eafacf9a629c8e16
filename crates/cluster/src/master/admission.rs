/*!
Taking nodes that finished their handshake into the session, at frame boundaries, and
the start barrier that waits for them.
*/
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::ClusterError;
use crate::plugins::MAX_EVENT_PAYLOAD;

use super::Master;
use super::accept::Joined;
use super::control::Inbox;
use super::standing::NodeConn;
use super::status::Rates;

/// Largest message a node may send: an event of the largest payload, with room for its name.
pub(super) const NODE_MAX_FRAME: usize = MAX_EVENT_PAYLOAD + 1024;

impl Master {
    /// Takes nodes that finished their handshake into the session; they start with the next
    /// frame begun. A node that connects again replaces its old connection.
    pub(super) fn admit(&mut self) -> Result<(), ClusterError> {
        let joined: Vec<Joined> = match self.gate.joined.lock() {
            Ok(mut j) => j.drain(..).collect(),
            Err(_) => return Err(ClusterError::Internal("the accept thread panicked".into())),
        };
        for j in joined {
            tracing::info!("node '{}' joined", j.name);
            let mut link = j.link;
            link.peer = format!("node '{}'", j.name);
            // Nodes send only small messages (an event at most): a larger frame is an error,
            // not an allocation.
            link.set_max_frame(NODE_MAX_FRAME);
            // What it accepts: larger frames (snapshots) go in several records.
            link.set_send_limit(self.gate.max_frame as usize);
            *self.joins.entry(j.name.clone()).or_default() += 1;
            self.gone.remove(&j.name);
            let id = self.next_id;
            self.next_id += 1;
            self.session.handle_joined(id, &j.name);
            self.nodes.push(NodeConn {
                id,
                name: j.name,
                link,
                rate: Rates::default(),
                inbox: Inbox::default(),
            });
            self.reindex();
        }
        // The old connection of a node that connected again is closed.
        let mut report = std::mem::take(&mut self.carry);
        let closed = self.transmit(&mut report);
        self.carry = report;
        closed?;
        // Cluster-file order, whatever order they connected in: reports read the same each run.
        let order = &self.config.nodes;
        self.nodes.sort_by_key(|n| {
            order
                .iter()
                .position(|o| *o == n.name)
                .unwrap_or(usize::MAX)
        });
        self.reindex();
        Ok(())
    }

    /// The start barrier: waits until every node of the configuration has joined.
    pub fn wait_for_nodes(&mut self, timeout: Duration) -> Result<(), ClusterError> {
        self.wait_for_nodes_unless(timeout, &AtomicBool::new(false))
    }

    /// The start barrier, given up as soon as `stop` is set. Nodes that joined get
    /// heartbeats meanwhile, and control clients are answered.
    pub fn wait_for_nodes_unless(
        &mut self,
        timeout: Duration,
        stop: &AtomicBool,
    ) -> Result<(), ClusterError> {
        let all = self.config.nodes.clone();
        self.wait_until(timeout, stop, Some(&all))
    }

    /// The start barrier for some nodes only: the others may join at any time later.
    pub fn wait_for_unless(
        &mut self,
        names: &[String],
        timeout: Duration,
        stop: &AtomicBool,
    ) -> Result<(), ClusterError> {
        self.wait_until(timeout, stop, Some(names))
    }

    /// Waits until at least one node is connected (every node left, and the cluster waits
    /// for one to come back), given up as soon as `stop` is set.
    pub fn wait_for_any_unless(
        &mut self,
        timeout: Duration,
        stop: &AtomicBool,
    ) -> Result<(), ClusterError> {
        self.wait_until(timeout, stop, None)
    }

    /// Waits until every node of `names` has joined, or (`None`) any node.
    pub(super) fn wait_until(
        &mut self,
        timeout: Duration,
        stop: &AtomicBool,
        names: Option<&[String]>,
    ) -> Result<(), ClusterError> {
        let start = Instant::now();
        loop {
            if stop.load(Ordering::Relaxed) {
                return Err(ClusterError::Interrupted(
                    "stopped while waiting for the nodes to join".into(),
                ));
            }
            self.admit()?;
            let missing: Vec<&String> = names
                .unwrap_or(&self.config.nodes)
                .iter()
                .filter(|n| !self.nodes.iter().any(|c| &c.name == *n))
                .collect();
            let done = match names {
                Some(_) => missing.is_empty(),
                None => !self.nodes.is_empty(),
            };
            if done {
                return Ok(());
            }
            if start.elapsed() > timeout {
                let at = if names.is_some() {
                    "start barrier"
                } else {
                    "cluster"
                };
                return Err(ClusterError::NotJoined(format!(
                    "{at}: nodes {missing:?} did not join within {timeout:?}"
                )));
            }
            let mut report = std::mem::take(&mut self.carry);
            self.tick(&mut report)?;
            self.carry = report;
            // Joins are polled; control requests wake this at once.
            self.serve_control(Some(Duration::from_millis(5)))?;
        }
    }
}
