//! One client stream (one call), in a task of its own: the proxy handles the request while
//! the stream is watched for the client's reset (which drops the call, cancelling it
//! upstream), then the response goes out: headers, then the body's frames as the stream's
//! window lets them, then trailers. A body error resets the stream with its HTTP/2 reason.

use super::connection::OpenCall;
use crate::h2_shared::{BodySender, RecvBody, Sent};
use crate::proxy::{Proxy, ResponseBody};
use bytes::Bytes;
use h2::server::SendResponse;
use http::{Request, Response};
use http_body::Body;
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
            sender: BodySender::new(stream),
        }
        .await;
    }
    drop(open);
}

/// Sends a response body on its stream as the stream's window allows (a slow client holds
/// the upstream back, not the proxy's memory), watching for the client's reset meanwhile.
struct ResponsePump {
    body: ResponseBody,
    sender: BodySender,
}

impl Future for ResponsePump {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            // Not sending any more: reset by the client, or the connection lost.
            if !ready!(this.sender.poll_window(cx)) {
                return Poll::Ready(());
            }
            let polled = match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(polled) => polled,
                Poll::Pending => {
                    // Waiting on the upstream: a reset from the client ends the call.
                    return match this.sender.stream_mut().poll_reset(cx) {
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(reset) => {
                            tracing::debug!("client reset a call while it streamed: {reset:?}");
                            Poll::Ready(())
                        }
                    };
                }
            };
            if this.sender.send(&this.body, polled) == Sent::Done {
                return Poll::Ready(());
            }
        }
    }
}
