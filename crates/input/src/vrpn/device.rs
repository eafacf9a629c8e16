/*!
A VRPN device read on its own thread: connects over TCP (directly, as VRPN's `tcp://` does,
which every VRPN 07 server accepts), follows the server with a [`Session`], and keeps what it
reported for the frame loop to take — the newest pose of each sensor (a 1 kHz tracker does not
pile up behind a 60 Hz frame loop), every button change in order, the newest channels. A
server that goes away, or is silent for [`SILENCE_LIMIT`] despite pings, is dialled again
every [`REDIAL_EVERY`]; what it last reported stays until it reports again.
*/
use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::VrpnError;
use super::codec::Stamp;
use super::session::{Received, Report, Session};

/// VRPN's port unless the address names one.
pub const DEFAULT_PORT: u16 = 3883;
/// How soon a lost server is dialled again.
pub const REDIAL_EVERY: Duration = Duration::from_millis(250);
/// A server silent this long (it answers pings once a second) is dropped and dialled again.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(3);
/// Button changes kept between two takes; older ones are dropped (and counted).
const MAX_PENDING_BUTTONS: usize = 1024;

/// `Device@host[:port]`, as VRPN writes it (`Tracker0@localhost`, `Wand@tcp://10.0.0.5:3883`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The device's name on its server.
    pub device: String,
    /// The server's host.
    pub host: String,
    /// Its port.
    pub port: u16,
}

impl std::str::FromStr for Address {
    type Err = String;

    fn from_str(s: &str) -> Result<Address, String> {
        let (device, server) = s
            .split_once('@')
            .ok_or_else(|| format!("'{s}' is not DEVICE@HOST[:PORT]"))?;
        if device.is_empty() || device.len() > super::codec::MAX_NAME {
            return Err(format!("'{s}': the device name must be 1 to 100 bytes"));
        }
        let server = ["x-vrpn://", "tcp://", "x-vrpn:", "tcp:"]
            .iter()
            .find_map(|p| server.strip_prefix(p))
            .unwrap_or(server);
        let (host, port) = match server.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("'{s}': port '{p}' is not 1 to 65535"))?,
            ),
            None => (server, DEFAULT_PORT),
        };
        if host.is_empty() {
            return Err(format!("'{s}' names no host"));
        }
        Ok(Address {
            device: device.to_string(),
            host: host.to_string(),
            port,
        })
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}:{}", self.device, self.host, self.port)
    }
}

/// What a device reported since the last take.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reports {
    /// The newest pose of each sensor that reported (position, quaternion x y z w), with the
    /// server's timestamp and when it arrived here.
    pub poses: BTreeMap<u32, Pose>,
    /// Button changes, in order (button, down).
    pub buttons: Vec<(u32, bool)>,
    /// The newest channel values, if any came.
    pub analog: Option<Vec<f64>>,
    /// Reports received in all (poses coalesced into `poses` count too).
    pub received: u64,
    /// Button changes dropped because nobody took them in time.
    pub dropped_buttons: u64,
}

/// One tracker report, in the tracker's own space.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pose {
    /// Position.
    pub position: [f64; 3],
    /// Orientation (x, y, z, w).
    pub rotation: [f64; 4],
    /// The server's timestamp.
    pub time: Stamp,
    /// When it arrived here.
    pub arrived: Instant,
}

impl Pose {
    /// Position and orientation as the cluster's single-precision values (still in the
    /// tracker's own space).
    pub fn to_glam(&self) -> (glam::Vec3, glam::Quat) {
        (
            glam::DVec3::from_array(self.position).as_vec3(),
            glam::DQuat::from_array(self.rotation).as_quat(),
        )
    }
}

#[derive(Debug, Default)]
struct Shared {
    reports: Reports,
    /// The newest pose of each sensor among those already taken.
    taken: BTreeMap<u32, Pose>,
    connected: bool,
}

/// A VRPN device read on its own thread, until dropped.
pub struct Device {
    address: Address,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    socket: Arc<Mutex<Option<TcpStream>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Device {
    /// Starts reading `address`; `label` names the device in logs (the cluster file's name).
    pub fn start(address: Address, label: &str) -> Result<Device, VrpnError> {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let socket = Arc::new(Mutex::new(None));
        let thread = {
            let (address, shared, stop, socket) = (
                address.clone(),
                shared.clone(),
                stop.clone(),
                socket.clone(),
            );
            let label = label.to_string();
            std::thread::Builder::new()
                .name(format!("vrpn {label}"))
                .spawn(move || run(&address, &label, &shared, &stop, &socket))
                .map_err(|e| VrpnError::Io(format!("cannot start the thread: {e}")))?
        };
        Ok(Device {
            address,
            shared,
            stop,
            socket,
            thread: Some(thread),
        })
    }

    /// The device's address.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Whether the server is connected now.
    pub fn connected(&self) -> bool {
        self.shared.lock().is_ok_and(|s| s.connected)
    }

    /// What was reported since the last take (the lock is held only for the swap).
    pub fn take(&self) -> Reports {
        match self.shared.lock() {
            Ok(mut s) => {
                let reports = std::mem::take(&mut s.reports);
                s.taken.extend(reports.poses.iter().map(|(k, p)| (*k, *p)));
                reports
            }
            Err(_) => Reports::default(),
        }
    }

    /// A handle that reads sensor `sensor`'s newest pose at any time, from any thread,
    /// without taking it (what late latching reads as a swap is released).
    pub fn watch(&self, sensor: u32) -> PoseWatch {
        PoseWatch {
            shared: self.shared.clone(),
            sensor,
        }
    }
}

/// Reads one sensor's newest pose; see [`Device::watch`].
#[derive(Clone)]
pub struct PoseWatch {
    shared: Arc<Mutex<Shared>>,
    sensor: u32,
}

impl PoseWatch {
    /// The newest pose the sensor reported (taken or not), if it ever reported.
    pub fn newest(&self) -> Option<Pose> {
        let s = self.shared.lock().ok()?;
        s.reports
            .poses
            .get(&self.sensor)
            .or_else(|| s.taken.get(&self.sensor))
            .copied()
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Ok(Some(s)) = self.socket.lock().as_deref() {
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The device's thread: dial, follow, dial again.
fn run(
    address: &Address,
    label: &str,
    shared: &Mutex<Shared>,
    stop: &AtomicBool,
    socket: &Mutex<Option<TcpStream>>,
) {
    // Told once per outage, not at every attempt.
    let mut told = false;
    while !stop.load(Ordering::Relaxed) {
        match follow(address, label, shared, stop, socket) {
            Ok(()) => return,
            // Dropped: the socket was shut down on purpose.
            Err(_) if stop.load(Ordering::Relaxed) => return,
            Err(e) => {
                let was = shared
                    .lock()
                    .map(|mut s| std::mem::replace(&mut s.connected, false))
                    .unwrap_or(false);
                if was || !told {
                    tracing::warn!(
                        "tracker '{label}' ({address}): {e}; dialling again every {REDIAL_EVERY:?}"
                    );
                }
                told = true;
            }
        }
        if let Ok(mut s) = socket.lock() {
            *s = None;
        }
        // Between attempts: a sleep, not a spin; Drop's flag is seen within it.
        std::thread::sleep(REDIAL_EVERY);
    }
}

fn resolve(address: &Address) -> Result<SocketAddr, VrpnError> {
    (address.host.as_str(), address.port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| VrpnError::Unreachable(format!("cannot resolve {}", address.host)))
}

/// One connection, until it fails or `stop` is set (then `Ok`).
fn follow(
    address: &Address,
    label: &str,
    shared: &Mutex<Shared>,
    stop: &AtomicBool,
    socket: &Mutex<Option<TcpStream>>,
) -> Result<(), VrpnError> {
    let io = |what: &str, e: std::io::Error| VrpnError::Io(format!("{what}: {e}"));
    let addr = resolve(address)?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))
        .map_err(|e| VrpnError::Unreachable(format!("cannot connect: {e}")))?;
    stream.set_nodelay(true).map_err(|e| io("TCP_NODELAY", e))?;
    // Reads wake at least this often, to ping and to notice `stop`.
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| io("read timeout", e))?;
    stream
        .set_write_timeout(Some(SILENCE_LIMIT))
        .map_err(|e| io("write timeout", e))?;
    if let Ok(mut s) = socket.lock() {
        *s = stream.try_clone().ok();
    }
    let mut session = Session::new(&address.device, Instant::now());
    stream
        .write_all(&session.hello())
        .map_err(|e| io("cannot send the cookie", e))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = Vec::new();
    let mut warned = 0u64;
    let mut first = true;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if let Some(ping) = session.poll_transmit(now) {
            stream.write_all(&ping).map_err(|e| io("cannot ping", e))?;
        }
        if session.silence(now) > SILENCE_LIMIT {
            return Err(VrpnError::Io(format!(
                "silent for {:?} (no answer to pings)",
                session.silence(now)
            )));
        }
        let n = match stream.read(&mut buf) {
            Ok(0) => return Err(VrpnError::Io("the server closed the connection".into())),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(io("cannot read", e)),
        };
        let arrived = Instant::now();
        got.clear();
        session.receive(&buf[..n], arrived, &mut got)?;
        if first && !got.is_empty() {
            tracing::info!("tracker '{label}' ({address}) is reporting");
            first = false;
        }
        let Ok(mut s) = shared.lock() else {
            return Ok(());
        };
        s.connected = true;
        for r in got.drain(..) {
            match r {
                Received::Report(time, report) => {
                    s.reports.received += 1;
                    apply(&mut s.reports, time, arrived, report);
                }
                Received::Warning(w) => {
                    warned += 1;
                    // A flood of bad reports is told now and then, not at each.
                    if warned.is_power_of_two() {
                        tracing::warn!(
                            "tracker '{label}' ({address}): {w} (skipped; {warned} so far)"
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

fn apply(r: &mut Reports, time: Stamp, arrived: Instant, report: Report) {
    match report {
        Report::Pose {
            sensor,
            position,
            rotation,
        } => {
            r.poses.insert(
                sensor,
                Pose {
                    position,
                    rotation,
                    time,
                    arrived,
                },
            );
        }
        Report::Button { button, pressed } => push_button(r, button, pressed),
        Report::Buttons(states) => {
            for (i, pressed) in states.into_iter().enumerate() {
                push_button(r, i as u32, pressed);
            }
        }
        Report::Analog(v) => r.analog = Some(v),
    }
}

fn push_button(r: &mut Reports, button: u32, pressed: bool) {
    if r.buttons.len() >= MAX_PENDING_BUTTONS {
        r.buttons.remove(0);
        r.dropped_buttons += 1;
    }
    r.buttons.push((button, pressed));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_device_at_host_and_port() {
        let a: Address = "Tracker0@localhost".parse().unwrap();
        assert_eq!(
            (a.device.as_str(), a.host.as_str(), a.port),
            ("Tracker0", "localhost", 3883)
        );
        let a: Address = "Wand@tcp://10.0.0.5:4000".parse().unwrap();
        assert_eq!((a.host.as_str(), a.port), ("10.0.0.5", 4000));
        assert_eq!(a.to_string(), "Wand@10.0.0.5:4000");
        for bad in ["Tracker0", "@host", "T@", "T@host:0", "T@host:x"] {
            assert!(bad.parse::<Address>().is_err(), "{bad}");
        }
    }
}
