//! The body of an upstream response: the stream's data frames, then its trailers, as an
//! `http_body::Body`. Received bytes are released to the stream's window as they are taken.

use bytes::Bytes;
use h2::RecvStream;
use http_body::{Body, Frame};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

/// The body of a response from an upstream.
#[derive(Debug)]
pub struct UpstreamBody {
    stream: RecvStream,
    state: Reading,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    Data,
    Trailers,
    Done,
}

impl UpstreamBody {
    pub(super) fn new(stream: RecvStream) -> UpstreamBody {
        UpstreamBody {
            stream,
            state: Reading::Data,
        }
    }
}

impl Body for UpstreamBody {
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
                    // The proxy passes the bytes on at once: the upstream may send more.
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
