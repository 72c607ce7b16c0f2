//! The message stage of the message body path: de-frames a body into gRPC messages,
//! (later: runs each through the plugin chain) and frames them again for the other side.

use crate::grpc::{Deframer, Encoding, Status, encode_message};
use bytes::{Bytes, BytesMut};

/// De-frames and re-frames one direction of a call.
#[derive(Debug)]
pub struct MessageStage {
    deframer: Deframer,
    out: BytesMut,
    messages: u64,
}

impl MessageStage {
    /// A stage for a body in `encoding`, refusing messages over `max_message_len`.
    pub fn new(encoding: Encoding, max_message_len: usize) -> MessageStage {
        MessageStage {
            deframer: Deframer::new(encoding, max_message_len),
            out: BytesMut::new(),
            messages: 0,
        }
    }

    /// Takes the next body chunk; returns the re-framed bytes of every message it
    /// completed (one buffer, so one upstream write), or `None` if none was completed.
    pub fn on_data(&mut self, chunk: &[u8]) -> Result<Option<Bytes>, Status> {
        self.deframer.push(chunk);
        while let Some(message) = self.deframer.next_message().map_err(|e| e.to_status())? {
            self.messages += 1;
            encode_message(&message, &mut self.out);
        }
        Ok((!self.out.is_empty()).then(|| self.out.split().freeze()))
    }

    /// Called at the end of the body: it must end on a message boundary.
    pub fn on_end(&self) -> Result<(), Status> {
        self.deframer.finish().map_err(|e| e.to_status())
    }

    /// Messages seen so far.
    pub fn messages(&self) -> u64 {
        self.messages
    }
}
