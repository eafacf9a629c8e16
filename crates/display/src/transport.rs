/*!
How frame data reaches the nodes: the cluster file's `transport` and `[multicast]`. TCP (the
default) writes each frame to every node's connection; multicast sends it once, as datagrams
to a group every node joins, while the handshake, control and each node's answers stay on
its connection.
*/
use std::net::Ipv4Addr;

use crate::config::Validator;
use crate::raw::{RawMulticast, S};

/// How frame data reaches the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// Each frame written to every node's TCP connection.
    #[default]
    Tcp,
    /// Each frame sent once to a UDP multicast group.
    Multicast(MulticastConfig),
}

/// Where multicast frame data goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MulticastConfig {
    /// The group (an IPv4 address in 224.0.0.0/4).
    pub group: Ipv4Addr,
    /// The UDP port every node listens on.
    pub port: u16,
    /// How many routers the datagrams may cross (1: the master's own subnet).
    pub ttl: u32,
    /// The master's interface to send from (its address); none: the one the master listens
    /// on when that is an address, else the kernel's route to the group.
    pub interface: Option<Ipv4Addr>,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Tcp => write!(f, "tcp (each node's connection)"),
            Transport::Multicast(m) => {
                write!(f, "multicast to {}:{} (ttl {}", m.group, m.port, m.ttl)?;
                if let Some(i) = m.interface {
                    write!(f, ", from {i}")?;
                }
                write!(f, ")")
            }
        }
    }
}

/// The group used when `[multicast]` names none (administratively scoped, like all of
/// 239.0.0.0/8: it never leaves the site).
pub const DEFAULT_GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 76, 83);

/// The port used when `[multicast]` names none.
pub const DEFAULT_MULTICAST_PORT: u16 = 7471;

impl Validator<'_> {
    /// `transport` and `[multicast]`, each value checked at its line.
    pub(crate) fn transport(
        &mut self,
        kind: Option<&S<String>>,
        raw: Option<&S<RawMulticast>>,
    ) -> Transport {
        let multicast = match kind.map(|k| k.get_ref().as_str()) {
            None | Some("tcp") => false,
            Some("multicast") => true,
            Some(other) => {
                let at = kind.expect("matched a value");
                self.err(
                    at,
                    format!("unknown transport '{other}': expected \"tcp\" or \"multicast\""),
                );
                false
            }
        };
        let Some(table) = raw else {
            return if multicast {
                Transport::Multicast(MulticastConfig {
                    group: DEFAULT_GROUP,
                    port: DEFAULT_MULTICAST_PORT,
                    ttl: 1,
                    interface: None,
                })
            } else {
                Transport::Tcp
            };
        };
        let raw = table.get_ref();
        if !multicast {
            self.err(
                table,
                "a [multicast] table, but transport is \"tcp\": add transport = \"multicast\" at the top of the file, or remove the table",
            );
        }
        let group = match &raw.group {
            None => DEFAULT_GROUP,
            Some(g) => match g.get_ref().parse::<Ipv4Addr>() {
                Ok(a) if a.is_multicast() => a,
                Ok(a) => {
                    self.err(
                        g,
                        format!("multicast.group {a} is not a multicast address: choose one in 224.0.0.0/4 (239.x.x.x stays in the site)"),
                    );
                    DEFAULT_GROUP
                }
                Err(_) => {
                    self.err(
                        g,
                        format!("multicast.group '{}' is not an IPv4 address", g.get_ref()),
                    );
                    DEFAULT_GROUP
                }
            },
        };
        let port = raw.port.as_ref().map_or(DEFAULT_MULTICAST_PORT, |p| {
            if *p.get_ref() == 0 {
                self.err(p, "multicast.port is 0: choose 1 to 65535");
            }
            *p.get_ref()
        });
        let ttl = raw.ttl.as_ref().map_or(1, |t| {
            if !(1..=255).contains(t.get_ref()) {
                self.err(
                    t,
                    format!("multicast.ttl is {}: choose 1 to 255", t.get_ref()),
                );
            }
            *t.get_ref()
        });
        let interface =
            raw.interface
                .as_ref()
                .and_then(|i| match i.get_ref().parse::<Ipv4Addr>() {
                    Ok(a) if !a.is_multicast() && !a.is_unspecified() => Some(a),
                    _ => {
                        self.err(
                            i,
                            format!(
                                "multicast.interface '{}' is not the IPv4 address of an interface",
                                i.get_ref()
                            ),
                        );
                        None
                    }
                });
        if multicast {
            Transport::Multicast(MulticastConfig {
                group,
                port,
                ttl,
                interface,
            })
        } else {
            Transport::Tcp
        }
    }
}
