//! One client connection: its time limits and what its bytes say.
//!
//! A slow or idle client must not hold a connection (and its file
//! descriptor) for long, so each connection has a watchdog ([`watch`]) that
//! drops it when
//! - a request head is not complete within the header timeout (counted from
//!   the accept for the first request, from its first byte for later ones);
//! - a keep-alive connection carries no new request within the idle timeout;
//!
//! and a request body must arrive within the body timeout ([`TimedBody`]).
//! The stream is read through [`Watched`], which feeds each request head to
//! the [`HeadScanner`] so that ambiguous framing is refused (see
//! [`super::framing`]).

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::framing::{HeadScanner, Verdict};

/// How long clients may take; see the module doc.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// A request head must be complete within this.
    pub header_timeout: Duration,
    /// A request body must be complete within this of its first read.
    pub body_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed.
    pub idle_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
        }
    }
}

/// What a connection is doing, shared by its stream, its requests and its watchdog.
#[derive(Debug)]
pub struct Connection {
    state: Mutex<ConnectionState>,
}

#[derive(Debug)]
struct ConnectionState {
    scanner: HeadScanner,
    /// Requests being answered.
    in_flight: u32,
    /// Since when a head has been awaited with part of it here (or, for the
    /// first request, since the accept).
    head_since: Option<Instant>,
    /// Since when the connection has waited, with nothing of a next request.
    idle_since: Option<Instant>,
}

/// Why the watchdog closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The request head took longer than the header timeout.
    SlowHead,
    /// No request within the idle timeout.
    Idle,
}

impl Connection {
    /// A connection accepted now.
    pub fn accepted() -> Arc<Self> {
        let state = ConnectionState {
            scanner: HeadScanner::default(),
            in_flight: 0,
            head_since: Some(Instant::now()),
            idle_since: None,
        };
        Arc::new(Connection { state: Mutex::new(state) })
    }

    fn lock(&self) -> MutexGuard<'_, ConnectionState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read(&self, bytes: &mut [u8]) {
        let mut state = self.lock();
        state.scanner.feed(bytes);
        if state.scanner.in_head() && state.head_since.is_none() {
            state.head_since = Some(Instant::now());
            state.idle_since = None;
        }
    }

    /// A request's head is parsed: its framing verdict, and a guard that
    /// marks the request answered when dropped.
    pub fn request_started(self: &Arc<Self>) -> (Verdict, InFlight) {
        let mut state = self.lock();
        state.in_flight += 1;
        state.head_since = None;
        state.idle_since = None;
        // No verdict: the scanner stopped following (it refused or saw a
        // chunked body, and the connection closes after that answer).
        let verdict = state.scanner.next_verdict().unwrap_or(Verdict::Refused("request framing could not be read"));
        (verdict, InFlight(self.clone()))
    }

    /// Whether, and why, the connection has outstayed its limits at `now`.
    fn overdue(&self, limits: &ConnectionLimits, now: Instant) -> Option<Cut> {
        let state = self.lock();
        if state.in_flight > 0 {
            return None;
        }
        let over = |since: Option<Instant>, limit| since.is_some_and(|t| now.duration_since(t) > limit);
        if over(state.head_since, limits.header_timeout) {
            Some(Cut::SlowHead)
        } else if over(state.idle_since, limits.idle_timeout) {
            Some(Cut::Idle)
        } else {
            None
        }
    }
}

/// A request being answered; dropping it (answered, or abandoned by a
/// client that went away) starts the idle clock.
pub struct InFlight(Arc<Connection>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.in_flight == 0 && state.head_since.is_none() {
            state.idle_since = Some(Instant::now());
        }
    }
}

/// Resolves when the connection outstays its limits; the server then drops it.
pub async fn watch(connection: Arc<Connection>, limits: ConnectionLimits) -> Cut {
    let shortest = limits.header_timeout.min(limits.idle_timeout);
    let tick = (shortest / 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Some(cut) = connection.overdue(&limits, Instant::now()) {
            return cut;
        }
    }
}

/// A stream whose incoming bytes the connection sees on their way to hyper.
pub struct Watched<S> {
    inner: S,
    connection: Arc<Connection>,
}

impl<S> Watched<S> {
    /// Watches `inner` for `connection`.
    pub fn new(inner: S, connection: Arc<Connection>) -> Self {
        Watched { inner, connection }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let read = &mut buf.filled_mut()[before..];
            if !read.is_empty() {
                self.connection.read(read);
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body did not arrive within the body timeout.
    #[error("request body not received within {0:?}")]
    TimedOut(Duration),
    /// The connection failed or the chunked encoding is malformed.
    #[error(transparent)]
    Read(#[from] hyper::Error),
}

/// A request body that must arrive within a time limit. The timer is only
/// set when the body is not already there, so a request whose body came
/// with its head costs no timer.
pub struct TimedBody<B> {
    inner: B,
    started: Instant,
    limit: Duration,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> TimedBody<B> {
    /// `inner`, to be read within `limit` from now.
    pub fn new(inner: B, limit: Duration) -> Self {
        TimedBody { inner, started: Instant::now(), limit, deadline: None }
    }
}

impl<B: Body<Data = Bytes, Error = hyper::Error> + Unpin> Body for TimedBody<B> {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(BodyError::Read)));
        }
        let deadline = tokio::time::Instant::from_std(this.started + this.limit);
        let sleep = this.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyError::TimedOut(this.limit)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
