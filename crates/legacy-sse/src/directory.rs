//! Finding the stream a POST is for, and handing it the POST's messages.
//!
//! This is the seam for running several replicas: a POST may land on a replica other than
//! the one holding the stream. [`LocalDirectory`] knows the streams of this process only;
//! `RedisDirectory` (feature `redis`) publishes the delivery on the holding replica's
//! channel and lets that replica push it into its [`Inbox`].

use std::collections::HashMap;
use std::sync::Mutex;

use rmcp::model::{ClientJsonRpcMessage, GetExtensions, JsonRpcMessage};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::identity::IdentityKey;
use crate::session::SessionId;

/// The messages of one POST, with the HTTP request they came in.
///
/// `parts` is the POST's `http::request::Parts` (its extensions hold what the layers in
/// front put there, e.g. the authenticated caller). A directory that carries deliveries to
/// another process cannot carry those extensions: the receiving side has to rebuild them
/// (authenticate the forwarded headers again) before pushing into the [`Inbox`].
#[derive(Debug)]
pub struct Delivery {
    pub parts: http::request::Parts,
    pub messages: Vec<ClientJsonRpcMessage>,
}

/// Why a delivery did not happen. Each maps to one HTTP answer to the POST.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// No such session here: unknown, ended, or owned by another identity. Answered 404 in
    /// every case, so nothing tells a caller that someone else's session exists.
    #[error("no such session")]
    NotFound,
    /// The session is closing because the server is shutting down: 503, try again (on a
    /// new stream, which the client opens when this one closes).
    #[error("the session is closing: the server is shutting down")]
    ShuttingDown,
    /// The directory itself failed (e.g. a shared store is unreachable): 503.
    #[error("session directory unavailable: {0}")]
    Unavailable(String),
}

/// Where sessions are registered and deliveries routed.
#[async_trait::async_trait]
pub trait SessionDirectory: Send + Sync + 'static {
    /// A stream opened in this process: make its session reachable for `owner`.
    async fn register(
        &self,
        session: SessionId,
        owner: IdentityKey,
        inbox: Inbox,
    ) -> Result<(), DeliveryError>;

    /// The stream closed: the session is gone.
    async fn unregister(&self, session: &SessionId);

    /// Hands a POST's messages to the session's service, wherever its stream is held.
    /// `sender` is the identity of the POST; a session owned by another identity is
    /// [`DeliveryError::NotFound`].
    async fn deliver(
        &self,
        session: &SessionId,
        sender: &IdentityKey,
        delivery: Delivery,
    ) -> Result<(), DeliveryError>;
}

/// The input side of one session: messages pushed here are what its service receives.
#[derive(Clone)]
pub struct Inbox {
    // Boxed: a channel allocates room for 32 messages up front, and a message is ~360
    // bytes inline; with thousands of idle streams that adds up.
    tx: mpsc::Sender<Box<ClientJsonRpcMessage>>,
    /// Cancelled when the server starts shutting down: new messages are refused.
    draining: CancellationToken,
    /// Cancelled when the session ends.
    stop: CancellationToken,
}

impl Inbox {
    pub(crate) fn new(
        tx: mpsc::Sender<Box<ClientJsonRpcMessage>>,
        draining: CancellationToken,
        stop: CancellationToken,
    ) -> Self {
        Self { tx, draining, stop }
    }

    /// Queues the messages for the service, each request and notification carrying the
    /// POST's `Parts` in its extensions. Waits while the service is behind (bounded queue).
    pub async fn push(&self, delivery: Delivery) -> Result<(), DeliveryError> {
        let Delivery { parts, messages } = delivery;
        for mut message in messages {
            if self.stop.is_cancelled() || self.tx.is_closed() {
                return Err(DeliveryError::NotFound);
            }
            if self.draining.is_cancelled() {
                return Err(DeliveryError::ShuttingDown);
            }
            match &mut message {
                JsonRpcMessage::Request(request) => {
                    request.request.extensions_mut().insert(parts.clone());
                }
                JsonRpcMessage::Notification(notification) => {
                    notification
                        .notification
                        .extensions_mut()
                        .insert(parts.clone());
                }
                // Replies to the server's own requests need no caller.
                JsonRpcMessage::Response(_) | JsonRpcMessage::Error(_) => {}
            }
            tokio::select! {
                sent = self.tx.send(Box::new(message)) => sent.map_err(|_| DeliveryError::NotFound)?,
                () = self.stop.cancelled() => return Err(DeliveryError::NotFound),
            }
        }
        Ok(())
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.stop.is_cancelled() || self.tx.is_closed()
    }
}

struct Entry {
    owner: IdentityKey,
    inbox: Inbox,
}

/// The sessions of this process, in a map.
#[derive(Default)]
pub struct LocalDirectory {
    sessions: Mutex<HashMap<SessionId, Entry>>,
}

impl LocalDirectory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registered sessions (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Entry>> {
        // A panic while holding this lock cannot leave the map inconsistent (every
        // operation is a single insert, remove or lookup), so a poisoned lock is still usable.
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl SessionDirectory for LocalDirectory {
    async fn register(
        &self,
        session: SessionId,
        owner: IdentityKey,
        inbox: Inbox,
    ) -> Result<(), DeliveryError> {
        self.lock().insert(session, Entry { owner, inbox });
        Ok(())
    }

    async fn unregister(&self, session: &SessionId) {
        self.lock().remove(session);
    }

    async fn deliver(
        &self,
        session: &SessionId,
        sender: &IdentityKey,
        delivery: Delivery,
    ) -> Result<(), DeliveryError> {
        let inbox = match self.lock().get(session) {
            Some(entry) if &entry.owner == sender && !entry.inbox.is_closed() => {
                entry.inbox.clone()
            }
            _ => return Err(DeliveryError::NotFound),
        };
        inbox.push(delivery).await
    }
}
