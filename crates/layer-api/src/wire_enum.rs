//! Tolerant string enums.
//!
//! Layer adds enum values without notice and its docs write wire values in upper case
//! (`IN_PROGRESS`) while the wire uses lower case (`in_progress`). Each enum here therefore
//! parses case-insensitively, never fails, keeps anything it does not know as
//! `Unknown(original)`, and serialises a known value in its canonical wire spelling.

macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, Debug)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this client does not know, kept as the server sent it.
            Unknown(String),
        }

        impl $name {
            /// Every value this client knows, in the order models.py lists them.
            pub const KNOWN: &'static [$name] = &[$( $name::$variant ),+];

            /// The canonical wire spelling (or the original text of an unknown value).
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $wire, )+
                    Self::Unknown(other) => other.as_str(),
                }
            }

            /// Whether this is one of the documented values.
            pub fn is_known(&self) -> bool {
                !matches!(self, Self::Unknown(_))
            }

            /// Case-insensitive lookup that never fails.
            pub fn parse_lenient(raw: &str) -> Self {
                let trimmed = raw.trim();
                $( if trimmed.eq_ignore_ascii_case($wire) { return Self::$variant; } )+
                Self::Unknown(raw.to_owned())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = ::std::convert::Infallible;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(Self::parse_lenient(s))
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self::parse_lenient(s)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = ::std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
                Ok(Self::parse_lenient(&raw))
            }
        }
    };
}

pub(crate) use wire_enum;
