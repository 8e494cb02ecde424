//! Who owns a stream: an opaque key the embedding application derives from each request.

use std::fmt;
use std::sync::Arc;

/// The identity a request acts as, as far as this transport is concerned: a stream belongs
/// to the identity that opened it, and only that identity may POST to it.
///
/// Opaque text (a user id, a hash of a credential); never the credential itself, since it
/// is kept for the life of the stream and shown in `Debug`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdentityKey(Arc<str>);

impl IdentityKey {
    pub fn new(key: impl Into<Arc<str>>) -> Self {
        Self(key.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityKey({})", self.0)
    }
}

/// Reads the identity of a request (`None`: the request carries none, which is a wiring
/// error: authentication belongs in front of this transport).
pub type Identify = Arc<dyn Fn(&http::request::Parts) -> Option<IdentityKey> + Send + Sync>;

/// The default [`Identify`]: an [`IdentityKey`] an earlier layer put into the request
/// extensions.
pub(crate) fn from_extensions(parts: &http::request::Parts) -> Option<IdentityKey> {
    parts.extensions.get::<IdentityKey>().cloned()
}
