//! Sends a call's request body on its upstream stream. What the body already holds goes
//! out from the call's own task when the stream opens (a unary request is usually complete
//! by then: no task, no channel); the rest is pumped by a task of its own that waits for
//! the stream's send window before taking more from the client.

use crate::h2_shared::reset_reason;
use crate::proxy::BodyError;
use bytes::Bytes;
use h2::SendStream;
use http_body::Body;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

/// Bytes sent from the call's task before the rest is left to a pump task (they are in
/// memory already; beyond this, the stream's window paces the client).
const INLINE_BYTES: usize = 64 * 1024;

/// A request body being sent on an upstream stream. The body must end or fail once its
/// call is over (the proxy's request body does when the response side goes): the pump
/// waits on it without watching the stream for resets.
pub(super) struct Pump<B> {
    body: B,
    stream: SendStream<Bytes>,
    /// The stream had send window when last looked at, and nothing was sent since: the
    /// next frame may be taken from the client without asking h2 again.
    window_open: bool,
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
            stream,
            window_open: false,
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
                Poll::Ready(polled) => match self.forward(polled) {
                    Step::More(bytes) => sent += bytes,
                    Step::Done => return true,
                },
            }
        }
        false
    }

    /// Hands one polled frame to the stream.
    fn forward(&mut self, polled: Option<Result<http_body::Frame<Bytes>, BodyError>>) -> Step {
        match polled {
            None => {
                // Ended without END_STREAM on its last data frame: an empty one ends it.
                let _ = self.stream.send_data(Bytes::new(), true);
                Step::Done
            }
            Some(Err(err)) => {
                // A client reset carries its reason on; a call ended in the proxy cancels.
                self.stream.send_reset(reset_reason(&*err));
                Step::Done
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    let end = self.body.is_end_stream();
                    let len = data.len();
                    match self.stream.send_data(data, end) {
                        Ok(()) if !end => Step::More(len),
                        // Ended, or the stream is gone (reset, connection lost).
                        _ => Step::Done,
                    }
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        let _ = self.stream.send_trailers(trailers);
                    }
                    Step::Done
                }
            },
        }
    }
}

enum Step {
    /// Sent this many bytes; the body goes on.
    More(usize),
    /// Nothing more to send.
    Done,
}

impl<B> Future for Pump<B>
where
    B: Body<Data = Bytes, Error = BodyError> + Unpin + Send + 'static,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            // Take more from the client only when the stream can send some of it.
            if !this.window_open {
                this.stream.reserve_capacity(1);
                if this.stream.capacity() == 0 {
                    loop {
                        match ready!(this.stream.poll_capacity(cx)) {
                            Some(Ok(0)) => {}
                            Some(Ok(_)) => break,
                            // The stream is no longer sending: ended, reset or its connection lost.
                            Some(Err(_)) | None => return Poll::Ready(()),
                        }
                    }
                }
                this.window_open = true;
            }
            // Waiting on the client, the stream is not watched for resets (that would also
            // wake this task on every change of its window): the call's body ends once its
            // response side is gone, which an upstream reset ends.
            let polled = ready!(Pin::new(&mut this.body).poll_frame(cx));
            if let Step::Done = this.forward(polled) {
                return Poll::Ready(());
            }
            // What was sent may have used the window up: look again before the next frame.
            this.window_open = false;
        }
    }
}
