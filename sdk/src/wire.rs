//! A small protobuf wire-format walker: list the top-level fields of a message and remove
//! or replace fields by number, without knowing the schema.

use std::fmt;

/// The wire type of a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireType {
    /// int32, int64, uint*, sint*, bool, enum.
    Varint,
    /// fixed64, sfixed64, double.
    Fixed64,
    /// string, bytes, embedded messages, packed repeated fields.
    LengthDelimited,
    /// A (deprecated) group; its value spans up to the matching end-group tag.
    Group,
    /// fixed32, sfixed32, float.
    Fixed32,
}

/// A malformed message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError {
    /// Byte offset where decoding failed.
    pub offset: usize,
    /// What was wrong.
    pub reason: &'static str,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed protobuf at byte {}: {}",
            self.offset, self.reason
        )
    }
}

impl std::error::Error for WireError {}

/// One top-level field of a message.
///
/// ```
/// // field 1 (varint) = 150, field 2 (string) = "hi"
/// let message = [0x08, 0x96, 0x01, 0x12, 0x02, b'h', b'i'];
/// let fields: Vec<_> = sluice_sdk::wire::fields(&message).collect::<Result<_, _>>().unwrap();
/// assert_eq!(fields[0].number, 1);
/// assert_eq!(fields[0].as_varint(), Some(150));
/// assert_eq!(fields[1].value, b"hi");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field<'a> {
    /// The field number.
    pub number: u32,
    /// The wire type.
    pub wire_type: WireType,
    /// The whole field as encoded (tag and value).
    pub raw: &'a [u8],
    /// The value: varint bytes, fixed bytes, the content of a length-delimited field, or
    /// a group's contents.
    pub value: &'a [u8],
}

impl Field<'_> {
    /// The value of a varint field.
    ///
    /// ```
    /// let f = sluice_sdk::wire::fields(&[0x08, 0x2a]).next().unwrap().unwrap();
    /// assert_eq!(f.as_varint(), Some(42));
    /// ```
    pub fn as_varint(&self) -> Option<u64> {
        if self.wire_type != WireType::Varint {
            return None;
        }
        read_varint(self.value, 0).ok().map(|(v, _)| v)
    }

    /// The value of a length-delimited field as UTF-8 text.
    ///
    /// ```
    /// let f = sluice_sdk::wire::fields(&[0x0a, 0x02, b'o', b'k']).next().unwrap().unwrap();
    /// assert_eq!(f.as_str(), Some("ok"));
    /// ```
    pub fn as_str(&self) -> Option<&str> {
        (self.wire_type == WireType::LengthDelimited)
            .then(|| std::str::from_utf8(self.value).ok())
            .flatten()
    }
}

/// Iterator over the top-level fields of a message; see [`fields`].
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    message: &'a [u8],
    offset: usize,
    failed: bool,
}

/// The top-level fields of `message`, in order.
///
/// ```
/// let count = sluice_sdk::wire::fields(&[0x08, 0x01, 0x10, 0x02]).count();
/// assert_eq!(count, 2);
/// ```
pub fn fields(message: &[u8]) -> Fields<'_> {
    Fields {
        message,
        offset: 0,
        failed: false,
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<Field<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.offset >= self.message.len() {
            return None;
        }
        match parse_field(self.message, self.offset) {
            Ok((field, end)) => {
                self.offset = end;
                Some(Ok(field))
            }
            Err(err) => {
                self.failed = true;
                Some(Err(err))
            }
        }
    }
}

/// Removes every top-level field whose number is in `numbers`. Returns `None` when no
/// such field was present (nothing to change).
///
/// ```
/// // field 1 = 1, field 2 = "x", field 1 = 2
/// let message = [0x08, 0x01, 0x12, 0x01, b'x', 0x08, 0x02];
/// let out = sluice_sdk::wire::remove_fields(&message, &[1]).unwrap().unwrap();
/// assert_eq!(out, [0x12, 0x01, b'x']);
/// assert_eq!(sluice_sdk::wire::remove_fields(&out, &[1]).unwrap(), None);
/// ```
pub fn remove_fields(message: &[u8], numbers: &[u32]) -> Result<Option<Vec<u8>>, WireError> {
    // Nothing is copied before the first field to remove: a message without one (the
    // usual case) is only read, however large.
    let mut out: Option<Vec<u8>> = None;
    let mut offset = 0;
    while offset < message.len() {
        let (field, end) = parse_field(message, offset)?;
        if numbers.contains(&field.number) {
            out.get_or_insert_with(|| {
                let mut kept = Vec::with_capacity(message.len());
                kept.extend_from_slice(&message[..offset]);
                kept
            });
        } else if let Some(out) = &mut out {
            out.extend_from_slice(field.raw);
        }
        offset = end;
    }
    Ok(out)
}

/// Replaces the length-delimited field `number` (every occurrence) with one field holding
/// `value`, placed where the first occurrence was (or appended if there was none).
///
/// ```
/// let message = [0x0a, 0x02, b'h', b'i', 0x10, 0x07];
/// let out = sluice_sdk::wire::replace_bytes_field(&message, 1, b"HELLO").unwrap();
/// assert_eq!(out, [0x0a, 0x05, b'H', b'E', b'L', b'L', b'O', 0x10, 0x07]);
/// ```
pub fn replace_bytes_field(
    message: &[u8],
    number: u32,
    value: &[u8],
) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(message.len() + value.len());
    let mut placed = false;
    let encode = |out: &mut Vec<u8>| {
        write_varint(out, (u64::from(number) << 3) | 2);
        write_varint(out, value.len() as u64);
        out.extend_from_slice(value);
    };
    for field in fields(message) {
        let field = field?;
        if field.number == number {
            if !placed {
                encode(&mut out);
                placed = true;
            }
        } else {
            out.extend_from_slice(field.raw);
        }
    }
    if !placed {
        encode(&mut out);
    }
    Ok(out)
}

fn parse_field(message: &[u8], start: usize) -> Result<(Field<'_>, usize), WireError> {
    let (tag, mut offset) = read_varint(message, start)?;
    let number = (tag >> 3) as u32;
    if number == 0 || tag >> 3 > u64::from(u32::MAX >> 3) {
        return Err(WireError {
            offset: start,
            reason: "invalid field number",
        });
    }
    let (wire_type, value_start, value_end, end) = match tag & 7 {
        0 => {
            let (_, end) = read_varint(message, offset)?;
            (WireType::Varint, offset, end, end)
        }
        1 => {
            let end = take(message, offset, 8)?;
            (WireType::Fixed64, offset, end, end)
        }
        2 => {
            let (len, value_start) = read_varint(message, offset)?;
            let len = usize::try_from(len).map_err(|_| WireError {
                offset,
                reason: "length does not fit",
            })?;
            let end = take(message, value_start, len)?;
            (WireType::LengthDelimited, value_start, end, end)
        }
        3 => {
            // Skip nested fields up to the matching end-group tag.
            let value_start = offset;
            loop {
                if offset >= message.len() {
                    return Err(WireError {
                        offset,
                        reason: "group without end",
                    });
                }
                let (inner_tag, after_tag) = read_varint(message, offset)?;
                if inner_tag & 7 == 4 {
                    if inner_tag >> 3 != tag >> 3 {
                        return Err(WireError {
                            offset,
                            reason: "mismatched end group",
                        });
                    }
                    break (WireType::Group, value_start, offset, after_tag);
                }
                let (_, next) = parse_field(message, offset)?;
                offset = next;
            }
        }
        5 => {
            let end = take(message, offset, 4)?;
            (WireType::Fixed32, offset, end, end)
        }
        _ => {
            return Err(WireError {
                offset: start,
                reason: "invalid wire type",
            });
        }
    };
    offset = end;
    Ok((
        Field {
            number,
            wire_type,
            raw: &message[start..offset],
            value: &message[value_start..value_end],
        },
        offset,
    ))
}

fn take(message: &[u8], offset: usize, len: usize) -> Result<usize, WireError> {
    offset
        .checked_add(len)
        .filter(|&end| end <= message.len())
        .ok_or(WireError {
            offset,
            reason: "field runs past the end",
        })
}

fn read_varint(bytes: &[u8], start: usize) -> Result<(u64, usize), WireError> {
    let mut value = 0u64;
    for i in 0..10 {
        let byte = *bytes.get(start + i).ok_or(WireError {
            offset: start,
            reason: "truncated varint",
        })?;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, start + i + 1));
        }
    }
    Err(WireError {
        offset: start,
        reason: "varint longer than 10 bytes",
    })
}

fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wire_type_is_walked() {
        let message = [
            0x08, 0x96, 0x01, // 1: varint 150
            0x11, 1, 2, 3, 4, 5, 6, 7, 8, // 2: fixed64
            0x1a, 0x01, b'z', // 3: bytes
            0x23, 0x08, 0x01, 0x24, // 4: group { 1: 1 }
            0x2d, 9, 9, 9, 9, // 5: fixed32
        ];
        let got: Vec<_> = fields(&message).map(|f| f.unwrap()).collect();
        let kinds: Vec<_> = got.iter().map(|f| (f.number, f.wire_type)).collect();
        assert_eq!(
            kinds,
            [
                (1, WireType::Varint),
                (2, WireType::Fixed64),
                (3, WireType::LengthDelimited),
                (4, WireType::Group),
                (5, WireType::Fixed32),
            ]
        );
        assert_eq!(got[3].value, [0x08, 0x01]);
        let rebuilt: Vec<u8> = got.iter().flat_map(|f| f.raw.iter().copied()).collect();
        assert_eq!(rebuilt, message);
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for bad in [
            &[0x0a, 0x05, b'a'][..],
            &[0x80],
            &[0x0f],
            &[0x00, 0x00],
            &[0x23, 0x08, 0x01],
            &[0x23, 0x2c],
        ] {
            assert!(fields(bad).any(|f| f.is_err()), "{bad:?} accepted");
            assert!(remove_fields(bad, &[1]).is_err());
        }
    }

    #[test]
    fn removing_later_fields_keeps_every_field_around_them() {
        // field 2 = "ab", field 3 = 5, field 1 = 1, field 4 = "c", field 1 = 2
        let message = [
            0x12, 0x02, b'a', b'b', 0x18, 0x05, 0x08, 0x01, 0x22, 0x01, b'c', 0x08, 0x02,
        ];
        let out = remove_fields(&message, &[1]).unwrap().unwrap();
        assert_eq!(out, [0x12, 0x02, b'a', b'b', 0x18, 0x05, 0x22, 0x01, b'c']);
        let out = remove_fields(&message, &[4, 9]).unwrap().unwrap();
        assert_eq!(
            out,
            [0x12, 0x02, b'a', b'b', 0x18, 0x05, 0x08, 0x01, 0x08, 0x02]
        );
        assert_eq!(remove_fields(&message, &[9]).unwrap(), None);
        // A malformed field after the removed one is still an error.
        assert!(remove_fields(&[0x08, 0x01, 0x80], &[1]).is_err());
    }

    #[test]
    fn replace_appends_when_absent() {
        let out = replace_bytes_field(&[0x08, 0x01], 2, b"x").unwrap();
        assert_eq!(out, [0x08, 0x01, 0x12, 0x01, b'x']);
    }

    #[test]
    fn large_field_numbers_round_trip() {
        let mut message = Vec::new();
        write_varint(&mut message, 536_870_911u64 << 3); // wire type 0 (varint)
        write_varint(&mut message, 5);
        let field = fields(&message).next().unwrap().unwrap();
        assert_eq!(field.number, 536_870_911);
        assert_eq!(field.as_varint(), Some(5));
    }
}
