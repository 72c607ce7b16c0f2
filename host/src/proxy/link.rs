//! The call link between the two directions of one call: the request side can end the
//! call with a status (a de-framing error, later a plugin reject), and the request side
//! learns when the response side has gone (finished, aborted, timed out or cancelled by
//! the client) so it resets the upstream stream instead of waiting on the client. It also
//! carries the tally of what the client sent, which the call's record reads at the end.

use super::observe::RequestTally;
use crate::grpc::Status;
use futures_util::task::AtomicWaker;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// What both halves share: one allocation per call.
#[derive(Debug, Default)]
struct Shared {
    /// The status the request side ended the call with, until the response side takes it.
    abort: Mutex<Option<Status>>,
    aborted: AtomicBool,
    response_gone: AtomicBool,
    /// Woken when the call is aborted.
    response_side: AtomicWaker,
    /// Woken when the response side goes.
    request_side: AtomicWaker,
    /// What the client sent, counted by the request side.
    tally: RequestTally,
}

/// The request side's half.
#[derive(Debug)]
pub struct RequestLink(Arc<Shared>);

/// The response side's half.
#[derive(Debug)]
pub struct ResponseLink(Arc<Shared>);

/// A read handle on the call's request tally, for the call's record: it outlives both
/// halves and tells neither side anything.
#[derive(Debug)]
pub struct TallyHandle(Arc<Shared>);

impl std::ops::Deref for TallyHandle {
    type Target = RequestTally;

    fn deref(&self) -> &RequestTally {
        &self.0.tally
    }
}

/// A linked pair for one call.
pub fn call_link() -> (RequestLink, ResponseLink) {
    let shared = Arc::new(Shared::default());
    (RequestLink(shared.clone()), ResponseLink(shared))
}

impl RequestLink {
    /// The call's request tally, to count into.
    pub fn tally(&self) -> &RequestTally {
        &self.0.tally
    }

    /// A handle on the tally for the call's record.
    pub fn tally_handle(&self) -> TallyHandle {
        TallyHandle(self.0.clone())
    }

    /// Ends the call towards the client with `status` (first call wins).
    pub fn abort(&mut self, status: Status) {
        if self.0.aborted.load(Ordering::Acquire) {
            return;
        }
        *self.0.abort.lock().unwrap_or_else(|p| p.into_inner()) = Some(status);
        self.0.aborted.store(true, Ordering::Release);
        self.0.response_side.wake();
    }

    /// Ready once the response side has been dropped.
    pub fn poll_response_gone(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.response_gone.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        self.0.request_side.register(cx.waker());
        if self.0.response_gone.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl ResponseLink {
    /// Ready with the status the request side ended the call with; pending forever if it
    /// finished without doing so (or once the status has been taken).
    pub fn poll_abort(&mut self, cx: &mut Context<'_>) -> Poll<Status> {
        if !self.0.aborted.load(Ordering::Acquire) {
            self.0.response_side.register(cx.waker());
        }
        self.take_abort().map_or(Poll::Pending, Poll::Ready)
    }

    /// The status the request side ended the call with, if it has (taken once); does not
    /// wait.
    pub fn take_abort(&mut self) -> Option<Status> {
        if !self.0.aborted.load(Ordering::Acquire) {
            return None;
        }
        self.0
            .abort
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

impl Drop for ResponseLink {
    fn drop(&mut self) {
        self.0.response_gone.store(true, Ordering::Release);
        self.0.request_side.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::Code;
    use futures_util::task::noop_waker;

    #[test]
    fn the_first_abort_reaches_the_response_side_once() {
        let (mut request, mut response) = call_link();
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(response.poll_abort(&mut cx).is_pending());
        request.abort(Status::new(Code::ResourceExhausted, "too big"));
        request.abort(Status::new(Code::Internal, "later"));
        match response.poll_abort(&mut cx) {
            Poll::Ready(status) => assert_eq!(status.code, Code::ResourceExhausted),
            Poll::Pending => panic!("abort not seen"),
        }
        assert!(response.poll_abort(&mut cx).is_pending(), "taken once");
    }

    #[test]
    fn take_abort_does_not_wait_and_takes_once() {
        let (mut request, mut response) = call_link();
        assert!(response.take_abort().is_none());
        request.abort(Status::new(Code::ResourceExhausted, "too big"));
        assert_eq!(
            response.take_abort().map(|s| s.code),
            Some(Code::ResourceExhausted)
        );
        assert!(response.take_abort().is_none(), "taken once");
    }

    #[test]
    fn the_request_side_learns_when_the_response_side_goes() {
        let (mut request, response) = call_link();
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(request.poll_response_gone(&mut cx).is_pending());
        drop(response);
        assert!(request.poll_response_gone(&mut cx).is_ready());
    }

    #[test]
    fn the_tally_handle_sees_the_counts_after_both_halves_go() {
        let (request, response) = call_link();
        let handle = request.tally_handle();
        request.tally().bytes.fetch_add(5, Ordering::Relaxed);
        drop((request, response));
        assert_eq!(handle.bytes.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn a_request_side_that_ends_without_abort_leaves_the_response_side_waiting() {
        let (request, mut response) = call_link();
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        drop(request);
        assert!(response.poll_abort(&mut cx).is_pending());
    }
}
