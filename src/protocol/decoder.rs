//! The receiving half of the protocol: bytes in, validated events out.

use crate::message::Text;
use bytes::{Buf, Bytes, BytesMut};

use super::close::CloseFrame;
use super::deflate::{Inflating, RSV1_BITS};
use super::frame::{FrameHeader, OpCode};
use super::input::Input;
use super::mask::apply_mask;
use super::reassembly::{finish_frame, Reassembly};
use super::utf8::Utf8Validator;
use super::{ProtocolError, Role};

/// What the peer sent: a whole message or a control frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete text message, reassembled and UTF-8 validated.
    Text(Text),
    /// A complete binary message, reassembled.
    Binary(Bytes),
    /// A ping and its payload.
    Ping(Bytes),
    /// A pong and its payload.
    Pong(Bytes),
    /// A close frame, with its code and reason when it had one.
    Close(Option<CloseFrame>),
}

/// Most bytes reserved for a frame's payload before they arrive.
///
/// A payload that did not arrive whole gets its own buffer, so that each later read is copied
/// once, unmasked in place while it is hot in the cache, and never moved by a reallocation. Only
/// this much is reserved up front: a peer could otherwise send a header claiming `max_frame`
/// bytes per connection and have us commit all that memory before sending any of it. Longer
/// payloads grow as their bytes arrive.
const PAYLOAD_RESERVE_MAX: usize = 256 * 1024;

/// How much is moved to the input buffer to read a header: any header, and small frames whole.
/// A large frame's first bytes are copied twice, this many at most.
const HEADER_PULL: usize = 256;

/// The smallest payload taken from a read chunk in place rather than copied out of it.
///
/// A payload taken in place keeps the whole chunk it came in (up to 256 KiB on
/// `switchboard::Server`) alive for as long as the application holds the message. From this size
/// up, that is at most 16 times the message; smaller payloads are copied, which costs little.
const IN_PLACE_MIN: usize = 16 * 1024;

/// The header of the frame whose payload is arriving, and how much of it is already unmasked.
#[derive(Debug)]
struct PendingFrame {
    header: FrameHeader,
    len: usize,
    /// Payload bytes already unmasked (and UTF-8 checked if text): at the front of the input
    /// buffer, or of `payload`.
    done: usize,
    /// The payload so far, unmasked, when the frame did not arrive whole: later reads go straight
    /// here instead of through the input buffer.
    payload: Option<BytesMut>,
}

/// Turns the bytes a peer sends into [`Event`]s, enforcing RFC 6455 and the size limits.
///
/// Feed it bytes as they arrive with [`Decoder::feed`], then call [`Decoder::next_event`] until it
/// returns `Ok(None)`. After an error the connection must be failed with
/// [`ProtocolError::close_code`]; the decoder is not used again.
///
/// ```
/// use switchboard::protocol::{Decoder, Event, Role};
///
/// let mut decoder = Decoder::new(Role::Client, 1 << 20, 1 << 20);
/// decoder.feed(&[0x01, 0x03, b'H', b'e', b'l']); // first fragment, unmasked (from a server)
/// assert_eq!(decoder.next_event(), Ok(None));
/// decoder.feed(&[0x80, 0x02, b'l', b'o']); // final continuation
/// match decoder.next_event() {
///     Ok(Some(Event::Text(text))) => assert_eq!(&*text, "Hello"),
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
#[derive(Debug)]
pub struct Decoder {
    role: Role,
    max_frame: usize,
    max_message: usize,
    buf: BytesMut,
    /// The unread rest of the last chunk fed, taken frame by frame.
    input: Input,
    frame: Option<PendingFrame>,
    /// The fragmented message being reassembled. Boxed: an idle connection holds 8 bytes here,
    /// not 40, and a fragmented message allocates its data anyway.
    message: Option<Box<Reassembly>>,
    utf8: Utf8Validator,
    /// permessage-deflate, when negotiated: RSV1 then marks a compressed message. Boxed: a
    /// connection without it holds 8 bytes here, not 168 (idle memory, docs/benchmarks.md).
    inflating: Option<Box<Inflating>>,
}

impl Decoder {
    /// A decoder for the endpoint playing `role`, refusing frames over `max_frame` bytes and
    /// messages over `max_message` bytes.
    pub fn new(role: Role, max_frame: usize, max_message: usize) -> Self {
        Decoder {
            role,
            max_frame,
            max_message,
            buf: BytesMut::new(),
            input: Input::default(),
            frame: None,
            message: None,
            utf8: Utf8Validator::default(),
            inflating: None,
        }
    }

    /// Accepts compressed messages (RSV1 on their first frame), inflated by `inflating`.
    pub(crate) fn set_inflating(&mut self, inflating: Inflating) {
        self.inflating = Some(Box::new(inflating));
    }

    /// Appends bytes received from the peer, copying them. [`Decoder::feed_bytes`] takes an
    /// owned chunk and copies only what it must.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.feed_owned(BytesMut::from(bytes));
    }

    /// Appends a chunk received from the peer.
    ///
    /// Bytes of a frame payload already under way are copied to that payload and unmasked; the
    /// rest is kept until [`Decoder::next_event`] takes each frame from it, so every payload byte
    /// is copied at most once. If no other handle shares the chunk's memory, it is taken as
    /// [`Decoder::feed_owned`] takes it.
    pub fn feed_bytes(&mut self, bytes: Bytes) {
        self.feed_input(Input::from(bytes));
    }

    /// Appends a chunk received from the peer that the decoder may change: a frame of 16 KiB or
    /// more that lies whole in it is unmasked where it lies and handed on without a copy.
    pub fn feed_owned(&mut self, bytes: BytesMut) {
        self.feed_input(Input::Owned(bytes));
    }

    /// Appends a chunk as a transport hands it over: `BytesMut` from switchboard's own readers,
    /// `Bytes` from actix-web's payload stream.
    pub(crate) fn feed_input(&mut self, mut bytes: Input) {
        if !self.input.is_empty() {
            // Fed twice without reading events: keep the order, at the cost of a copy.
            self.buf.extend_from_slice(std::mem::take(&mut self.input).bytes());
        }
        if let Some(PendingFrame {
            header,
            len,
            payload: Some(payload),
            ..
        }) = &mut self.frame
        {
            // While a payload fills, the input buffer is empty: every byte before it was taken.
            let now = (*len - payload.len()).min(bytes.len());
            append_unmasked(payload, bytes.bytes().get(..now).unwrap_or_default(), header.mask);
            bytes.advance(now);
        }
        self.input = bytes;
    }

    /// Moves up to `count` bytes from the front of the unread input to the input buffer.
    fn pull(&mut self, count: usize) {
        let count = count.min(self.input.len());
        self.buf
            .extend_from_slice(self.input.bytes().get(..count).unwrap_or_default());
        self.input.advance(count);
    }

    /// Lets go of the last chunk fed once every byte of it has been taken: the empty rest of a
    /// chunk still holds the memory the chunk came in. For a connection gone quiet.
    ///
    /// Not done after every chunk: freeing each read buffer as soon as it was spent made the
    /// allocator hand its pages back and fault them in again, doubling the kernel time of the
    /// 64 KiB echo benchmark.
    pub fn release_spent_input(&mut self) {
        if self.input.is_empty() {
            self.input = Input::default();
        }
    }

    /// How many received bytes are buffered and not yet returned as events.
    pub fn buffered(&self) -> usize {
        let payload = self
            .frame
            .as_ref()
            .and_then(|f| f.payload.as_ref())
            .map_or(0, BytesMut::len);
        self.buf.len() + self.input.len() + payload + self.message.as_ref().map_or(0, |m| m.data.len())
    }

    /// The next complete event, or `Ok(None)` when more bytes are needed.
    ///
    /// # Errors
    ///
    /// The first violation of RFC 6455 or of the size limits; see [`ProtocolError`] for the close
    /// code each one calls for. A text message is rejected as soon as its bytes cannot be UTF-8,
    /// even in the middle of a frame.
    pub fn next_event(&mut self) -> Result<Option<Event>, ProtocolError> {
        loop {
            if self.frame.is_none() && !self.start_frame()? {
                return Ok(None);
            }
            let Some(frame) = self.frame.as_mut() else {
                return Ok(None);
            };
            if frame.payload.is_some() {
                match self.take_direct_payload()? {
                    Some((header, payload)) => match self.finish(header, payload)? {
                        Some(event) => return Ok(Some(event)),
                        None => continue,
                    },
                    None => return Ok(None),
                }
            }
            let (header, len, done) = (frame.header, frame.len, frame.done);
            let available = len.min(self.buf.len());
            if available > done {
                frame.done = available;
                self.unmask_and_check(header, done, available, self.buf.len() >= len)?;
            }
            if self.buf.len() < len {
                return Ok(None);
            }
            let payload = self.buf.split_to(len).freeze();
            self.frame = None;
            if let Some(event) = self.finish(header, payload)? {
                return Ok(Some(event));
            }
        }
    }

    /// A whole frame's event, or `None` while its message is incomplete.
    fn finish(&mut self, header: FrameHeader, payload: Bytes) -> Result<Option<Event>, ProtocolError> {
        let (message, utf8, inflating) = (&mut self.message, &mut self.utf8, self.inflating.as_deref_mut());
        finish_frame(message, utf8, inflating, self.max_message, header, payload)
    }

    /// Parses and checks the next header; `false` when it has not fully arrived.
    fn start_frame(&mut self) -> Result<bool, ProtocolError> {
        if self.take_whole_in_place()? {
            return Ok(true);
        }
        let (header, header_len) = loop {
            if let Some(parsed) = FrameHeader::parse(&self.buf)? {
                break parsed;
            }
            if self.input.is_empty() {
                return Ok(false);
            }
            self.pull(HEADER_PULL);
        };
        self.check_header(&header)?;
        self.buf.advance(header_len);
        // check_header bounded the length by max_frame, a usize.
        let len = usize::try_from(header.payload_len).map_err(|_| ProtocolError::InvalidLength)?;
        let payload = if self.buf.len() + self.input.len() >= len {
            // The whole frame is here: one copy into the input buffer, unmasked there.
            self.pull(len.saturating_sub(self.buf.len()));
            None
        } else {
            let mut payload = BytesMut::with_capacity(len.min(PAYLOAD_RESERVE_MAX));
            append_unmasked(&mut payload, &self.buf, header.mask);
            append_unmasked(&mut payload, std::mem::take(&mut self.input).bytes(), header.mask);
            self.buf.clear();
            Some(payload)
        };
        self.frame = Some(PendingFrame {
            header,
            len,
            done: 0,
            payload,
        });
        Ok(true)
    }

    /// Starts a frame of at least [`IN_PLACE_MIN`] bytes that lies whole in the unread input,
    /// taking its payload from there without a copy and unmasking it in place; `false` for any
    /// other frame.
    fn take_whole_in_place(&mut self) -> Result<bool, ProtocolError> {
        // A chunk the transport still shares is never changed: its frames go to `start_frame`
        // without their headers being parsed and checked here first.
        if matches!(self.input, Input::Shared(_)) {
            return Ok(false);
        }
        let bytes = self.input.bytes();
        // A length below 126 is all in the second byte and far under `IN_PLACE_MIN`: such a frame
        // is left to `start_frame` without its header being parsed here first.
        if !self.buf.is_empty() || bytes.len() < IN_PLACE_MIN || !bytes.get(1).is_some_and(|b| b & 0x7F >= 126) {
            return Ok(false);
        }
        let Some((header, header_len)) = FrameHeader::parse(bytes)? else {
            return Ok(false);
        };
        let available = bytes.len() - header_len;
        let len = match usize::try_from(header.payload_len) {
            Ok(len) if len >= IN_PLACE_MIN && available >= len => len,
            _ => return Ok(false),
        };
        self.check_header(&header)?;
        let Some(input) = self.input.owned() else {
            return Ok(false);
        };
        input.advance(header_len);
        let mut payload = input.split_to(len);
        if let Some(key) = header.mask {
            apply_mask(&mut payload, key, 0);
        }
        // A text message in one frame is checked once, by `Text::try_from`; any other text
        // payload goes through the streaming check in `take_direct_payload`.
        let whole_text = (header.opcode == OpCode::Text && header.fin) || header.rsv != 0;
        self.frame = Some(PendingFrame {
            header,
            len,
            done: if whole_text { len } else { 0 },
            payload: Some(payload),
        });
        Ok(true)
    }

    /// Checks what arrived of a payload filled by [`Decoder::feed`]; answers it once whole.
    fn take_direct_payload(&mut self) -> Result<Option<(FrameHeader, Bytes)>, ProtocolError> {
        // A compressed message's UTF-8 is checked once inflated, not frame by frame.
        let text_message = self.message.as_ref().is_some_and(|m| m.text && !m.compressed);
        let Some(frame) = self.frame.as_mut() else {
            return Ok(None);
        };
        let Some(payload) = frame.payload.as_ref() else {
            return Ok(None);
        };
        let text = (frame.header.opcode == OpCode::Text && frame.header.rsv == 0)
            || (frame.header.opcode == OpCode::Continuation && text_message);
        if text {
            let fresh = payload.get(frame.done..).unwrap_or_default();
            self.utf8.feed(fresh).map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        frame.done = payload.len();
        if payload.len() < frame.len {
            return Ok(None);
        }
        let header = frame.header;
        let payload = frame.payload.take().unwrap_or_default().freeze();
        self.frame = None;
        Ok(Some((header, payload)))
    }

    fn check_header(&self, header: &FrameHeader) -> Result<(), ProtocolError> {
        // RSV1 marks a compressed message, on its first frame only (RFC 7692 §6).
        let compressed_start = header.rsv == RSV1_BITS
            && self.inflating.is_some()
            && matches!(header.opcode, OpCode::Text | OpCode::Binary);
        if header.rsv != 0 && !compressed_start {
            return Err(ProtocolError::ReservedBits(header.rsv));
        }
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        if header.payload_len > self.max_frame as u64 {
            return Err(ProtocolError::FrameTooBig {
                size: header.payload_len,
                max: self.max_frame,
            });
        }
        let so_far = match (header.opcode, &self.message) {
            (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            (OpCode::Text | OpCode::Binary, Some(_)) => return Err(ProtocolError::ExpectedContinuation),
            (OpCode::Continuation, Some(message)) => message.data.len() as u64,
            _ => 0,
        };
        let size = so_far + header.payload_len;
        if !header.opcode.is_control() && size > self.max_message as u64 {
            return Err(ProtocolError::MessageTooBig {
                size,
                max: self.max_message,
            });
        }
        Ok(())
    }

    /// Unmasks payload bytes `start..end` in place and, for text, checks them as they arrive.
    ///
    /// A single-frame text message that arrived whole is left to [`Text::try_from`], so the
    /// common case validates once.
    fn unmask_and_check(
        &mut self,
        header: FrameHeader,
        start: usize,
        end: usize,
        whole: bool,
    ) -> Result<(), ProtocolError> {
        // The caller passes a range of bytes it has seen in the buffer.
        let Some(piece) = self.buf.get_mut(start..end) else {
            return Ok(());
        };
        if let Some(key) = header.mask {
            apply_mask(piece, key, start);
        }
        let text = match header.opcode {
            OpCode::Text => header.rsv == 0 && !(header.fin && whole && start == 0),
            OpCode::Continuation => self.message.as_ref().is_some_and(|m| m.text && !m.compressed),
            _ => false,
        };
        if text {
            self.utf8.feed(piece).map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        Ok(())
    }
}

/// Appends `bytes` to `payload`, unmasking them with `mask` if the frame is masked.
fn append_unmasked(payload: &mut BytesMut, bytes: &[u8], mask: Option<[u8; 4]>) {
    let start = payload.len();
    payload.extend_from_slice(bytes);
    if let (Some(key), Some(fresh)) = (mask, payload.get_mut(start..)) {
        apply_mask(fresh, key, start);
    }
}

#[cfg(test)]
mod tests;
