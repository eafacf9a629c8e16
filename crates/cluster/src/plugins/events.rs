use std::borrow::Cow;

use serde::Serialize;
use serde::de::DeserializeOwned;

use lockstep_scene::Scene;

use crate::{ClusterPlugin, FrameInfo, Hook, PluginError, PluginId};

/// Longest event name.
pub const MAX_EVENT_NAME: usize = 64;
/// Largest event payload, in bytes (postcard, or JSON text).
pub const MAX_EVENT_PAYLOAD: usize = 64 * 1024;
/// Most events one process may send per frame (a node sending more, across the frames the
/// master takes in at once, is dropped).
pub const MAX_EVENTS_SENT_PER_FRAME: usize = 8;
/// Most events delivered in one frame; more wait for the next.
pub const MAX_EVENTS_PER_FRAME: usize = 256;
/// Most events a node keeps for an application that has not looked yet (it is catching up).
const MAX_UNSEEN_EVENTS: usize = 4 * MAX_EVENTS_PER_FRAME;

/// One event as every process sees it: its name and its value's postcard bytes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    /// The declared name.
    pub name: String,
    /// The value, postcard-encoded.
    pub payload: Vec<u8>,
}

impl Event {
    /// The value, as type `T` (the type declared for its name).
    pub fn value<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        super::decode_block("events", &self.payload)
    }
}

/// A declared event type: how to check bytes and read JSON for it.
struct Declared {
    name: String,
    schema: &'static str,
    check: fn(&[u8]) -> Result<(), String>,
    from_json: fn(&str) -> Result<Vec<u8>, String>,
}

/// Cluster events (nDisplay's cluster events): named values that any process sends to the
/// master, which delivers each to every process in the same frame, all in one order. The
/// application declares each name with its type ([`Events::declare`]); a value of another
/// type, an unknown name, bad JSON or an oversized payload is refused with the reason.
///
/// The master writes the frame's events at the frame-start hook: the master's own update and
/// every node's hook of that frame see the same list ([`Events::delivered`]).
pub struct Events {
    declared: Vec<Declared>,
    /// This frame's events (on a node: all since the application last looked).
    delivered: Vec<Event>,
    /// The declared names and types, for the join check.
    schema: String,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            declared: Vec::new(),
            delivered: Vec::new(),
            schema: "events".into(),
        }
    }
}

impl Events {
    /// Declares the event `name` with values of type `T`. Every process must declare the
    /// same events in the same order (the master checks it at each node's join).
    pub fn declare<T: Serialize + DeserializeOwned + 'static>(
        &mut self,
        name: &str,
    ) -> Result<(), PluginError> {
        let bad = |reason: String| PluginError {
            plugin: "events",
            reason,
        };
        if name.is_empty() || name.len() > MAX_EVENT_NAME || name.chars().any(char::is_control) {
            return Err(bad(format!(
                "event name '{}' must be 1 to {MAX_EVENT_NAME} printable characters",
                lockstep_wire::printable(name)
            )));
        }
        if self.declared.iter().any(|d| d.name == name) {
            return Err(bad(format!("event '{name}' is declared twice")));
        }
        fn check<T: DeserializeOwned>(bytes: &[u8]) -> Result<(), String> {
            match postcard::take_from_bytes::<T>(bytes) {
                Ok((_, [])) => Ok(()),
                Ok(_) => Err("trailing bytes after the value".into()),
                Err(e) => Err(e.to_string()),
            }
        }
        fn from_json<T: Serialize + DeserializeOwned>(text: &str) -> Result<Vec<u8>, String> {
            let value: T = serde_json::from_str(text).map_err(|e| e.to_string())?;
            postcard::to_stdvec(&value).map_err(|e| e.to_string())
        }
        let schema = std::any::type_name::<T>();
        self.schema.push_str(&format!(" {name}={schema}"));
        self.declared.push(Declared {
            name: name.to_string(),
            schema,
            check: check::<T>,
            from_json: from_json::<T>,
        });
        Ok(())
    }

    /// The declared names with their types.
    pub fn names(&self) -> impl Iterator<Item = (&str, &'static str)> {
        self.declared.iter().map(|d| (d.name.as_str(), d.schema))
    }

    /// Master: an event as a sender gave it (postcard bytes, or `json` text), checked
    /// against its declaration and turned into what every process gets.
    pub fn accept(&self, name: &str, payload: &[u8], json: bool) -> Result<Event, String> {
        let name = lockstep_wire::printable(name);
        let Some(d) = self.declared.iter().find(|d| d.name == name) else {
            let known: Vec<&str> = self.declared.iter().map(|d| d.name.as_str()).collect();
            return Err(format!(
                "no event '{name}' is declared (declared: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
        };
        if payload.len() > MAX_EVENT_PAYLOAD {
            return Err(format!(
                "event '{name}': {} bytes is over the limit of {MAX_EVENT_PAYLOAD}",
                payload.len()
            ));
        }
        let payload = if json {
            let text = std::str::from_utf8(payload)
                .map_err(|_| format!("event '{name}': the JSON is not UTF-8"))?;
            (d.from_json)(text)
                .map_err(|e| format!("event '{name}': not a {} in JSON: {e}", d.schema))?
        } else {
            (d.check)(payload).map_err(|e| format!("event '{name}': not a {}: {e}", d.schema))?;
            payload.to_vec()
        };
        Ok(Event { name, payload })
    }

    /// Master, before the frame-start hook: the events this frame delivers.
    pub fn deliver(&mut self, events: Vec<Event>) {
        self.delivered = events;
    }

    /// This frame's events, in the order every process sees them (on a node: every event
    /// since the application last looked, [`Events::seen`]).
    pub fn delivered(&self) -> &[Event] {
        &self.delivered
    }

    /// Node: the application has seen the events so far (after its per-frame hook).
    pub fn seen(&mut self) {
        self.delivered.clear();
    }
}

impl ClusterPlugin for Events {
    fn id(&self) -> PluginId {
        super::EVENTS_PLUGIN
    }

    fn name(&self) -> &'static str {
        "events"
    }

    fn schema(&self) -> Cow<'static, str> {
        Cow::Owned(self.schema.clone())
    }

    fn write(
        &mut self,
        hook: Hook,
        _frame: &FrameInfo,
        _scene: &Scene,
        out: &mut Vec<u8>,
    ) -> Result<(), PluginError> {
        if hook != Hook::FrameStart {
            return Ok(());
        }
        if !self.delivered.is_empty() {
            super::encode_block("events", &self.delivered, out)?;
        }
        Ok(())
    }

    fn read(
        &mut self,
        _hook: Hook,
        _frame: &FrameInfo,
        _scene: &mut Scene,
        bytes: &[u8],
    ) -> Result<(), PluginError> {
        let events: Vec<Event> = super::decode_block("events", bytes)?;
        if events.len() > MAX_EVENTS_PER_FRAME {
            return Err(PluginError {
                plugin: "events",
                reason: format!(
                    "{} events in one frame: at most {MAX_EVENTS_PER_FRAME}",
                    events.len()
                ),
            });
        }
        // Kept until the node's application has seen them: a node catching up applies several
        // frames before it runs its hook once.
        let room = MAX_UNSEEN_EVENTS.saturating_sub(self.delivered.len());
        if events.len() > room {
            tracing::warn!(
                "{} events not seen by the application yet: {} of this frame's dropped",
                self.delivered.len(),
                events.len() - room
            );
        }
        self.delivered.extend(events.into_iter().take(room));
        Ok(())
    }

    /// This frame's events, as `write` sends them (a joiner gets the frame's list too).
    fn snapshot(
        &mut self,
        hook: Hook,
        frame: &FrameInfo,
        scene: &Scene,
        out: &mut Vec<u8>,
    ) -> Result<(), PluginError> {
        self.write(hook, frame, scene, out)
    }
}

impl crate::ClusterManager {
    /// Declares the cluster event `name` with values of type `T` (see [`Events::declare`]).
    pub fn declare_event<T: Serialize + DeserializeOwned + 'static>(
        &mut self,
        name: &str,
    ) -> Result<(), PluginError> {
        match self.get_mut::<Events>() {
            Some(events) => events.declare::<T>(name),
            None => Err(PluginError {
                plugin: "events",
                reason: format!("cannot declare event '{name}': no events plugin is registered"),
            }),
        }
    }

    /// This frame's cluster events (none without an events plugin).
    pub fn events(&self) -> &[Event] {
        self.get::<Events>().map_or(&[], |e| e.delivered())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events() -> Events {
        let mut e = Events::default();
        e.declare::<String>("say").unwrap();
        e.declare::<(u32, f32)>("poke").unwrap();
        e
    }

    #[test]
    fn declared_events_are_checked_and_json_is_converted() {
        let e = events();
        let say = e.accept("say", br#""hello""#, true).unwrap();
        assert_eq!(say.value::<String>().unwrap(), "hello");
        let bytes = postcard::to_stdvec(&(7u32, 0.5f32)).unwrap();
        assert_eq!(
            e.accept("poke", &bytes, false)
                .unwrap()
                .value::<(u32, f32)>(),
            Ok((7, 0.5))
        );
        assert_eq!(
            e.accept("shout", b"1", true).unwrap_err(),
            "no event 'shout' is declared (declared: say, poke)"
        );
        let err = e.accept("say", b"{not json", true).unwrap_err();
        assert!(
            err.starts_with("event 'say': not a alloc::string::String in JSON:"),
            "{err}"
        );
        let err = e.accept("poke", &[1], false).unwrap_err();
        assert!(err.starts_with("event 'poke': not a (u32, f32):"), "{err}");
        let big = vec![b'1'; MAX_EVENT_PAYLOAD + 1];
        assert_eq!(
            e.accept("say", &big, true).unwrap_err(),
            "event 'say': 65537 bytes is over the limit of 65536"
        );
    }

    #[test]
    fn names_are_checked_and_the_schema_lists_every_declaration() {
        let mut e = events();
        assert!(e.declare::<u8>("say").is_err());
        assert!(e.declare::<u8>("").is_err());
        assert!(e.declare::<u8>("a\nb").is_err());
        assert_eq!(
            e.schema(),
            "events say=alloc::string::String poke=(u32, f32)"
        );
    }

    #[test]
    fn nodes_keep_events_until_the_application_has_seen_them() {
        let (mut master, mut node) = (events(), events());
        let (info, mut scene) = (FrameInfo::default(), Scene::new());
        let mut frame = |master: &mut Events, node: &mut Events| {
            let mut out = Vec::new();
            master
                .write(Hook::FrameStart, &info, &scene, &mut out)
                .unwrap();
            if !out.is_empty() {
                node.read(Hook::FrameStart, &info, &mut scene, &out)
                    .unwrap();
            }
            out.len()
        };
        master.deliver(vec![master.accept("say", br#""hi""#, true).unwrap()]);
        assert!(frame(&mut master, &mut node) > 0);
        assert_eq!(node.delivered(), master.delivered());
        // A frame without events sends nothing; a node that skipped its hook (catching up)
        // still has them, and then the next frame's too.
        master.deliver(Vec::new());
        assert_eq!(frame(&mut master, &mut node), 0);
        master.deliver(vec![master.accept("say", br#""again""#, true).unwrap()]);
        frame(&mut master, &mut node);
        let texts: Vec<String> = node
            .delivered()
            .iter()
            .map(|e| e.value().unwrap())
            .collect();
        assert_eq!(texts, ["hi", "again"]);
        node.seen();
        assert!(node.delivered().is_empty());
    }
}
