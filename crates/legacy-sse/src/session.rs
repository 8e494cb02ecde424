//! Session ids: the `sessionId` of the POST URL.

use std::fmt;
use std::sync::Arc;

/// A session id: 32 random hex digits (122 bits of a v4 UUID), so it cannot be guessed;
/// ownership is still checked on every POST.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId(Arc<str>);

impl SessionId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string().into())
    }

    /// An id as a client presents it. Anything that cannot be one of ours is `None` (the
    /// caller answers it like an unknown session).
    pub fn parse(text: &str) -> Option<Self> {
        let plausible = (1..=64).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        plausible.then(|| Self(text.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.0)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_differ_and_parse_back() {
        let a = SessionId::random();
        let b = SessionId::random();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
        assert_eq!(SessionId::parse(a.as_str()), Some(a));
    }

    #[test]
    fn implausible_ids_are_refused() {
        for text in ["", "a b", "../etc", "x".repeat(65).as_str(), "é"] {
            assert_eq!(SessionId::parse(text), None, "{text:?}");
        }
    }
}
