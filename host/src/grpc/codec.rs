//! The gRPC length-prefixed message codec: a de-framer that turns arbitrary splits of a
//! body (messages split over many frames, many messages in one frame) into whole
//! messages, and the encoder that frames them again.

use super::compression::Encoding;
use super::status::{Code, Status};
use bytes::{Buf, BufMut, Bytes, BytesMut};

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

/// Splits a stream of body chunks into gRPC messages, decompressing them.
#[derive(Debug)]
pub struct Deframer {
    buffer: BytesMut,
    encoding: Encoding,
    max_message_len: usize,
}

impl Deframer {
    /// A de-framer for a body in `encoding`, refusing messages over `max_message_len`.
    pub fn new(encoding: Encoding, max_message_len: usize) -> Deframer {
        Deframer {
            buffer: BytesMut::new(),
            encoding,
            max_message_len,
        }
    }

    /// Adds the next chunk of the body.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    /// The next whole message (decompressed), or `None` if more input is needed.
    pub fn next_message(&mut self) -> Result<Option<Bytes>, FrameError> {
        if self.buffer.len() < PREFIX_LEN {
            return Ok(None);
        }
        let flag = self.buffer[0];
        if flag > 1 {
            return Err(FrameError::BadFlag(flag));
        }
        let len = u32::from_be_bytes([
            self.buffer[1],
            self.buffer[2],
            self.buffer[3],
            self.buffer[4],
        ]) as usize;
        if len > self.max_message_len {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_message_len,
            });
        }
        if self.buffer.len() < PREFIX_LEN + len {
            self.buffer.reserve(PREFIX_LEN + len - self.buffer.len());
            return Ok(None);
        }
        self.buffer.advance(PREFIX_LEN);
        let payload = self.buffer.split_to(len).freeze();
        if flag == 1 {
            return self
                .encoding
                .decompress(&payload, self.max_message_len)
                .map(Some);
        }
        Ok(Some(payload))
    }

    /// Checks that the body ended on a message boundary.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buffer.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Truncated {
                buffered: self.buffer.len(),
            })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(messages: &[&[u8]]) -> Vec<u8> {
        let mut out = BytesMut::new();
        for m in messages {
            encode_message(m, &mut out);
        }
        out.to_vec()
    }

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
            deframer.push(&body[..split]);
            let mut got = drain(&mut deframer);
            deframer.push(&body[split..]);
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
            deframer.push(std::slice::from_ref(byte));
            got.extend(drain(&mut deframer));
        }
        assert_eq!(
            got,
            vec![Bytes::from_static(b"abc"), Bytes::from_static(b"defg")]
        );
    }

    #[test]
    fn bad_flag_is_malformed() {
        let mut deframer = Deframer::new(Encoding::Identity, 1024);
        deframer.push(&[2, 0, 0, 0, 1, 9]);
        assert_eq!(deframer.next_message(), Err(FrameError::BadFlag(2)));
    }

    #[test]
    fn oversized_announcement_is_refused_before_buffering() {
        let mut deframer = Deframer::new(Encoding::Identity, 10);
        deframer.push(&[0, 0, 0, 0, 11]);
        let err = deframer.next_message().unwrap_err();
        assert_eq!(err.to_status().code, Code::ResourceExhausted);
    }

    #[test]
    fn truncated_body_is_reported() {
        let mut deframer = Deframer::new(Encoding::Identity, 1024);
        deframer.push(&[0, 0, 0, 0, 4, 1, 2]);
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
        deframer.push(&[1, 0, 0, 0, 1, 9]);
        assert_eq!(
            deframer.next_message(),
            Err(FrameError::CompressedWithoutEncoding)
        );
    }
}
