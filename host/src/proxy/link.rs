//! The call link between the two directions of one call: the request side can end the
//! call with a status (a de-framing error, later a plugin reject), and the request side
//! learns when the response side has gone (finished, aborted, timed out or cancelled by
//! the client) so it resets the upstream stream instead of waiting on the client.

use crate::grpc::Status;
use std::task::{Context, Poll};
use tokio::sync::oneshot;

/// The request side's half.
#[derive(Debug)]
pub struct RequestLink {
    abort: Option<oneshot::Sender<Status>>,
    response_gone: oneshot::Receiver<()>,
}

/// The response side's half.
#[derive(Debug)]
pub struct ResponseLink {
    abort: Option<oneshot::Receiver<Status>>,
    _alive: oneshot::Sender<()>,
}

/// A linked pair for one call.
pub fn call_link() -> (RequestLink, ResponseLink) {
    let (abort_tx, abort_rx) = oneshot::channel();
    let (alive_tx, alive_rx) = oneshot::channel();
    (
        RequestLink {
            abort: Some(abort_tx),
            response_gone: alive_rx,
        },
        ResponseLink {
            abort: Some(abort_rx),
            _alive: alive_tx,
        },
    )
}

impl RequestLink {
    /// Ends the call towards the client with `status` (first call wins).
    pub fn abort(&mut self, status: Status) {
        if let Some(tx) = self.abort.take() {
            let _ = tx.send(status);
        }
    }

    /// Ready once the response side has been dropped.
    pub fn poll_response_gone(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        std::pin::Pin::new(&mut self.response_gone)
            .poll(cx)
            .map(|_| ())
    }
}

impl ResponseLink {
    /// Ready with the status the request side ended the call with; pending forever if it
    /// finished without doing so.
    pub fn poll_abort(&mut self, cx: &mut Context<'_>) -> Poll<Status> {
        let Some(rx) = &mut self.abort else {
            return Poll::Pending;
        };
        match std::pin::Pin::new(rx).poll(cx) {
            Poll::Ready(Ok(status)) => {
                self.abort = None;
                Poll::Ready(status)
            }
            Poll::Ready(Err(_)) => {
                self.abort = None;
                Poll::Pending
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

use std::future::Future;
