//! Message compression named by `grpc-encoding`: the encodings the message path can
//! decode, and bounded decompression (a small compressed message cannot inflate past the
//! configured maximum).

use super::codec::FrameError;
use bytes::Bytes;
use std::io::Read;

/// A `grpc-encoding` the message path understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// No compression.
    Identity,
    /// gzip (RFC 1952).
    Gzip,
}

/// What the proxy advertises in `grpc-accept-encoding` on the message path.
pub const ACCEPT_ENCODING: &str = "identity,gzip";

impl Encoding {
    /// The encoding for a `grpc-encoding` header value; `None` for one we cannot decode.
    /// A missing header means identity.
    pub fn from_header(value: Option<&[u8]>) -> Option<Encoding> {
        match value {
            None | Some(b"identity") => Some(Encoding::Identity),
            Some(b"gzip") => Some(Encoding::Gzip),
            Some(_) => None,
        }
    }

    /// Decompresses one message payload whose compressed flag was set, refusing output
    /// larger than `max_len`.
    pub fn decompress(self, payload: &[u8], max_len: usize) -> Result<Bytes, FrameError> {
        match self {
            Encoding::Identity => Err(FrameError::CompressedWithoutEncoding),
            Encoding::Gzip => {
                let mut out = Vec::with_capacity(payload.len().saturating_mul(2).min(max_len));
                flate2::read::GzDecoder::new(payload)
                    .take(max_len as u64 + 1)
                    .read_to_end(&mut out)
                    .map_err(|err| FrameError::Decompress(err.to_string()))?;
                if out.len() > max_len {
                    return Err(FrameError::TooLarge {
                        len: out.len(),
                        max: max_len,
                    });
                }
                Ok(Bytes::from(out))
            }
        }
    }
}

/// `data` gzip-compressed (for tests).
#[cfg(test)]
pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values() {
        assert_eq!(Encoding::from_header(None), Some(Encoding::Identity));
        assert_eq!(Encoding::from_header(Some(b"gzip")), Some(Encoding::Gzip));
        assert_eq!(Encoding::from_header(Some(b"snappy")), None);
    }

    #[test]
    fn gzip_round_trip() {
        let packed = gzip(b"hello hello hello");
        assert_eq!(
            Encoding::Gzip.decompress(&packed, 1024).unwrap(),
            Bytes::from_static(b"hello hello hello")
        );
    }

    #[test]
    fn inflation_past_the_limit_is_refused() {
        let packed = gzip(&vec![0u8; 1 << 20]);
        assert!(packed.len() < 8192);
        assert!(matches!(
            Encoding::Gzip.decompress(&packed, 4096),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn garbage_is_a_decompress_error() {
        assert!(matches!(
            Encoding::Gzip.decompress(b"not gzip", 4096),
            Err(FrameError::Decompress(_))
        ));
    }
}
