//! Waking queued callers when a call place frees.
//!
//! Releases publish the key's tag on one channel; each replica keeps one subscriber
//! connection and wakes its local waiters of that key. Pub/sub is only a hint: a waiter also
//! asks Redis again every `queue_poll_interval`, so a lost message or a dropped subscriber
//! connection makes the queue slower, never wrong.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Notify;

pub(crate) const CHANNEL: &str = "layer-mcp:cap:wake";

/// Local waiters by key tag. Entries are weak, so a key nobody waits on costs nothing.
#[derive(Default)]
pub(crate) struct Wakers {
    map: Mutex<HashMap<String, Weak<Notify>>>,
}

impl Wakers {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Weak<Notify>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The notifier of `tag`, shared by every local waiter of that key.
    pub(crate) fn register(&self, tag: &str) -> Arc<Notify> {
        let mut map = self.lock();
        if let Some(n) = map.get(tag).and_then(Weak::upgrade) {
            return n;
        }
        if map.len() >= 256 {
            map.retain(|_, w| w.strong_count() > 0);
        }
        let n = Arc::new(Notify::new());
        map.insert(tag.to_owned(), Arc::downgrade(&n));
        n
    }

    pub(crate) fn wake(&self, tag: &str) {
        let mut map = self.lock();
        match map.get(tag).map(Weak::upgrade) {
            Some(Some(n)) => n.notify_waiters(),
            Some(None) => {
                map.remove(tag);
            }
            None => {}
        }
    }

    /// After a reconnect: messages may have been missed, so everyone looks again.
    pub(crate) fn wake_all(&self) {
        for n in self.lock().values().filter_map(Weak::upgrade) {
            n.notify_waiters();
        }
    }
}

/// Listens for wake-ups for as long as the limiter lives (the task is aborted on drop),
/// reconnecting with a capped backoff.
pub(crate) async fn subscribe_forever(
    client: redis::Client,
    wakers: Arc<Wakers>,
    timeout: Duration,
) {
    let min_backoff = Duration::from_millis(100);
    let mut backoff = min_backoff;
    loop {
        let connect = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(CHANNEL).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(pubsub)) => {
                backoff = min_backoff;
                wakers.wake_all();
                let mut messages = pubsub.into_on_message();
                while let Some(msg) = messages.next().await {
                    if let Ok(tag) = std::str::from_utf8(msg.get_payload_bytes()) {
                        wakers.wake(tag);
                    }
                }
                tracing::debug!("limiter wake-up subscription ended; reconnecting");
            }
            Ok(Err(e)) => tracing::debug!(kind = ?e.kind(), "limiter wake-up subscription failed"),
            Err(_) => tracing::debug!("limiter wake-up subscription timed out"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
