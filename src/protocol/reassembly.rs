//! From whole frames to messages: the reassembly of a fragmented message, and the events that
//! complete frames make. The decoder (`decoder.rs`) turns bytes into whole frames.

use bytes::{Bytes, BytesMut};

use super::close::CloseFrame;
use super::decoder::Event;
use super::deflate::codec::InflateError;
use super::deflate::{Inflating, RSV1_BITS};
use super::frame::{FrameHeader, OpCode};
use super::utf8::Utf8Validator;
use super::ProtocolError;
use crate::message::Text;

/// A fragmented message being put back together.
#[derive(Debug)]
pub(super) struct Reassembly {
    pub(super) text: bool,
    /// Its first frame had RSV1: `data` is compressed until the last frame.
    pub(super) compressed: bool,
    pub(super) data: BytesMut,
}

/// Turns a complete frame into an event, or adds it to `message`, the one being reassembled.
/// `utf8` has checked every text payload byte as it arrived (but one whole single-frame text,
/// which `Text::try_from` checks); it is finished here, at the end of a text message.
/// A compressed message (RSV1 on its first frame) is gathered compressed and inflated by
/// `inflating` when its last frame arrives, refusing past `max_message` inflated bytes.
pub(super) fn finish_frame(
    message: &mut Option<Box<Reassembly>>,
    utf8: &mut Utf8Validator,
    inflating: Option<&mut Inflating>,
    max_message: usize,
    header: FrameHeader,
    payload: Bytes,
) -> Result<Option<Event>, ProtocolError> {
    let compressed = header.rsv == RSV1_BITS;
    let event = match header.opcode {
        OpCode::Ping => Event::Ping(payload),
        OpCode::Pong => Event::Pong(payload),
        OpCode::Close => Event::Close(CloseFrame::parse(&payload)?),
        OpCode::Text | OpCode::Binary if header.fin => {
            let payload = if compressed {
                inflate(inflating, &payload, max_message)?
            } else {
                payload
            };
            return message_event(utf8, header.opcode == OpCode::Text, payload).map(Some);
        }
        OpCode::Text | OpCode::Binary => {
            *message = Some(Box::new(Reassembly {
                text: header.opcode == OpCode::Text,
                compressed,
                data: BytesMut::from(&payload[..]),
            }));
            return Ok(None);
        }
        OpCode::Continuation => {
            let Some(partial) = message.as_mut() else {
                return Err(ProtocolError::UnexpectedContinuation);
            };
            partial.data.extend_from_slice(&payload);
            if !header.fin {
                return Ok(None);
            }
            let (text, compressed) = (partial.text, partial.compressed);
            let mut data = std::mem::take(&mut partial.data).freeze();
            *message = None;
            if compressed {
                data = inflate(inflating, &data, max_message)?;
            }
            return message_event(utf8, text, data).map(Some);
        }
    };
    Ok(Some(event))
}

/// Inflates a whole compressed message.
fn inflate(inflating: Option<&mut Inflating>, compressed: &[u8], max: usize) -> Result<Bytes, ProtocolError> {
    // The decoder takes RSV1 only once compression is negotiated.
    let inflating = inflating.ok_or(ProtocolError::ReservedBits(RSV1_BITS))?;
    inflating.message(compressed, max).map_err(|error| match error {
        InflateError::TooBig => ProtocolError::MessageTooBig {
            size: max as u64 + 1,
            max,
        },
        InflateError::Corrupt => ProtocolError::BadCompression,
    })
}

/// A whole message as an event; text is checked to be UTF-8.
fn message_event(utf8: &mut Utf8Validator, text: bool, data: Bytes) -> Result<Event, ProtocolError> {
    if !text {
        return Ok(Event::Binary(data));
    }
    utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
    Text::try_from(data)
        .map(Event::Text)
        .map_err(|_| ProtocolError::InvalidUtf8)
}
