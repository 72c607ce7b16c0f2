//! What both sides of the proxy (client connections and upstream connections) share of
//! HTTP/2: a received stream (a client's request, an upstream's response) read as an
//! `http_body::Body`, releasing its bytes to the stream's window as they are taken; the
//! reason to reset a stream with; keepalive pings that find a peer gone silent.

use bytes::Bytes;
use h2::{Reason, RecvStream};
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
pub fn reset_reason(err: &(dyn std::error::Error + 'static)) -> Reason {
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
