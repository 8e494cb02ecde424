//! Secrets (PATs, passwords, client secrets) are `secrecy::SecretString`: `Debug` never shows
//! them and reading one is an explicit `expose_secret()`. Here: how fixtures write them out,
//! and a comparison that does not leak where two secrets differ.

use secrecy::{ExposeSecret, SecretString};
use serde::Serializer;

/// Writes a secret as its value: fixtures are a file of test credentials meant to be read
/// back (`layer-sim fixtures`), so their secrets are written as they are.
pub fn serialize<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose_secret())
}

/// [`serialize`] for an optional secret.
pub fn serialize_option<S: Serializer>(
    secret: &Option<SecretString>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => s.serialize_some(secret.expose_secret()),
        None => s.serialize_none(),
    }
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts() {
        let s = SecretString::from("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.expose_secret(), "hunter2");
    }
}
