//! The rmcp transport of one session: input from the session's [`Inbox`](crate::Inbox),
//! output to the session's event stream through a bounded backlog.

use std::time::Duration;

use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::service::RoleServer;
use rmcp::transport::Transport;
use tokio::sync::mpsc::{
    self,
    error::{SendTimeoutError, TrySendError},
};
use tokio_util::sync::CancellationToken;

use crate::session::SessionId;

#[derive(Debug, thiserror::Error)]
pub(crate) enum TransportError {
    #[error("the client is not reading its stream; closing it")]
    NotReading,
    #[error("the stream has closed")]
    Closed,
}

pub(crate) struct SessionTransport {
    pub(crate) session: SessionId,
    pub(crate) inbound: mpsc::Receiver<Box<ClientJsonRpcMessage>>,
    /// Cancelled to end the input (graceful shutdown, once requests in flight are done).
    pub(crate) input_closed: CancellationToken,
    pub(crate) outbound: mpsc::Sender<Box<ServerJsonRpcMessage>>,
    /// How long a message may wait for room in the backlog.
    pub(crate) slow_reader_timeout: Duration,
    /// Cancelled to close the stream at once (here: when the client stopped reading).
    pub(crate) stop: CancellationToken,
}

impl Transport<RoleServer> for SessionTransport {
    type Error = TransportError;

    fn send(
        &mut self,
        item: ServerJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        // Queued at once while there is room, so messages keep their order. A full backlog
        // gets a bounded wait: a client that reads slowly catches up, one that stopped
        // reading is disconnected rather than buffered without bound.
        let waiting = match self.outbound.try_send(Box::new(item)) {
            Ok(()) => None,
            Err(TrySendError::Closed(_)) => Some(Err(TransportError::Closed)),
            Err(TrySendError::Full(item)) => Some(Ok((
                item,
                self.outbound.clone(),
                self.stop.clone(),
                self.slow_reader_timeout,
                self.session.clone(),
            ))),
        };
        async move {
            let (item, outbound, stop, timeout, session) = match waiting {
                None => return Ok(()),
                Some(Err(error)) => return Err(error),
                Some(Ok(waiting)) => waiting,
            };
            tokio::select! {
                sent = outbound.send_timeout(item, timeout) => match sent {
                    Ok(()) => Ok(()),
                    Err(SendTimeoutError::Timeout(_)) => {
                        tracing::warn!(%session, ?timeout, "client not reading its SSE stream; closing it");
                        stop.cancel();
                        Err(TransportError::NotReading)
                    }
                    Err(SendTimeoutError::Closed(_)) => Err(TransportError::Closed),
                },
                () = stop.cancelled() => Err(TransportError::Closed),
            }
        }
    }

    async fn receive(&mut self) -> Option<ClientJsonRpcMessage> {
        if !self.input_closed.is_cancelled() {
            tokio::select! {
                message = self.inbound.recv() => return message.map(|m| *m),
                () = self.input_closed.cancelled() => {}
            }
        }
        // Input closed: what was already accepted is still handled, then the input ends.
        self.inbound.close();
        self.inbound.recv().await.map(|m| *m)
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.inbound.close();
        Ok(())
    }
}
