//! The messages sessions exchange: text, binary, and a shared form that is encoded once.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use bytestring::ByteString;

use crate::protocol::deflate;

/// UTF-8 text, cheap to clone (the bytes are shared, not copied).
///
/// Dereferences to `&str`.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Text(ByteString);

impl Text {
    /// Text from a static string, without copying.
    pub const fn from_static(s: &'static str) -> Text {
        Text(ByteString::from_static(s))
    }

    /// The text as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The UTF-8 bytes, shared.
    pub fn into_bytes(self) -> Bytes {
        self.0.into_bytes()
    }

    /// The same text as actix's `ByteString`, without copying.
    pub(crate) fn into_byte_string(self) -> ByteString {
        self.0
    }
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text(s.into())
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text(s.into())
    }
}

impl TryFrom<Bytes> for Text {
    type Error = std::str::Utf8Error;
    /// Checks that `bytes` are UTF-8, then shares them without copying.
    fn try_from(bytes: Bytes) -> Result<Self, Self::Error> {
        ByteString::try_from(bytes).map(Text)
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A WebSocket data message.
///
/// `String`, `&str` and [`Text`] convert into `Message::Text`; `Vec<u8>`, `&[u8]` and `Bytes`
/// into `Message::Binary`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message.
    Text(Text),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    /// The payload length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Message::Text(text) => text.len(),
            Message::Binary(bytes) => bytes.len(),
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<Text> for Message {
    fn from(text: Text) -> Self {
        Message::Text(text)
    }
}

/// A session actor's text (`ws::Message::Text`), without copying.
impl From<ByteString> for Text {
    fn from(text: ByteString) -> Self {
        Text(text)
    }
}

/// A session actor's text (`ws::Message::Text`) as a message to send on, without copying.
impl From<ByteString> for Message {
    fn from(text: ByteString) -> Self {
        Message::Text(Text(text))
    }
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Message::Text(s.into())
    }
}

impl From<&str> for Message {
    fn from(s: &str) -> Self {
        Message::Text(s.into())
    }
}

impl From<&String> for Message {
    fn from(s: &String) -> Self {
        Message::Text(s.as_str().into())
    }
}

impl From<Bytes> for Message {
    fn from(bytes: Bytes) -> Self {
        Message::Binary(bytes)
    }
}

impl From<Vec<u8>> for Message {
    fn from(bytes: Vec<u8>) -> Self {
        Message::Binary(bytes.into())
    }
}

impl From<&[u8]> for Message {
    fn from(bytes: &[u8]) -> Self {
        Message::Binary(Bytes::copy_from_slice(bytes))
    }
}

impl<const N: usize> From<&[u8; N]> for Message {
    fn from(bytes: &[u8; N]) -> Self {
        Message::Binary(Bytes::copy_from_slice(bytes))
    }
}

/// A message on its way to one or many sessions, with room for its encoded frame.
///
/// Cloning shares the message. A server's frames are not masked, so the bytes on the wire are the
/// same for every recipient: the first session to send it encodes it, the others reuse the bytes.
#[derive(Clone)]
pub(crate) struct Outgoing(Arc<OutgoingInner>);

struct OutgoingInner {
    message: Message,
    frame: OnceLock<Bytes>,
    /// The compressed frame (no context takeover), one per window size (8 to 15 bits), so a
    /// broadcast costs at most one deflate call per window its recipients agreed on, whatever
    /// mix of windows the peers ask for.
    deflated: [OnceLock<Bytes>; deflate::WINDOW_SIZES],
}

impl Outgoing {
    /// Wraps a message for delivery.
    pub(crate) fn new(message: impl Into<Message>) -> Self {
        Outgoing(Arc::new(OutgoingInner {
            message: message.into(),
            frame: OnceLock::new(),
            deflated: Default::default(),
        }))
    }

    /// The message.
    pub(crate) fn message(&self) -> &Message {
        &self.0.message
    }

    /// The compressed frame for a `window`-bit window (8 to 15), made by `compress` on the first
    /// call for that window and shared after that.
    pub(crate) fn deflated(&self, window: u8, compress: impl FnOnce(&Message) -> Bytes) -> Bytes {
        match self.0.deflated.get(deflate::slot(window)) {
            Some(frame) => frame.get_or_init(|| compress(&self.0.message)).clone(),
            None => compress(&self.0.message),
        }
    }

    /// The encoded frame, made by `encode` on the first call and shared after that.
    ///
    /// Every caller must pass the same encoding (an unmasked server frame).
    pub(crate) fn frame(&self, encode: impl FnOnce(&Message) -> Bytes) -> &Bytes {
        self.0.frame.get_or_init(|| encode(&self.0.message))
    }
}

impl fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outgoing")
            .field("message", &self.0.message)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_pick_text_or_binary() {
        assert!(matches!(Message::from("hi"), Message::Text(t) if t == "hi"));
        assert!(matches!(Message::from(String::from("hi")), Message::Text(_)));
        assert!(matches!(Message::from(vec![1u8]), Message::Binary(_)));
        assert!(matches!(Message::from(&[1u8, 2][..]), Message::Binary(b) if b.len() == 2));
        assert!(matches!(Message::from(Bytes::new()), Message::Binary(_)));
    }

    #[test]
    fn text_refuses_invalid_utf8() {
        assert!(Text::try_from(Bytes::from_static(&[0xFF])).is_err());
        assert_eq!(Text::try_from(Bytes::from_static("ok".as_bytes())).unwrap(), "ok");
    }

    #[test]
    fn an_outgoing_message_is_encoded_once() {
        let out = Outgoing::new("x");
        let copy = out.clone();
        let calls = std::cell::Cell::new(0);
        let encode = |_: &Message| {
            calls.set(calls.get() + 1);
            Bytes::from_static(b"frame")
        };
        assert_eq!(out.frame(encode), copy.frame(encode));
        assert_eq!(calls.get(), 1);
    }
}
