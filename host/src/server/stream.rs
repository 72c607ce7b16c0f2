//! One client stream (one call), in a task of its own: the proxy handles the request while
//! the stream is watched for the client's reset (which drops the call, cancelling it
//! upstream), then the response goes out: headers, then the body's frames as the stream's
//! window lets them (watched for the client's reset meanwhile), then trailers. A body
//! error resets the stream with its HTTP/2 reason.

use super::connection::OpenCall;
use crate::h2_shared::{BodySender, RecvBody, Waiting};
use crate::proxy::Proxy;
use bytes::Bytes;
use h2::server::SendResponse;
use http::{Request, Response};
use http_body::Body as _;
use std::sync::Arc;

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
    let (parts, mut body) = response.into_parts();
    let end = body.is_end_stream();
    let stream = match respond.send_response(Response::from_parts(parts, ()), end) {
        Ok(stream) => stream,
        Err(err) => {
            tracing::debug!("cannot send a response: {err}");
            return;
        }
    };
    if !end {
        // Sent as the stream's window allows (a slow client holds the upstream back, not
        // the proxy's memory); the client's reset while the upstream is quiet ends the call.
        let mut sender = BodySender::new(stream);
        std::future::poll_fn(|cx| sender.poll_pump(&mut body, cx, Waiting::WatchReset)).await;
    }
    drop(open);
}
