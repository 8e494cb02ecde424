//! How many streams may be open: per identity (the oldest gives way) and in total (a new
//! one is refused).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use tokio_util::sync::CancellationToken;

use crate::identity::IdentityKey;
use crate::session::SessionId;

/// Open streams of this process.
pub(crate) struct StreamLimits {
    per_identity: usize,
    total: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Oldest first; the token stops that stream.
    by_identity: HashMap<IdentityKey, VecDeque<(SessionId, CancellationToken)>>,
    open: usize,
}

/// No room for another stream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Full;

impl StreamLimits {
    pub(crate) fn new(per_identity: usize, total: usize) -> Self {
        Self {
            per_identity,
            total,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update is complete before anything can panic, so a poisoned lock is sound.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a new stream of `owner`. Returns the streams to close to make room (the
    /// owner's oldest, when it is at its cap; already uncounted), or [`Full`].
    pub(crate) fn admit(
        &self,
        owner: &IdentityKey,
        session: &SessionId,
        stop: &CancellationToken,
    ) -> Result<Vec<CancellationToken>, Full> {
        let mut state = self.lock();
        let held = state.by_identity.get(owner).map_or(0, VecDeque::len);
        let evict = (held + 1).saturating_sub(self.per_identity);
        if state.open - evict >= self.total {
            return Err(Full);
        }
        let mut evicted = Vec::with_capacity(evict);
        let streams = state.by_identity.entry(owner.clone()).or_default();
        for _ in 0..evict {
            if let Some((_, token)) = streams.pop_front() {
                evicted.push(token);
            }
        }
        streams.push_back((session.clone(), stop.clone()));
        state.open = state.open + 1 - evicted.len();
        Ok(evicted)
    }

    /// The stream closed. A stream already evicted is not counted twice.
    pub(crate) fn release(&self, owner: &IdentityKey, session: &SessionId) {
        let mut state = self.lock();
        let Some(streams) = state.by_identity.get_mut(owner) else {
            return;
        };
        let before = streams.len();
        streams.retain(|(id, _)| id != session);
        let removed = before - streams.len();
        if streams.is_empty() {
            state.by_identity.remove(owner);
        }
        state.open -= removed;
    }

    /// Streams open now.
    pub(crate) fn open(&self) -> usize {
        self.lock().open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> IdentityKey {
        IdentityKey::new(name)
    }

    #[test]
    fn an_identity_at_its_cap_loses_its_oldest_stream() {
        let limits = StreamLimits::new(2, 10);
        let (s1, s2, s3) = (
            SessionId::random(),
            SessionId::random(),
            SessionId::random(),
        );
        let (t1, t2, t3) = (
            CancellationToken::new(),
            CancellationToken::new(),
            CancellationToken::new(),
        );
        assert!(limits.admit(&key("a"), &s1, &t1).unwrap().is_empty());
        assert!(limits.admit(&key("a"), &s2, &t2).unwrap().is_empty());
        let evicted = limits.admit(&key("a"), &s3, &t3).unwrap();
        assert_eq!(evicted.len(), 1);
        evicted[0].cancel();
        assert!(t1.is_cancelled() && !t2.is_cancelled());
        assert_eq!(limits.open(), 2);
        // The evicted stream's own release does not uncount a live one.
        limits.release(&key("a"), &s1);
        assert_eq!(limits.open(), 2);
        limits.release(&key("a"), &s2);
        limits.release(&key("a"), &s3);
        assert_eq!(limits.open(), 0);
    }

    #[test]
    fn the_total_refuses_new_identities_but_not_evictions() {
        let limits = StreamLimits::new(1, 2);
        let t = CancellationToken::new();
        limits.admit(&key("a"), &SessionId::random(), &t).unwrap();
        limits.admit(&key("b"), &SessionId::random(), &t).unwrap();
        assert_eq!(limits.admit(&key("c"), &SessionId::random(), &t), Err(Full));
        // "a" replaces its own stream: the total does not grow.
        assert_eq!(
            limits
                .admit(&key("a"), &SessionId::random(), &t)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(limits.open(), 2);
    }
}
