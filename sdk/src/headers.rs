//! [`Headers`]: call metadata as a plugin sees it, kept in the flat form the WIT interface
//! passes it in (`type metadata` in `wit/filter.wit`: entry after entry, the name's and the
//! value's length as u32 little-endian each, then the name, then the value). Headers from
//! the proxy are read where they arrived, with no allocation per entry; only what a plugin
//! adds is appended.

use std::fmt;
use std::ops::Range;

/// Call metadata (request headers, response headers or trailers) as an ordered list of
/// entries. Names are lower-case; values of `-bin` keys are raw bytes (the host decodes
/// and re-encodes base64). Repeated keys are repeated entries. The host keeps
/// `content-type`, `te` and pseudo-headers to itself.
///
/// ```
/// use sluice_sdk::Headers;
/// let mut headers = Headers::from_pairs([("authorization", "Bearer t"), ("x-a", "1")]);
/// assert_eq!(headers.get_str("authorization"), Some("Bearer t"));
/// headers.remove("authorization");
/// assert!(headers.is_modified());
/// assert_eq!(headers.len(), 1);
/// ```
#[derive(Clone, Default)]
pub struct Headers {
    /// Where the names and values are: the proxy's flat buffer as it came (length
    /// prefixes and all), then every name and value added since.
    bytes: Vec<u8>,
    /// The entries, in order.
    entries: Vec<Entry>,
    modified: bool,
}

/// One entry: where its name (valid UTF-8) and its value are in `Headers::bytes`.
#[derive(Clone, Copy, Debug)]
struct Entry {
    name: (u32, u32),
    value: (u32, u32),
}

fn range((start, len): (u32, u32)) -> Range<usize> {
    start as usize..start as usize + len as usize
}

/// Whether `entry` (in `bytes`) is named `name`, ignoring ASCII case.
fn is_named(bytes: &[u8], entry: &Entry, name: &str) -> bool {
    bytes[range(entry.name)].eq_ignore_ascii_case(name.as_bytes())
}

impl Headers {
    /// Headers from `(name, value)` entries, as the host passes them (not modified).
    ///
    /// ```
    /// let h = sluice_sdk::Headers::new(vec![("x-id".to_string(), b"7".to_vec())]);
    /// assert_eq!(h.get("x-id"), Some(&b"7"[..]));
    /// ```
    pub fn new(entries: Vec<(String, Vec<u8>)>) -> Headers {
        let mut headers = Headers::default();
        for (name, value) in entries {
            headers.push(name.as_bytes(), &value);
        }
        headers
    }

    /// Headers from string pairs (handy in tests).
    ///
    /// ```
    /// let h = sluice_sdk::Headers::from_pairs([("x-a", "1"), ("x-a", "2")]);
    /// assert_eq!(h.get_all("x-a").count(), 2);
    /// ```
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Headers {
        let mut headers = Headers::default();
        for (name, value) in pairs {
            headers.push(name.to_ascii_lowercase().as_bytes(), value.as_bytes());
        }
        headers
    }

    /// Headers over a flat buffer from the host, taken as it is: each entry is found
    /// where it lies. A name that is not UTF-8 (the host sends lower-case ASCII) is kept
    /// with its invalid bytes replaced. Should the buffer be cut short, the entries before
    /// the cut are kept.
    #[cfg(any(target_arch = "wasm32", test))]
    pub(crate) fn from_flat(flat: Vec<u8>) -> Headers {
        let mut headers = Headers {
            bytes: flat,
            entries: Vec::new(),
            modified: false,
        };
        let end = headers.bytes.len();
        let mut at = 0;
        while end - at >= 8 {
            let field = |i: usize| {
                u32::from_le_bytes(headers.bytes[i..i + 4].try_into().expect("4 bytes")) as usize
            };
            let (name_len, value_len) = (field(at), field(at + 4));
            let name_at = at + 8;
            if end - name_at < name_len.saturating_add(value_len) {
                break;
            }
            let value_at = name_at + name_len;
            let value = (value_at as u32, value_len as u32);
            at = value_at + value_len;
            let name = &headers.bytes[name_at..value_at];
            let name = match std::str::from_utf8(name) {
                Ok(_) => (name_at as u32, name_len as u32),
                Err(_) => {
                    let fixed = String::from_utf8_lossy(name).into_owned();
                    headers.append_bytes(fixed.as_bytes())
                }
            };
            headers.entries.push(Entry { name, value });
        }
        headers
    }

    /// The entries as a flat buffer for the host.
    #[cfg(any(target_arch = "wasm32", test))]
    pub(crate) fn to_flat(&self) -> Vec<u8> {
        // The stored bytes as they are: names need no UTF-8 check on the way out.
        let entries = self
            .entries
            .iter()
            .map(|e| (self.name_of(e), self.value_of(e)));
        let size = entries.clone().map(|(n, v)| 8 + n.len() + v.len()).sum();
        let mut flat = Vec::with_capacity(size);
        for (name, value) in entries {
            flat.extend_from_slice(&(name.len() as u32).to_le_bytes());
            flat.extend_from_slice(&(value.len() as u32).to_le_bytes());
            flat.extend_from_slice(name);
            flat.extend_from_slice(value);
        }
        flat
    }

    /// Appends `bytes` to the store; where they now are.
    fn append_bytes(&mut self, bytes: &[u8]) -> (u32, u32) {
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(bytes);
        (start, bytes.len() as u32)
    }

    /// Adds an entry (`name` is lower-case UTF-8) without marking a change.
    fn push(&mut self, name: &[u8], value: &[u8]) {
        let name = self.append_bytes(name);
        let value = self.append_bytes(value);
        self.entries.push(Entry { name, value });
    }

    fn name_of(&self, entry: &Entry) -> &[u8] {
        &self.bytes[range(entry.name)]
    }

    fn value_of(&self, entry: &Entry) -> &[u8] {
        &self.bytes[range(entry.value)]
    }

    /// The first value of `name`.
    ///
    /// ```
    /// let h = sluice_sdk::Headers::from_pairs([("x-a", "1")]);
    /// assert_eq!(h.get("x-a"), Some(&b"1"[..]));
    /// assert_eq!(h.get("x-b"), None);
    /// ```
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.get_all(name).next()
    }

    /// The first value of `name` if it is UTF-8.
    ///
    /// ```
    /// let h = sluice_sdk::Headers::from_pairs([("x-a", "1")]);
    /// assert_eq!(h.get_str("x-a"), Some("1"));
    /// ```
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every value of `name`, in order.
    ///
    /// ```
    /// let h = sluice_sdk::Headers::from_pairs([("x-a", "1"), ("x-b", "2"), ("x-a", "3")]);
    /// assert_eq!(h.get_all("x-a").collect::<Vec<_>>(), [b"1", b"3"]);
    /// ```
    pub fn get_all<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]> {
        self.entries
            .iter()
            .filter(move |e| is_named(&self.bytes, e, name))
            .map(|e| self.value_of(e))
    }

    /// Replaces every value of `name` with `value`.
    ///
    /// ```
    /// let mut h = sluice_sdk::Headers::from_pairs([("x-a", "1"), ("x-a", "2")]);
    /// h.insert("x-a", "3");
    /// assert_eq!(h.get_all("x-a").collect::<Vec<_>>(), [b"3"]);
    /// ```
    pub fn insert(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        self.remove(name);
        self.append(name, value);
    }

    /// Adds a value of `name` after the existing ones.
    ///
    /// ```
    /// let mut h = sluice_sdk::Headers::default();
    /// h.append("x-trace-bin", vec![0u8, 255]);
    /// assert_eq!(h.get("x-trace-bin"), Some(&[0u8, 255][..]));
    /// ```
    pub fn append(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        self.push(name.to_ascii_lowercase().as_bytes(), &value.into());
        self.modified = true;
    }

    /// Removes every value of `name`; returns how many there were.
    ///
    /// ```
    /// let mut h = sluice_sdk::Headers::from_pairs([("x-a", "1")]);
    /// assert_eq!(h.remove("x-a"), 1);
    /// assert_eq!(h.remove("x-a"), 0);
    /// ```
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.entries.len();
        let bytes = &self.bytes;
        self.entries.retain(|e| !is_named(bytes, e, name));
        let removed = before - self.entries.len();
        if removed > 0 {
            self.modified = true;
        }
        removed
    }

    /// Whether any change was made (the host then replaces the metadata with this list).
    ///
    /// ```
    /// let mut h = sluice_sdk::Headers::from_pairs([("x-a", "1")]);
    /// assert!(!h.is_modified());
    /// h.insert("x-b", "2");
    /// assert!(h.is_modified());
    /// ```
    pub fn is_modified(&self) -> bool {
        self.modified
    }

    /// Number of entries.
    ///
    /// ```
    /// assert_eq!(sluice_sdk::Headers::default().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    ///
    /// ```
    /// assert!(sluice_sdk::Headers::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries, in order.
    ///
    /// ```
    /// let h = sluice_sdk::Headers::from_pairs([("x-a", "1")]);
    /// assert_eq!(h.iter().next(), Some(("x-a", &b"1"[..])));
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|e| {
            // Every name was checked (or made) UTF-8 when its entry was added.
            let name = std::str::from_utf8(self.name_of(e)).unwrap_or_default();
            (name, self.value_of(e))
        })
    }

    /// The entries, consumed.
    ///
    /// ```
    /// let h = sluice_sdk::Headers::from_pairs([("x-a", "1")]);
    /// assert_eq!(h.into_entries(), vec![("x-a".to_string(), b"1".to_vec())]);
    /// ```
    pub fn into_entries(self) -> Vec<(String, Vec<u8>)> {
        self.iter()
            .map(|(name, value)| (name.to_owned(), value.to_vec()))
            .collect()
    }
}

/// Equal when the entries are, in order, and both are modified or both are not (however
/// each keeps its bytes).
impl PartialEq for Headers {
    fn eq(&self, other: &Headers) -> bool {
        self.modified == other.modified && self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Entries<'a>(&'a Headers);
        impl fmt::Debug for Entries<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list()
                    .entries(
                        self.0
                            .iter()
                            .map(|(n, v)| (n, String::from_utf8_lossy(v).into_owned())),
                    )
                    .finish()
            }
        }
        f.debug_struct("Headers")
            .field("entries", &Entries(self))
            .field("modified", &self.modified)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(list: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), v.to_vec()))
            .collect()
    }

    #[test]
    fn entries_survive_the_round_trip_through_the_flat_form() {
        let list = entries(&[("x-a", b"1"), ("x-a", b""), ("x-b-bin", &[0, 255, 10])]);
        let flat = Headers::new(list.clone()).to_flat();
        assert_eq!(&flat[..11], &[3, 0, 0, 0, 1, 0, 0, 0, b'x', b'-', b'a']);
        let headers = Headers::from_flat(flat);
        assert!(!headers.is_modified());
        assert_eq!(headers.into_entries(), list);
    }

    #[test]
    fn a_cut_buffer_keeps_the_whole_entries_before_the_cut() {
        let flat = Headers::new(entries(&[("x-a", b"1"), ("x-b", b"22")])).to_flat();
        for cut in 12..flat.len() {
            assert_eq!(
                Headers::from_flat(flat[..cut].to_vec()).into_entries(),
                entries(&[("x-a", b"1")]),
                "cut at {cut}"
            );
        }
        assert!(Headers::from_flat(flat[..11].to_vec()).is_empty());
        // Lengths that point past the end (or overflow) end the list too.
        let mut huge = flat.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Headers::from_flat(huge).is_empty());
    }

    #[test]
    fn a_name_that_is_not_utf8_is_kept_with_its_bytes_replaced() {
        let mut flat = Vec::new();
        flat.extend_from_slice(&2u32.to_le_bytes());
        flat.extend_from_slice(&1u32.to_le_bytes());
        flat.extend_from_slice(&[b'x', 0xff, b'7']);
        let headers = Headers::from_flat(flat);
        assert_eq!(
            headers.iter().collect::<Vec<_>>(),
            [("x\u{fffd}", &b"7"[..])]
        );
    }

    #[test]
    fn changes_to_headers_from_the_host_come_back_in_order() {
        let flat = Headers::new(entries(&[("a", b"1"), ("b", b"2"), ("a", b"3")])).to_flat();
        let mut headers = Headers::from_flat(flat);
        assert_eq!(headers.get_all("A").collect::<Vec<_>>(), [b"1", b"3"]);
        assert_eq!(headers.remove("a"), 2);
        headers.append("C", "4");
        headers.insert("b", vec![0u8, 9]);
        assert!(headers.is_modified());
        let back = Headers::from_flat(headers.to_flat());
        assert_eq!(back.into_entries(), entries(&[("c", b"4"), ("b", &[0, 9])]));
    }

    #[test]
    fn equal_entries_are_equal_headers_however_they_were_made() {
        let flat = Headers::from_pairs([("x-a", "1")]).to_flat();
        assert_eq!(
            Headers::from_flat(flat),
            Headers::from_pairs([("x-a", "1")])
        );
        let mut changed = Headers::from_pairs([("x-a", "1")]);
        changed.insert("x-a", "1");
        assert_ne!(
            changed,
            Headers::from_pairs([("x-a", "1")]),
            "modified differs"
        );
        assert_ne!(
            Headers::from_pairs([("x-a", "1"), ("x-b", "2")]),
            Headers::from_pairs([("x-b", "2"), ("x-a", "1")])
        );
    }
}
