//! Sends a call's request body on its upstream stream. What the body already holds goes
//! out from the call's own task when the stream opens (a unary request is usually complete
//! by then: no task, no channel); the rest is pumped by a task of its own that waits for
//! the stream's send window before taking more from the client.

use crate::h2_shared::{BodySender, Sent, Waiting};
use crate::proxy::BodyError;
use bytes::Bytes;
use h2::SendStream;
use http_body::Body;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Bytes sent from the call's task before the rest is left to a pump task (they are in
/// memory already; beyond this, the stream's window paces the client).
const INLINE_BYTES: usize = 64 * 1024;

/// A request body being sent on an upstream stream. The body must end or fail once its
/// call is over (the proxy's request body does when the response side goes): the pump
/// waits on it without watching the stream for resets.
pub(super) struct Pump<B> {
    body: B,
    sender: BodySender,
}

impl<B> std::fmt::Debug for Pump<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pump").finish_non_exhaustive()
    }
}

impl<B> Pump<B>
where
    B: Body<Data = Bytes, Error = BodyError> + Unpin + Send + 'static,
{
    pub fn new(body: B, stream: SendStream<Bytes>) -> Pump<B> {
        Pump {
            body,
            sender: BodySender::new(stream),
        }
    }

    /// Sends what the body has ready now (up to [`INLINE_BYTES`]); the rest, if any, is
    /// pumped by a task of its own.
    pub fn start(mut self) {
        let finished = std::future::poll_fn(|cx| Poll::Ready(self.send_ready(cx)));
        let finished = futures_util::FutureExt::now_or_never(finished).unwrap_or(false);
        if !finished {
            tokio::spawn(self);
        }
    }

    /// Forwards frames the body has ready, without waiting for the stream's window (h2
    /// queues them). True when the body is done with (ended, failed or the stream reset).
    fn send_ready(&mut self, cx: &mut Context<'_>) -> bool {
        let mut sent = 0;
        while sent < INLINE_BYTES {
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Pending => return false,
                Poll::Ready(polled) => match self.sender.send(&self.body, polled) {
                    Sent::More(bytes) => sent += bytes,
                    Sent::Done => return true,
                },
            }
        }
        false
    }
}

impl<B> Future for Pump<B>
where
    B: Body<Data = Bytes, Error = BodyError> + Unpin + Send + 'static,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // Waiting on the client, the stream is not watched for resets (that would also
        // wake this task on every change of its window): the call's body ends once its
        // response side is gone, which an upstream reset ends.
        this.sender.poll_pump(&mut this.body, cx, Waiting::OnBody)
    }
}
