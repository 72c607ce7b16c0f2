//! The `grpc-timeout` header: parsing (`1S`, `250m`, ... as the gRPC spec defines it) and
//! formatting what is left of a deadline when a call is forwarded.

use std::time::Duration;

/// Why a `grpc-timeout` value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimeoutError {
    /// The value is not 1 to 8 ASCII digits followed by one of `HMSmun`.
    #[error("malformed grpc-timeout {0:?}: want 1-8 digits and a unit (H, M, S, m, u, n)")]
    Malformed(String),
}

/// Parses a `grpc-timeout` value.
pub fn parse(value: &[u8]) -> Result<Duration, TimeoutError> {
    let malformed = || TimeoutError::Malformed(String::from_utf8_lossy(value).into_owned());
    let (unit, digits) = value.split_last().ok_or_else(malformed)?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(malformed());
    }
    let amount: u64 = digits
        .iter()
        .fold(0, |acc, d| acc * 10 + u64::from(d - b'0'));
    Ok(match unit {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return Err(malformed()),
    })
}

/// Formats a duration as a `grpc-timeout` value, choosing the finest unit that fits in
/// 8 digits (so precision is kept for short deadlines and long ones still fit).
pub fn format(duration: Duration) -> String {
    const MAX: u128 = 99_999_999;
    let nanos = duration.as_nanos();
    let units: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    for (per_unit, unit) in units {
        // Round up so a forwarded deadline never comes out shorter than zero.
        let amount = nanos.div_ceil(per_unit);
        if amount <= MAX {
            return format!("{amount}{unit}");
        }
    }
    format!("{MAX}H")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse(b"2H").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse(b"3M").unwrap(), Duration::from_secs(180));
        assert_eq!(parse(b"1S").unwrap(), Duration::from_secs(1));
        assert_eq!(parse(b"250m").unwrap(), Duration::from_millis(250));
        assert_eq!(parse(b"7u").unwrap(), Duration::from_micros(7));
        assert_eq!(
            parse(b"99999999n").unwrap(),
            Duration::from_nanos(99_999_999)
        );
    }

    #[test]
    fn refuses_malformed_values() {
        for bad in [&b""[..], b"S", b"10", b"123456789S", b"1x", b"-1S", b"1 S"] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn formats_with_the_finest_unit_that_fits() {
        assert_eq!(format(Duration::from_millis(1500)), "1500000u");
        assert_eq!(format(Duration::from_nanos(5)), "5n");
        assert_eq!(format(Duration::from_secs(86_400 * 365)), "31536000S");
        assert_eq!(format(Duration::from_secs(100_000_000)), "1666667M");
        assert_eq!(
            parse(format(Duration::from_millis(123)).as_bytes()).unwrap(),
            Duration::from_millis(123)
        );
    }
}
