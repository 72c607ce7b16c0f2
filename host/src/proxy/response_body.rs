//! The body sent back to the client: the upstream's response body (raw or through the
//! message stage) raced against the call's deadline and the request side's abort. Every
//! way a call can end turns into trailers with a gRPC status, except an upstream reset,
//! which is passed on as a reset with the same HTTP/2 reason.

use super::link::ResponseLink;
use super::message::MessageStage;
use super::observe::CallRecord;
use super::request_body::BodyError;
use crate::grpc::names::GRPC_STATUS;
use crate::grpc::{Code, Status};
use crate::h2_shared::RecvBody;
use crate::plugin::BodyHook;
use crate::upstream::InFlight;
use bytes::Bytes;
use http_body::{Body, Frame};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use tokio::time::Sleep;
use tokio_util::sync::WaitForCancellationFutureOwned;

/// The body of a response to the client.
#[derive(Debug)]
pub struct ResponseBody {
    state: State,
    call: Option<Box<Call>>,
    /// What the upstream body gave after the data frames coalesced into the last one
    /// (trailers, its end, an error), handed on at the next poll.
    stashed: Option<Option<Result<Frame<Bytes>, h2::Error>>>,
}

/// On the raw path, data frames already waiting are sent on as one, up to this size (the
/// HTTP/2 frame size every peer takes, so a joined frame goes out as one frame): fewer,
/// larger HTTP/2 frames for streams of small messages. Nothing waits for more.
const COALESCE_BYTES: usize = 16 * 1024;

/// What a response body keeps of its call, in one allocation: the guard until the body
/// ends, the record until the body is dropped.
#[derive(Debug, Default)]
struct Call {
    guard: Option<CallGuard>,
    record: Option<CallRecord>,
}

/// What a streaming response holds until it ends.
#[derive(Debug)]
pub struct CallGuard {
    /// The link to the request side.
    pub link: ResponseLink,
    /// The call's deadline, if it has one.
    pub deadline: Option<Pin<Box<Sleep>>>,
    /// Whether a shutdown's drain timeout has passed.
    pub drain: DrainWait,
    /// Counts the call on its endpoint.
    pub in_flight: InFlight,
    /// The method, for log lines.
    pub method: super::method::MethodName,
    /// The plugins' response frame hooks (raw path), if any plugin wants them.
    pub frame_hook: Option<BodyHook>,
    /// The plugins' trailers hook, if any plugin wants it.
    pub trailers_hook: Option<BodyHook>,
}

/// A call's wait on the shutdown's drain timeout. The flag (set before the drain wakes
/// anyone) is what a body with frames ready checks; the wait itself takes a lock every
/// call shares, so it is polled only when the body waits, and registered once per waker:
/// the body is polled from the same task message after message.
#[derive(Debug)]
pub struct DrainWait {
    /// Set when the drain timeout has passed.
    flag: Arc<AtomicBool>,
    wait: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The waker the wait last registered, while that registration stands.
    registered: Option<Waker>,
}

impl DrainWait {
    /// Wraps the call's wait (already polled by the call, from whichever task) and the
    /// flag set with it.
    pub fn new(flag: Arc<AtomicBool>, wait: Pin<Box<WaitForCancellationFutureOwned>>) -> DrainWait {
        DrainWait {
            flag,
            wait,
            registered: None,
        }
    }

    /// True once the drain timeout has passed (no lock).
    fn has_passed(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// True once the drain timeout has passed; else this task is woken when it does.
    fn poll_passed(&mut self, cx: &mut Context<'_>) -> bool {
        if self
            .registered
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()))
        {
            // Still registered for this task: the flag is set before the wake-up.
            return self.has_passed();
        }
        if self.wait.as_mut().poll(cx).is_ready() {
            return true;
        }
        self.registered = Some(cx.waker().clone());
        false
    }
}

#[derive(Debug)]
enum State {
    /// Nothing (more) to send.
    Done,
    /// One data frame (a plain HTTP error text), then done.
    Text(Bytes),
    /// Upstream frames, forwarded as they come.
    Raw(RecvBody),
    /// Upstream messages, de-framed and re-framed.
    Message(RecvBody, Box<MessageStage>),
}

impl Call {
    fn guarded(guard: CallGuard) -> Call {
        Call {
            guard: Some(guard),
            record: None,
        }
    }
}

impl ResponseBody {
    /// An empty body: the response headers end the stream (trailers-only responses).
    pub fn empty() -> ResponseBody {
        ResponseBody {
            state: State::Done,
            call: None,
            stashed: None,
        }
    }

    /// A body of one text chunk.
    pub fn text(text: &'static str) -> ResponseBody {
        ResponseBody {
            state: State::Text(Bytes::from_static(text.as_bytes())),
            call: None,
            stashed: None,
        }
    }

    /// The upstream body forwarded untouched.
    pub fn raw(inner: RecvBody, call: CallGuard) -> ResponseBody {
        ResponseBody {
            state: State::Raw(inner),
            call: Some(Box::new(Call::guarded(call))),
            stashed: None,
        }
    }

    /// The upstream body forwarded through the message stage.
    pub fn message(inner: RecvBody, stage: MessageStage, call: CallGuard) -> ResponseBody {
        ResponseBody {
            state: State::Message(inner, Box::new(stage)),
            call: Some(Box::new(Call::guarded(call))),
            stashed: None,
        }
    }

    /// Records the call (metrics, access log) as its frames go out; recorded on drop.
    pub fn observe(&mut self, record: CallRecord) {
        self.call.get_or_insert_with(Box::default).record = Some(record);
    }

    fn guard(&self) -> Option<&CallGuard> {
        self.call.as_ref()?.guard.as_ref()
    }

    fn guard_mut(&mut self) -> Option<&mut CallGuard> {
        self.call.as_mut()?.guard.as_mut()
    }

    /// The call is over: its guard goes (resetting the upstream stream if still open),
    /// its record stays until the body is dropped.
    fn end_call(&mut self) {
        if let Some(call) = &mut self.call {
            call.guard = None;
        }
    }

    /// The upstream has nothing ready: the call waits, and now also on the drain (a body
    /// with frames ready does not take its lock; the flag covers it).
    fn wait(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if let Some(call) = self.guard_mut()
            && call.drain.poll_passed(cx)
        {
            return self.end_with(&drain_passed());
        }
        Poll::Pending
    }

    /// Ends the call with `status` in the trailers, dropping (and so resetting) the
    /// upstream stream.
    fn end_with(&mut self, status: &Status) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if let Some(call) = self.guard() {
            tracing::info!(method = %call.method, endpoint = &**call.in_flight.endpoint(), code = ?status.code, "call ended by proxy: {}", status.message);
        }
        self.state = State::Done;
        self.end_call();
        Poll::Ready(Some(Ok(Frame::trailers(status.to_trailers()))))
    }

    fn upstream_failed(&mut self, err: h2::Error) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let reset = super::remote_reset(&err);
        if let Some(reason) = reset {
            // Pass a stream reset on as the same reset: the client maps it as it would
            // have mapped the upstream's own.
            if let Some(call) = self.guard() {
                tracing::info!(method = %call.method, endpoint = &**call.in_flight.endpoint(), ?reason, "upstream reset the stream");
            }
            self.state = State::Done;
            self.end_call();
            return Poll::Ready(Some(Err(Box::new(h2::Error::from(reason)))));
        }
        self.end_with(&Status::new(
            Code::Unavailable,
            format!("upstream connection lost: {err}"),
        ))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let polled = this.poll_next(cx);
        let record = this.call.as_mut().and_then(|call| call.record.as_mut());
        if let (Some(record), Poll::Ready(Some(Ok(frame)))) = (record, &polled) {
            if let Some(data) = frame.data_ref() {
                record.add_response_data(data);
            } else if let Some(status) = frame.trailers_ref().and_then(|t| t.get(&GRPC_STATUS)) {
                record.set_grpc_status(status.as_bytes());
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }
}

impl ResponseBody {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self;
        if let Some(call) = this.guard_mut() {
            if let Poll::Ready(status) = call.link.poll_abort(cx) {
                return this.end_with(&status);
            }
            if call.drain.has_passed() {
                return this.end_with(&drain_passed());
            }
            if let Some(deadline) = &mut call.deadline
                && deadline.as_mut().poll(cx).is_ready()
            {
                return this.end_with(&Status::new(
                    Code::DeadlineExceeded,
                    "deadline exceeded while the call was in the proxy",
                ));
            }
        }
        loop {
            let (inner, stage) = match &mut this.state {
                State::Done => return Poll::Ready(None),
                State::Text(text) => {
                    let text = std::mem::take(text);
                    this.state = State::Done;
                    return Poll::Ready(Some(Ok(Frame::data(text))));
                }
                State::Raw(inner) => (inner, None),
                State::Message(inner, stage) => {
                    if let Some(status) = stage.take_error() {
                        return this.end_with(&status);
                    }
                    (inner, Some(stage))
                }
            };
            let polled = match this.stashed.take() {
                Some(stashed) => Poll::Ready(stashed),
                None => Pin::new(&mut *inner).poll_frame(cx),
            };
            let frame = match polled {
                Poll::Pending => return this.wait(cx),
                Poll::Ready(Some(Err(err))) => return this.upstream_failed(err),
                Poll::Ready(None) => {
                    if let Some(stage) = stage
                        && let Err(status) = stage.on_end()
                    {
                        return this.end_with(&status);
                    }
                    this.state = State::Done;
                    this.end_call();
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            let frame = match frame.into_trailers() {
                Ok(mut trailers) => {
                    if let Some(stage) = stage
                        && let Err(status) = stage.on_end()
                    {
                        return this.end_with(&status);
                    }
                    if let Some(hook) = this.guard().and_then(|c| c.trailers_hook.as_ref())
                        && let Err(status) = hook.trailers(&mut trailers)
                    {
                        return this.end_with(&status);
                    }
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
                Err(frame) => frame,
            };
            let Some(stage) = stage else {
                // By field, not `guard()`: `inner` still borrows `state`.
                let guard = this.call.as_ref().and_then(|call| call.guard.as_ref());
                let Some(hook) = guard.and_then(|c| c.frame_hook.as_ref()) else {
                    return Poll::Ready(Some(Ok(coalesce(frame, inner, &mut this.stashed, cx))));
                };
                match frame.into_data() {
                    Ok(data) => match hook.frame(data) {
                        Ok(Some(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                        Ok(None) => continue,
                        Err(status) => return this.end_with(&status),
                    },
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                }
            };
            match frame.into_data() {
                Ok(chunk) => match stage.on_data(chunk) {
                    Ok(Some(out)) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                    Ok(None) => continue,
                    Err(status) => return this.end_with(&status),
                },
                Err(frame) => return Poll::Ready(Some(Ok(frame))),
            }
        }
    }
}

/// The status of calls still running when a shutdown's drain timeout passes.
fn drain_passed() -> Status {
    Status::new(
        Code::Unavailable,
        "sluice is shutting down: the drain timeout passed",
    )
}

/// Appends the data frames `inner` already has ready to `frame` (a data frame under
/// [`COALESCE_BYTES`]) while they fit in [`COALESCE_BYTES`] together; whatever else comes
/// first (a frame that does not fit, trailers, the end) is stashed for the next poll. The
/// joined frame gets room at once for what h2 holds ready, so it is never grown (a copy).
fn coalesce(
    frame: Frame<Bytes>,
    inner: &mut RecvBody,
    stashed: &mut Option<Option<Result<Frame<Bytes>, h2::Error>>>,
    cx: &mut Context<'_>,
) -> Frame<Bytes> {
    let first = match frame.into_data() {
        Ok(data) if data.len() < COALESCE_BYTES => data,
        Ok(data) => return Frame::data(data),
        Err(frame) => return frame,
    };
    let mut joined: Option<bytes::BytesMut> = None;
    loop {
        let len = joined.as_ref().map_or(first.len(), bytes::BytesMut::len);
        if len >= COALESCE_BYTES {
            break;
        }
        let next = match Pin::new(&mut *inner).poll_frame(cx) {
            Poll::Pending => break,
            Poll::Ready(Some(Ok(next))) => next,
            Poll::Ready(other) => {
                *stashed = Some(other);
                break;
            }
        };
        match next.into_data() {
            Ok(data) if len + data.len() <= COALESCE_BYTES => joined
                .get_or_insert_with(|| {
                    let ready = first.len() + data.len() + inner.buffered();
                    let mut buffer = bytes::BytesMut::with_capacity(ready.min(COALESCE_BYTES));
                    buffer.extend_from_slice(&first);
                    buffer
                })
                .extend_from_slice(&data),
            Ok(data) => {
                *stashed = Some(Some(Ok(Frame::data(data))));
                break;
            }
            Err(other) => {
                *stashed = Some(Some(Ok(other)));
                break;
            }
        }
    }
    Frame::data(joined.map_or(first, bytes::BytesMut::freeze))
}

#[cfg(test)]
mod tests {
    use super::DrainWait;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::task::{Context, Wake, Waker};
    use tokio_util::sync::CancellationToken;

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<CountingWaker>, Waker) {
        let count = Arc::new(CountingWaker::default());
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn the_drain_wakes_the_task_that_waited_last() {
        let token = CancellationToken::new();
        let flag = Arc::new(AtomicBool::new(false));
        let mut wait = DrainWait::new(flag.clone(), Box::pin(token.clone().cancelled_owned()));
        let (first, first_waker) = counting();
        let mut cx = Context::from_waker(&first_waker);
        assert!(!wait.poll_passed(&mut cx));
        assert!(!wait.poll_passed(&mut cx));
        // The body is now polled from another task: that task must be the one woken.
        let (second, second_waker) = counting();
        assert!(!wait.poll_passed(&mut Context::from_waker(&second_waker)));
        flag.store(true, Ordering::Release);
        token.cancel();
        assert_eq!(
            second.0.load(Ordering::SeqCst),
            1,
            "the last task to wait is woken"
        );
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert!(wait.poll_passed(&mut Context::from_waker(&second_waker)));
        let (_, third_waker) = counting();
        assert!(wait.poll_passed(&mut Context::from_waker(&third_waker)));
    }
}
