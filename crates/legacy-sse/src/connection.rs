//! Closing a connection from inside a request, for streams whose client stopped reading.
//!
//! hyper polls a response body only when it can write, so a stream whose client stopped
//! reading is never polled again: it cannot notice it should end, and its connection stays
//! open as long as the client keeps it (TCP zero-window probes never time out). The fix is
//! below HTTP: [`Closable`] wraps the listener so every connection's I/O can be made to fail
//! on demand, and hands a [`ConnectionCloser`] to each request through axum's
//! `ConnectInfo`. The transport uses it, on HTTP/1 only (closing an HTTP/2 connection would
//! end other streams multiplexed on it), for a stream it has ended that is still stuck.
//!
//! ```no_run
//! # async fn run(app: axum::Router) -> std::io::Result<()> {
//! use legacy_sse::{Closable, ConnectionCloser};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! axum::serve(
//!     Closable::new(listener),
//!     app.into_make_service_with_connect_info::<ConnectionCloser>(),
//! )
//! .await
//! # }
//! ```
//!
//! An app that needs the peer address as `ConnectInfo<SocketAddr>` too (axum allows one
//! connect-info type) uses [`ClosableConnection`] and [`split_connect_info`]:
//!
//! ```no_run
//! # async fn run(app: axum::Router) -> std::io::Result<()> {
//! use std::net::SocketAddr;
//! use legacy_sse::{Closable, ClosableConnection, split_connect_info};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let app = app.layer(axum::middleware::from_fn(split_connect_info::<SocketAddr>));
//! axum::serve(
//!     Closable::new(listener),
//!     app.into_make_service_with_connect_info::<ClosableConnection<SocketAddr>>(),
//! )
//! .await
//! # }
//! ```

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::Response;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// A listener whose connections can be closed by the requests they carry.
pub struct Closable<L> {
    inner: L,
}

impl<L> Closable<L> {
    pub fn new(inner: L) -> Self {
        Self { inner }
    }
}

impl<L: Listener> Listener for Closable<L> {
    type Io = ClosableIo<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = self.inner.accept().await;
        (ClosableIo::new(io), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Closes the connection a request arrived on: its reads and writes fail from then on, and
/// the server drops it. Found in a request's extensions as `ConnectInfo<ConnectionCloser>`
/// when the app is served on a [`Closable`] listener, or as a plain extension after
/// [`split_connect_info`].
#[derive(Clone, Debug)]
pub struct ConnectionCloser(CancellationToken);

impl ConnectionCloser {
    pub fn close(&self) {
        self.0.cancel();
    }
}

impl<L: Listener> Connected<IncomingStream<'_, Closable<L>>> for ConnectionCloser {
    fn connect_info(stream: IncomingStream<'_, Closable<L>>) -> Self {
        ConnectionCloser(stream.io().token.clone())
    }
}

/// The peer address and the [`ConnectionCloser`] of a connection accepted by a
/// [`Closable`] listener, as one connect-info type.
#[derive(Clone, Debug)]
pub struct ClosableConnection<A> {
    pub remote_addr: A,
    pub closer: ConnectionCloser,
}

impl<L> Connected<IncomingStream<'_, Closable<L>>> for ClosableConnection<L::Addr>
where
    L: Listener,
    L::Addr: Clone + Send + Sync + 'static,
{
    fn connect_info(stream: IncomingStream<'_, Closable<L>>) -> Self {
        ClosableConnection {
            remote_addr: stream.remote_addr().clone(),
            closer: ConnectionCloser(stream.io().token.clone()),
        }
    }
}

/// Middleware: turns `ConnectInfo<ClosableConnection<A>>` into the `ConnectInfo<A>` the rest
/// of the app expects, plus a [`ConnectionCloser`] extension for this transport.
pub async fn split_connect_info<A>(mut request: Request, next: Next) -> Response
where
    A: Clone + Send + Sync + 'static,
{
    if let Some(ConnectInfo(connection)) = request
        .extensions()
        .get::<ConnectInfo<ClosableConnection<A>>>()
        .cloned()
    {
        request
            .extensions_mut()
            .insert(ConnectInfo(connection.remote_addr));
        request.extensions_mut().insert(connection.closer);
    }
    next.run(request).await
}

/// A connection's I/O that fails once its [`ConnectionCloser`] is used.
pub struct ClosableIo<T> {
    inner: T,
    token: CancellationToken,
    closed: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl<T> ClosableIo<T> {
    fn new(inner: T) -> Self {
        let token = CancellationToken::new();
        let closed = Box::pin(token.clone().cancelled_owned());
        Self {
            inner,
            token,
            closed,
        }
    }

    /// Ready with an error once closed; otherwise registers the waker, so a task blocked on
    /// this connection wakes up when it is closed.
    fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        match self.closed.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection closed by the server",
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ClosableIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Poll::Ready(error) = this.poll_closed(cx) {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ClosableIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Poll::Ready(error) = this.poll_closed(cx) {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Poll::Ready(error) = this.poll_closed(cx) {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Poll::Ready(error) = this.poll_closed(cx) {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
