//! Property tests (a bounded fuzz run in CI) for the parsers that see untrusted bytes: the
//! gRPC length-prefix de-framer fed arbitrary splits of arbitrary bytes, and the
//! `grpc-timeout` parser. No panic, no unbounded allocation, and well-formed input
//! always round-trips.

use bytes::BytesMut;
use proptest::prelude::*;
use sluice::grpc::codec::PREFIX_LEN;
use sluice::grpc::{Deframer, Encoding, FrameError, encode_message, timeout};

const MAX: usize = 64 * 1024;

/// Feeds `bytes` split at `cuts`; returns the messages or the first error.
fn deframe(bytes: &[u8], cuts: &[usize], encoding: Encoding) -> Result<Vec<Vec<u8>>, FrameError> {
    let mut deframer = Deframer::new(encoding, MAX);
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    let mut out = Vec::new();
    for pair in points.windows(2) {
        deframer.push_slice(&bytes[pair[0]..pair[1]]);
        while let Some(message) = deframer.next_message()? {
            assert!(
                message.len() <= MAX,
                "message over the limit slipped through"
            );
            out.push(message.to_vec());
        }
    }
    deframer.finish()?;
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096),
                                   cuts in proptest::collection::vec(any::<usize>(), 0..16),
                                   gzip in any::<bool>()) {
        let encoding = if gzip { Encoding::Gzip } else { Encoding::Identity };
        let _ = deframe(&bytes, &cuts, encoding);
    }

    #[test]
    fn framed_messages_round_trip_under_any_split(messages in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..2048), 0..8),
                                                  cuts in proptest::collection::vec(any::<usize>(), 0..16)) {
        let mut body = BytesMut::new();
        for message in &messages {
            encode_message(message, &mut body);
        }
        prop_assert_eq!(deframe(&body, &cuts, Encoding::Identity).unwrap(), messages);
    }

    #[test]
    fn huge_announced_lengths_are_refused_without_buffering(len in (MAX as u32 + 1)..=u32::MAX, flag in 0u8..=1) {
        let mut prefix = vec![flag];
        prefix.extend_from_slice(&len.to_be_bytes());
        prop_assert_eq!(prefix.len(), PREFIX_LEN);
        let result = deframe(&prefix, &[], Encoding::Identity);
        let refused = matches!(result, Err(FrameError::TooLarge { .. }));
        prop_assert!(refused);
    }

    #[test]
    fn timeout_parser_never_panics(value in proptest::collection::vec(any::<u8>(), 0..16)) {
        let _ = timeout::parse(&value);
    }

    #[test]
    fn timeouts_round_trip(nanos in 0u64..(u64::MAX / 4)) {
        let duration = std::time::Duration::from_nanos(nanos);
        let formatted = timeout::format(duration);
        let parsed = timeout::parse(formatted.as_bytes()).unwrap();
        prop_assert!(parsed >= duration, "{formatted} parsed shorter than {duration:?}");
    }
}
