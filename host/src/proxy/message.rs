//! The message stage of the message body path: de-frames a body into gRPC messages, runs
//! each through the call's plugins (forward, drop, modify or reject) and frames the result
//! again for the other side.

use crate::grpc::{Deframed, Deframer, Encoding, Status, encode_message};
use crate::plugin::BodyHook;
use bytes::{Bytes, BytesMut};

/// De-frames and re-frames one direction of a call.
#[derive(Debug)]
pub struct MessageStage {
    deframer: Deframer,
    /// The output of the current chunk when it is one frame that arrived whole and went
    /// through unchanged: passed on without a copy.
    single: Option<Bytes>,
    /// The output of the current chunk otherwise, framed into one buffer.
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
            single: None,
            out: BytesMut::new(),
            hook,
            pending_error: None,
        }
    }

    /// Takes the next body chunk; returns the re-framed bytes of every message it
    /// completed (one buffer, so one upstream write), or `None` if none was completed.
    /// A message that arrived whole, uncompressed, and that the plugins forwarded goes on
    /// as the very bytes it came in.
    pub fn on_data(&mut self, chunk: Bytes) -> Result<Option<Bytes>, Status> {
        self.deframer.push(chunk);
        let drained = self.drain();
        let output = match self.single.take() {
            Some(frame) => Some(frame),
            None => (!self.out.is_empty()).then(|| self.out.split().freeze()),
        };
        if let Err(status) = drained {
            if output.is_none() {
                return Err(status);
            }
            // Deliver the messages before the failing one; the error comes next.
            self.pending_error = Some(status);
        }
        Ok(output)
    }

    fn drain(&mut self) -> Result<(), Status> {
        while let Some(Deframed { message, frame }) =
            self.deframer.next_frame().map_err(|e| e.to_status())?
        {
            let original = (message.as_ptr(), message.len());
            let message = match &self.hook {
                None => message,
                Some(hook) => match hook.message(message)? {
                    Some(message) => message,
                    None => continue,
                },
            };
            match frame {
                Some(frame) if (message.as_ptr(), message.len()) == original => {
                    self.emit_frame(frame);
                }
                _ => {
                    self.flush_single();
                    encode_message(&message, &mut self.out);
                }
            }
        }
        Ok(())
    }

    /// Adds a ready frame to the output: kept as is when it is the first.
    fn emit_frame(&mut self, frame: Bytes) {
        if self.single.is_none() && self.out.is_empty() {
            self.single = Some(frame);
        } else {
            self.flush_single();
            self.out.extend_from_slice(&frame);
        }
    }

    /// More output follows: the frame kept as is joins the output buffer.
    fn flush_single(&mut self) {
        if let Some(frame) = self.single.take() {
            self.out.extend_from_slice(&frame);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::codec::{framed, gzip_framed};

    #[test]
    fn a_whole_message_goes_on_as_the_bytes_it_came_in() {
        let mut stage = MessageStage::new(Encoding::Identity, 1024, None);
        let chunk = framed(&[b"hello"]);
        let out = stage.on_data(chunk.clone()).unwrap().unwrap();
        assert_eq!(out, chunk);
        assert_eq!(out.as_ptr(), chunk.as_ptr(), "not copied");
    }

    #[test]
    fn messages_split_over_chunks_or_sharing_one_come_out_framed_in_order() {
        let body = framed(&[b"one", b"two", b"three"]);
        for split in 0..=body.len() {
            let mut stage = MessageStage::new(Encoding::Identity, 1024, None);
            let mut out = Vec::new();
            for chunk in [body.slice(..split), body.slice(split..)] {
                if let Some(bytes) = stage.on_data(chunk).unwrap() {
                    out.extend_from_slice(&bytes);
                }
            }
            stage.on_end().unwrap();
            assert_eq!(out, body, "split at {split}");
        }
    }

    #[test]
    fn a_compressed_message_is_framed_again_uncompressed() {
        let mut stage = MessageStage::new(Encoding::Gzip, 1024, None);
        let out = stage.on_data(gzip_framed(b"zipped")).unwrap().unwrap();
        assert_eq!(out, framed(&[b"zipped"]));
    }
}
