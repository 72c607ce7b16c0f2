//! The flat metadata format of the WIT interface (`type metadata` in `wit/filter.wit`):
//! entry after entry, the name's and the value's length (u32 little-endian each), then
//! the name, then the value.

/// Entries out of a flat buffer. The host writes it; should it ever be cut short, the
/// entries before the cut are kept.
pub(crate) fn decode(mut flat: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut entries = Vec::new();
    while flat.len() >= 8 {
        let name_len = u32::from_le_bytes(flat[..4].try_into().expect("4 bytes")) as usize;
        let value_len = u32::from_le_bytes(flat[4..8].try_into().expect("4 bytes")) as usize;
        let rest = &flat[8..];
        if rest.len() < name_len.saturating_add(value_len) {
            break;
        }
        let (name, rest) = rest.split_at(name_len);
        let (value, rest) = rest.split_at(value_len);
        entries.push((String::from_utf8_lossy(name).into_owned(), value.to_vec()));
        flat = rest;
    }
    entries
}

/// Entries into a flat buffer.
pub(crate) fn encode(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let size = entries.iter().map(|(n, v)| 8 + n.len() + v.len()).sum();
    let mut flat = Vec::with_capacity(size);
    for (name, value) in entries {
        flat.extend_from_slice(&(name.len() as u32).to_le_bytes());
        flat.extend_from_slice(&(value.len() as u32).to_le_bytes());
        flat.extend_from_slice(name.as_bytes());
        flat.extend_from_slice(value);
    }
    flat
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_the_round_trip() {
        let entries = vec![
            ("x-a".to_owned(), b"1".to_vec()),
            ("x-a".to_owned(), Vec::new()),
            ("x-b-bin".to_owned(), vec![0, 255, 10]),
        ];
        let flat = encode(&entries);
        assert_eq!(&flat[..11], &[3, 0, 0, 0, 1, 0, 0, 0, b'x', b'-', b'a']);
        assert_eq!(decode(&flat), entries);
    }

    #[test]
    fn a_cut_buffer_keeps_the_whole_entries_before_the_cut() {
        let flat = encode(&[
            ("x-a".to_owned(), b"1".to_vec()),
            ("x-b".to_owned(), b"22".to_vec()),
        ]);
        for cut in 12..flat.len() {
            assert_eq!(
                decode(&flat[..cut]),
                [("x-a".to_owned(), b"1".to_vec())],
                "cut at {cut}"
            );
        }
        assert!(decode(&flat[..11]).is_empty());
    }
}
