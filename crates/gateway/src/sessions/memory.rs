//! [`MemorySessionRegistry`]: session ownership in this process (one replica, no
//! `redis_url`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Ownership, SessionKey, SessionRegistry, StoreUnavailable};
use crate::auth::UserId;

struct Entry {
    user: UserId,
    last_used: Instant,
}

/// In-process registry (one replica).
pub struct MemorySessionRegistry {
    sessions: Mutex<HashMap<SessionKey, Entry>>,
    max_per_user: usize,
    idle_timeout: Duration,
}

impl MemorySessionRegistry {
    pub fn new(max_per_user: usize, idle_timeout: Duration) -> Self {
        Self {
            sessions: Mutex::new(HashMap::new()),
            max_per_user: max_per_user.max(1),
            idle_timeout,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionKey, Entry>> {
        self.sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Open sessions of `user`.
    #[cfg(test)]
    fn count_for(&self, user: &UserId) -> usize {
        let now = Instant::now();
        self.lock()
            .values()
            .filter(|e| &e.user == user && now.duration_since(e.last_used) <= self.idle_timeout)
            .count()
    }
}

#[async_trait::async_trait]
impl SessionRegistry for MemorySessionRegistry {
    async fn bind(
        &self,
        session: SessionKey,
        user: &UserId,
    ) -> Result<Vec<SessionKey>, StoreUnavailable> {
        let now = Instant::now();
        let mut sessions = self.lock();
        sessions.insert(
            session.clone(),
            Entry {
                user: user.clone(),
                last_used: now,
            },
        );
        let mut mine: Vec<(SessionKey, Instant)> = sessions
            .iter()
            .filter(|(id, e)| &e.user == user && **id != session)
            .map(|(id, e)| (id.clone(), e.last_used))
            .collect();
        let excess = (mine.len() + 1).saturating_sub(self.max_per_user);
        if excess == 0 {
            return Ok(Vec::new());
        }
        mine.sort_by_key(|(_, used)| *used);
        let evicted: Vec<SessionKey> = mine.into_iter().take(excess).map(|(id, _)| id).collect();
        for id in &evicted {
            sessions.remove(id);
        }
        Ok(evicted)
    }

    async fn owner(&self, session: &str) -> Result<Ownership, StoreUnavailable> {
        let now = Instant::now();
        let mut sessions = self.lock();
        Ok(match sessions.get_mut(session) {
            Some(entry) if now.duration_since(entry.last_used) <= self.idle_timeout => {
                entry.last_used = now;
                Ownership::Owner(entry.user.clone())
            }
            Some(_) => {
                sessions.remove(session);
                Ownership::Unknown
            }
            None => Ownership::Unknown,
        })
    }

    async fn remove(&self, session: &str) {
        self.lock().remove(session);
    }

    async fn expire_idle(&self) -> Vec<SessionKey> {
        let now = Instant::now();
        let mut sessions = self.lock();
        let idle: Vec<SessionKey> = sessions
            .iter()
            .filter(|(_, e)| now.duration_since(e.last_used) > self.idle_timeout)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &idle {
            sessions.remove(id);
        }
        idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserId {
        UserId::from_stored(name)
    }

    #[tokio::test]
    async fn sessions_belong_to_their_opener() {
        let reg = MemorySessionRegistry::new(4, Duration::from_secs(60));
        assert!(
            reg.bind("s1".into(), &user("alice"))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            reg.owner("s1").await.unwrap(),
            Ownership::Owner(user("alice"))
        );
        assert_eq!(reg.owner("nope").await.unwrap(), Ownership::Unknown);
        reg.remove("s1").await;
        assert_eq!(reg.owner("s1").await.unwrap(), Ownership::Unknown);
    }

    #[tokio::test]
    async fn cap_evicts_the_least_recently_used_of_that_user_only() {
        let reg = MemorySessionRegistry::new(2, Duration::from_secs(60));
        reg.bind("a1".into(), &user("alice")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        reg.bind("a2".into(), &user("alice")).await.unwrap();
        reg.bind("b1".into(), &user("bob")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        // a1 used again: a2 is now the least recently used.
        reg.owner("a1").await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let evicted = reg.bind("a3".into(), &user("alice")).await.unwrap();
        assert_eq!(evicted, vec![SessionKey::from("a2")]);
        assert_eq!(reg.owner("a2").await.unwrap(), Ownership::Unknown);
        assert_eq!(reg.count_for(&user("alice")), 2);
        assert_eq!(
            reg.owner("b1").await.unwrap(),
            Ownership::Owner(user("bob"))
        );
    }

    #[tokio::test]
    async fn idle_sessions_expire() {
        let reg = MemorySessionRegistry::new(4, Duration::from_millis(40));
        reg.bind("s".into(), &user("alice")).await.unwrap();
        reg.bind("t".into(), &user("alice")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(reg.owner("s").await.unwrap(), Ownership::Unknown);
        assert_eq!(reg.expire_idle().await, vec![SessionKey::from("t")]);
        assert_eq!(reg.count_for(&user("alice")), 0);
    }
}
