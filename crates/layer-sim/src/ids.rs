//! Typed identifiers, and a deterministic generator for the ones the simulator mints.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A workspace.
    WorkspaceId
);
id_type!(
    /// A model (base model or custom style).
    ModelId
);
id_type!(
    /// A workflow (blueprint).
    WorkflowId
);
id_type!(
    /// An inference or a workflow run; both live in one table so admin calls can name either.
    RunId
);
id_type!(
    /// A file: an upload or a generated output.
    FileId
);
id_type!(
    /// A session runs are grouped under.
    SessionId
);

/// Mints UUIDs (version 4 layout) from a seed and a counter, so two simulators started with the
/// same seed and driven the same way hand out the same ids.
#[derive(Debug)]
pub struct IdGen {
    seed: u64,
    counter: AtomicU64,
}

impl IdGen {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            counter: AtomicU64::new(0),
        }
    }

    pub fn next(&self, kind: &str) -> Uuid {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        derive_uuid(&[&self.seed.to_be_bytes(), kind.as_bytes(), &n.to_be_bytes()])
    }

    /// Random-looking text for tokens and upload ids, still derived from the seed.
    pub fn token(&self, kind: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let digest = Sha256::new()
            .chain_update(self.seed.to_be_bytes())
            .chain_update(b"token")
            .chain_update(kind.as_bytes())
            .chain_update(n.to_be_bytes())
            .finalize();
        hex(&digest)
    }
}

/// A version-4-shaped UUID from the SHA-256 of the parts.
pub fn derive_uuid(parts: &[&[u8]]) -> Uuid {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Uuid::from_bytes(bytes)
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_ids() {
        let a = IdGen::new(7);
        let b = IdGen::new(7);
        assert_eq!(a.next("run"), b.next("run"));
        assert_ne!(a.next("run"), IdGen::new(8).next("run"));
        assert_eq!(a.next("x").get_version_num(), 4);
    }
}
