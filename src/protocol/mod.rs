//! The RFC 6455 core: frames, masking, reassembly and close payloads, with no I/O.
//!
//! Everything here takes bytes and returns values, so it is tested with byte fixtures and can be
//! fuzzed directly. The connection actors feed it what the socket delivers and write what it
//! encodes. See `docs/architecture.md` for why switchboard owns this layer.
//!
//! ```
//! use bytes::BytesMut;
//! use switchboard::protocol::{encode_frame, Decoder, Event, OpCode, Role};
//!
//! // A client masks what it sends; a server decoder unmasks and checks it.
//! let mut wire = BytesMut::new();
//! encode_frame(&mut wire, OpCode::Binary, true, &[1, 2, 3], Some([7, 7, 7, 7]));
//! let mut server = Decoder::new(Role::Server, 1 << 16, 1 << 16);
//! server.feed(&wire);
//! assert_eq!(server.next_event(), Ok(Some(Event::Binary(vec![1, 2, 3].into()))));
//! ```

mod close;
mod decoder;
pub(crate) mod deflate;
mod frame;
mod input;
mod mask;
mod reassembly;
mod utf8;

pub use close::{CloseCode, CloseFrame, MAX_CLOSE_REASON};
pub use decoder::{Decoder, Event};
pub use frame::{
    encode_frame, encode_unmasked_header, frame_len, FrameHeader, OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN,
};
pub(crate) use input::Input;
pub use mask::{apply_mask, random_mask};
pub use utf8::{InvalidUtf8, Utf8Validator};

/// Which end of the connection this endpoint is: it decides who masks (RFC 6455 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Accepts connections; receives masked frames and sends unmasked ones.
    Server,
    /// Opens connections; sends masked frames and receives unmasked ones.
    Client,
}

/// A way the peer broke RFC 6455 or a configured limit.
///
/// Each variant maps to the close code the connection is failed with ([`ProtocolError::close_code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Reserved bits were set without an extension that defines them (1002).
    #[error("reserved bits {0:#05b} set without a negotiated extension")]
    ReservedBits(u8),
    /// A compressed message that does not inflate (1007).
    #[error("a compressed message is not valid deflate data")]
    BadCompression,
    /// An opcode RFC 6455 reserves (1002).
    #[error("reserved opcode {0:#x}")]
    ReservedOpCode(u8),
    /// A close, ping or pong frame without FIN (1002).
    #[error("fragmented control frame")]
    FragmentedControl,
    /// A control frame with more than 125 payload bytes (1002).
    #[error("control frame payload over 125 bytes")]
    ControlTooLong,
    /// A 64-bit payload length with its most significant bit set (1002).
    #[error("invalid payload length")]
    InvalidLength,
    /// A client sent a frame without a mask (1002).
    #[error("client frame not masked")]
    UnmaskedFrame,
    /// A server sent a masked frame (1002).
    #[error("server frame masked")]
    MaskedFrame,
    /// A continuation frame with no message to continue (1002).
    #[error("continuation frame without a message in progress")]
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message was unfinished (1002).
    #[error("new data frame while a fragmented message is unfinished")]
    ExpectedContinuation,
    /// Text that is not valid UTF-8, in a message or a close reason (1007).
    #[error("text is not valid UTF-8")]
    InvalidUtf8,
    /// A close frame with a 1-byte payload (`None`) or a code not allowed on the wire (1002).
    #[error("{}", invalid_close_code(*.0))]
    InvalidCloseCode(Option<u16>),
    /// A frame longer than the configured maximum frame size (1009).
    #[error("frame of {size} bytes is over the {max}-byte limit")]
    FrameTooBig {
        /// The frame's payload length.
        size: u64,
        /// The configured limit.
        max: usize,
    },
    /// A message longer than the configured maximum message size (1009).
    #[error("message of at least {size} bytes is over the {max}-byte limit")]
    MessageTooBig {
        /// The message's length so far, counting the frame that crossed the limit.
        size: u64,
        /// The configured limit.
        max: usize,
    },
}

/// The text of [`ProtocolError::InvalidCloseCode`]: the code as a number.
fn invalid_close_code(code: Option<u16>) -> String {
    match code {
        Some(code) => format!("invalid close code {code}"),
        None => "a close payload of 1 byte (a close code takes 2)".to_owned(),
    }
}

impl ProtocolError {
    /// The close code to fail the connection with.
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8 | ProtocolError::BadCompression => CloseCode::INVALID_DATA,
            ProtocolError::FrameTooBig { .. } | ProtocolError::MessageTooBig { .. } => CloseCode::TOO_BIG,
            _ => CloseCode::PROTOCOL,
        }
    }
}
