//! Benchmark parts shared by the echo upstream and the load client: a tonic codec that
//! passes message bytes through untouched, and the benchmark's message shape.

use bytes::{Buf, BufMut, Bytes};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// A codec whose messages are the raw bytes of the gRPC message.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

/// Encoder/decoder of [`RawCodec`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RawBytes;

impl Encoder for RawBytes {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawBytes {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawBytes;
    type Decoder = RawBytes;

    fn encoder(&mut self) -> RawBytes {
        RawBytes
    }

    fn decoder(&mut self) -> RawBytes {
        RawBytes
    }
}

/// A `size`-byte protobuf message (field 1, bytes) whose first payload bytes are `tag`,
/// so consecutive messages of a stream differ.
pub fn message(size: usize, tag: u64) -> Bytes {
    assert!(size >= 12, "messages are at least 12 bytes");
    let mut out = Vec::with_capacity(size);
    out.push(0x0a);
    let mut body = size - 2;
    // A length of 128 or more takes more varint bytes.
    while body + 1 + varint_len(body) > size {
        body -= 1;
    }
    let mut length = body;
    while length >= 0x80 {
        out.push((length as u8) | 0x80);
        length >>= 7;
    }
    out.push(length as u8);
    out.extend_from_slice(&tag.to_le_bytes());
    out.resize(size, b'x');
    out.into()
}

fn varint_len(mut value: usize) -> usize {
    let mut bytes = 1;
    while value >= 0x80 {
        value >>= 7;
        bytes += 1;
    }
    bytes
}

/// The benchmark service's name; methods: `Unary`, `Bidi` (echo each message),
/// `Stream` (the request message back `STREAM_REPLIES` times).
pub const SERVICE: &str = "bench.Echo";
/// Messages a `Stream` call answers with.
pub const STREAM_REPLIES: usize = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_the_asked_size_and_a_valid_length_prefix() {
        for size in [12, 64, 127, 128, 129, 200, 16384] {
            let m = message(size, 7);
            assert_eq!(m.len(), size);
            assert_eq!(m[0], 0x0a);
        }
        assert_ne!(message(64, 1), message(64, 2));
    }
}
