//! The limiter's own small vocabulary: what is counted (a key), what holds a place.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a cap applies to: one user, optionally within one workspace. Built by the caller;
/// the limiter only compares keys and never interprets them.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CapKey {
    user: String,
    workspace: Option<String>,
}

impl CapKey {
    /// The key of `user` in `workspace` (`None`: calls that belong to no workspace).
    pub fn new(user: impl Into<String>, workspace: Option<&str>) -> CapKey {
        CapKey {
            user: user.into(),
            workspace: workspace.map(str::to_owned),
        }
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn workspace(&self) -> Option<&str> {
        self.workspace.as_deref()
    }

    /// A fixed-length, unambiguous tag for shared storage: the parts are length-prefixed
    /// before hashing (so `("a:b", None)` and `("a", Some("b"))` differ) and Redis key
    /// names carry no user identifiers.
    pub(crate) fn tag(&self) -> String {
        let mut h = Sha256::new();
        h.update((self.user.len() as u64).to_be_bytes());
        h.update(self.user.as_bytes());
        match &self.workspace {
            Some(w) => {
                h.update([1u8]);
                h.update((w.len() as u64).to_be_bytes());
                h.update(w.as_bytes());
            }
            None => h.update([0u8]),
        }
        h.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl fmt::Debug for CapKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for CapKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.workspace {
            Some(w) => write!(f, "{}@{}", self.user, w),
            None => write!(f, "{}", self.user),
        }
    }
}

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> $name {
                $name(value.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_newtype!(
    /// The identity of one held place (a lease): a reservation keeps it when committed.
    PlaceId
);
string_newtype!(
    /// The caller's name for a kind of run (for the gateway: `forge` or `workflow`).
    RunKind
);
string_newtype!(
    /// The upstream id of a run.
    RunId
);

impl PlaceId {
    pub(crate) fn random() -> PlaceId {
        PlaceId(uuid::Uuid::new_v4().simple().to_string())
    }
}

/// A run holding a place, with what the caller needs to look it up again later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRef {
    pub kind: RunKind,
    pub id: RunId,
    /// Whatever else the caller needs to poll the run (e.g. the workflow id of a workflow
    /// run). Opaque to the limiter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

impl RunRef {
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> RunRef {
        RunRef {
            kind: RunKind::new(kind),
            id: RunId::new(id),
            parent: None,
        }
    }

    pub fn with_parent(mut self, parent: impl Into<String>) -> RunRef {
        self.parent = Some(parent.into());
        self
    }
}

/// What holds a place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Holder {
    /// Reserved: the caller is starting a run upstream and has not decided yet.
    Starting,
    /// A run known by its id.
    Run { run: RunRef },
    /// A run may have started but its id is unknown (the upstream outcome was unknown, or the
    /// reservation was dropped without a decision). Frees only when its lease expires.
    Unknown,
}

impl Holder {
    pub fn run(&self) -> Option<&RunRef> {
        match self {
            Holder::Run { run } => Some(run),
            Holder::Starting | Holder::Unknown => None,
        }
    }
}

/// One held place of a key, as seen now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivePlace {
    pub place: PlaceId,
    pub holder: Holder,
    /// Time left on the lease (the place frees then unless renewed or released).
    pub expires_in: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_separate_users_workspaces_and_ambiguous_joins() {
        let tags = [
            CapKey::new("a:b", None).tag(),
            CapKey::new("a", Some("b")).tag(),
            CapKey::new("a", Some(":b")).tag(),
            CapKey::new("a", Some("")).tag(),
            CapKey::new("a", None).tag(),
        ];
        for (i, a) in tags.iter().enumerate() {
            assert_eq!(a.len(), 32);
            for b in &tags[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(
            CapKey::new("u", Some("w")).tag(),
            CapKey::new("u", Some("w")).tag()
        );
    }

    #[test]
    fn holders_round_trip_through_json() {
        let h = Holder::Run {
            run: RunRef::new("workflow", "r1").with_parent("wf9"),
        };
        let s = serde_json::to_string(&h).unwrap();
        assert_eq!(serde_json::from_str::<Holder>(&s).unwrap(), h);
    }
}
