//! The decoder's unread input: a read chunk it owns, or one the transport still shares.

use bytes::{Buf, Bytes, BytesMut};

/// The unread rest of the last chunk fed to the decoder.
///
/// From a chunk the decoder owns, a large frame is split off and unmasked where it lies. A chunk
/// the transport still shares (actix-web keeps a reference to every chunk it hands over) cannot
/// be changed: its frames are copied out one at a time, each byte once, rather than the whole
/// chunk being copied first and its partial frames copied again.
#[derive(Debug)]
pub(crate) enum Input {
    Owned(BytesMut),
    Shared(Bytes),
}

impl Default for Input {
    fn default() -> Self {
        Input::Owned(BytesMut::new())
    }
}

impl Input {
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Input::Owned(bytes) => bytes,
            Input::Shared(bytes) => bytes,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.bytes().len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes().is_empty()
    }

    pub(crate) fn advance(&mut self, count: usize) {
        match self {
            Input::Owned(bytes) => bytes.advance(count),
            Input::Shared(bytes) => bytes.advance(count),
        }
    }

    /// The chunk, if the decoder owns it and so may unmask a frame in place.
    pub(crate) fn owned(&mut self) -> Option<&mut BytesMut> {
        match self {
            Input::Owned(bytes) => Some(bytes),
            Input::Shared(_) => None,
        }
    }
}

impl From<Bytes> for Input {
    /// Owned when no other handle shares the memory.
    fn from(bytes: Bytes) -> Self {
        match bytes.try_into_mut() {
            Ok(owned) => Input::Owned(owned),
            Err(shared) => Input::Shared(shared),
        }
    }
}

impl From<BytesMut> for Input {
    fn from(bytes: BytesMut) -> Self {
        Input::Owned(bytes)
    }
}
