//! Tells HTTP/2 from HTTP/1 by a connection's first bytes (an HTTP/2 client opens with a
//! fixed 24-byte preface), and hands the bytes read to find out back to whichever side
//! then serves the connection.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// What every HTTP/2 connection starts with (RFC 9113, section 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads from `io` until its first bytes show which HTTP it speaks: true for HTTP/2. The
/// bytes read are handed back in front of `io`. Reads no further than the first byte
/// that differs from the preface (an HTTP/1 request line differs at its first byte).
pub(super) async fn read<Io>(mut io: Io) -> io::Result<(Prefixed<Io>, bool)>
where
    Io: AsyncRead + Unpin,
{
    let mut seen = Vec::with_capacity(PREFACE.len());
    let mut buffer = [0u8; PREFACE.len()];
    while seen.len() < PREFACE.len() && PREFACE.starts_with(&seen) {
        let n = io.read(&mut buffer[..PREFACE.len() - seen.len()]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        seen.extend_from_slice(&buffer[..n]);
    }
    let is_http2 = seen.as_slice() == PREFACE;
    Ok((
        Prefixed {
            prefix: seen,
            at: 0,
            io,
        },
        is_http2,
    ))
}

/// A connection with the bytes already read from it in front.
#[derive(Debug)]
pub(super) struct Prefixed<Io> {
    prefix: Vec<u8>,
    /// How much of `prefix` has been read again.
    at: usize,
    io: Io,
}

impl<Io: AsyncRead + Unpin> AsyncRead for Prefixed<Io> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.prefix.len() {
            let left = &this.prefix[this.at..];
            let n = left.len().min(buf.remaining());
            buf.put_slice(&left[..n]);
            this.at += n;
            if this.at == this.prefix.len() {
                this.prefix = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Prefixed<Io> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::{PREFACE, read};
    use tokio::io::AsyncReadExt;

    async fn sniff(bytes: &[u8]) -> (bool, Vec<u8>) {
        let (prefixed, is_http2) = read(bytes).await.unwrap();
        let mut again = Vec::new();
        let mut prefixed = prefixed;
        prefixed.read_to_end(&mut again).await.unwrap();
        (is_http2, again)
    }

    #[tokio::test]
    async fn the_preface_is_http2_and_every_byte_is_read_again() {
        let mut bytes = PREFACE.to_vec();
        bytes.extend_from_slice(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00");
        assert_eq!(sniff(&bytes).await, (true, bytes.clone()));
    }

    #[tokio::test]
    async fn an_http1_request_is_not_http2_and_is_read_again_whole() {
        let request = b"POST /a.B/C HTTP/1.1\r\nhost: x\r\n\r\n".to_vec();
        assert_eq!(sniff(&request).await, (false, request.clone()));
        // Differing late in the preface still reads as HTTP/1.
        let almost = b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\nrest".to_vec();
        assert_eq!(sniff(&almost).await, (false, almost.clone()));
    }

    #[tokio::test]
    async fn a_connection_closed_before_the_preface_is_an_error() {
        assert!(read(&PREFACE[..10]).await.is_err());
    }
}
