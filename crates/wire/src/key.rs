use std::path::Path;

use crate::WireError;

/// Shortest accepted cluster key, in bytes.
pub const MIN_KEY_LEN: usize = 16;

/// The shared secret every process of a cluster holds. Its bytes never cross the network;
/// peers prove they know it with HMACs over fresh nonces.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterKey(Vec<u8>);

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClusterKey({} bytes)", self.0.len())
    }
}

impl ClusterKey {
    /// A key from bytes; at least [`MIN_KEY_LEN`] of them.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, WireError> {
        let bytes = bytes.into();
        if bytes.len() < MIN_KEY_LEN {
            return Err(WireError::Key(format!(
                "{} bytes is too short: use at least {MIN_KEY_LEN} (e.g. 32 random bytes, hex-encoded)",
                bytes.len()
            )));
        }
        Ok(ClusterKey(bytes))
    }

    /// Reads a key file: its contents with surrounding whitespace removed.
    pub fn from_file(path: &Path) -> Result<Self, WireError> {
        let bytes = std::fs::read(path)
            .map_err(|e| WireError::Key(format!("cannot read {}: {e}", path.display())))?;
        let text = bytes.trim_ascii();
        Self::new(text.to_vec()).map_err(|e| WireError::Key(format!("{}: {e}", path.display())))
    }

    /// A new random key, as 64 hex digits (what `lockstep key` writes).
    pub fn generate_hex() -> Result<String, WireError> {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).map_err(|e| WireError::Key(format!("no randomness: {e}")))?;
        Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// 32 bytes from the operating system's random source, for handshake nonces.
pub fn random_nonce() -> Result<[u8; 32], WireError> {
    let mut n = [0u8; 32];
    getrandom::fill(&mut n).map_err(|e| WireError::Key(format!("no randomness: {e}")))?;
    Ok(n)
}
