/*!
A VRPN server for one tracker that plays a scripted path: `lockstep vrpn serve`, to try a
tracked display without a tracker, and what the tests track. It speaks what a VRPN 07 server
speaks over TCP — cookie, sender and type descriptions, `vrpn_Tracker Pos_Quat` reports at a
fixed rate, pongs to pings — so any VRPN client reads it.

A path is a list of keyframes (seconds, position, heading/pitch/roll in degrees): the pose at
time t is interpolated between the keyframes around it (positions linearly, orientations by
slerp), held at the last one, or looped; its clock starts when the first client connects.
It may press and release buttons at given times (`SECONDS button N down|up`); a client that
connects is told every button's state first.
*/
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use glam::{Quat, Vec3};

use super::codec::{self, COOKIE_LEN, Decoder, SENDER_DESCRIPTION, Stamp, TYPE_DESCRIPTION};
use super::session::{BUTTON_CHANGE, BUTTON_STATES, PING, PONG, POS_QUAT};

/// One keyframe of a path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Keyframe {
    /// Seconds from the start.
    pub time: f64,
    /// Position, in the tracker's space.
    pub position: Vec3,
    /// Orientation.
    pub rotation: Quat,
}

/// A scripted path.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    /// Keyframes, by time.
    pub keys: Vec<Keyframe>,
    /// Button changes, by time: (seconds, button, down).
    pub buttons: Vec<(f64, u32, bool)>,
    /// Start again after the last keyframe.
    pub looped: bool,
}

impl Path {
    /// Reads a path: one keyframe per line, `SECONDS X Y Z [H P R]` (degrees), times
    /// increasing, or a button change, `SECONDS button N down|up`; `#` starts a comment.
    /// `what` names the text in errors.
    pub fn parse(text: &str, what: &str) -> Result<Path, String> {
        let mut keys: Vec<Keyframe> = Vec::new();
        let mut buttons = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let at = format!("{what}:{}", i + 1);
            let words: Vec<&str> = line.split_whitespace().collect();
            if let [t, "button", n, state] = words[..] {
                let t: f64 = t
                    .parse()
                    .ok()
                    .filter(|t: &f64| t.is_finite() && *t >= 0.0)
                    .ok_or_else(|| format!("{at}: '{t}' is not a time"))?;
                let n: u32 = n
                    .parse()
                    .map_err(|_| format!("{at}: '{n}' is not a button number"))?;
                let down = match state {
                    "down" => true,
                    "up" => false,
                    _ => return Err(format!("{at}: '{state}' is not down or up")),
                };
                buttons.push((t, n, down));
                continue;
            }
            let v: Vec<f32> = line
                .split_whitespace()
                .map(|w| w.parse::<f32>().ok().filter(|x| x.is_finite()))
                .collect::<Option<_>>()
                .ok_or_else(|| format!("{at}: '{line}' is not numbers"))?;
            if v.len() != 4 && v.len() != 7 {
                return Err(format!(
                    "{at}: '{line}' is not SECONDS X Y Z [HEADING PITCH ROLL]"
                ));
            }
            let time = v[0] as f64;
            if keys.last().is_some_and(|k| k.time >= time) || time < 0.0 {
                return Err(format!(
                    "{at}: time {time} does not come after the one before"
                ));
            }
            let rotation = match v.len() {
                7 => lockstep_display::hpr_to_quat([v[4], v[5], v[6]]),
                _ => Quat::IDENTITY,
            };
            keys.push(Keyframe {
                time,
                position: Vec3::new(v[1], v[2], v[3]),
                rotation,
            });
        }
        if keys.is_empty() {
            return Err(format!("{what}: no keyframes"));
        }
        buttons.sort_by(|a: &(f64, u32, bool), b| a.0.total_cmp(&b.0));
        Ok(Path {
            keys,
            buttons,
            looped: false,
        })
    }

    /// Every button's state at `t` seconds (buttons up to the highest one scripted).
    pub fn buttons_at(&self, t: f64) -> Vec<bool> {
        let n = self
            .buttons
            .iter()
            .map(|b| b.1 as usize + 1)
            .max()
            .unwrap_or(0);
        let mut states = vec![false; n];
        for (_, b, down) in self.buttons.iter().filter(|b| b.0 <= t) {
            states[*b as usize] = *down;
        }
        states
    }

    /// The pose at `t` seconds.
    pub fn at(&self, t: f64) -> (Vec3, Quat) {
        let last = self.keys[self.keys.len() - 1];
        let t = if self.looped && last.time > 0.0 {
            t.rem_euclid(last.time)
        } else {
            t
        };
        let next = self.keys.iter().position(|k| k.time > t);
        match next {
            None => (last.position, last.rotation),
            Some(0) => (self.keys[0].position, self.keys[0].rotation),
            Some(i) => {
                let (a, b) = (self.keys[i - 1], self.keys[i]);
                let f = ((t - a.time) / (b.time - a.time)) as f32;
                (
                    a.position.lerp(b.position, f),
                    a.rotation.slerp(b.rotation, f),
                )
            }
        }
    }
}

/// A running server, until dropped.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// The TCP accept loop and the UDP listener: both gone (and their ports free) once the
    /// server is dropped.
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Serves `device` (sensor 0 following `path`, `rate` reports a second) on `listen`.
    pub fn start(
        listen: SocketAddr,
        device: &str,
        path: Path,
        rate: f64,
    ) -> std::io::Result<Server> {
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(false)?;
        let stop = Arc::new(AtomicBool::new(false));
        // The path's clock starts when the first client connects.
        let started = Arc::new(std::sync::OnceLock::new());
        let path = Arc::new(path);
        // VRPN clients given a plain `Device@host` ask over UDP for the server to connect
        // back to them ("IP PORT"); `Device@tcp://host` connects directly.
        let udp = std::net::UdpSocket::bind(addr)?;
        udp.set_read_timeout(Some(Duration::from_millis(100)))?;
        let udp_thread = {
            let (stop, device, path) = (stop.clone(), device.to_string(), path.clone());
            let started = started.clone();
            std::thread::Builder::new()
                .name("vrpn udp".into())
                .spawn(move || {
                    let mut buf = [0u8; 256];
                    while !stop.load(Ordering::Relaxed) {
                        let Ok((n, from)) = udp.recv_from(&mut buf) else {
                            continue;
                        };
                        let Some(back) = connect_back(&buf[..n], from) else {
                            continue;
                        };
                        let Ok(stream) = TcpStream::connect_timeout(&back, Duration::from_secs(1))
                        else {
                            continue;
                        };
                        let (stop, device, path) = (stop.clone(), device.clone(), path.clone());
                        let started = *started.get_or_init(Instant::now);
                        let _ = std::thread::Builder::new()
                            .name("vrpn client".into())
                            .spawn(move || {
                                if let Err(e) = serve(stream, &device, &path, rate, started, &stop)
                                {
                                    tracing::info!("vrpn client {back}: {e}");
                                }
                            });
                    }
                })?
        };
        let thread = {
            let (stop, device, path) = (stop.clone(), device.to_string(), path.clone());
            std::thread::Builder::new()
                .name("vrpn server".into())
                .spawn(move || {
                    for stream in listener.incoming() {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        let Ok(stream) = stream else { continue };
                        let (stop, device, path) = (stop.clone(), device.clone(), path.clone());
                        let started = *started.get_or_init(Instant::now);
                        let _ = std::thread::Builder::new()
                            .name("vrpn client".into())
                            .spawn(move || {
                                let peer = stream.peer_addr().map(|a| a.to_string());
                                if let Err(e) = serve(stream, &device, &path, rate, started, &stop)
                                {
                                    tracing::info!("vrpn client {}: {e}", peer.unwrap_or_default());
                                }
                            });
                    }
                })?
        };
        Ok(Server {
            addr,
            stop,
            threads: vec![thread, udp_thread],
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Type ids this server uses.
const T_POS_QUAT: i32 = 0;
const T_PONG: i32 = 1;
const T_BUTTON_CHANGE: i32 = 2;
const T_BUTTON_STATES: i32 = 3;

fn serve(
    stream: TcpStream,
    device: &str,
    path: &Path,
    rate: f64,
    started: Instant,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(Duration::from_secs(3)))?;
    let period = Duration::from_secs_f64(1.0 / rate.clamp(1.0, 10_000.0));
    let mut hello = codec::cookie().to_vec();
    codec::encode_description(&mut hello, SENDER_DESCRIPTION, 0, "VRPN Control");
    codec::encode_description(&mut hello, SENDER_DESCRIPTION, 1, device);
    codec::encode_description(&mut hello, TYPE_DESCRIPTION, T_POS_QUAT, POS_QUAT);
    codec::encode_description(&mut hello, TYPE_DESCRIPTION, T_PONG, PONG);
    codec::encode_description(&mut hello, TYPE_DESCRIPTION, T_BUTTON_CHANGE, BUTTON_CHANGE);
    codec::encode_description(&mut hello, TYPE_DESCRIPTION, T_BUTTON_STATES, BUTTON_STATES);
    // Every button's state now, as a VRPN button server tells a client that connects.
    let now = started.elapsed().as_secs_f64();
    let states = path.buttons_at(now);
    if !states.is_empty() {
        let mut body = (states.len() as i32).to_be_bytes().to_vec();
        for s in &states {
            body.extend_from_slice(&(*s as i32).to_be_bytes());
        }
        codec::encode(&mut hello, stamp(), 1, T_BUTTON_STATES, 0, &body);
    }
    // Button changes after now are sent as their time comes.
    let mut next_button = path
        .buttons
        .iter()
        .position(|b| b.0 > now)
        .unwrap_or(path.buttons.len());
    let writer = Arc::new(std::sync::Mutex::new(stream.try_clone()?));
    writer
        .lock()
        .map_err(|_| std::io::Error::other("poisoned"))?
        .write_all(&hello)?;
    // Pings are answered on a thread of their own, so reports keep their pace.
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (writer, done) = (writer.clone(), done.clone());
        std::thread::spawn(move || {
            let r = answer_pings(stream, &writer);
            done.store(true, Ordering::Relaxed);
            r
        })
    };
    let mut next = Instant::now();
    let mut seq = 0u32;
    let mut out = Vec::with_capacity(64 + codec::HEADER_LEN);
    let result = loop {
        if stop.load(Ordering::Relaxed) || done.load(Ordering::Relaxed) {
            break Ok(());
        }
        let now = Instant::now();
        if now < next {
            std::thread::sleep(next - now);
            continue;
        }
        let t = now.duration_since(started).as_secs_f64();
        out.clear();
        while let Some(&(_, button, down)) = path.buttons.get(next_button).filter(|b| b.0 <= t) {
            let mut body = (button as i32).to_be_bytes().to_vec();
            body.extend_from_slice(&(down as i32).to_be_bytes());
            codec::encode(&mut out, stamp(), 1, T_BUTTON_CHANGE, 0, &body);
            next_button += 1;
        }
        let (p, q) = path.at(t);
        let mut body = [0u8; 64];
        for (i, x) in [p.x, p.y, p.z, q.x, q.y, q.z, q.w].into_iter().enumerate() {
            body[8 + 8 * i..16 + 8 * i].copy_from_slice(&(x as f64).to_be_bytes());
        }
        seq = seq.wrapping_add(1);
        codec::encode(&mut out, stamp(), 1, T_POS_QUAT, seq, &body);
        let sent = match writer.lock() {
            Ok(mut w) => w.write_all(&out),
            Err(_) => break Ok(()),
        };
        if let Err(e) = sent {
            break Err(e);
        }
        next += period;
        if next < now {
            next = now + period;
        }
    };
    if let Ok(w) = writer.lock() {
        let _ = w.shutdown(std::net::Shutdown::Both);
    }
    let _ = reader.join();
    result
}

/// Reads the client's cookie and messages, answering each ping with a pong.
fn answer_pings(
    mut stream: TcpStream,
    writer: &std::sync::Mutex<TcpStream>,
) -> std::io::Result<()> {
    let mut cookie = Vec::with_capacity(COOKIE_LEN);
    let mut decoder = Decoder::new();
    // The client's ping type id, once it has described it.
    let mut ping = None;
    let mut buf = [0u8; 4096];
    let mut pong = Vec::new();
    codec::encode(&mut pong, Stamp::default(), 1, T_PONG, 0, &[]);
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let mut bytes = &buf[..n];
        if cookie.len() < COOKIE_LEN {
            let take = (COOKIE_LEN - cookie.len()).min(bytes.len());
            cookie.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if cookie.len() == COOKIE_LEN {
                let c: [u8; COOKIE_LEN] = cookie[..].try_into().unwrap_or([0; COOKIE_LEN]);
                codec::check_cookie(&c).map_err(std::io::Error::other)?;
            }
        }
        decoder.push(bytes);
        while let Some(f) = decoder.next_frame().map_err(std::io::Error::other)? {
            if f.kind == TYPE_DESCRIPTION
                && codec::description_name(f.body).is_ok_and(|n| n == PING)
            {
                ping = Some(f.sender);
            } else if f.kind >= 0 && Some(f.kind) == ping {
                writer
                    .lock()
                    .map_err(|_| std::io::Error::other("poisoned"))?
                    .write_all(&pong)?;
            }
        }
    }
}

/// Where a UDP connection request (`"IP PORT"`, NUL-ended) asks to be connected back to:
/// only the address it came from, on a port of 1024 or more.
fn connect_back(body: &[u8], from: SocketAddr) -> Option<SocketAddr> {
    let text = std::str::from_utf8(body).ok()?.trim_end_matches('\0');
    let (_, port) = text.split_once(' ')?;
    let port: u16 = port.trim().parse().ok().filter(|p| *p >= 1024)?;
    // The IP it names is ignored: connecting elsewhere would make this server a relay.
    Some(SocketAddr::new(from.ip(), port))
}

fn stamp() -> Stamp {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Stamp {
        sec: t.as_secs() as i32,
        usec: t.subsec_micros() as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_interpolates_between_keyframes_and_holds_or_loops() {
        let mut p = Path::parse(
            "# t x y z\n0 0 1.7 0\n1.5 button 2 down\n2 1 1.7 0 90 0 0\n1.8 button 2 up\n",
            "walk",
        )
        .unwrap();
        assert_eq!(p.buttons_at(1.6), [false, false, true]);
        assert_eq!(p.buttons_at(1.9), [false, false, false]);
        assert_eq!(p.at(-1.0).0, Vec3::new(0.0, 1.7, 0.0));
        assert!((p.at(1.0).0 - Vec3::new(0.5, 1.7, 0.0)).length() < 1e-6);
        assert!(
            p.at(1.0)
                .1
                .angle_between(Quat::from_rotation_y(45f32.to_radians()))
                < 1e-4
        );
        assert_eq!(p.at(5.0).0, Vec3::new(1.0, 1.7, 0.0));
        p.looped = true;
        assert!((p.at(3.0).0 - Vec3::new(0.5, 1.7, 0.0)).length() < 1e-6);
        for (bad, why) in [
            ("0 0 0", "is not SECONDS X Y Z"),
            ("0 0 0 x", "is not numbers"),
            ("1 0 0 0\n1 0 0 0", "does not come after"),
            ("# nothing", "no keyframes"),
            ("0 0 0 0\n1 button 0 pressed", "is not down or up"),
        ] {
            let e = Path::parse(bad, "p").unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
