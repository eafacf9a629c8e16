/*!
The handshake, as two state machines fed with messages and answering with messages.

```text
client                                  server
Hello { magic, version, cluster,  ──►   checks magic and version
        node, nonce_c }
                                  ◄──   Challenge { nonce_s, proof_s }
verifies proof_s                        proof_s = HMAC(key, "lockstep server" ‖ nonce_c ‖ nonce_s ‖ cluster ‖ node)
Proof { proof_c }                 ──►   verifies proof_c, then checks the cluster name
proof_c = HMAC(key, "lockstep client" ‖ nonce_s ‖ nonce_c ‖ cluster ‖ node)
                                  ◄──   Welcome { max_frame }   or   Refused { reason }
                                        (sealed: the first record of the session)
```

The cluster name in both proofs is the one the client claimed. The server checks it against
its own only after the client has proven the key, so a peer without the key gets a
`Challenge` whatever name it guesses, and learns nothing of the cluster's name. A key holder
of another cluster is told both names, in the sealed `Refused`.

Both sides prove the key, so a node never follows a fake master either. Fresh nonces on both
sides make every proof single-use: a recorded session cannot be replayed. Comparisons of MACs
are constant-time (`Mac::verify_slice`).

Proving the key once is not enough: a relay that passed the handshake through could then
speak for either side. So both sides derive session keys from the key and both nonces
([`crate::session`]), and everything from `Welcome` on travels in sealed records.
*/
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::session::{SessionKeys, Side, derive};
use crate::{ClusterKey, MAGIC, Message, PROTOCOL_VERSION, WireError, printable};

type HmacSha256 = Hmac<Sha256>;

fn mac(
    key: &ClusterKey,
    role: &[u8],
    first: &[u8; 32],
    second: &[u8; 32],
    cluster: &str,
    node: &str,
) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(key.bytes()).expect("HMAC takes keys of any length");
    m.update(role);
    m.update(first);
    m.update(second);
    // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
    for s in [cluster, node] {
        m.update(&(s.len() as u32).to_le_bytes());
        m.update(s.as_bytes());
    }
    m
}

fn tag(m: HmacSha256) -> [u8; 32] {
    m.finalize().into_bytes().into()
}

/// The calling side (a render node dialling the master).
#[derive(Debug)]
pub struct ClientHandshake {
    key: ClusterKey,
    cluster: String,
    node: String,
    nonce: [u8; 32],
    state: ClientState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    AwaitChallenge,
    AwaitWelcome,
    Done,
}

/// What the client does after a message.
#[derive(Debug)]
pub enum ClientStep<'a> {
    /// Send this proof (bare, as the handshake so far), then read and write only sealed
    /// records with these keys: the next message is the sealed `Welcome`.
    Prove {
        /// The `Proof` message.
        proof: Message<'a>,
        /// The session's keys (boxed: they are large, and made once per connection).
        keys: Box<SessionKeys>,
    },
    /// Authenticated; frames up to this many bytes may follow.
    Established {
        /// The session's frame limit.
        max_frame: usize,
    },
}

impl ClientHandshake {
    /// Starts a handshake as node `node` of cluster `cluster`, with a fresh `nonce`.
    pub fn new(key: ClusterKey, cluster: &str, node: &str, nonce: [u8; 32]) -> Self {
        ClientHandshake {
            key,
            cluster: cluster.to_string(),
            node: node.to_string(),
            nonce,
            state: ClientState::AwaitChallenge,
        }
    }

    /// The first message to send.
    pub fn hello(&self) -> Message<'_> {
        Message::Hello {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            cluster: &self.cluster,
            node: &self.node,
            nonce: self.nonce,
        }
    }

    /// Feeds the server's next message.
    pub fn handle(&mut self, msg: &Message<'_>) -> Result<ClientStep<'static>, WireError> {
        match (self.state, msg) {
            (_, Message::Refused { reason }) => Err(WireError::Refused(printable(reason))),
            (ClientState::AwaitChallenge, Message::Busy { reason }) => {
                Err(WireError::Busy(printable(reason)))
            }
            (ClientState::AwaitChallenge, Message::Challenge { nonce, proof }) => {
                mac(
                    &self.key,
                    b"lockstep server",
                    &self.nonce,
                    nonce,
                    &self.cluster,
                    &self.node,
                )
                .verify_slice(proof)
                .map_err(|_| WireError::AuthFailed("the server does not know the cluster key"))?;
                self.state = ClientState::AwaitWelcome;
                let proof = tag(mac(
                    &self.key,
                    b"lockstep client",
                    nonce,
                    &self.nonce,
                    &self.cluster,
                    &self.node,
                ));
                let keys = derive(
                    &self.key,
                    &self.nonce,
                    nonce,
                    &self.cluster,
                    &self.node,
                    Side::Client,
                );
                Ok(ClientStep::Prove {
                    proof: Message::Proof { proof },
                    keys: Box::new(keys),
                })
            }
            (ClientState::AwaitWelcome, Message::Welcome { max_frame }) => {
                self.state = ClientState::Done;
                Ok(ClientStep::Established {
                    max_frame: *max_frame as usize,
                })
            }
            (state, other) => Err(WireError::Unexpected {
                expected: match state {
                    ClientState::AwaitChallenge => "waiting for Challenge",
                    ClientState::AwaitWelcome => "waiting for Welcome",
                    ClientState::Done => "already established",
                },
                got: other.kind(),
            }),
        }
    }
}

/// The answering side (the master, or a launcher daemon).
#[derive(Debug)]
pub struct ServerHandshake {
    key: ClusterKey,
    cluster: String,
    nonce: [u8; 32],
    max_frame: u32,
    client_nonce: [u8; 32],
    node: Option<String>,
    /// The cluster the client claimed, which its proof covers.
    claimed: String,
    state: ServerState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    AwaitHello,
    AwaitProof,
    Done,
}

/// What the server does after a message.
#[derive(Debug)]
pub enum ServerStep {
    /// Send this challenge and wait for the proof.
    Challenge(Message<'static>),
    /// From now on read and write only sealed records with `keys`, and send `Welcome {
    /// max_frame }` (or `Refused`) as the first: the peer is node `node`.
    Accept {
        /// The authenticated peer's node name.
        node: String,
        /// The frame limit to announce.
        max_frame: u32,
        /// The session's keys (boxed: they are large, and made once per connection).
        keys: Box<SessionKeys>,
    },
    /// The client proved the key but is of another cluster: read and write sealed records
    /// with `keys`, send `Refused` with the error's text as the first, and close.
    Refuse {
        /// Why (names both clusters: the peer holds the key).
        error: WireError,
        /// The session's keys, to seal the refusal with.
        keys: Box<SessionKeys>,
    },
}

impl ServerHandshake {
    /// Waits for a client of cluster `cluster`; `nonce` must be fresh for this connection.
    pub fn new(key: ClusterKey, cluster: &str, nonce: [u8; 32], max_frame: u32) -> Self {
        ServerHandshake {
            key,
            cluster: cluster.to_string(),
            nonce,
            max_frame,
            client_nonce: [0; 32],
            node: None,
            claimed: String::new(),
            state: ServerState::AwaitHello,
        }
    }

    /// The node name the client claimed (known after `Hello`, proven after `Proof`).
    pub fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }

    /// Feeds the client's next message. On an error, send `Refused` with its text and close.
    pub fn handle(&mut self, msg: &Message<'_>) -> Result<ServerStep, WireError> {
        match (self.state, msg) {
            (_, Message::Refused { reason }) => Err(WireError::Refused(printable(reason))),
            (
                ServerState::AwaitHello,
                Message::Hello {
                    magic,
                    version,
                    cluster,
                    node,
                    nonce,
                },
            ) => {
                if *magic != MAGIC {
                    return Err(WireError::BadMagic(*magic));
                }
                if *version != PROTOCOL_VERSION {
                    return Err(WireError::VersionMismatch {
                        ours: PROTOCOL_VERSION,
                        theirs: *version,
                    });
                }
                // The name is checked only once the client has proven the key.
                self.claimed = cluster.to_string();
                self.client_nonce = *nonce;
                self.node = Some(node.to_string());
                self.state = ServerState::AwaitProof;
                let proof = tag(mac(
                    &self.key,
                    b"lockstep server",
                    nonce,
                    &self.nonce,
                    &self.claimed,
                    node,
                ));
                Ok(ServerStep::Challenge(Message::Challenge {
                    nonce: self.nonce,
                    proof,
                }))
            }
            (ServerState::AwaitProof, Message::Proof { proof }) => {
                let node = self.node.clone().unwrap_or_default();
                mac(
                    &self.key,
                    b"lockstep client",
                    &self.nonce,
                    &self.client_nonce,
                    &self.claimed,
                    &node,
                )
                .verify_slice(proof)
                .map_err(|_| WireError::AuthFailed("wrong cluster key"))?;
                self.state = ServerState::Done;
                let keys = Box::new(derive(
                    &self.key,
                    &self.client_nonce,
                    &self.nonce,
                    &self.claimed,
                    &node,
                    Side::Server,
                ));
                if self.claimed != self.cluster {
                    return Ok(ServerStep::Refuse {
                        error: WireError::ClusterMismatch {
                            theirs: printable(&self.claimed),
                            ours: printable(&self.cluster),
                        },
                        keys,
                    });
                }
                Ok(ServerStep::Accept {
                    node,
                    max_frame: self.max_frame,
                    keys,
                })
            }
            (state, other) => Err(WireError::Unexpected {
                expected: match state {
                    ServerState::AwaitHello => "waiting for Hello",
                    ServerState::AwaitProof => "waiting for Proof",
                    ServerState::Done => "already established",
                },
                got: other.kind(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> ClusterKey {
        ClusterKey::new(vec![b; 32]).unwrap()
    }

    /// A message sealed as one record.
    fn sealed(sealer: &mut crate::Sealer, m: &Message<'_>) -> Vec<u8> {
        let frame = crate::encode(m).unwrap();
        let mut out = sealer.seal(&[&frame]).unwrap().to_vec();
        out.extend_from_slice(&frame);
        out
    }

    /// Runs a whole handshake, passing messages through the codec as a network would, then
    /// one sealed message each way.
    fn pair(
        client_key: ClusterKey,
        server_key: ClusterKey,
        cluster_c: &str,
        cluster_s: &str,
    ) -> (Result<usize, WireError>, Result<String, WireError>) {
        let mut c = ClientHandshake::new(client_key, cluster_c, "front", [1; 32]);
        let mut s = ServerHandshake::new(server_key, cluster_s, [2; 32], 4096);
        let wire = |m: &Message<'_>| crate::encode(m).unwrap();
        let mut up = crate::Decoder::new(crate::HANDSHAKE_MAX_FRAME);
        let mut down = crate::Decoder::new(crate::HANDSHAKE_MAX_FRAME);
        up.push(&wire(&c.hello()));
        let hello = up.next_message().unwrap().unwrap();
        let challenge = match s.handle(&hello) {
            Ok(ServerStep::Challenge(m)) => m,
            Ok(other) => panic!("{other:?}"),
            Err(e) => return (Err(WireError::Refused(e.to_string())), Err(e)),
        };
        down.push(&wire(&challenge));
        let challenge = down.next_message().unwrap().unwrap();
        let (proof, mut client_keys) = match c.handle(&challenge) {
            Ok(ClientStep::Prove { proof, keys }) => (proof, keys),
            Ok(other) => panic!("{other:?}"),
            Err(e) => {
                // The client closes with its reason; the server learns it from Refused.
                let text = e.to_string();
                let server = s
                    .handle(&Message::Refused { reason: &text })
                    .map(|_| String::new());
                return (Err(e), server);
            }
        };
        up.push(&wire(&proof));
        let proof = up.next_message().unwrap().unwrap();
        match s.handle(&proof) {
            Ok(ServerStep::Accept {
                node,
                max_frame,
                mut keys,
            }) => {
                down.authenticate(client_keys.opener);
                down.push(&sealed(&mut keys.sealer, &Message::Welcome { max_frame }));
                let welcome = down.next_message().unwrap().unwrap();
                let established = match c.handle(&welcome) {
                    Ok(ClientStep::Established { max_frame }) => max_frame,
                    other => panic!("{other:?}"),
                };
                up.authenticate(keys.opener);
                let beat = Message::Heartbeat { seq: 1 };
                up.push(&sealed(&mut client_keys.sealer, &beat));
                assert_eq!(up.next_message().unwrap(), Some(beat));
                (Ok(established), Ok(node))
            }
            Ok(ServerStep::Refuse { error, mut keys }) => {
                // Sealed: the client can tell it from a relay's words.
                down.authenticate(client_keys.opener);
                let text = error.to_string();
                down.push(&sealed(
                    &mut keys.sealer,
                    &Message::Refused { reason: &text },
                ));
                let refused = down.next_message().unwrap().unwrap();
                (c.handle(&refused).map(|_| 0), Err(error))
            }
            Ok(other) => panic!("{other:?}"),
            Err(e) => {
                let text = e.to_string();
                (
                    c.handle(&Message::Refused { reason: &text }).map(|_| 0),
                    Err(e),
                )
            }
        }
    }

    #[test]
    fn matching_keys_establish_a_session() {
        let (c, s) = pair(key(9), key(9), "cave", "cave");
        assert_eq!((c, s), (Ok(4096), Ok("front".to_string())));
    }

    #[test]
    fn mismatched_keys_end_the_handshake_with_a_reason_on_both_sides() {
        let (c, s) = pair(key(1), key(9), "cave", "cave");
        // An honest client notices first: the server could not prove the key.
        assert_eq!(
            c,
            Err(WireError::AuthFailed(
                "the server does not know the cluster key"
            ))
        );
        assert_eq!(
            s,
            Err(WireError::Refused(
                "authentication failed: the server does not know the cluster key".into()
            ))
        );
    }

    #[test]
    fn a_client_forging_its_proof_is_refused() {
        let c = ClientHandshake::new(key(1), "cave", "front", [1; 32]);
        let mut s = ServerHandshake::new(key(9), "cave", [2; 32], 4096);
        let ServerStep::Challenge(Message::Challenge { nonce, .. }) = s.handle(&c.hello()).unwrap()
        else {
            panic!()
        };
        // It skips checking the server and answers with a proof made with its own (wrong) key.
        let forged = tag(mac(
            &key(1),
            b"lockstep client",
            &nonce,
            &[1; 32],
            "cave",
            "front",
        ));
        assert_eq!(
            s.handle(&Message::Proof { proof: forged }).unwrap_err(),
            WireError::AuthFailed("wrong cluster key")
        );
    }

    #[test]
    fn the_wrong_cluster_or_version_or_magic_is_refused() {
        // A key holder of another cluster is told both names, sealed.
        let (c, s) = pair(key(9), key(9), "wall", "cave");
        let text = "cluster 'wall' is not the cluster served here ('cave')";
        assert_eq!(s.unwrap_err().to_string(), text);
        assert_eq!(c, Err(WireError::Refused(text.into())));
        let mut s = ServerHandshake::new(key(9), "cave", [2; 32], 4096);
        let hello = Message::Hello {
            magic: MAGIC,
            version: 99,
            cluster: "cave",
            node: "x",
            nonce: [0; 32],
        };
        assert_eq!(
            s.handle(&hello).unwrap_err(),
            WireError::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs: 99
            }
        );
        let mut s = ServerHandshake::new(key(9), "cave", [2; 32], 4096);
        let hello = Message::Hello {
            magic: *b"HTTP",
            version: 1,
            cluster: "cave",
            node: "x",
            nonce: [0; 32],
        };
        assert_eq!(
            s.handle(&hello).unwrap_err().to_string(),
            "not a lockstep peer (bad magic [48, 54, 54, 50])"
        );
    }

    #[test]
    fn a_peer_without_the_key_learns_nothing_of_the_cluster_name() {
        // Guessing right or wrong, it gets a Challenge, then the same refusal for its proof.
        let answers: Vec<_> = ["cave", "wall"]
            .into_iter()
            .map(|guess| {
                let c = ClientHandshake::new(key(1), guess, "front", [1; 32]);
                let mut s = ServerHandshake::new(key(9), "cave", [2; 32], 4096);
                let challenge = s.handle(&c.hello()).unwrap();
                assert!(
                    matches!(challenge, ServerStep::Challenge(_)),
                    "{challenge:?}"
                );
                s.handle(&Message::Proof { proof: [5; 32] }).unwrap_err()
            })
            .collect();
        let refused = WireError::AuthFailed("wrong cluster key");
        assert_eq!(answers, [refused.clone(), refused]);
    }

    #[test]
    fn messages_out_of_order_are_refused() {
        let mut s = ServerHandshake::new(key(9), "cave", [2; 32], 4096);
        assert_eq!(
            s.handle(&Message::Proof { proof: [0; 32] }).unwrap_err(),
            WireError::Unexpected {
                expected: "waiting for Hello",
                got: "Proof"
            }
        );
        let mut s = ServerHandshake::new(key(9), "cave", [2; 32], 4096);
        assert!(
            s.handle(&Message::FrameBegin {
                frame: 0,
                time: 0.0,
                dt: 0.0
            })
            .is_err()
        );
    }

    #[test]
    fn a_recorded_proof_does_not_open_another_session() {
        // Session 1, observed by an attacker.
        let c = ClientHandshake::new(key(9), "cave", "front", [1; 32]);
        let mut s1 = ServerHandshake::new(key(9), "cave", [2; 32], 4096);
        let ServerStep::Challenge(Message::Challenge { nonce, .. }) =
            s1.handle(&c.hello()).unwrap()
        else {
            panic!()
        };
        let recorded = tag(mac(
            &key(9),
            b"lockstep client",
            &nonce,
            &[1; 32],
            "cave",
            "front",
        ));
        // Session 2 has a fresh server nonce: the attacker replays Hello and the old proof.
        let mut s2 = ServerHandshake::new(key(9), "cave", [3; 32], 4096);
        s2.handle(&c.hello()).unwrap();
        assert_eq!(
            s2.handle(&Message::Proof { proof: recorded }).unwrap_err(),
            WireError::AuthFailed("wrong cluster key")
        );
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(
            ClusterKey::new(b"short".to_vec())
                .unwrap_err()
                .to_string()
                .contains("5 bytes is too short")
        );
        let hex = ClusterKey::generate_hex().unwrap();
        assert_eq!(hex.len(), 64);
        assert!(ClusterKey::new(hex.into_bytes()).is_ok());
    }
}
