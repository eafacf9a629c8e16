/*!
A VRPN client connection as a state machine: bytes in, reports and bytes to send out, time
passed in. No sockets here (see [`super::device`]), so every rule is a unit test.

After both cookies, the server describes its senders and types by name (ids are each side's
own numbering) and then sends data. The client describes the one sender and type it uses
itself — the device's name and `vrpn_Base ping_message` — and pings once a second; the
server's pong (or anything else it sends) shows it is alive.
*/
use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::VrpnError;
use super::codec::{
    self, COOKIE_LEN, Decoder, Fields, SENDER_DESCRIPTION, Stamp, TYPE_DESCRIPTION,
};

/// A tracker's pose report (`vrpn_Tracker Pos_Quat`).
pub const POS_QUAT: &str = "vrpn_Tracker Pos_Quat";
/// A button's change (`vrpn_Button Change`).
pub const BUTTON_CHANGE: &str = "vrpn_Button Change";
/// Every button's state (`vrpn_Button States`).
pub const BUTTON_STATES: &str = "vrpn_Button States";
/// An analog device's channels (`vrpn_Analog Channel`).
pub const ANALOG_CHANNEL: &str = "vrpn_Analog Channel";
/// A liveness question.
pub const PING: &str = "vrpn_Base ping_message";
/// Its answer.
pub const PONG: &str = "vrpn_Base pong_message";

/// Most ids a peer may describe (VRPN's own tables hold 2000 senders and 2000 types).
const MAX_IDS: usize = 2000;
/// Most channels of an analog report (VRPN's `vrpn_CHANNEL_MAX`).
pub const MAX_CHANNELS: usize = crate::MAX_CHANNELS;
/// Most buttons of a states report (VRPN's `vrpn_BUTTON_MAX_BUTTONS`).
pub const MAX_BUTTONS: usize = crate::MAX_BUTTON as usize + 1;
/// How often the client pings.
pub const PING_EVERY: Duration = Duration::from_secs(1);

/// What a device reported.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// A sensor's position and orientation (quaternion x, y, z, w), in the tracker's space.
    Pose {
        /// The sensor.
        sensor: u32,
        /// Position.
        position: [f64; 3],
        /// Orientation, a unit quaternion (x, y, z, w).
        rotation: [f64; 4],
    },
    /// A button went down or up.
    Button {
        /// The button.
        button: u32,
        /// Down.
        pressed: bool,
    },
    /// Every button's state (sent when a client connects).
    Buttons(Vec<bool>),
    /// Every channel's value.
    Analog(Vec<f64>),
}

/// What [`Session::receive`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// A report, with the sender's timestamp.
    Report(Stamp, Report),
    /// A message that is not what its type says (the rest of the stream goes on).
    Warning(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    PosQuat,
    ButtonChange,
    ButtonStates,
    Analog,
    Pong,
    /// A type this client does not read.
    Other,
}

impl Kind {
    fn of(name: &str) -> Kind {
        match name {
            POS_QUAT => Kind::PosQuat,
            BUTTON_CHANGE => Kind::ButtonChange,
            BUTTON_STATES => Kind::ButtonStates,
            ANALOG_CHANNEL => Kind::Analog,
            PONG => Kind::Pong,
            _ => Kind::Other,
        }
    }
}

/// One connection to a VRPN server, for one device.
#[derive(Debug)]
pub struct Session {
    device: String,
    cookie: Option<Vec<u8>>,
    decoder: Decoder,
    /// The server's sender ids that name our device.
    ours: HashMap<i32, bool>,
    types: HashMap<i32, Kind>,
    last_heard: Instant,
    next_ping: Instant,
    seq: u32,
}

/// Our own ids: the device as sender 0, the ping as type 0.
const OUR_SENDER: i32 = 0;
const OUR_PING: i32 = 0;

impl Session {
    /// A connection for `device` (the name before the `@`, e.g. `Tracker0`), opened at
    /// `now`.
    pub fn new(device: &str, now: Instant) -> Session {
        Session {
            device: device.to_string(),
            cookie: Some(Vec::with_capacity(COOKIE_LEN)),
            decoder: Decoder::new(),
            ours: HashMap::new(),
            types: HashMap::new(),
            last_heard: now,
            next_ping: now,
            seq: 0,
        }
    }

    /// What the client sends first: its cookie and the descriptions of its sender and type.
    pub fn hello(&self) -> Vec<u8> {
        let mut out = codec::cookie().to_vec();
        codec::encode_description(&mut out, SENDER_DESCRIPTION, OUR_SENDER, &self.device);
        codec::encode_description(&mut out, TYPE_DESCRIPTION, OUR_PING, PING);
        out
    }

    /// How long the server has said nothing.
    pub fn silence(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_heard)
    }

    /// A ping to send, when one is due.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.cookie.is_some() || now < self.next_ping {
            return None;
        }
        self.next_ping = now + PING_EVERY;
        self.seq = self.seq.wrapping_add(1);
        let mut out = Vec::with_capacity(codec::HEADER_LEN);
        codec::encode(
            &mut out,
            Stamp::default(),
            OUR_SENDER,
            OUR_PING,
            self.seq,
            &[],
        );
        Some(out)
    }

    /// Takes bytes the server sent at `now`; what they held goes to `out`. An error means
    /// the stream cannot be followed any further: the connection must close.
    pub fn receive(
        &mut self,
        mut bytes: &[u8],
        now: Instant,
        out: &mut Vec<Received>,
    ) -> Result<(), VrpnError> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.last_heard = now;
        if let Some(cookie) = &mut self.cookie {
            let want = COOKIE_LEN - cookie.len();
            let (head, rest) = bytes.split_at(want.min(bytes.len()));
            cookie.extend_from_slice(head);
            bytes = rest;
            if cookie.len() < COOKIE_LEN {
                return Ok(());
            }
            let whole: [u8; COOKIE_LEN] = cookie[..].try_into().unwrap_or([0; COOKIE_LEN]);
            codec::check_cookie(&whole)?;
            self.cookie = None;
        }
        self.decoder.push(bytes);
        while let Some(frame) = self.decoder.next_frame()? {
            match frame.kind {
                SENDER_DESCRIPTION | TYPE_DESCRIPTION => {
                    let name = codec::description_name(frame.body)?;
                    let (id, kind) = (frame.sender, frame.kind);
                    // Ids index the peer's tables: bounded, so the maps are too.
                    if !(0..MAX_IDS as i32).contains(&id) {
                        return Err(VrpnError::Malformed(format!(
                            "the server describes id {id}: ids run from 0 to {}",
                            MAX_IDS - 1
                        )));
                    }
                    if kind == SENDER_DESCRIPTION {
                        self.ours.insert(id, name == self.device);
                    } else {
                        self.types.insert(id, Kind::of(name));
                    }
                }
                kind if kind < 0 => {} // UDP and log descriptions: not used over TCP.
                kind => {
                    let ours = self.ours.get(&frame.sender).copied().unwrap_or(false);
                    let kind = self.types.get(&kind).copied().unwrap_or(Kind::Other);
                    if !ours || kind == Kind::Other || kind == Kind::Pong {
                        continue;
                    }
                    match decode(kind, frame.body) {
                        Ok(report) => out.push(Received::Report(frame.time, report)),
                        Err(why) => out.push(Received::Warning(why)),
                    }
                }
            }
        }
        Ok(())
    }
}

/// A report's body, checked: exact sizes, finite numbers, a usable quaternion.
fn decode(kind: Kind, body: &[u8]) -> Result<Report, String> {
    let mut f = Fields::new(body);
    match kind {
        Kind::PosQuat => {
            if body.len() != 64 {
                return Err(format!("a pose of {} bytes, not 64", body.len()));
            }
            let sensor = f.i32().unwrap_or_default();
            let _pad = f.i32();
            let mut v = [0f64; 7];
            for x in &mut v {
                *x = f.f64().unwrap_or(f64::NAN);
            }
            let sensor = u32::try_from(sensor)
                .ok()
                .filter(|s| *s <= crate::MAX_SENSOR)
                .ok_or_else(|| {
                    format!(
                        "sensor {sensor}: sensors run from 0 to {}",
                        crate::MAX_SENSOR
                    )
                })?;
            if v.iter().any(|x| !x.is_finite()) {
                return Err(format!("sensor {sensor}: a pose that is not finite: {v:?}"));
            }
            let q = [v[3], v[4], v[5], v[6]];
            let norm = q.iter().map(|x| x * x).sum::<f64>().sqrt();
            // Some trackers round; a quaternion far from unit length is not a rotation.
            if !(0.5..=2.0).contains(&norm) {
                return Err(format!(
                    "sensor {sensor}: the quaternion {q:?} has length {norm:.3}, not 1"
                ));
            }
            Ok(Report::Pose {
                sensor,
                position: [v[0], v[1], v[2]],
                rotation: q.map(|x| x / norm),
            })
        }
        Kind::ButtonChange => {
            if body.len() != 8 {
                return Err(format!("a button change of {} bytes, not 8", body.len()));
            }
            let button = f.i32().unwrap_or_default();
            let state = f.i32().unwrap_or_default();
            let button = u32::try_from(button)
                .ok()
                .filter(|b| *b <= crate::MAX_BUTTON)
                .ok_or_else(|| {
                    format!(
                        "button {button}: buttons run from 0 to {}",
                        crate::MAX_BUTTON
                    )
                })?;
            Ok(Report::Button {
                button,
                pressed: state != 0,
            })
        }
        Kind::ButtonStates => {
            let n = f.i32().unwrap_or(-1);
            let n = usize::try_from(n)
                .ok()
                .filter(|n| *n <= MAX_BUTTONS && f.left() == 4 * n)
                .ok_or_else(|| format!("button states for {n} buttons in {} bytes", body.len()))?;
            Ok(Report::Buttons(
                (0..n).map(|_| f.i32().unwrap_or(0) != 0).collect(),
            ))
        }
        Kind::Analog => {
            let n = f.f64().unwrap_or(-1.0);
            let count = n as usize;
            if !(0.0..=MAX_CHANNELS as f64).contains(&n) || n.fract() != 0.0 || f.left() < 8 * count
            {
                return Err(format!("analog channels: {n} in {} bytes", body.len()));
            }
            let v: Vec<f64> = (0..count).map(|_| f.f64().unwrap_or(f64::NAN)).collect();
            if v.iter().any(|x| !x.is_finite()) {
                return Err(format!("analog channels that are not finite: {v:?}"));
            }
            Ok(Report::Analog(v))
        }
        Kind::Pong | Kind::Other => Err("not a report".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a server sends: its cookie, descriptions, then `messages` (type name, body).
    fn server(device: &str, messages: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut out = codec::cookie().to_vec();
        codec::encode_description(&mut out, SENDER_DESCRIPTION, 0, "VRPN Control");
        codec::encode_description(&mut out, SENDER_DESCRIPTION, 1, device);
        let names = [
            POS_QUAT,
            BUTTON_CHANGE,
            ANALOG_CHANNEL,
            PONG,
            "vrpn_Tracker Velocity",
        ];
        for (i, n) in names.iter().enumerate() {
            codec::encode_description(&mut out, TYPE_DESCRIPTION, i as i32 + 4, n);
        }
        for (name, body) in messages {
            let kind = names.iter().position(|n| n == name).unwrap() as i32 + 4;
            codec::encode(&mut out, Stamp { sec: 5, usec: 6 }, 1, kind, 0, body);
        }
        out
    }

    fn pose(sensor: i32, v: [f64; 7]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&sensor.to_be_bytes());
        b.extend_from_slice(&sensor.to_be_bytes());
        for x in v {
            b.extend_from_slice(&x.to_be_bytes());
        }
        b
    }

    fn run(bytes: &[u8], piece: usize) -> Result<Vec<Received>, VrpnError> {
        let now = Instant::now();
        let mut s = Session::new("Tracker0", now);
        let mut out = Vec::new();
        for chunk in bytes.chunks(piece) {
            s.receive(chunk, now, &mut out)?;
        }
        Ok(out)
    }

    #[test]
    fn poses_buttons_and_channels_come_out_whatever_the_pieces() {
        let mut analog = 2f64.to_be_bytes().to_vec();
        analog.extend_from_slice(&0.5f64.to_be_bytes());
        analog.extend_from_slice(&(-1f64).to_be_bytes());
        let mut button = 3i32.to_be_bytes().to_vec();
        button.extend_from_slice(&1i32.to_be_bytes());
        let bytes = server(
            "Tracker0",
            &[
                (POS_QUAT, pose(1, [0.1, 1.7, -0.2, 0.0, 0.0, 0.0, 2.0])),
                (BUTTON_CHANGE, button),
                (ANALOG_CHANNEL, analog),
                (PONG, Vec::new()),
                ("vrpn_Tracker Velocity", vec![0; 72]),
            ],
        );
        let want = vec![
            Received::Report(
                Stamp { sec: 5, usec: 6 },
                Report::Pose {
                    sensor: 1,
                    position: [0.1, 1.7, -0.2],
                    rotation: [0.0, 0.0, 0.0, 1.0],
                },
            ),
            Received::Report(
                Stamp { sec: 5, usec: 6 },
                Report::Button {
                    button: 3,
                    pressed: true,
                },
            ),
            Received::Report(Stamp { sec: 5, usec: 6 }, Report::Analog(vec![0.5, -1.0])),
        ];
        for piece in [1, 7, 24, bytes.len()] {
            assert_eq!(run(&bytes, piece).unwrap(), want, "pieces of {piece}");
        }
    }

    #[test]
    fn another_devices_reports_are_not_ours() {
        let bytes = server("Wand", &[(POS_QUAT, pose(0, [0., 0., 0., 0., 0., 0., 1.]))]);
        assert_eq!(run(&bytes, 64).unwrap(), []);
    }

    #[test]
    fn bad_reports_are_warnings_and_the_stream_goes_on() {
        let bytes = server(
            "Tracker0",
            &[
                (POS_QUAT, pose(0, [f64::NAN, 0., 0., 0., 0., 0., 1.])),
                (POS_QUAT, pose(0, [0., 0., 0., 0., 0., 0., 0.])),
                (POS_QUAT, vec![0; 56]),
                (BUTTON_CHANGE, vec![0; 4]),
                (ANALOG_CHANNEL, 1e9f64.to_be_bytes().to_vec()),
                (POS_QUAT, pose(2, [1., 2., 3., 0., 0., 0., 1.])),
            ],
        );
        let got = run(&bytes, 13).unwrap();
        let warnings: Vec<&str> = got
            .iter()
            .filter_map(|r| match r {
                Received::Warning(w) => Some(w.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(warnings.len(), 5, "{got:?}");
        assert!(warnings[0].contains("not finite"), "{warnings:?}");
        assert!(
            warnings[1].contains("has length 0.000, not 1"),
            "{warnings:?}"
        );
        assert!(
            warnings[2].contains("a pose of 56 bytes, not 64"),
            "{warnings:?}"
        );
        assert!(
            warnings[3].contains("a button change of 4 bytes"),
            "{warnings:?}"
        );
        assert!(
            warnings[4].contains("analog channels: 1000000000"),
            "{warnings:?}"
        );
        assert!(matches!(
            got.last(),
            Some(Received::Report(_, Report::Pose { sensor: 2, .. }))
        ));
    }

    #[test]
    fn a_wrong_cookie_or_an_impossible_length_ends_the_connection() {
        let mut bytes = server("Tracker0", &[]);
        bytes[11] = b'9';
        assert!(
            run(&bytes, 5)
                .unwrap_err()
                .to_string()
                .contains("not a VRPN 07 cookie")
        );
        let mut bytes = codec::cookie().to_vec();
        bytes.extend_from_slice(&1_000_000u32.to_be_bytes());
        bytes.extend_from_slice(&[0; 20]);
        assert!(
            run(&bytes, 5)
                .unwrap_err()
                .to_string()
                .contains("over the limit")
        );
        let mut bytes = codec::cookie().to_vec();
        codec::encode_description(&mut bytes, TYPE_DESCRIPTION, 5000, POS_QUAT);
        assert!(run(&bytes, 5).unwrap_err().to_string().contains("id 5000"));
    }

    #[test]
    fn the_client_describes_itself_and_pings_once_a_second_after_the_cookie() {
        let t0 = Instant::now();
        let mut s = Session::new("Tracker0", t0);
        let hello = s.hello();
        assert_eq!(&hello[..16], codec::MAGIC);
        let mut d = Decoder::new();
        d.push(&hello[COOKIE_LEN..]);
        let f = d.next_frame().unwrap().unwrap();
        assert_eq!((f.kind, f.sender), (SENDER_DESCRIPTION, 0));
        assert_eq!(codec::description_name(f.body).unwrap(), "Tracker0");
        let f = d.next_frame().unwrap().unwrap();
        assert_eq!(codec::description_name(f.body).unwrap(), PING);
        // No ping before the server's cookie.
        assert_eq!(s.poll_transmit(t0), None);
        s.receive(&codec::cookie(), t0, &mut Vec::new()).unwrap();
        let ping = s.poll_transmit(t0).unwrap();
        assert_eq!(ping.len(), 24);
        assert_eq!(s.poll_transmit(t0 + Duration::from_millis(999)), None);
        assert!(s.poll_transmit(t0 + PING_EVERY).is_some());
        assert_eq!(
            s.silence(t0 + Duration::from_secs(3)),
            Duration::from_secs(3)
        );
    }
}
