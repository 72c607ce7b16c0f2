//! The body sent upstream: the client's request body, forwarded raw or through the message
//! stage. A de-framing error ends the call (the client gets the status through the call
//! link) and resets the upstream stream; so does the response side going away.

use super::link::RequestLink;
use super::message::MessageStage;
use crate::grpc::counter::MessageCounter;
use crate::h2_shared::RecvBody;
use crate::plugin::BodyHook;
use bytes::Bytes;
use http_body::{Body, Frame};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};

/// Error type of proxy bodies; the stream is reset with the HTTP/2 reason found in it (by
/// the response pump towards the client, by the upstream pump towards the upstream).
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// The request body forwarded to the upstream.
#[derive(Debug)]
pub struct RequestBody {
    inner: RecvBody,
    stage: Option<Box<MessageStage>>,
    frame_hook: Option<BodyHook>,
    link: RequestLink,
    /// Counts the body into the call link's tally, when asked to.
    tally: Option<MessageCounter>,
    /// Told when the body has ended: request-only plugins then leave the call.
    plugins: Option<BodyHook>,
    /// What [`RequestBody::prefetch`] polled, handed out by the next `poll_frame`.
    prefetched: Option<Option<Result<Frame<Bytes>, BodyError>>>,
}

impl RequestBody {
    /// Forwards `inner`'s frames as they come, through the plugins' frame hooks if given.
    pub fn raw(inner: RecvBody, frame_hook: Option<BodyHook>, link: RequestLink) -> RequestBody {
        RequestBody {
            inner,
            stage: None,
            frame_hook,
            link,
            tally: None,
            plugins: None,
            prefetched: None,
        }
    }

    /// Forwards `inner` message by message through `stage`.
    pub fn message(inner: RecvBody, stage: MessageStage, link: RequestLink) -> RequestBody {
        RequestBody {
            inner,
            stage: Some(Box::new(stage)),
            frame_hook: None,
            link,
            tally: None,
            plugins: None,
            prefetched: None,
        }
    }
}

impl RequestBody {
    /// Counts the client's body bytes and messages into the call link's tally.
    pub fn count(mut self) -> RequestBody {
        self.tally = Some(MessageCounter::default());
        self
    }

    /// Tells `plugins` when the body has ended (its last frame polled, an error, or the
    /// body given up), so plugins that want request hooks only leave the call then.
    pub fn release_when_done(mut self, plugins: Option<BodyHook>) -> RequestBody {
        self.plugins = plugins;
        self
    }

    /// Polls the body once, from the call's own task before it goes upstream, and keeps
    /// what came for the upstream client's first poll. A unary request has usually
    /// arrived whole with its headers: its message then runs through the plugins at once
    /// and request-only plugins leave the call before it waits for the upstream (an
    /// instance serves one call for microseconds, not for a round trip, so a few warm
    /// instances serve every call instead of one cold instance per call in flight).
    pub fn prefetch(&mut self, cx: &mut Context<'_>) {
        if self.prefetched.is_none()
            && let Poll::Ready(polled) = self.poll_noting_end(cx)
        {
            self.prefetched = Some(polled);
        }
    }

    fn poll_noting_end(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let polled = ready!(self.poll_next(cx));
        // `is_end_stream` locks the client connection's stream store: asked only when
        // there are plugins to release.
        if self.plugins.is_some() && (!matches!(polled, Some(Ok(_))) || self.is_end_stream()) {
            self.release_plugins();
        }
        Poll::Ready(polled)
    }

    fn release_plugins(&mut self) {
        if let Some(plugins) = self.plugins.take() {
            plugins.request_ended();
        }
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        self.release_plugins();
    }
}

fn cancel() -> BodyError {
    Box::new(h2::Error::from(h2::Reason::CANCEL))
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        match this.prefetched.take() {
            Some(polled) => Poll::Ready(polled),
            None => this.poll_noting_end(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.prefetched {
            Some(polled) => polled.is_none(),
            // The upstream pump sends END_STREAM with the last data when this says so,
            // without polling again: a held-back error or a partial message must get that
            // last poll.
            None => {
                self.inner.is_end_stream() && self.stage.as_ref().is_none_or(|s| s.is_settled())
            }
        }
    }
}

impl RequestBody {
    /// The next frame for the upstream: the client's, through the message stage or the
    /// frame hooks.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        loop {
            if let Some(status) = self.stage.as_mut().and_then(|s| s.take_error()) {
                self.link.abort(status);
                return Poll::Ready(Some(Err(cancel())));
            }
            let polled = Pin::new(&mut self.inner).poll_frame(cx);
            let frame = match polled {
                Poll::Pending => {
                    // Nothing from the client: has the call ended on the response side?
                    ready!(self.link.poll_response_gone(cx));
                    return Poll::Ready(Some(Err(cancel())));
                }
                // A client reset carries its HTTP/2 reason on to the upstream.
                Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(Box::new(err)))),
                Poll::Ready(None) => {
                    if let Some(stage) = &self.stage
                        && let Err(status) = stage.on_end()
                    {
                        self.link.abort(status);
                        return Poll::Ready(Some(Err(cancel())));
                    }
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            if let (Some(counter), Some(data)) = (&mut self.tally, frame.data_ref()) {
                let tally = self.link.tally();
                tally.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                let messages = counter.feed(data);
                if messages > 0 {
                    tally.messages.fetch_add(messages, Ordering::Relaxed);
                }
            }
            let Some(stage) = &mut self.stage else {
                let Some(hook) = &self.frame_hook else {
                    return Poll::Ready(Some(Ok(frame)));
                };
                match frame.into_data() {
                    Ok(data) => match hook.frame(data) {
                        Ok(Some(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                        Ok(None) => continue,
                        Err(status) => {
                            self.link.abort(status);
                            return Poll::Ready(Some(Err(cancel())));
                        }
                    },
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                }
            };
            match frame.into_data() {
                Ok(chunk) => match stage.on_data(chunk) {
                    Ok(Some(out)) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                    Ok(None) => continue,
                    Err(status) => {
                        self.link.abort(status);
                        return Poll::Ready(Some(Err(cancel())));
                    }
                },
                Err(frame) => return Poll::Ready(Some(Ok(frame))),
            }
        }
    }
}
