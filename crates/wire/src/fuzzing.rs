/*!
The entry point shared by the fuzz target (`crates/wire/fuzz`) and the corpus test: whatever
the bytes, decoding them and feeding the messages to both handshake sides must end in values
or errors, never a panic, a hang or an allocation beyond the limits.
*/
use crate::handshake::ServerStep;
use crate::{ClientHandshake, ClusterKey, Decoder, HANDSHAKE_MAX_FRAME, ServerHandshake};

/// Feeds `data` to a decoder (in pieces whose sizes come from the data itself) and every
/// decoded message to a server and a client handshake. Returns how many messages decoded.
pub fn decode_stream(data: &[u8]) -> usize {
    let key = ClusterKey::new(vec![0x5a; 32]).expect("a 32-byte key is long enough");
    let mut server = ServerHandshake::new(key.clone(), "fuzz", [1; 32], 1 << 16);
    let mut client = ClientHandshake::new(key, "fuzz", "node", [2; 32]);
    let mut decoder = Decoder::new(HANDSHAKE_MAX_FRAME);
    let mut decoded = 0;
    let chunk = data.first().map_or(1, |b| (*b as usize % 61) + 1);
    for piece in data.chunks(chunk) {
        decoder.push(piece);
        loop {
            match decoder.next_message() {
                Ok(Some(msg)) => {
                    decoded += 1;
                    let accepted = match server.handle(&msg) {
                        Ok(ServerStep::Accept { keys, .. }) => Some(keys.opener),
                        _ => None,
                    };
                    let _ = client.handle(&msg);
                    if let Some(opener) = accepted {
                        decoder.authenticate(opener);
                    }
                }
                Ok(None) => break,
                Err(_) => return decoded,
            }
        }
    }
    let _ = decoder.finish();
    decoded
}
