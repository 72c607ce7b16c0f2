//! The gRPC length-prefixed message codec: a de-framer that turns arbitrary splits of a
//! body (messages split over many frames, many messages in one frame) into whole
//! messages, and the encoder that frames them again.

use super::compression::Encoding;
use super::status::{Code, Status};
use bytes::{BufMut, Bytes, BytesMut};

/// Size of the gRPC message prefix: one flag byte and a big-endian u32 length.
pub const PREFIX_LEN: usize = 5;

/// Why a body could not be split into gRPC messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The compressed-flag byte was neither 0 nor 1.
    #[error("malformed gRPC message prefix: compressed flag {0:#04x} is neither 0 nor 1")]
    BadFlag(u8),
    /// A message (or its decompressed form) is larger than the configured maximum.
    #[error("gRPC message of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Announced or decompressed length.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The body ended inside a message.
    #[error("body ended inside a gRPC message ({buffered} bytes of an unfinished message)")]
    Truncated {
        /// Bytes of the unfinished message that had arrived.
        buffered: usize,
    },
    /// A message had its compressed flag set but the call names no encoding.
    #[error("gRPC message is flagged compressed but no grpc-encoding was given")]
    CompressedWithoutEncoding,
    /// Decompression failed.
    #[error("could not decompress gRPC message: {0}")]
    Decompress(String),
}

impl FrameError {
    /// The gRPC status a call ends with for this error.
    pub fn to_status(&self) -> Status {
        let code = match self {
            FrameError::TooLarge { .. } => Code::ResourceExhausted,
            _ => Code::Internal,
        };
        Status::new(code, self.to_string())
    }
}

/// Splits a stream of body chunks into gRPC messages, decompressing them. Messages that
/// arrive whole in one chunk are sliced out of it without a copy; only a message split
/// over chunks is copied together.
#[derive(Debug)]
pub struct Deframer {
    /// The last chunk pushed, while whole messages are sliced off its front.
    chunk: Bytes,
    /// A message split over chunks, being put together (copied).
    buffer: BytesMut,
    encoding: Encoding,
    max_message_len: usize,
}

/// One message out of a [`Deframer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deframed {
    /// The message, decompressed.
    pub message: Bytes,
    /// The message as it arrived, prefix included, when it was not compressed: forwarded
    /// unchanged, it goes on as is instead of being framed again.
    pub frame: Option<Bytes>,
}

impl Deframer {
    /// A de-framer for a body in `encoding`, refusing messages over `max_message_len`.
    pub fn new(encoding: Encoding, max_message_len: usize) -> Deframer {
        Deframer {
            chunk: Bytes::new(),
            buffer: BytesMut::new(),
            encoding,
            max_message_len,
        }
    }

    /// Adds the next chunk of the body.
    pub fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        if self.buffer.is_empty() && self.chunk.is_empty() {
            self.chunk = chunk;
            return;
        }
        self.spill_chunk();
        self.buffer.extend_from_slice(&chunk);
    }

    /// Moves what is left of the last chunk into the buffer, to be joined by more input.
    fn spill_chunk(&mut self) {
        if !self.chunk.is_empty() {
            self.buffer
                .extend_from_slice(&std::mem::take(&mut self.chunk));
        }
    }

    /// Adds the next chunk of the body, copied.
    pub fn push_slice(&mut self, chunk: &[u8]) {
        self.push(Bytes::copy_from_slice(chunk));
    }

    /// The next whole message (decompressed), or `None` if more input is needed.
    pub fn next_message(&mut self) -> Result<Option<Bytes>, FrameError> {
        Ok(self.next_frame()?.map(|deframed| deframed.message))
    }

    /// The next whole message with the frame it came in, or `None` if more input is
    /// needed.
    pub fn next_frame(&mut self) -> Result<Option<Deframed>, FrameError> {
        let from_chunk = self.buffer.is_empty();
        let input: &[u8] = if from_chunk {
            &self.chunk
        } else {
            &self.buffer
        };
        let Some((flag, len)) = self.prefix(input)? else {
            self.keep_partial(None);
            return Ok(None);
        };
        if input.len() < PREFIX_LEN + len {
            self.keep_partial(Some(PREFIX_LEN + len));
            return Ok(None);
        }
        let frame = if from_chunk {
            self.chunk.split_to(PREFIX_LEN + len)
        } else {
            self.buffer.split_to(PREFIX_LEN + len).freeze()
        };
        let payload = frame.slice(PREFIX_LEN..);
        if flag == 1 {
            let message = self.encoding.decompress(&payload, self.max_message_len)?;
            return Ok(Some(Deframed {
                message,
                frame: None,
            }));
        }
        Ok(Some(Deframed {
            message: payload,
            frame: Some(frame),
        }))
    }

    /// The flag and length of the message at the front of `input`, once its prefix is in.
    fn prefix(&self, input: &[u8]) -> Result<Option<(u8, usize)>, FrameError> {
        if input.len() < PREFIX_LEN {
            return Ok(None);
        }
        let flag = input[0];
        if flag > 1 {
            return Err(FrameError::BadFlag(flag));
        }
        let len = u32::from_be_bytes([input[1], input[2], input[3], input[4]]) as usize;
        if len > self.max_message_len {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_message_len,
            });
        }
        Ok(Some((flag, len)))
    }

    /// The front message is incomplete: its bytes move to the buffer (room made for all
    /// `frame_len` bytes when known) to be completed by the next chunks. The room is made
    /// before the move, so the bytes are copied once: a 16 KiB message, which arrives split
    /// over two HTTP/2 frames, is not copied again when the buffer grows to its size.
    fn keep_partial(&mut self, frame_len: Option<usize>) {
        if let Some(frame_len) = frame_len {
            self.buffer
                .reserve(frame_len.saturating_sub(self.buffer.len()));
        }
        self.spill_chunk();
    }

    /// Checks that the body ended on a message boundary.
    pub fn finish(&self) -> Result<(), FrameError> {
        let buffered = self.chunk.len() + self.buffer.len();
        if buffered == 0 {
            Ok(())
        } else {
            Err(FrameError::Truncated { buffered })
        }
    }
}

/// Appends `message` to `out` as one uncompressed, length-prefixed gRPC message.
pub fn encode_message(message: &[u8], out: &mut BytesMut) {
    out.reserve(PREFIX_LEN + message.len());
    out.put_u8(0);
    out.put_u32(message.len() as u32);
    out.put_slice(message);
}

/// `messages` framed one after the other, uncompressed (for tests).
#[cfg(test)]
pub(crate) fn framed(messages: &[&[u8]]) -> Bytes {
    let mut out = BytesMut::new();
    for m in messages {
        encode_message(m, &mut out);
    }
    out.freeze()
}

/// `message` gzip-compressed and framed with the compressed flag set (for tests).
#[cfg(test)]
pub(crate) fn gzip_framed(message: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    encode_message(&super::compression::gzip(message), &mut out);
    out[0] = 1;
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(deframer: &mut Deframer) -> Vec<Bytes> {
        let mut out = Vec::new();
        while let Some(m) = deframer.next_message().unwrap() {
            out.push(m);
        }
        out
    }

    #[test]
    fn every_split_of_a_body_yields_the_same_messages() {
        let messages: [&[u8]; 4] = [b"", b"a", b"hello world", &[7u8; 300]];
        let body = framed(&messages);
        for split in 0..=body.len() {
            let mut deframer = Deframer::new(Encoding::Identity, 1024);
            deframer.push_slice(&body[..split]);
            let mut got = drain(&mut deframer);
            deframer.push_slice(&body[split..]);
            got.extend(drain(&mut deframer));
            deframer.finish().unwrap();
            assert_eq!(
                got,
                messages.map(Bytes::copy_from_slice).to_vec(),
                "split {split}"
            );
        }
    }

    #[test]
    fn byte_by_byte_input_works() {
        let body = framed(&[b"abc", b"defg"]);
        let mut deframer = Deframer::new(Encoding::Identity, 1024);
        let mut got = Vec::new();
        for byte in &body {
            deframer.push_slice(std::slice::from_ref(byte));
            got.extend(drain(&mut deframer));
        }
        assert_eq!(
            got,
            vec![Bytes::from_static(b"abc"), Bytes::from_static(b"defg")]
        );
    }

    #[test]
    fn a_whole_message_is_sliced_out_of_its_chunk_not_copied() {
        let chunk = framed(&[b"one", b"two"]);
        let mut deframer = Deframer::new(Encoding::Identity, 1024);
        deframer.push(chunk.clone());
        let first = deframer.next_frame().unwrap().unwrap();
        assert_eq!(first.message, Bytes::from_static(b"one"));
        let frame = first.frame.expect("uncompressed: the frame it came in");
        assert_eq!(frame.as_ptr(), chunk.as_ptr(), "a slice of the chunk");
        assert_eq!(frame, chunk.slice(..PREFIX_LEN + 3));
        let second = deframer.next_frame().unwrap().unwrap();
        assert_eq!(second.frame.unwrap(), chunk.slice(PREFIX_LEN + 3..));
        assert_eq!(deframer.next_frame(), Ok(None));
        deframer.finish().unwrap();
    }

    #[test]
    fn a_split_message_gets_room_for_all_of_it_before_its_first_part_is_copied() {
        let body = framed(&[&[7u8; 20_000]]);
        let mut deframer = Deframer::new(Encoding::Identity, 32 * 1024);
        deframer.push(body.slice(..16_384));
        assert_eq!(deframer.next_frame(), Ok(None));
        // Exactly the frame's size: growing the buffer after the first part was copied in
        // would have doubled it (and copied the part again).
        assert_eq!(deframer.buffer.capacity(), body.len());
        let room = deframer.buffer.as_ptr();
        deframer.push(body.slice(16_384..));
        let frame = deframer.next_frame().unwrap().unwrap().frame.unwrap();
        assert_eq!(frame.as_ptr(), room, "completed in place");
        assert_eq!(frame, body);
    }

    #[test]
    fn a_compressed_message_has_no_frame_to_reuse() {
        let mut deframer = Deframer::new(Encoding::Gzip, 1024);
        deframer.push(gzip_framed(b"zipped"));
        let deframed = deframer.next_frame().unwrap().unwrap();
        assert_eq!(deframed.message, Bytes::from_static(b"zipped"));
        assert_eq!(deframed.frame, None);
    }

    #[test]
    fn bad_flag_is_malformed() {
        let mut deframer = Deframer::new(Encoding::Identity, 1024);
        deframer.push_slice(&[2, 0, 0, 0, 1, 9]);
        assert_eq!(deframer.next_message(), Err(FrameError::BadFlag(2)));
    }

    #[test]
    fn oversized_announcement_is_refused_before_buffering() {
        let mut deframer = Deframer::new(Encoding::Identity, 10);
        deframer.push_slice(&[0, 0, 0, 0, 11]);
        let err = deframer.next_message().unwrap_err();
        assert_eq!(err.to_status().code, Code::ResourceExhausted);
    }

    #[test]
    fn truncated_body_is_reported() {
        let mut deframer = Deframer::new(Encoding::Identity, 1024);
        deframer.push_slice(&[0, 0, 0, 0, 4, 1, 2]);
        assert_eq!(deframer.next_message(), Ok(None));
        assert_eq!(
            deframer.finish(),
            Err(FrameError::Truncated { buffered: 7 })
        );
        assert_eq!(
            deframer.finish().unwrap_err().to_status().code,
            Code::Internal
        );
    }

    #[test]
    fn compressed_flag_without_encoding_is_an_error() {
        let mut deframer = Deframer::new(Encoding::Identity, 1024);
        deframer.push_slice(&[1, 0, 0, 0, 1, 9]);
        assert_eq!(
            deframer.next_message(),
            Err(FrameError::CompressedWithoutEncoding)
        );
    }
}
