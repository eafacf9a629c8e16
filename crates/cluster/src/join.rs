/*!
What a node must share with the master to join: the same application, the same plugins (ids,
names and what their blocks hold), the same files loaded by its setup, and so the same scene
after setup — the base every frame's changes apply to. The node sends its [`AppIdentity`] in
`Join` during the handshake; the master compares it with its own ([`AppIdentity::check`]) and
refuses a node that differs, naming every difference, before it takes part in any frame.
*/
use lockstep_wire::{AssetSig, Message, PluginSig};

use crate::{ClusterManager, PluginId};

/// One plugin as registered: id, name, and what its blocks hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginEntry {
    /// Wire id.
    pub id: PluginId,
    /// Name.
    pub name: String,
    /// [`crate::ClusterPlugin::schema`].
    pub schema: String,
}

/// The application a process runs, as its setup left it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppIdentity {
    /// The application's name.
    pub app: String,
    /// Every plugin, in registration order.
    pub plugins: Vec<PluginEntry>,
    /// Every file the setup loaded: path and SHA-256.
    pub assets: Vec<(String, [u8; 32])>,
    /// Digest of the scene after setup ([`crate::scene_hash`]).
    pub baseline: u64,
}

/// Most differences a refusal lists (then how many more there are).
pub const MAX_DIFFERENCES_TOLD: usize = 6;

/// Most plugins and most assets a `Join` may list.
pub const MAX_JOIN_ENTRIES: usize = 1024;

impl PluginEntry {
    /// Every plugin of `manager`, in registration order.
    pub fn all(manager: &ClusterManager) -> Vec<PluginEntry> {
        manager
            .signatures()
            .map(|(id, name, schema)| PluginEntry {
                id,
                name: name.to_string(),
                schema: schema.into_owned(),
            })
            .collect()
    }
}

impl AppIdentity {
    /// The identity of application `app` with `manager`'s plugins; no assets, empty baseline
    /// until set.
    pub fn new(app: &str, manager: &ClusterManager) -> Self {
        AppIdentity {
            app: app.to_string(),
            plugins: PluginEntry::all(manager),
            assets: Vec::new(),
            baseline: 0,
        }
    }

    /// The `Join` message a node sends.
    pub fn to_message(&self) -> Message<'_> {
        Message::Join {
            app: &self.app,
            plugins: self
                .plugins
                .iter()
                .map(|p| PluginSig {
                    id: p.id,
                    name: &p.name,
                    schema: &p.schema,
                })
                .collect(),
            assets: self
                .assets
                .iter()
                .map(|(path, digest)| AssetSig {
                    path,
                    digest: *digest,
                })
                .collect(),
            baseline: self.baseline,
        }
    }

    /// Master: whether the node whose `Join` is `msg` runs this application as this process
    /// does; `Err` names every difference (peer strings made printable).
    pub fn check(&self, msg: &Message<'_>) -> Result<(), String> {
        let Message::Join {
            app,
            plugins,
            assets,
            baseline,
        } = msg
        else {
            return Err(format!("expected Join, got {}", msg.kind()));
        };
        if plugins.len() > MAX_JOIN_ENTRIES || assets.len() > MAX_JOIN_ENTRIES {
            return Err(format!(
                "a Join of {} plugins and {} files: at most {MAX_JOIN_ENTRIES} each",
                plugins.len(),
                assets.len()
            ));
        }
        let p = lockstep_wire::printable;
        let mut diff = Vec::new();
        if *app != self.app {
            diff.push(format!(
                "the node runs application '{}', the master '{}'",
                p(app),
                self.app
            ));
        }
        diff.extend(plugin_differences(&self.plugins, plugins));
        for (path, digest) in &self.assets {
            match assets.iter().find(|a| a.path == path) {
                None => diff.push(format!("the node did not load {path}")),
                Some(a) if a.digest != *digest => diff.push(format!(
                    "{path} differs: the master's has SHA-256 {}, the node's {}",
                    hex(digest),
                    hex(&a.digest)
                )),
                Some(_) => {}
            }
        }
        for a in assets {
            if !self.assets.iter().any(|(path, _)| path == a.path) {
                diff.push(format!(
                    "the node loaded {}, which the master did not",
                    p(a.path)
                ));
            }
        }
        // Only worth saying when nothing above explains it.
        if diff.is_empty() && *baseline != self.baseline {
            diff.push(format!(
                "the scene after setup differs (the master's digest {:016x}, the node's {baseline:016x}): setup must build the same scene on every process",
                self.baseline
            ));
        }
        if diff.len() > MAX_DIFFERENCES_TOLD {
            let more = diff.len() - MAX_DIFFERENCES_TOLD;
            diff.truncate(MAX_DIFFERENCES_TOLD);
            diff.push(format!("and {more} more difference(s)"));
        }
        if diff.is_empty() {
            Ok(())
        } else {
            Err(diff.join("; "))
        }
    }
}

/// Each plugin one side has and the other lacks or has differently.
fn plugin_differences(master: &[PluginEntry], node: &[PluginSig<'_>]) -> Vec<String> {
    let p = lockstep_wire::printable;
    let mut diff = Vec::new();
    for m in master {
        match node.iter().find(|n| n.id == m.id) {
            None => diff.push(format!(
                "the node lacks plugin '{}' (id {}, {})",
                m.name, m.id, m.schema
            )),
            Some(n) if n.name != m.name || n.schema != m.schema => diff.push(format!(
                "plugin id {} is '{}' ({}) on the master but '{}' ({}) on the node",
                m.id,
                m.name,
                m.schema,
                p(n.name),
                p(n.schema)
            )),
            Some(_) => {}
        }
    }
    for n in node {
        if !master.iter().any(|m| m.id == n.id) {
            diff.push(format!(
                "the node has plugin '{}' (id {}, {}), which the master lacks",
                p(n.name),
                n.id,
                p(n.schema)
            ));
        }
    }
    let same_set = diff.is_empty();
    let order = |ids: &mut dyn Iterator<Item = PluginId>| ids.collect::<Vec<_>>();
    if same_set && order(&mut master.iter().map(|m| m.id)) != order(&mut node.iter().map(|n| n.id))
    {
        diff.push("the plugins are registered in another order".into());
    }
    diff
}

fn hex(d: &[u8; 32]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::{SceneReplication, Shared};

    fn identity(extra: impl FnOnce(&mut ClusterManager)) -> AppIdentity {
        let mut m = ClusterManager::new();
        m.register(SceneReplication::default()).unwrap();
        extra(&mut m);
        let mut id = AppIdentity::new("cave-app", &m);
        id.assets = vec![("models/room.glb".into(), [1; 32])];
        id.baseline = 7;
        id
    }

    #[test]
    fn the_same_application_joins() {
        let a = identity(|m| m.register(Shared::new(100, "score", 0u64)).unwrap());
        assert_eq!(a.check(&a.to_message()), Ok(()));
    }

    #[test]
    fn every_difference_is_named() {
        let master = identity(|m| {
            m.register(Shared::new(100, "score", 0u64)).unwrap();
            m.register(Shared::new(101, "speed", 0.0f32)).unwrap();
        });
        let mut node = identity(|m| {
            m.register(Shared::new(100, "score", 0u32)).unwrap();
            m.register(Shared::new(102, "extra", ())).unwrap();
        });
        node.app = "other".into();
        node.assets = vec![
            ("models/room.glb".into(), [2; 32]),
            ("logo.png".into(), [3; 32]),
        ];
        let err = master.check(&node.to_message()).unwrap_err();
        let parts: Vec<&str> = err.split("; ").collect();
        assert_eq!(
            parts,
            [
                "the node runs application 'other', the master 'cave-app'",
                "plugin id 100 is 'score' (lockstep_cluster::plugins::shared::Shared<u64>) on the master but 'score' (lockstep_cluster::plugins::shared::Shared<u32>) on the node",
                "the node lacks plugin 'speed' (id 101, lockstep_cluster::plugins::shared::Shared<f32>)",
                "the node has plugin 'extra' (id 102, lockstep_cluster::plugins::shared::Shared<()>), which the master lacks",
                &format!(
                    "models/room.glb differs: the master's has SHA-256 {}, the node's {}",
                    "01".repeat(32),
                    "02".repeat(32)
                ),
                "the node loaded logo.png, which the master did not",
            ]
        );
    }

    #[test]
    fn a_long_list_of_differences_is_cut_short() {
        let master = identity(|_| {});
        let node = identity(|m| {
            for id in 100..120 {
                m.register(Shared::new(
                    id,
                    [
                        "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o",
                        "p", "q", "r", "s", "t",
                    ][(id - 100) as usize],
                    0u8,
                ))
                .unwrap();
            }
        });
        let err = master.check(&node.to_message()).unwrap_err();
        assert_eq!(err.split("; ").count(), MAX_DIFFERENCES_TOLD + 1);
        assert!(err.ends_with("; and 14 more difference(s)"), "{err}");
    }

    #[test]
    fn another_order_or_another_scene_is_named_too() {
        let master = identity(|m| {
            m.register(Shared::new(100, "a", 0u8)).unwrap();
            m.register(Shared::new(101, "b", 0u8)).unwrap();
        });
        let node = identity(|m| {
            m.register(Shared::new(101, "b", 0u8)).unwrap();
            m.register(Shared::new(100, "a", 0u8)).unwrap();
        });
        assert_eq!(
            master.check(&node.to_message()),
            Err("the plugins are registered in another order".into())
        );
        let mut same = master.clone();
        same.baseline = 8;
        assert_eq!(
            master.check(&same.to_message()),
            Err("the scene after setup differs (the master's digest 0000000000000007, the node's 0000000000000008): setup must build the same scene on every process".into())
        );
        assert!(master.check(&Message::StatusRequest).is_err());
    }
}
