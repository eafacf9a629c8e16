/*!
Who gets a handshake, and how refusals are told: the rules every listener (the master's, a
daemon's) follows, without I/O — time is passed in, so each rule is tested without sockets.

- [`Slots`]: at most so many handshakes in progress per listener (a quarter of the descriptors
  the process has free, at most 64), fewer per peer address, and a reserve that only an
  address with no handshake in progress may use: slow or silent peers cannot take every
  descriptor or thread, and a host they do not control still gets in.
- [`AcceptBackoff`]: when `accept` fails (no descriptors left: `EMFILE`, `ENFILE`), wait
  longer each time instead of retrying at once, and say so at most once per interval.
- [`Refusals`]: refused peers are counted per reason and summarised once per interval, so a
  flood of bad connections cannot flood the log.

[`Gatekeeper`] puts the three on a listener: its [`Gatekeeper::accept`] is the one accept step
both listeners run (the only socket code here besides `ByDeadline`); what to log comes back as
text, so each caller logs it its own way.
*/
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Handshakes in progress per listener, by default.
pub const MAX_HANDSHAKES: usize = 64;

/// Handshakes in progress from one peer address, by default.
pub const MAX_HANDSHAKES_PER_ADDRESS: usize = 8;

/// How often refusals and accept failures are told, at most.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// The handshakes in progress on one listener.
#[derive(Debug)]
pub struct Slots {
    max: usize,
    per_address: usize,
    reserve: usize,
    busy: Mutex<HashMap<IpAddr, usize>>,
}

/// A handshake's place; dropping it frees the place.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    addr: IpAddr,
}

impl Slots {
    /// At most `max` handshakes at once, `per_address` of them from one address, and
    /// `reserve` more for addresses with none in progress.
    pub fn new(max: usize, per_address: usize, reserve: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max,
            per_address,
            reserve,
            busy: Mutex::new(HashMap::new()),
        })
    }

    /// The slots of a listener in this process: [`MAX_HANDSHAKES`] or a quarter of the
    /// descriptors still free (whichever is less; the rest stay for sessions and files),
    /// [`MAX_HANDSHAKES_PER_ADDRESS`], and a reserve of a quarter of that.
    pub fn for_listener() -> Arc<Slots> {
        let max =
            free_descriptors().map_or(MAX_HANDSHAKES, |free| (free / 4).clamp(4, MAX_HANDSHAKES));
        Slots::new(max, MAX_HANDSHAKES_PER_ADDRESS.min(max), (max / 4).max(2))
    }

    /// A place for a handshake with `addr`, or why there is none.
    pub fn take(self: &Arc<Self>, addr: IpAddr) -> Result<Slot, &'static str> {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        // Looked up, not inserted: a refused address leaves no entry behind.
        let total = busy.values().sum::<usize>();
        let n = busy.get(&addr).copied().unwrap_or(0);
        if n >= self.per_address {
            return Err("too many handshakes in progress from this address");
        }
        let newcomer = n == 0 && total < self.max + self.reserve;
        if total >= self.max && !newcomer {
            return Err("too many handshakes in progress");
        }
        *busy.entry(addr).or_default() += 1;
        Ok(Slot {
            slots: self.clone(),
            addr,
        })
    }

    /// Handshakes in progress.
    pub fn in_use(&self) -> usize {
        let busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        busy.values().sum()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut busy = self.slots.busy.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = busy.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                busy.remove(&self.addr);
            }
        }
    }
}

/// Descriptors this process may still open (Linux: its limit in `/proc/self/limits` less
/// those open in `/proc/self/fd`); `None` where that cannot be read.
pub fn free_descriptors() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let soft: usize = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    let open = std::fs::read_dir("/proc/self/fd").ok()?.count();
    Some(soft.saturating_sub(open))
}

/// Pauses between failed `accept`s: 1 ms, doubling up to 1 s; reset by a success.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    pause: Option<Duration>,
    told: Option<Instant>,
    untold: u64,
}

/// What to do after a failed `accept`.
#[derive(Debug, PartialEq, Eq)]
pub struct AcceptFailure {
    /// Wait this long before the next `accept`.
    pub pause: Duration,
    /// Log the failure now, with this many failures since the last report (this one
    /// included); `None`: stay quiet, it is counted.
    pub tell: Option<u64>,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(1);
    const MOST: Duration = Duration::from_secs(1);

    /// `accept` failed at `now`.
    pub fn failed(&mut self, now: Instant) -> AcceptFailure {
        let pause = self.pause.map_or(Self::FIRST, |p| (p * 2).min(Self::MOST));
        self.pause = Some(pause);
        self.untold += 1;
        let due = self
            .told
            .is_none_or(|t| now.duration_since(t) >= REPORT_INTERVAL);
        let tell = due.then(|| {
            self.told = Some(now);
            std::mem::take(&mut self.untold)
        });
        AcceptFailure { pause, tell }
    }

    /// `accept` succeeded: the next failure starts from the shortest pause.
    pub fn succeeded(&mut self) {
        self.pause = None;
    }
}

/// Refused peers, counted per reason between reports.
#[derive(Debug, Default)]
pub struct Refusals {
    since: Option<Instant>,
    counts: BTreeMap<&'static str, u64>,
    last: Option<String>,
}

impl Refusals {
    /// A peer was refused at `now` for `reason` (`detail` says more, already printable).
    /// Returns a line to log: the first refusal of a quiet period in full, then at most one
    /// summary per interval.
    pub fn note(&mut self, reason: &'static str, detail: String, now: Instant) -> Option<String> {
        match self.since {
            None => {
                self.since = Some(now);
                Some(detail)
            }
            Some(_) => {
                *self.counts.entry(reason).or_default() += 1;
                self.last = Some(detail);
                self.flush(now)
            }
        }
    }

    /// The summary of what was counted, once the interval since the last report has passed;
    /// a quiet interval ends the period (the next refusal is told in full again).
    pub fn flush(&mut self, now: Instant) -> Option<String> {
        let since = self.since?;
        if now.duration_since(since) < REPORT_INTERVAL {
            return None;
        }
        if self.counts.is_empty() {
            self.since = None;
            return None;
        }
        let total: u64 = self.counts.values().sum();
        let each = self
            .counts
            .iter()
            .map(|(r, n)| format!("{n} {r}"))
            .collect::<Vec<_>>()
            .join(", ");
        let last = self.last.take().unwrap_or_default();
        self.counts.clear();
        self.since = Some(now);
        Some(format!(
            "refused {total} more connection(s) in {:.1} s ({each}); the last: {last}",
            now.duration_since(since).as_secs_f32()
        ))
    }
}

/// A listener's admission: its handshake slots and its refusals, shared by its accept thread
/// and its handshake threads.
#[derive(Debug)]
pub struct Gatekeeper {
    slots: Arc<Slots>,
    refusals: Mutex<Refusals>,
}

/// What one [`Gatekeeper::accept`] gave.
#[derive(Debug)]
pub enum Incoming {
    /// A peer with a place for its handshake (freed when `slot` drops).
    Admitted {
        /// Its connection.
        stream: TcpStream,
        /// Its address.
        addr: SocketAddr,
        /// Its place.
        slot: Slot,
    },
    /// No peer to serve (it was told `Busy`, or `accept` failed and the back-off pause has
    /// passed); a line to log, if one is due.
    Tell(Option<String>),
}

impl Gatekeeper {
    /// The admission of a listener in this process ([`Slots::for_listener`]).
    pub fn for_listener() -> Arc<Gatekeeper> {
        Arc::new(Gatekeeper {
            slots: Slots::for_listener(),
            refusals: Mutex::new(Refusals::default()),
        })
    }

    /// Waits for the next connection on `listener`. A peer with no place is sent `Busy` at
    /// once, without waiting on it; a failed `accept` waits out `backoff`'s pause first.
    pub fn accept(&self, listener: &TcpListener, backoff: &mut AcceptBackoff) -> Incoming {
        let (stream, addr) = match listener.accept() {
            Ok(c) => {
                backoff.succeeded();
                c
            }
            Err(e) => {
                let failure = backoff.failed(Instant::now());
                std::thread::sleep(failure.pause);
                return Incoming::Tell(failure.tell.map(|n| {
                    format!(
                        "cannot accept connections ({n} failure(s) since last told): {e}; retrying"
                    )
                }));
            }
        };
        match self.slots.take(addr.ip()) {
            Ok(slot) => Incoming::Admitted { stream, addr, slot },
            Err(why) => {
                refuse_busy(stream, why);
                Incoming::Tell(self.refused("busy", format!("{addr}: {why}")))
            }
        }
    }

    /// A peer was refused for `kind` (`detail` printable): a line to log, if one is due.
    pub fn refused(&self, kind: &'static str, detail: String) -> Option<String> {
        let mut r = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        r.note(kind, detail, Instant::now())
    }

    /// The summary of the refusals counted, once one is due.
    pub fn summary(&self) -> Option<String> {
        let mut r = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        r.flush(Instant::now())
    }
}

/// Wakes the thread blocked in `accept` on `listener`, and every later `accept` on it fails
/// at once, without opening a descriptor: a process that has run out of them can still end
/// its accept loop (set its stop flag first). Connecting to the listener, the usual trick,
/// needs a descriptor.
pub fn stop_accepting(listener: &TcpListener) {
    // On Linux, shutting a listening socket's read side makes accept() fail with EINVAL.
    let _ = socket2::SockRef::from(listener).shutdown(std::net::Shutdown::Read);
}

/// How long a peer told `Busy` waits before it asks again.
pub const BUSY_RETRY: Duration = Duration::from_millis(100);

/// The dialling side of `Busy`: runs `attempt` again, [`BUSY_RETRY`] apart, while `busy` says
/// its error was a listener without room and another try still fits before `deadline`.
pub fn ask_until_admitted<T, E>(
    deadline: Instant,
    busy: impl Fn(&E) -> bool,
    mut attempt: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    loop {
        match attempt() {
            Err(e) if busy(&e) && Instant::now() + BUSY_RETRY < deadline => {
                std::thread::sleep(BUSY_RETRY);
            }
            done => return done,
        }
    }
}

/// Tells a peer there is no room for its handshake: one write that must not block.
fn refuse_busy(mut stream: TcpStream, why: &str) {
    if let Ok(bytes) = crate::encode(&crate::Message::Busy { reason: why })
        && stream.set_nonblocking(true).is_ok()
    {
        let _ = stream.write(&bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_cap_the_listener_and_each_address_keep_a_reserve_for_newcomers_and_free_on_drop() {
        let slots = Slots::new(3, 2, 1);
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let (a, b, c, d) = (
            ip("10.0.0.1"),
            ip("10.0.0.2"),
            ip("10.0.0.3"),
            ip("10.0.0.4"),
        );
        let a1 = slots.take(a).unwrap();
        let _a2 = slots.take(a).unwrap();
        assert_eq!(
            slots.take(a).unwrap_err(),
            "too many handshakes in progress from this address"
        );
        let _b1 = slots.take(b).unwrap();
        // Full: b, which has one in progress, is refused; c, which has none, takes the
        // reserve; then d is refused too.
        assert_eq!(
            slots.take(b).unwrap_err(),
            "too many handshakes in progress"
        );
        let _c1 = slots.take(c).unwrap();
        assert_eq!(
            slots.take(d).unwrap_err(),
            "too many handshakes in progress"
        );
        assert_eq!(slots.in_use(), 4);
        drop(a1);
        assert_eq!(slots.in_use(), 3);
        assert_eq!(
            slots.take(b).unwrap_err(),
            "too many handshakes in progress"
        );
        slots.take(d).unwrap();
        assert!(free_descriptors().is_some_and(|n| n > 0));
    }

    #[test]
    fn accept_failures_back_off_and_are_told_once_per_interval_with_a_count() {
        let mut b = AcceptBackoff::default();
        let t0 = Instant::now();
        let first = b.failed(t0);
        assert_eq!(
            first,
            AcceptFailure {
                pause: Duration::from_millis(1),
                tell: Some(1)
            }
        );
        let mut pauses = Vec::new();
        for i in 1..=12 {
            let f = b.failed(t0 + Duration::from_millis(i));
            assert_eq!(f.tell, None);
            pauses.push(f.pause.as_millis());
        }
        assert_eq!(&pauses[..3], &[2, 4, 8]);
        assert_eq!(*pauses.last().unwrap(), 1000);
        assert_eq!(b.failed(t0 + Duration::from_secs(1)).tell, Some(13));
        b.succeeded();
        assert_eq!(
            b.failed(t0 + Duration::from_secs(3)).pause,
            Duration::from_millis(1)
        );
    }

    #[test]
    fn refusals_are_told_first_in_full_then_summarised_per_interval() {
        let mut r = Refusals::default();
        let t0 = Instant::now();
        assert_eq!(
            r.note("wrong key", "peer 1".into(), t0),
            Some("peer 1".into())
        );
        let ms = Duration::from_millis;
        for i in 1..2000u64 {
            let reason = if i % 2 == 0 { "wrong key" } else { "timeout" };
            assert_eq!(r.note(reason, format!("peer {i}"), t0 + ms(i / 4)), None);
        }
        assert_eq!(
            r.flush(t0 + ms(1000)).unwrap(),
            "refused 1999 more connection(s) in 1.0 s (1000 timeout, 999 wrong key); the last: peer 1999"
        );
        // A quiet interval ends the period; the next refusal is told in full.
        assert_eq!(r.flush(t0 + ms(2100)), None);
        assert_eq!(
            r.note("timeout", "peer x".into(), t0 + ms(2200)),
            Some("peer x".into())
        );
    }

    #[test]
    fn a_busy_listener_is_asked_again_until_it_admits_or_the_deadline_nears() {
        let busy = |e: &&str| *e == "busy";
        let mut tries = 0;
        let got = ask_until_admitted(Instant::now() + Duration::from_secs(30), busy, || {
            tries += 1;
            if tries < 3 { Err("busy") } else { Ok(tries) }
        });
        assert_eq!(got, Ok(3));
        // Another error ends it at once; so does a deadline with no room for another try.
        let mut tries = 0;
        let got: Result<(), _> =
            ask_until_admitted(Instant::now() + Duration::from_secs(30), busy, || {
                tries += 1;
                Err("refused")
            });
        assert_eq!((got, tries), (Err("refused"), 1));
        let mut tries = 0;
        let got: Result<(), _> = ask_until_admitted(Instant::now() + BUSY_RETRY / 2, busy, || {
            tries += 1;
            Err("busy")
        });
        assert_eq!((got, tries), (Err("busy"), 1));
    }
}
