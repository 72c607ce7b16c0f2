//! Metadata between the host and plugins: the headers the host keeps to itself, a header
//! map as the WIT `list<header>` a plugin sees (`-bin` values base64-decoded) and back.

use super::bindings::Header;
use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};

/// Request headers the host manages itself and never shows to plugins.
pub const RESERVED_REQUEST: [&str; 3] = ["content-type", "te", "grpc-timeout"];
/// Response headers the host manages itself.
pub const RESERVED_RESPONSE: [&str; 1] = ["content-type"];
/// Trailers the host manages itself (the status goes to `on-trailers` separately).
pub const RESERVED_TRAILERS: [&str; 3] = ["content-type", "grpc-status", "grpc-message"];

/// Metadata as plugins see it: reserved names left out, `-bin` values base64-decoded.
pub fn to_wit(headers: &HeaderMap, reserved: &[&str]) -> Vec<Header> {
    headers
        .iter()
        .filter(|(name, _)| !reserved.contains(&name.as_str()))
        .map(|(name, value)| {
            let value = if name.as_str().ends_with("-bin") {
                decode_bin(value.as_bytes())
            } else {
                value.as_bytes().to_vec()
            };
            Header {
                name: name.as_str().to_owned(),
                value,
            }
        })
        .collect()
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

/// Replaces the non-reserved metadata in `headers` with `list`.
pub fn apply(
    headers: &mut HeaderMap,
    list: Vec<Header>,
    reserved: &[&'static str],
) -> Result<(), String> {
    let mut kept = HeaderMap::with_capacity(list.len() + reserved.len());
    for name in reserved {
        for value in headers.get_all(*name) {
            kept.append(HeaderName::from_static(name), value.clone());
        }
    }
    for header in list {
        if reserved.contains(&header.name.as_str()) {
            continue;
        }
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| format!("invalid metadata name {:?}", header.name))?;
        let value = if header.name.ends_with("-bin") {
            HeaderValue::from_str(
                &base64::engine::general_purpose::STANDARD_NO_PAD.encode(&header.value),
            )
        } else {
            HeaderValue::from_bytes(&header.value)
        }
        .map_err(|_| format!("invalid value for metadata {:?}", header.name))?;
        kept.append(name, value);
    }
    *headers = kept;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_values_are_decoded_and_encoded() {
        let mut headers = HeaderMap::new();
        headers.insert("x-a-bin", HeaderValue::from_static("AP8K"));
        headers.insert("x-plain", HeaderValue::from_static("v"));
        headers.insert("content-type", HeaderValue::from_static("application/grpc"));
        let list = to_wit(&headers, &RESERVED_REQUEST);
        assert_eq!(list.len(), 2);
        let bin = list.iter().find(|h| h.name == "x-a-bin").unwrap();
        assert_eq!(bin.value, [0, 255, 10]);
        apply(&mut headers, list, &RESERVED_REQUEST).unwrap();
        assert_eq!(headers["x-a-bin"], "AP8K");
        assert_eq!(headers["content-type"], "application/grpc");
    }

    #[test]
    fn padded_and_joined_bin_values_decode() {
        assert_eq!(decode_bin(b"AQ==, Ag"), [1, 2]);
    }

    #[test]
    fn invalid_names_from_plugins_are_errors() {
        let mut headers = HeaderMap::new();
        let bad = vec![Header {
            name: "bad name".into(),
            value: b"v".to_vec(),
        }];
        assert!(apply(&mut headers, bad, &RESERVED_REQUEST).is_err());
    }
}
