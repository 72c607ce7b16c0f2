//! The message stage of the message body path: de-frames a body into gRPC messages, runs
//! each through the call's plugins (forward, drop, modify or reject) and frames the result
//! again for the other side.

use crate::grpc::{Deframer, Encoding, Status, encode_message};
use crate::plugin::BodyHook;
use bytes::{Bytes, BytesMut};

/// De-frames and re-frames one direction of a call.
#[derive(Debug)]
pub struct MessageStage {
    deframer: Deframer,
    out: BytesMut,
    hook: Option<BodyHook>,
    /// An error found after messages that must still be delivered first.
    pending_error: Option<Status>,
}

impl MessageStage {
    /// A stage for a body in `encoding`, refusing messages over `max_message_len`, running
    /// each message through `hook` if given.
    pub fn new(encoding: Encoding, max_message_len: usize, hook: Option<BodyHook>) -> MessageStage {
        MessageStage {
            deframer: Deframer::new(encoding, max_message_len),
            out: BytesMut::new(),
            hook,
            pending_error: None,
        }
    }

    /// Takes the next body chunk; returns the re-framed bytes of every message it
    /// completed (one buffer, so one upstream write), or `None` if none was completed.
    pub fn on_data(&mut self, chunk: &[u8]) -> Result<Option<Bytes>, Status> {
        self.deframer.push(chunk);
        if let Err(status) = self.drain() {
            if self.out.is_empty() {
                return Err(status);
            }
            // Deliver the messages before the failing one; the error comes next.
            self.pending_error = Some(status);
        }
        Ok((!self.out.is_empty()).then(|| self.out.split().freeze()))
    }

    fn drain(&mut self) -> Result<(), Status> {
        while let Some(message) = self.deframer.next_message().map_err(|e| e.to_status())? {
            let message = match &self.hook {
                None => message,
                Some(hook) => match hook.message(message)? {
                    Some(message) => message,
                    None => continue,
                },
            };
            encode_message(&message, &mut self.out);
        }
        Ok(())
    }

    /// An error held back so the messages before it could be delivered first.
    pub fn take_error(&mut self) -> Option<Status> {
        self.pending_error.take()
    }

    /// Whether nothing is held back: no error waiting and no partial message. Until then
    /// the body must not be reported as ended, or the error would never be raised.
    pub fn is_settled(&self) -> bool {
        self.pending_error.is_none() && self.deframer.finish().is_ok()
    }

    /// Called at the end of the body: it must end on a message boundary.
    pub fn on_end(&self) -> Result<(), Status> {
        self.deframer.finish().map_err(|e| e.to_status())
    }
}
