//! Metadata between the host and plugins: the headers the host keeps to itself, a header
//! map as the flat WIT `metadata` a plugin sees (`-bin` values base64-decoded) and back.
//! The format (see `sdk/wit/filter.wit`): entry after entry, the name's and the value's
//! length (u32 little-endian each), then the name, then the value.

use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};

/// Request headers the host manages itself and never shows to plugins.
pub const RESERVED_REQUEST: [&str; 3] = ["content-type", "te", "grpc-timeout"];
/// Response headers the host manages itself.
pub const RESERVED_RESPONSE: [&str; 1] = ["content-type"];
/// Trailers the host manages itself (the status goes to `on-trailers` separately).
pub const RESERVED_TRAILERS: [&str; 3] = ["content-type", "grpc-status", "grpc-message"];

/// Connection-specific headers HTTP/2 forbids (RFC 9113, 8.2.2): clients cannot send them
/// (h2 refuses such a request), and a plugin's modify cannot add them.
const CONNECTION_SPECIFIC: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
];

/// Metadata as plugins see it: reserved names left out, `-bin` values base64-decoded.
pub fn to_wit(headers: &HeaderMap, reserved: &[&str]) -> Vec<u8> {
    let mut flat = Vec::with_capacity(64 * headers.len());
    for (name, value) in headers {
        let name = name.as_str();
        if reserved.contains(&name) {
            continue;
        }
        let decoded;
        let value = if name.ends_with("-bin") {
            decoded = decode_bin(value.as_bytes());
            &decoded[..]
        } else {
            value.as_bytes()
        };
        flat.extend_from_slice(&(name.len() as u32).to_le_bytes());
        flat.extend_from_slice(&(value.len() as u32).to_le_bytes());
        flat.extend_from_slice(name.as_bytes());
        flat.extend_from_slice(value);
    }
    flat
}

/// A name and a value, as bytes.
type Entry<'a> = (&'a [u8], &'a [u8]);

/// The entries of flat metadata a plugin handed over; an error when it is malformed.
fn entries(mut flat: &[u8]) -> Result<Vec<Entry<'_>>, String> {
    let mut entries = Vec::new();
    while !flat.is_empty() {
        let malformed = || format!("malformed metadata ({} bytes left over)", flat.len());
        let lengths = flat.get(..8).ok_or_else(malformed)?;
        let name_len = u32::from_le_bytes(lengths[..4].try_into().expect("4 bytes")) as usize;
        let value_len = u32::from_le_bytes(lengths[4..].try_into().expect("4 bytes")) as usize;
        let end = 8usize
            .checked_add(name_len)
            .and_then(|n| n.checked_add(value_len))
            .filter(|&end| end <= flat.len())
            .ok_or_else(malformed)?;
        entries.push((&flat[8..8 + name_len], &flat[8 + name_len..end]));
        flat = &flat[end..];
    }
    Ok(entries)
}

fn decode_bin(value: &[u8]) -> Vec<u8> {
    // gRPC allows padded and unpadded base64; several values may be comma-joined.
    let mut out = Vec::new();
    for part in value.split(|&b| b == b',') {
        let trimmed: Vec<u8> = part
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
            .collect();
        match base64::engine::general_purpose::STANDARD_NO_PAD.decode(&trimmed) {
            Ok(bytes) => out.extend(bytes),
            Err(_) => out.extend_from_slice(part),
        }
    }
    out
}

/// Replaces the non-reserved metadata in `headers` with the flat metadata `flat`.
pub fn apply(
    headers: &mut HeaderMap,
    flat: &[u8],
    reserved: &[&'static str],
) -> Result<(), String> {
    let entries = entries(flat)?;
    let mut kept = HeaderMap::with_capacity(entries.len() + reserved.len());
    for name in reserved {
        for value in headers.get_all(*name) {
            kept.append(HeaderName::from_static(name), value.clone());
        }
    }
    for (name, value) in entries {
        let name = HeaderName::from_bytes(name)
            .map_err(|_| format!("invalid metadata name {:?}", String::from_utf8_lossy(name)))?;
        if reserved.contains(&name.as_str()) || CONNECTION_SPECIFIC.contains(&name.as_str()) {
            continue;
        }
        let value = if name.as_str().ends_with("-bin") {
            HeaderValue::from_str(&base64::engine::general_purpose::STANDARD_NO_PAD.encode(value))
        } else {
            HeaderValue::from_bytes(value)
        }
        .map_err(|_| format!("invalid value for metadata {:?}", name.as_str()))?;
        kept.append(name, value);
    }
    *headers = kept;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, value) entries of flat metadata.
    fn decoded(flat: &[u8]) -> Vec<(String, Vec<u8>)> {
        entries(flat)
            .unwrap()
            .into_iter()
            .map(|(n, v)| (String::from_utf8(n.to_vec()).unwrap(), v.to_vec()))
            .collect()
    }

    #[test]
    fn bin_values_are_decoded_and_encoded() {
        let mut headers = HeaderMap::new();
        headers.insert("x-a-bin", HeaderValue::from_static("AP8K"));
        headers.insert("x-plain", HeaderValue::from_static("v"));
        headers.insert("content-type", HeaderValue::from_static("application/grpc"));
        let flat = to_wit(&headers, &RESERVED_REQUEST);
        let list = decoded(&flat);
        assert_eq!(list.len(), 2);
        let bin = list.iter().find(|(name, _)| name == "x-a-bin").unwrap();
        assert_eq!(bin.1, [0, 255, 10]);
        apply(&mut headers, &flat, &RESERVED_REQUEST).unwrap();
        assert_eq!(headers["x-a-bin"], "AP8K");
        assert_eq!(headers["content-type"], "application/grpc");
    }

    #[test]
    fn the_flat_format_is_lengths_then_name_then_value() {
        let mut headers = HeaderMap::new();
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("22"));
        let flat = to_wit(&headers, &[]);
        assert_eq!(
            flat,
            [
                &[3, 0, 0, 0, 1, 0, 0, 0][..],
                b"x-a1",
                &[3, 0, 0, 0, 2, 0, 0, 0],
                b"x-a22"
            ]
            .concat()
        );
    }

    #[test]
    fn plugins_cannot_add_connection_specific_headers() {
        let mut headers = HeaderMap::new();
        let flat = [
            &[10, 0, 0, 0, 5, 0, 0, 0][..],
            b"connectionclose",
            &[2, 0, 0, 0, 4, 0, 0, 0],
            b"tegzip",
            &[3, 0, 0, 0, 1, 0, 0, 0],
            b"x-a1",
        ]
        .concat();
        apply(&mut headers, &flat, &RESERVED_RESPONSE).unwrap();
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert_eq!(headers["x-a"], "1");
    }

    #[test]
    fn padded_and_joined_bin_values_decode() {
        assert_eq!(decode_bin(b"AQ==, Ag"), [1, 2]);
    }

    #[test]
    fn invalid_names_from_plugins_are_errors() {
        let mut headers = HeaderMap::new();
        let bad = [&[8, 0, 0, 0, 1, 0, 0, 0][..], b"bad namev"].concat();
        let err = apply(&mut headers, &bad, &RESERVED_REQUEST).unwrap_err();
        assert!(err.contains("invalid metadata name"), "{err}");
    }

    #[test]
    fn malformed_metadata_from_plugins_is_an_error_and_changes_nothing() {
        let mut headers = HeaderMap::new();
        headers.insert("x-keep", HeaderValue::from_static("1"));
        let good = [&[3, 0, 0, 0, 1, 0, 0, 0][..], b"x-bv"].concat();
        for bad in [
            &good[..good.len() - 1],
            &good[..5],
            &[&good[..], &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0][..]].concat()[..],
        ] {
            let err = apply(&mut headers, bad, &RESERVED_REQUEST).unwrap_err();
            assert!(err.starts_with("malformed metadata"), "{err}");
            assert_eq!(headers["x-keep"], "1");
        }
    }
}
