/*!
What comes from outside the frame loop: control clients (`lockstep ctl`), cluster
events and the input of the nodes' own devices, each kept within its limits until the next
frame begun.
*/
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use std::time::Instant;

use lockstep_wire::datagram::{Nak, NakBudget};
use lockstep_wire::{Message, NodeStats};

use crate::ClusterError;
use crate::control::ControlCall;
use crate::multicast::{MulticastOut, nak_budgets};
use crate::plugins::{Event, Events, MAX_EVENTS_PER_FRAME};

use super::Master;

/// What a node sent besides its `SwapReady`s, kept until the next frame begun, within the
/// limits below.
#[derive(Debug, Default)]
pub(super) struct Inbox {
    /// Events: (name, postcard bytes).
    pub(super) events: Vec<(String, Vec<u8>)>,
    /// What its own input devices reported, batch by batch, and how many bytes that is.
    pub(super) input: Vec<Vec<u8>>,
    pub(super) input_bytes: usize,
    /// How many datagrams it may still have sent again, and requests it may still make.
    pub(super) nak_budget: Option<(NakBudget, NakBudget)>,
}

impl Inbox {
    /// Keeps what `m` brings. A `SwapReady` is handed back, (frame, stats), for the caller's
    /// barrier; a heartbeat answer is only a sign of life. Anything else, or more than the
    /// limits allow, is why the node goes.
    /// A request for missing datagrams is answered at once, to the group, within the node's
    /// budget.
    pub(super) fn keep(
        &mut self,
        m: Message<'_>,
        multicast: Option<&mut MulticastOut>,
    ) -> Result<Option<(u64, NodeStats)>, String> {
        match m {
            Message::Nak { frame, missing } => {
                let Some(out) = multicast else {
                    return Err("asked for datagrams again, but this cluster sends none".into());
                };
                let now = Instant::now();
                let (datagrams, requests) = self.nak_budget.get_or_insert_with(nak_budgets);
                if requests.take(1, now) == 0 {
                    return Err(format!(
                        "asked for datagrams again more often than {} times a second",
                        crate::multicast::NAK_MESSAGE_RATE
                    ));
                }
                let nak = Nak::from_message(frame, missing)?;
                if !out.answer(&nak, datagrams, now) {
                    return Err(format!(
                        "asked again for multicast unit {frame}, which is no longer kept: it fell too far behind"
                    ));
                }
                Ok(None)
            }
            Message::SwapReady { frame, stats } => Ok(Some((frame, stats))),
            Message::Heartbeat { .. } => Ok(None),
            Message::Event { name, payload, .. } => {
                keep_event(&mut self.events, name, payload)?;
                Ok(None)
            }
            Message::Input { payload } => {
                keep_input(&mut self.input, &mut self.input_bytes, payload)?;
                Ok(None)
            }
            other => Err(unexpected(other)),
        }
    }
}

/// Most bytes of input a node may send between two frames begun.
pub const MAX_NODE_INPUT: usize = 256 * 1024;

/// Most events waiting for delivery: four frames' worth.
pub(super) const MAX_QUEUED_EVENTS: usize = 4 * MAX_EVENTS_PER_FRAME;

/// Most events a node may send between two frames begun (its application may send
/// `MAX_EVENTS_SENT_PER_FRAME` per frame, and pipelining can put several of its frames in
/// that time): more is a node out of control, dropped rather than buffered.
pub(super) const MAX_NODE_EVENTS: usize = 4 * crate::plugins::MAX_EVENTS_SENT_PER_FRAME;

/// Most batches of input a node may send between two frames begun (one a frame; more while
/// the master is slower than the node's own loop).
pub(super) const MAX_NODE_INPUT_BATCHES: usize = 64;

/// Keeps a batch of input a node's devices reported, for the next frame begun.
fn keep_input(kept: &mut Vec<Vec<u8>>, bytes: &mut usize, payload: &[u8]) -> Result<(), String> {
    if *bytes + payload.len() > MAX_NODE_INPUT || kept.len() >= MAX_NODE_INPUT_BATCHES {
        return Err(format!(
            "sent more than {MAX_NODE_INPUT} bytes or {MAX_NODE_INPUT_BATCHES} batches of input in one frame"
        ));
    }
    *bytes += payload.len();
    kept.push(payload.to_vec());
    Ok(())
}

/// Keeps an event a node sent, for the master to check and queue at the next frame begun.
fn keep_event(kept: &mut Vec<(String, Vec<u8>)>, name: &str, payload: &[u8]) -> Result<(), String> {
    if kept.len() >= MAX_NODE_EVENTS {
        return Err(format!(
            "sent more than {MAX_NODE_EVENTS} events in one frame"
        ));
    }
    kept.push((name.to_string(), payload.to_vec()));
    Ok(())
}

fn unexpected(m: Message<'_>) -> String {
    match m {
        Message::Refused { reason } => format!("it left: {}", lockstep_wire::printable(reason)),
        other => format!("sent an unexpected {} message", other.kind()),
    }
}

impl Master {
    /// Answers control requests; waits up to `wait` for the first one.
    pub(super) fn serve_control(&mut self, wait: Option<Duration>) -> Result<(), ClusterError> {
        self.gate.tell_refusals();
        let mut call = match wait {
            Some(w) => match self.control.recv_timeout(w) {
                Ok(c) => Some(c),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    // The accept side holds a sender for as long as the master lives.
                    std::thread::sleep(w);
                    None
                }
            },
            None => self.control.try_recv().ok(),
        };
        while let Some(c) = call {
            match c {
                ControlCall::Status(reply) => {
                    let _ = reply.send(self.status());
                }
                ControlCall::Reconfigure(text, reply) => {
                    let _ = reply.send(self.reconfigure_text(text).map(|(f, _)| f));
                }
                ControlCall::Event { name, json, reply } => {
                    let _ = reply.send(self.queue_event(&name, &json, true));
                }
            }
            call = self.control.try_recv().ok();
        }
        Ok(())
    }

    /// Takes what the nodes' own input devices reported since the last call, node by node
    /// in cluster-file order (the node's name, then its batches in the order sent).
    pub fn take_node_input(&mut self, into: &mut Vec<(String, Vec<u8>)>) {
        for n in &mut self.nodes {
            n.inbox.input_bytes = 0;
            for batch in n.inbox.input.drain(..) {
                into.push((n.name.clone(), batch));
            }
        }
    }

    /// Queues a cluster event for the next frame begun (every process sees it in that
    /// frame), after checking it against its declaration: `payload` is postcard bytes of the
    /// declared type, or JSON text if `json`. The master's own application sends with this.
    /// Returns the frame it will be delivered in.
    pub fn queue_event(&mut self, name: &str, payload: &[u8], json: bool) -> Result<u64, String> {
        let events = self
            .manager
            .get::<Events>()
            .ok_or_else(|| "this master has no events plugin".to_string())?;
        let event = events.accept(name, payload, json)?;
        self.queue_accepted(event)
    }

    /// Queues an event [`Events::accept`] has already checked (the master's own application
    /// checks what it sends as it sends it); the frame it will be delivered in.
    pub fn queue_accepted(&mut self, event: Event) -> Result<u64, String> {
        if self.events.len() >= MAX_QUEUED_EVENTS {
            return Err(format!(
                "{MAX_QUEUED_EVENTS} events are waiting to be delivered already; try again"
            ));
        }
        // Each frame delivers at most MAX_EVENTS_PER_FRAME, in order.
        let frame = self.next + (self.events.len() / MAX_EVENTS_PER_FRAME) as u64;
        self.events.push(event);
        Ok(frame)
    }

    /// Takes in the events nodes sent and hands this frame's to the events plugin (at most
    /// [`MAX_EVENTS_PER_FRAME`]; the rest wait for the next frames).
    pub(super) fn deliver_events(&mut self) {
        for n in &mut self.nodes {
            for (name, payload) in std::mem::take(&mut n.inbox.events) {
                let accepted = match self.manager.get::<Events>() {
                    Some(events) => events.accept(&name, &payload, false),
                    None => Err("this master has no events plugin".into()),
                };
                match accepted {
                    Ok(e) if self.events.len() < MAX_QUEUED_EVENTS => self.events.push(e),
                    Ok(e) => tracing::warn!(
                        "node '{}' sent event '{}' while {MAX_QUEUED_EVENTS} wait already: dropped",
                        n.name,
                        e.name
                    ),
                    Err(why) => tracing::warn!("node '{}' sent an event refused: {why}", n.name),
                }
            }
        }
        let now: Vec<Event> = self
            .events
            .drain(..self.events.len().min(MAX_EVENTS_PER_FRAME))
            .collect();
        if let Some(events) = self.manager.get_mut::<Events>() {
            events.deliver(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_display::MulticastConfig;
    use lockstep_wire::ClusterKey;

    fn sender() -> MulticastOut {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .unwrap();
        let config = MulticastConfig {
            group: std::net::Ipv4Addr::new(239, 255, 76, 97),
            port,
            ttl: 1,
            interface: None,
        };
        let key = ClusterKey::new(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap();
        let listen = "127.0.0.1:0".parse().unwrap();
        let mut out = MulticastOut::open(&config, listen, &key, "t", 1 << 20, 0.0).unwrap();
        out.send(&[1, 2, 3]).unwrap();
        out
    }

    fn nak(frame: u64) -> Message<'static> {
        Message::Nak {
            frame,
            missing: &[],
        }
    }

    #[test]
    fn a_node_flooding_requests_is_refused_once_past_its_budget() {
        let mut out = sender();
        let mut inbox = Inbox::default();
        let mut answered = 0;
        // The budget refills at 2,000 a second: 10,000 requests outrun it on any machine
        // that does not stall for seconds.
        let err = loop {
            match inbox.keep(nak(0), Some(&mut out)) {
                Ok(None) => answered += 1,
                Ok(Some(r)) => panic!("a request is no SwapReady: {r:?}"),
                Err(e) => break e,
            }
            assert!(answered < 10_000, "never refused");
        };
        assert!(
            answered >= crate::multicast::NAK_MESSAGE_BURST,
            "{answered}"
        );
        assert_eq!(
            err,
            "asked for datagrams again more often than 2000 times a second"
        );
        // One copy went to the group; the rest were within the resend gap of it.
        assert!(out.stats.resent >= 1, "{:?}", out.stats);
        assert!(out.stats.resent < answered as u64, "{:?}", out.stats);
    }

    #[test]
    fn requests_for_units_not_kept_odd_indices_or_without_multicast_are_refused() {
        let mut out = sender();
        let mut inbox = Inbox::default();
        let err = inbox.keep(nak(7), Some(&mut out)).unwrap_err();
        assert_eq!(
            err,
            "asked again for multicast unit 7, which is no longer kept: it fell too far behind"
        );
        let odd = Message::Nak {
            frame: 0,
            missing: &[1, 0, 2],
        };
        let err = inbox.keep(odd, Some(&mut out)).unwrap_err();
        assert!(err.contains("with 3 bytes of indices"), "{err}");
        let err = inbox.keep(nak(0), None).unwrap_err();
        assert_eq!(
            err,
            "asked for datagrams again, but this cluster sends none"
        );
    }
}
