//! What travels through Redis: the session record (a key per session) and the messages on
//! each replica's channel (a delivery, and the holder's answer to it).

use rmcp::model::ClientJsonRpcMessage;
use serde::{Deserialize, Serialize};

use super::forward::ForwardedRequest;
use crate::directory::DeliveryError;

/// `<prefix>:session:<id>`: where a session's stream is held and whose it is.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SessionRecord {
    /// The holding replica's channel.
    pub(crate) channel: String,
    /// The owner's [`IdentityKey`](crate::IdentityKey) text.
    pub(crate) owner: String,
}

/// A message on a replica's channel. Not `Debug`: a delivery holds the credential.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Envelope {
    /// A POST for a session this replica holds; answer on `reply_to` with `id`.
    Deliver {
        id: String,
        reply_to: String,
        session: String,
        sender: String,
        request: ForwardedRequest,
        messages: Vec<ClientJsonRpcMessage>,
    },
    /// The holder's answer to the delivery `id`.
    Answer { id: String, outcome: Outcome },
}

/// How a forwarded delivery ended, i.e. what the POST answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Outcome {
    Delivered,
    NotFound,
    ShuttingDown,
    Unavailable,
}

impl Outcome {
    pub(crate) fn of(result: &Result<(), DeliveryError>) -> Self {
        match result {
            Ok(()) => Self::Delivered,
            Err(DeliveryError::NotFound) => Self::NotFound,
            Err(DeliveryError::ShuttingDown) => Self::ShuttingDown,
            Err(DeliveryError::Unavailable(_)) => Self::Unavailable,
        }
    }

    pub(crate) fn into_result(self) -> Result<(), DeliveryError> {
        match self {
            Self::Delivered => Ok(()),
            Self::NotFound => Err(DeliveryError::NotFound),
            Self::ShuttingDown => Err(DeliveryError::ShuttingDown),
            Self::Unavailable => Err(DeliveryError::Unavailable(
                "the replica holding the stream could not deliver".to_owned(),
            )),
        }
    }
}
