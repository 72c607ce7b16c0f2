//! One client stream (one call), in a task of its own: the proxy handles the request while
//! the stream is watched for the client's reset (which drops the call, cancelling it
//! upstream), then the response goes out: headers, then the body's frames as the stream's
//! window lets them, then trailers. A body error resets the stream with its HTTP/2 reason.

use super::connection::OpenCall;
use crate::h2_shared::{RecvBody, reset_reason};
use crate::proxy::{BodyError, Proxy, ResponseBody};
use bytes::Bytes;
use h2::SendStream;
use h2::server::SendResponse;
use http::{Request, Response};
use http_body::{Body, Frame};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

/// Serves one stream the client opened; `open` is held until the stream is done with.
pub(super) async fn serve(
    proxy: Arc<Proxy>,
    request: Request<h2::RecvStream>,
    mut respond: SendResponse<Bytes>,
    open: OpenCall,
) {
    let handling = proxy.handle(request.map(RecvBody::new));
    let response = tokio::select! {
        biased;
        response = handling => response,
        reset = std::future::poll_fn(|cx| respond.poll_reset(cx)) => {
            // Dropping the call's future ends the call, upstream too.
            tracing::debug!("client reset a call before its response: {reset:?}");
            return;
        }
    };
    let (parts, body) = response.into_parts();
    let end = body.is_end_stream();
    let stream = match respond.send_response(Response::from_parts(parts, ()), end) {
        Ok(stream) => stream,
        Err(err) => {
            tracing::debug!("cannot send a response: {err}");
            return;
        }
    };
    if !end {
        ResponsePump {
            body,
            stream,
            window_open: false,
        }
        .await;
    }
    drop(open);
}

/// Sends a response body on its stream, taking the next frame from the body only when the
/// stream has send window (a slow client holds the upstream back, not the proxy's memory).
struct ResponsePump {
    body: ResponseBody,
    stream: SendStream<Bytes>,
    /// The stream had send window when last looked at, and nothing was sent since.
    window_open: bool,
}

impl ResponsePump {
    /// Hands one polled frame to the stream; false when nothing more is to be sent.
    fn forward(&mut self, polled: Option<Result<Frame<Bytes>, BodyError>>) -> bool {
        match polled {
            None => {
                // Ended without END_STREAM on its last frame: an empty data frame ends it.
                let _ = self.stream.send_data(Bytes::new(), true);
                false
            }
            Some(Err(err)) => {
                self.stream.send_reset(reset_reason(&*err));
                false
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    let end = self.body.is_end_stream();
                    self.stream.send_data(data, end).is_ok() && !end
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        let _ = self.stream.send_trailers(trailers);
                    }
                    false
                }
            },
        }
    }
}

impl Future for ResponsePump {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            if !this.window_open {
                this.stream.reserve_capacity(1);
                if this.stream.capacity() == 0 {
                    loop {
                        match ready!(this.stream.poll_capacity(cx)) {
                            Some(Ok(0)) => {}
                            Some(Ok(_)) => break,
                            // Not sending any more: reset by the client or connection lost.
                            Some(Err(_)) | None => return Poll::Ready(()),
                        }
                    }
                }
                this.window_open = true;
            }
            let polled = match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(polled) => polled,
                Poll::Pending => {
                    // Waiting on the upstream: a reset from the client ends the call.
                    return match this.stream.poll_reset(cx) {
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(reset) => {
                            tracing::debug!("client reset a call while it streamed: {reset:?}");
                            Poll::Ready(())
                        }
                    };
                }
            };
            if !this.forward(polled) {
                return Poll::Ready(());
            }
            // What was sent may have used the window up: look again before the next frame.
            this.window_open = false;
        }
    }
}
