//! Identifier newtypes. Every Layer id is a UUID on the wire; parsing one validates it, so a
//! `WorkspaceId` in hand is always well formed and cannot be confused with a `ModelId`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// A string that was supposed to be a UUID of some kind and was not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} must be a UUID, got {shown:?}")]
pub struct InvalidId {
    kind: &'static str,
    shown: String,
}

impl InvalidId {
    fn new(kind: &'static str, input: &str) -> Self {
        // Ids are not secret, but keep error text bounded whatever the caller passed.
        let shown: String = input.chars().take(64).collect();
        Self { kind, shown }
    }

    /// Which id was expected, e.g. `workspace_id`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }
}

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident, $field:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// The name the API gives this id, e.g. in error messages.
            pub const FIELD: &'static str = $field;

            /// Wraps an already parsed UUID.
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            /// The UUID inside.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                // `Uuid::parse_str` also takes the braced and URN forms; the API speaks only
                // the hyphenated one, and a path segment must not contain braces or colons.
                let trimmed = s.trim();
                if trimmed.len() != 36 {
                    return Err(InvalidId::new($field, s));
                }
                Uuid::parse_str(trimmed)
                    .map(Self)
                    .map_err(|_| InvalidId::new($field, s))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(&self.0.hyphenated())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
                raw.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

uuid_id!(
    /// A workspace (`workspace_id`).
    WorkspaceId,
    "workspace_id"
);
uuid_id!(
    /// A model or trained style (`model_id`).
    ModelId,
    "model_id"
);
uuid_id!(
    /// A workflow (blueprint), `workflow_id`.
    WorkflowId,
    "workflow_id"
);
uuid_id!(
    /// One forge run (`inference_id`).
    InferenceId,
    "inference_id"
);
uuid_id!(
    /// One workflow run (`run_id`).
    WorkflowRunId,
    "run_id"
);
uuid_id!(
    /// An uploaded or generated file (`file_id`).
    FileId,
    "file_id"
);
uuid_id!(
    /// A session runs are organised under (`session_id`).
    SessionId,
    "session_id"
);
uuid_id!(
    /// A library object a workflow produced (`object_id`).
    ObjectId,
    "object_id"
);
uuid_id!(
    /// A guardrail rule that refused a generation (`guardrail_id`).
    GuardrailId,
    "guardrail_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays_hyphenated_uuids() {
        let raw = "0b0e3f6a-3c1d-4e55-9a7e-2b1f6c0d9e11";
        let id: WorkspaceId = raw.parse().unwrap();
        assert_eq!(id.to_string(), raw);
        assert_eq!(
            format!("{id:?}"),
            "WorkspaceId(0b0e3f6a-3c1d-4e55-9a7e-2b1f6c0d9e11)"
        );
        let upper: WorkspaceId = raw.to_uppercase().parse().unwrap();
        assert_eq!(upper, id);
    }

    #[test]
    fn rejects_what_is_not_a_uuid() {
        for bad in [
            "",
            "abc",
            "0b0e3f6a3c1d4e559a7e2b1f6c0d9e11",
            "{0b0e3f6a-3c1d-4e55-9a7e-2b1f6c0d9e11}",
            "0b0e3f6a-3c1d-4e55-9a7e-2b1f6c0d9e1g",
            "../../admin/0b0e3f6a-3c1d-4e55-9a7e",
        ] {
            let err = bad.parse::<ModelId>().unwrap_err();
            assert_eq!(err.kind(), "model_id", "{bad}");
            assert!(err.to_string().contains("model_id must be a UUID"));
        }
    }

    #[test]
    fn serde_round_trip_validates() {
        let id: FileId = serde_json::from_str("\"0b0e3f6a-3c1d-4e55-9a7e-2b1f6c0d9e11\"").unwrap();
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"0b0e3f6a-3c1d-4e55-9a7e-2b1f6c0d9e11\""
        );
        assert!(serde_json::from_str::<FileId>("\"not-a-uuid\"").is_err());
        assert!(serde_json::from_str::<FileId>("42").is_err());
    }
}
