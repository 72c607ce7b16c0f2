//! Counts gRPC messages in a byte stream without de-framing it: walks the 5-byte length
//! prefixes across chunk boundaries and skips the payloads (no copies, no allocation), so
//! the raw path can report messages in and out too.

/// Where a stream of length-prefixed messages is.
#[derive(Debug, Default, Clone)]
pub struct MessageCounter {
    /// Prefix bytes read of the current message (0..5).
    prefix_read: u8,
    /// The length field as read so far.
    length: u32,
    /// Payload bytes of the current message still to skip.
    payload_left: u64,
}

impl MessageCounter {
    /// Feeds the next chunk; returns how many messages began in it (a message counts once
    /// its prefix is complete).
    pub fn feed(&mut self, mut chunk: &[u8]) -> u64 {
        let mut started = 0;
        while !chunk.is_empty() {
            if self.payload_left > 0 {
                let skip = self.payload_left.min(chunk.len() as u64);
                self.payload_left -= skip;
                chunk = &chunk[skip as usize..];
                continue;
            }
            // Byte 0 is the compressed flag; bytes 1..5 the big-endian length.
            if self.prefix_read > 0 {
                self.length = (self.length << 8) | u32::from(chunk[0]);
            }
            self.prefix_read += 1;
            chunk = &chunk[1..];
            if self.prefix_read == 5 {
                started += 1;
                self.payload_left = u64::from(self.length);
                self.prefix_read = 0;
                self.length = 0;
            }
        }
        started
    }
}

#[cfg(test)]
mod tests {
    use super::MessageCounter;

    fn framed(messages: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in messages {
            out.push(0);
            out.extend_from_slice(&(m.len() as u32).to_be_bytes());
            out.extend_from_slice(m);
        }
        out
    }

    #[test]
    fn counts_messages_at_every_split() {
        let stream = framed(&[b"", b"hello", &[7u8; 300], b"x"]);
        for split in 0..=stream.len() {
            let mut counter = MessageCounter::default();
            let (a, b) = stream.split_at(split);
            assert_eq!(counter.feed(a) + counter.feed(b), 4, "split at {split}");
        }
        let mut counter = MessageCounter::default();
        assert_eq!(stream.iter().map(|b| counter.feed(&[*b])).sum::<u64>(), 4);
    }
}
