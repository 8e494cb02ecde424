//! [`RedisDirectory`]: sessions reachable from every replica sharing one Redis (feature
//! `redis`).
//!
//! Each replica subscribes to a channel of its own. Opening a stream records the session in
//! Redis (`<prefix>:session:<id>` → the holder's channel and the owner), with a TTL the
//! holder keeps refreshing while the stream lives. A POST for a session held here is pushed
//! straight into its inbox; one held elsewhere is checked against the record (another
//! identity gets the same `NotFound` as an unknown session), published on the holder's
//! channel, and answered with what the holder reports back on the sender's own channel.
//! `PUBLISH` reaching nobody means the holder is gone (crashed before it could unregister):
//! `NotFound`, so the client opens a new stream.
//!
//! The POST's `Parts` cannot travel: method, URI, version and allow-listed headers do, and
//! the holder rebuilds them with the application's [`RebuildParts`] hook (re-running its
//! authentication) before pushing. The credential therefore crosses Redis: production Redis
//! belongs on a private network or behind `rediss://`.
//!
//! Redis unreachable: deliveries that need it answer `Unavailable` (503) within
//! `redis_timeout`; local deliveries keep working. The subscriber reconnects by itself, and
//! on every (re)subscription the holder writes its sessions' records again, so a Redis that
//! restarted empty learns them back without any stream being reopened.

mod forward;
mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use http::HeaderName;
use redis::aio::ConnectionManager;
use tokio::sync::oneshot;
use tokio_util::sync::{CancellationToken, DropGuard};

pub use forward::{HeadersOnly, RebuildParts};

use crate::directory::{Delivery, DeliveryError, Inbox, SessionDirectory};
use crate::identity::IdentityKey;
use crate::session::SessionId;
use forward::ForwardedRequest;
use wire::{Envelope, Outcome, SessionRecord};

/// Settings of a [`RedisDirectory`].
#[derive(Debug, Clone)]
pub struct RedisDirectoryConfig {
    /// Prefix of every key and channel (several deployments may share one Redis).
    pub key_prefix: String,
    /// How long a session record outlives its holder's last refresh (refreshed every third
    /// of it). Bounds how long a crashed replica's sessions are looked up before `PUBLISH`
    /// says they are gone.
    pub record_ttl: Duration,
    /// The limit on each Redis round trip, and on (re)connecting.
    pub redis_timeout: Duration,
    /// How long a POST waits for the holder to take its messages (the holder's inbox is
    /// bounded; a session far behind makes POSTs wait, as on one replica).
    pub delivery_timeout: Duration,
    /// The headers that travel with a delivery: what the [`RebuildParts`] hook needs (the
    /// credential) and what handlers read (a request id). Nothing else leaves the replica.
    pub forward_headers: Vec<HeaderName>,
    /// How often the subscriber connection is pinged (a Redis that hangs without closing
    /// the connection is noticed within this plus `redis_timeout`).
    pub ping_interval: Duration,
    /// TLS settings for a `rediss://` URL (a private CA).
    pub tls: redis_conn::Tls,
}

impl Default for RedisDirectoryConfig {
    fn default() -> Self {
        Self {
            key_prefix: "legacy-sse".to_owned(),
            record_ttl: Duration::from_secs(60),
            redis_timeout: Duration::from_secs(2),
            delivery_timeout: Duration::from_secs(30),
            forward_headers: vec![
                http::header::AUTHORIZATION,
                HeaderName::from_static("x-request-id"),
            ],
            ping_interval: Duration::from_secs(5),
            tls: redis_conn::Tls::default(),
        }
    }
}

/// Why a [`RedisDirectory`] cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum RedisDirectoryError {
    /// The URL is not one the Redis client accepts (the URL itself is not repeated: it may
    /// hold a password).
    #[error("invalid Redis URL for the SSE session directory ({0})")]
    InvalidUrl(String),
    #[error("the SSE session directory must be started inside a Tokio runtime")]
    NoRuntime,
    #[error("invalid SSE session directory setting: {0}")]
    Setting(&'static str),
}

/// Sessions shared through Redis: see the module documentation.
pub struct RedisDirectory {
    shared: Arc<Shared>,
    /// Stops the subscriber and the refresher when the directory is dropped.
    _tasks: DropGuard,
}

struct Entry {
    owner: IdentityKey,
    inbox: Inbox,
}

struct Shared {
    config: RedisDirectoryConfig,
    client: redis::Client,
    conn: ConnectionManager,
    /// This replica's channel.
    channel: String,
    rebuild: Arc<dyn RebuildParts>,
    local: Mutex<HashMap<SessionId, Entry>>,
    /// Deliveries sent elsewhere, waiting for the holder's answer.
    pending: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    /// Whether this replica's subscription is up (answers can reach it).
    subscribed: AtomicBool,
    tasks: CancellationToken,
}

impl RedisDirectory {
    /// Connects lazily (Redis may be down at start; the directory recovers when it comes)
    /// and starts the subscriber. Must be called inside a Tokio runtime.
    pub fn start(
        url: &str,
        config: RedisDirectoryConfig,
        rebuild: Arc<dyn RebuildParts>,
    ) -> Result<Self, RedisDirectoryError> {
        if config.record_ttl < Duration::from_secs(3) {
            return Err(RedisDirectoryError::Setting(
                "record_ttl must be at least 3 s",
            ));
        }
        if config.redis_timeout.is_zero() || config.ping_interval.is_zero() {
            return Err(RedisDirectoryError::Setting(
                "redis_timeout and ping_interval must be positive",
            ));
        }
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| RedisDirectoryError::NoRuntime)?;
        let url: redis_conn::RedisUrl = url
            .parse()
            .map_err(|e: redis_conn::UrlError| RedisDirectoryError::InvalidUrl(e.to_string()))?;
        let client = redis_conn::client(&url, &config.tls)
            .map_err(|e| RedisDirectoryError::InvalidUrl(e.to_string()))?;
        // No retries inside the manager: during an outage a call fails at once (503) rather
        // than making the POST wait; the next call reconnects.
        let conn = redis_conn::manager(&client, config.redis_timeout)
            .map_err(|e| RedisDirectoryError::InvalidUrl(e.to_string()))?;
        let channel = format!(
            "{}:replica:{}",
            config.key_prefix,
            uuid::Uuid::new_v4().simple()
        );
        let tasks = CancellationToken::new();
        let shared = Arc::new(Shared {
            config,
            client,
            conn,
            channel,
            rebuild,
            local: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            subscribed: AtomicBool::new(false),
            tasks: tasks.clone(),
        });
        runtime.spawn(subscribe_forever(shared.clone()));
        runtime.spawn(refresh_forever(shared.clone()));
        Ok(Self {
            shared,
            _tasks: tasks.drop_guard(),
        })
    }

    /// Whether this replica's subscription is up (deliveries from other replicas and
    /// answers to its own can arrive). For readiness and tests.
    pub fn is_subscribed(&self) -> bool {
        self.shared.subscribed.load(Ordering::SeqCst)
    }

    /// Waits until the subscription is up, at most `timeout`; whether it is.
    pub async fn wait_subscribed(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.is_subscribed() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Sessions whose streams this replica holds.
    pub fn local_sessions(&self) -> usize {
        self.shared.lock_local().len()
    }

    /// Drain: forgets every session held here, in Redis too (POSTs on other replicas get
    /// `NotFound` at once and their clients open new streams), and stops listening. For
    /// the end of a graceful shutdown, once the streams have been closed.
    pub async fn close(&self) {
        let sessions: Vec<SessionId> = self.shared.lock_local().drain().map(|(id, _)| id).collect();
        if !sessions.is_empty() {
            let keys: Vec<String> = sessions.iter().map(|s| self.shared.key(s)).collect();
            let mut del = redis::cmd("DEL");
            del.arg(&keys);
            if let Err(error) = self.shared.query::<i64>(&del).await {
                tracing::warn!(%error, count = keys.len(), "could not remove SSE session records on shutdown; they expire with their TTL");
            }
        }
        self.shared.tasks.cancel();
    }
}

impl Shared {
    fn lock_local(&self) -> MutexGuard<'_, HashMap<SessionId, Entry>> {
        // Every operation is a single insert, remove or lookup: a poisoned map is consistent.
        self.local
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_pending(&self) -> MutexGuard<'_, HashMap<String, oneshot::Sender<Outcome>>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn key(&self, session: &SessionId) -> String {
        format!("{}:session:{session}", self.config.key_prefix)
    }

    /// One command within `redis_timeout`; any failure is `Unavailable` (the message names
    /// the kind of fault, never the URL).
    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, DeliveryError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.config.redis_timeout, cmd.query_async::<T>(&mut conn)).await
        {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(DeliveryError::Unavailable(redis_conn::describe(&error))),
            Err(_) => Err(DeliveryError::Unavailable(
                "redis did not answer in time".to_owned(),
            )),
        }
    }

    fn record_cmd(&self, session: &SessionId, owner: &IdentityKey) -> Option<redis::Cmd> {
        let record = SessionRecord {
            channel: self.channel.clone(),
            owner: owner.as_str().to_owned(),
        };
        let json = serde_json::to_string(&record).ok()?;
        let mut set = redis::cmd("SET");
        set.arg(self.key(session))
            .arg(json)
            .arg("PX")
            .arg(self.config.record_ttl.as_millis().max(1) as u64);
        Some(set)
    }

    /// Writes the records of every session held here (refresh, or after a reconnect).
    async fn announce_all(&self) -> Result<(), DeliveryError> {
        let records: Vec<redis::Cmd> = self
            .lock_local()
            .iter()
            .filter(|(_, entry)| !entry.inbox.is_closed())
            .filter_map(|(id, entry)| self.record_cmd(id, &entry.owner))
            .collect();
        // In chunks, so one round trip stays small however many streams are open.
        for chunk in records.chunks(500) {
            let mut pipe = redis::pipe();
            for cmd in chunk {
                pipe.add_command(cmd.clone()).ignore();
            }
            let mut conn = self.conn.clone();
            match tokio::time::timeout(self.config.redis_timeout, pipe.query_async::<()>(&mut conn))
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    return Err(DeliveryError::Unavailable(redis_conn::describe(&error)));
                }
                Err(_) => {
                    return Err(DeliveryError::Unavailable(
                        "redis did not answer in time".to_owned(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// A delivery for a session another replica holds.
    async fn deliver_remote(
        &self,
        session: &SessionId,
        sender: &IdentityKey,
        delivery: Delivery,
    ) -> Result<(), DeliveryError> {
        let key = self.key(session);
        let record: Option<String> = self.query(redis::cmd("GET").arg(&key)).await?;
        let Some(record) = record else {
            return Err(DeliveryError::NotFound);
        };
        let Ok(record) = serde_json::from_str::<SessionRecord>(&record) else {
            tracing::warn!(%session, "unreadable SSE session record; treating the session as unknown");
            return Err(DeliveryError::NotFound);
        };
        if record.owner != sender.as_str() || record.channel == self.channel {
            // Someone else's session; or ours, ended, with a record not yet removed.
            return Err(DeliveryError::NotFound);
        }
        if !self.subscribed.load(Ordering::SeqCst) {
            // The holder's answer could not reach us.
            return Err(DeliveryError::Unavailable(
                "not subscribed to the session channel (redis reconnecting)".to_owned(),
            ));
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let envelope = Envelope::Deliver {
            id: id.clone(),
            reply_to: self.channel.clone(),
            session: session.as_str().to_owned(),
            sender: sender.as_str().to_owned(),
            request: ForwardedRequest::from_parts(&delivery.parts, &self.config.forward_headers),
            messages: delivery.messages,
        };
        let payload = serde_json::to_vec(&envelope)
            .map_err(|e| DeliveryError::Unavailable(format!("cannot encode the delivery: {e}")))?;
        let (answer_tx, answer_rx) = oneshot::channel();
        self.lock_pending().insert(id.clone(), answer_tx);
        // Whatever happens below, the waiter is removed.
        let _pending = PendingGuard {
            shared: self,
            id: &id,
        };
        let receivers: i64 = self
            .query(redis::cmd("PUBLISH").arg(&record.channel).arg(payload))
            .await?;
        if receivers == 0 {
            // The holder is gone without unregistering (a crash): its record is stale.
            let _ = self.query::<i64>(redis::cmd("DEL").arg(&key)).await;
            tracing::debug!(%session, "SSE session's holder is gone");
            return Err(DeliveryError::NotFound);
        }
        let wait = self.config.delivery_timeout + self.config.redis_timeout;
        match tokio::time::timeout(wait, answer_rx).await {
            Ok(Ok(outcome)) => outcome.into_result(),
            // The sender was dropped: our subscription broke while waiting.
            Ok(Err(_)) => Err(DeliveryError::Unavailable(
                "lost the redis subscription while waiting for the holder".to_owned(),
            )),
            Err(_) => Err(DeliveryError::Unavailable(
                "the replica holding the stream did not answer in time".to_owned(),
            )),
        }
    }

    /// On the holder: a delivery published by another replica.
    async fn accept_delivery(
        &self,
        session: String,
        sender: String,
        request: ForwardedRequest,
        messages: Vec<rmcp::model::ClientJsonRpcMessage>,
    ) -> Result<(), DeliveryError> {
        let session = SessionId::parse(&session).ok_or(DeliveryError::NotFound)?;
        let inbox = match self.lock_local().get(&session) {
            Some(entry) if entry.owner.as_str() == sender && !entry.inbox.is_closed() => {
                entry.inbox.clone()
            }
            _ => return Err(DeliveryError::NotFound),
        };
        let parts = request.into_parts().ok_or(DeliveryError::NotFound)?;
        let parts = self.rebuild.rebuild(parts).await?;
        match tokio::time::timeout(
            self.config.delivery_timeout,
            inbox.push(Delivery { parts, messages }),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(DeliveryError::Unavailable(
                "the session is too far behind".to_owned(),
            )),
        }
    }

    /// Handles one message on this replica's channel.
    fn on_message(self: &Arc<Self>, payload: &[u8]) {
        let Ok(envelope) = serde_json::from_slice::<Envelope>(payload) else {
            tracing::warn!("unreadable message on the SSE session channel; ignored");
            return;
        };
        match envelope {
            Envelope::Answer { id, outcome } => {
                if let Some(waiter) = self.lock_pending().remove(&id) {
                    let _ = waiter.send(outcome);
                }
            }
            Envelope::Deliver {
                id,
                reply_to,
                session,
                sender,
                request,
                messages,
            } => {
                if !reply_to.starts_with(&format!("{}:replica:", self.config.key_prefix)) {
                    tracing::warn!("SSE delivery with a foreign reply channel; ignored");
                    return;
                }
                // Its own task: a session that is behind must not hold up the others.
                let shared = self.clone();
                tokio::spawn(async move {
                    let result = shared
                        .accept_delivery(session, sender, request, messages)
                        .await;
                    let answer = Envelope::Answer {
                        id,
                        outcome: Outcome::of(&result),
                    };
                    let Ok(payload) = serde_json::to_vec(&answer) else {
                        return;
                    };
                    if let Err(error) = shared
                        .query::<i64>(redis::cmd("PUBLISH").arg(&reply_to).arg(payload))
                        .await
                    {
                        tracing::debug!(%error, "could not answer an SSE delivery");
                    }
                });
            }
        }
    }

    /// The subscription broke: answers to deliveries in flight cannot arrive.
    fn fail_pending(&self) {
        // Dropping the senders wakes each waiter with an error (Unavailable).
        self.lock_pending().clear();
    }
}

struct PendingGuard<'a> {
    shared: &'a Shared,
    id: &'a str,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.shared.lock_pending().remove(self.id);
    }
}

/// Keeps this replica subscribed to its channel for as long as the directory lives,
/// reconnecting with a capped backoff; after each (re)subscription the sessions held here
/// are written to Redis again (it may have restarted empty).
async fn subscribe_forever(shared: Arc<Shared>) {
    let min_backoff = Duration::from_millis(100);
    let mut backoff = min_backoff;
    let timeout = shared.config.redis_timeout;
    loop {
        let connect = async {
            let mut pubsub = shared.client.get_async_pubsub().await?;
            pubsub.subscribe(&shared.channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let attempt = tokio::select! {
            () = shared.tasks.cancelled() => return,
            attempt = tokio::time::timeout(timeout, connect) => attempt,
        };
        match attempt {
            Ok(Ok(pubsub)) => {
                backoff = min_backoff;
                shared.subscribed.store(true, Ordering::SeqCst);
                tracing::debug!("SSE session directory subscribed");
                let announcer = shared.clone();
                tokio::spawn(async move {
                    if let Err(error) = announcer.announce_all().await {
                        tracing::warn!(%error, "could not write SSE session records after subscribing");
                    }
                });
                let (mut sink, mut messages) = pubsub.split();
                let mut ping = tokio::time::interval(shared.config.ping_interval);
                ping.tick().await;
                loop {
                    tokio::select! {
                        () = shared.tasks.cancelled() => {
                            shared.subscribed.store(false, Ordering::SeqCst);
                            shared.fail_pending();
                            return;
                        }
                        message = messages.next() => match message {
                            Some(message) => shared.on_message(message.get_payload_bytes()),
                            None => break,
                        },
                        _ = ping.tick() => {
                            // Any answer means alive: in subscribed mode (RESP2) Redis
                            // answers PING with `["pong", ""]`, not `PONG`.
                            let alive =
                                tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await;
                            if !matches!(alive, Ok(Ok(_))) {
                                break;
                            }
                        }
                    }
                }
                shared.subscribed.store(false, Ordering::SeqCst);
                shared.fail_pending();
                tracing::warn!("SSE session directory lost its redis subscription; reconnecting");
            }
            Ok(Err(error)) => {
                tracing::debug!(error = %redis_conn::describe(&error), "SSE session directory cannot subscribe");
            }
            Err(_) => tracing::debug!("SSE session directory subscription timed out"),
        }
        tokio::select! {
            () = shared.tasks.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Refreshes the records of the sessions held here every third of their TTL, and at once
/// when Redis has lost them: every `ping_interval` it sets a marker key of this replica with
/// `NX`, and a marker that had to be created means Redis restarted empty (the subscription
/// may come back by itself without this replica noticing a reconnect).
async fn refresh_forever(shared: Arc<Shared>) {
    let marker = format!("{}:present", shared.channel);
    let full_every = shared.config.record_ttl / 3;
    let mut every = tokio::time::interval(shared.config.ping_interval.min(full_every));
    every.tick().await;
    let mut last_full = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = shared.tasks.cancelled() => return,
            _ = every.tick() => {}
        }
        let lost = match shared
            .query::<Option<String>>(
                redis::cmd("SET")
                    .arg(&marker)
                    .arg("1")
                    .arg("NX")
                    .arg("PX")
                    .arg(shared.config.record_ttl.as_millis() as u64),
            )
            .await
        {
            Ok(created) => created.is_some(),
            Err(_) => continue,
        };
        if !lost && last_full.elapsed() < full_every {
            continue;
        }
        match shared.announce_all().await {
            Ok(()) => {
                last_full = tokio::time::Instant::now();
                let _ = shared
                    .query::<()>(
                        redis::cmd("PEXPIRE")
                            .arg(&marker)
                            .arg(shared.config.record_ttl.as_millis() as u64),
                    )
                    .await;
            }
            Err(error) => {
                tracing::debug!(%error, "could not refresh SSE session records");
            }
        }
    }
}

#[async_trait::async_trait]
impl SessionDirectory for RedisDirectory {
    async fn register(
        &self,
        session: SessionId,
        owner: IdentityKey,
        inbox: Inbox,
    ) -> Result<(), DeliveryError> {
        let shared = &self.shared;
        let Some(record) = shared.record_cmd(&session, &owner) else {
            return Err(DeliveryError::Unavailable(
                "cannot encode the session record".to_owned(),
            ));
        };
        shared
            .lock_local()
            .insert(session.clone(), Entry { owner, inbox });
        // A stream other replicas cannot reach would fail most of its POSTs behind a
        // round-robin balancer: refuse it (503) while Redis is away.
        if let Err(error) = shared.query::<()>(&record).await {
            shared.lock_local().remove(&session);
            return Err(error);
        }
        Ok(())
    }

    async fn unregister(&self, session: &SessionId) {
        let shared = &self.shared;
        if shared.lock_local().remove(session).is_none() {
            return;
        }
        if let Err(error) = shared
            .query::<i64>(redis::cmd("DEL").arg(shared.key(session)))
            .await
        {
            // Other replicas find the holder no longer knows it (NotFound) until it expires.
            tracing::debug!(%error, %session, "could not remove an SSE session record");
        }
    }

    async fn deliver(
        &self,
        session: &SessionId,
        sender: &IdentityKey,
        delivery: Delivery,
    ) -> Result<(), DeliveryError> {
        let local = self.shared.lock_local().get(session).map(|entry| {
            (entry.owner == *sender && !entry.inbox.is_closed()).then(|| entry.inbox.clone())
        });
        match local {
            Some(Some(inbox)) => inbox.push(delivery).await,
            Some(None) => Err(DeliveryError::NotFound),
            None => self.shared.deliver_remote(session, sender, delivery).await,
        }
    }
}
