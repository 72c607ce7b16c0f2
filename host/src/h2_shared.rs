//! What both sides of the proxy (client connections and upstream connections) share of
//! HTTP/2: a received stream (a client's request, an upstream's response) read as an
//! `http_body::Body`, releasing its bytes to the stream's window as they are taken; a
//! body's frames handed to a sending stream, as its window allows, and the reason to reset
//! it with when the body fails; keepalive pings that find a peer gone silent.

use crate::proxy::BodyError;
use bytes::Bytes;
use h2::{Reason, RecvStream, SendStream};
use http_body::{Body, Frame};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

/// The body of a received HTTP/2 stream: its data frames, then its trailers.
#[derive(Debug)]
pub struct RecvBody {
    stream: RecvStream,
    state: Reading,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    Data,
    Trailers,
    Done,
}

impl RecvBody {
    /// Reads `stream`.
    pub fn new(stream: RecvStream) -> RecvBody {
        RecvBody {
            stream,
            state: Reading::Data,
        }
    }

    /// The bytes of data h2 has received on the stream and not yet handed out (its
    /// received bytes not yet released: a frame's bytes are released as it is taken).
    pub fn buffered(&mut self) -> usize {
        self.stream.flow_control().used_capacity()
    }
}

impl Body for RecvBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let this = self.get_mut();
        if this.state == Reading::Data {
            match ready!(this.stream.poll_data(cx)) {
                Some(Ok(data)) => {
                    // The proxy passes the bytes on at once: the peer may send more.
                    let _ = this.stream.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(err)) => {
                    this.state = Reading::Done;
                    return Poll::Ready(Some(Err(err)));
                }
                None => this.state = Reading::Trailers,
            }
        }
        if this.state == Reading::Done {
            return Poll::Ready(None);
        }
        let trailers = ready!(this.stream.poll_trailers(cx));
        this.state = Reading::Done;
        match trailers {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(err) => Poll::Ready(Some(Err(err))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == Reading::Done || self.stream.is_end_stream()
    }
}

/// The reason to reset a stream with for a failed body: the HTTP/2 reason found in the
/// error (a peer's reset, the proxy's cancel), else `INTERNAL_ERROR`.
fn reset_reason(err: &(dyn std::error::Error + 'static)) -> Reason {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if let Some(h2) = err.downcast_ref::<h2::Error>()
            && let Some(reason) = h2.reason()
        {
            return reason;
        }
        cause = err.source();
    }
    Reason::INTERNAL_ERROR
}

/// What handing one polled body frame to a stream came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Sent this many bytes; the body goes on.
    More(usize),
    /// Nothing more to send: the body ended or failed, or the stream is gone.
    Done,
}

/// A stream a body is sent on, the next frame taken from the body only when the stream has
/// send window (a slow reader holds the sender's peer back, not the proxy's memory).
#[derive(Debug)]
pub struct BodySender {
    stream: SendStream<Bytes>,
    /// The stream had send window when last looked at, and nothing was sent since: the
    /// next frame may be taken without asking h2 again.
    window_open: bool,
}

impl BodySender {
    /// Sends on `stream`.
    pub fn new(stream: SendStream<Bytes>) -> BodySender {
        BodySender {
            stream,
            window_open: false,
        }
    }

    /// Ready with true once the stream has send window for at least a byte; with false
    /// once it no longer sends (ended, reset, or its connection lost).
    fn poll_window(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        if self.window_open {
            return Poll::Ready(true);
        }
        self.stream.reserve_capacity(1);
        if self.stream.capacity() == 0 {
            loop {
                match ready!(self.stream.poll_capacity(cx)) {
                    Some(Ok(0)) => {}
                    Some(Ok(_)) => break,
                    Some(Err(_)) | None => return Poll::Ready(false),
                }
            }
        }
        self.window_open = true;
        Poll::Ready(true)
    }

    /// Hands what `body` just gave (`polled`) to the stream: data (ending the stream if
    /// the body says it has ended), trailers, the end (an empty data frame ending the
    /// stream), or an error (a reset with the reason found in it). h2 queues data beyond
    /// the stream's window; what was sent may have used the window up, so the next
    /// `BodySender::poll_window` looks again.
    pub fn send<B: Body>(
        &mut self,
        body: &B,
        polled: Option<Result<Frame<Bytes>, BodyError>>,
    ) -> Sent {
        self.window_open = false;
        let stream = &mut self.stream;
        match polled {
            None => {
                // Ended without END_STREAM on its last data frame: an empty one ends it.
                let _ = stream.send_data(Bytes::new(), true);
                Sent::Done
            }
            Some(Err(err)) => {
                // A peer's reset carries its reason on; a call ended in the proxy cancels.
                stream.send_reset(reset_reason(&*err));
                Sent::Done
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    let end = body.is_end_stream();
                    let len = data.len();
                    match stream.send_data(data, end) {
                        Ok(()) if !end => Sent::More(len),
                        // Ended, or the stream is gone (reset, connection lost).
                        _ => Sent::Done,
                    }
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        let _ = stream.send_trailers(trailers);
                    }
                    Sent::Done
                }
            },
        }
    }

    /// Sends `body` until it is done with (ended, failed, or the stream no longer sends),
    /// taking each frame only once the stream has window for it. While the body has
    /// nothing ready, `waiting` says whether the peer's reset of the stream also ends it.
    pub fn poll_pump<B>(&mut self, body: &mut B, cx: &mut Context<'_>, waiting: Waiting) -> Poll<()>
    where
        B: Body<Data = Bytes, Error = BodyError> + Unpin,
    {
        loop {
            if !ready!(self.poll_window(cx)) {
                return Poll::Ready(());
            }
            let polled = match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Ready(polled) => polled,
                Poll::Pending => {
                    if waiting == Waiting::WatchReset
                        && let Poll::Ready(reset) = self.stream.poll_reset(cx)
                    {
                        tracing::debug!("peer reset a stream while its body waited: {reset:?}");
                        return Poll::Ready(());
                    }
                    return Poll::Pending;
                }
            };
            if self.send(body, polled) == Sent::Done {
                return Poll::Ready(());
            }
        }
    }
}

/// What a [`BodySender::poll_pump`] watches while its body has nothing ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// Only the body: it ends by itself once its call is over.
    OnBody,
    /// The body and the stream: the peer's reset ends the sending (and with it the call).
    WatchReset,
}

/// Pings the peer of a connection every `interval` (the first after one interval) and
/// completes, with the reason, once a ping goes unanswered for `timeout` or fails. Pending
/// forever without `ping_pong` (taken already) or without an interval. The connection must
/// be driven meanwhile (the ping goes out and the pong comes in through it).
pub async fn silent_peer(
    ping_pong: Option<h2::PingPong>,
    interval: Option<Duration>,
    timeout: Duration,
) -> String {
    let (Some(mut ping_pong), Some(interval)) = (ping_pong, interval) else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(interval).await;
        match tokio::time::timeout(timeout, ping_pong.ping(h2::Ping::opaque())).await {
            Ok(Ok(_pong)) => {}
            Ok(Err(err)) => return format!("keepalive ping failed: {err}"),
            Err(_) => return format!("no keepalive pong within {timeout:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::reset_reason;
    use h2::Reason;

    #[test]
    fn a_body_error_resets_with_the_reason_inside_it() {
        let cancel: crate::proxy::BodyError = Box::new(h2::Error::from(Reason::CANCEL));
        assert_eq!(reset_reason(&*cancel), Reason::CANCEL);
        let other: crate::proxy::BodyError = "broken".into();
        assert_eq!(reset_reason(&*other), Reason::INTERNAL_ERROR);
        // Wrapped in another error: the reason is found in its sources.
        #[derive(Debug, thiserror::Error)]
        #[error("wrapped")]
        struct Wrapped(#[source] h2::Error);
        let wrapped: crate::proxy::BodyError = Box::new(Wrapped(Reason::STREAM_CLOSED.into()));
        assert_eq!(reset_reason(&*wrapped), Reason::STREAM_CLOSED);
    }
}
