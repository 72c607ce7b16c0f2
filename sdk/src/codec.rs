//! Typed messages: decode a message with prost when the plugin knows its schema.

/// Decodes a message of a known type.
///
/// ```
/// #[derive(Clone, PartialEq, prost::Message)]
/// struct HelloRequest {
///     #[prost(string, tag = "1")]
///     name: String,
/// }
/// let bytes = sluice_sdk::encode(&HelloRequest { name: "ada".into() });
/// let decoded: HelloRequest = sluice_sdk::decode(&bytes).unwrap();
/// assert_eq!(decoded.name, "ada");
/// ```
pub fn decode<T: prost::Message + Default>(message: &[u8]) -> Result<T, prost::DecodeError> {
    T::decode(message)
}

/// Encodes a message, e.g. for [`crate::Verdict::Modify`].
///
/// ```
/// #[derive(Clone, PartialEq, prost::Message)]
/// struct Reply {
///     #[prost(string, tag = "1")]
///     message: String,
/// }
/// assert_eq!(sluice_sdk::encode(&Reply { message: "hi".into() }), b"\x0a\x02hi");
/// ```
pub fn encode<T: prost::Message>(message: &T) -> Vec<u8> {
    message.encode_to_vec()
}
