//! Frame headers: parsing and encoding (RFC 6455 §5.2).

use bytes::{BufMut, BytesMut};

use super::mask::apply_mask;
use super::ProtocolError;

/// The largest payload a control frame (close, ping, pong) may carry.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// The longest frame header: 2 bytes, an 8-byte length and a 4-byte mask key.
pub const MAX_HEADER_LEN: usize = 14;

/// A frame's opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    /// 0x0: the next fragment of a message.
    Continuation,
    /// 0x1: a text message (or its first fragment).
    Text,
    /// 0x2: a binary message (or its first fragment).
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    fn from_bits(bits: u8) -> Result<OpCode, ProtocolError> {
        Ok(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            other => return Err(ProtocolError::ReservedOpCode(other)),
        })
    }

    /// The opcode's 4 bits, as they go in the first byte of a frame.
    pub fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Close, ping and pong are control frames: never fragmented, at most 125 bytes.
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The last fragment of its message.
    pub fin: bool,
    /// The three reserved bits, for extensions (none is negotiated yet, so they must be 0).
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, present on every client-to-server frame.
    pub mask: Option<[u8; 4]>,
    /// The payload length.
    pub payload_len: u64,
}

impl FrameHeader {
    /// Parses a header from the start of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` does not hold the whole header yet, otherwise the header and
    /// its length in bytes.
    ///
    /// # Errors
    ///
    /// A reserved opcode, a control frame that is fragmented or longer than 125 bytes, or a
    /// 64-bit length with its top bit set.
    pub fn parse(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        let [b0, b1, rest @ ..] = buf else { return Ok(None) };
        let fin = b0 & 0x80 != 0;
        let rsv = (b0 >> 4) & 0x7;
        let opcode = OpCode::from_bits(b0 & 0x0F)?;
        let masked = b1 & 0x80 != 0;
        let (payload_len, len_bytes) = match b1 & 0x7F {
            126 => match rest {
                [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 2),
                _ => return Ok(None),
            },
            127 => match rest.get(..8) {
                Some(bytes) => {
                    let mut be = [0u8; 8];
                    be.copy_from_slice(bytes);
                    (u64::from_be_bytes(be), 8)
                }
                None => return Ok(None),
            },
            short => (u64::from(short), 0),
        };
        if payload_len >> 63 != 0 {
            return Err(ProtocolError::InvalidLength);
        }
        if opcode.is_control() {
            if !fin {
                return Err(ProtocolError::FragmentedControl);
            }
            if payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(ProtocolError::ControlTooLong);
            }
        }
        let mut header_len = 2 + len_bytes;
        let mask = if masked {
            let Some(key) = rest
                .get(len_bytes..len_bytes + 4)
                .and_then(|k| <[u8; 4]>::try_from(k).ok())
            else {
                return Ok(None);
            };
            header_len += 4;
            Some(key)
        } else {
            None
        };
        let header = FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            payload_len,
        };
        Ok(Some((header, header_len)))
    }
}

/// Appends one whole frame to `dst`: header, then the payload, masked when `mask` is given.
pub fn encode_frame(dst: &mut BytesMut, opcode: OpCode, fin: bool, payload: &[u8], mask: Option<[u8; 4]>) {
    dst.reserve(MAX_HEADER_LEN + payload.len());
    encode_header(dst, opcode, fin, payload.len(), mask.is_some());
    match mask {
        Some(key) => {
            dst.put_slice(&key);
            let start = dst.len();
            dst.put_slice(payload);
            if let Some(written) = dst.get_mut(start..) {
                apply_mask(written, key, 0);
            }
        }
        None => dst.put_slice(payload),
    }
}

/// The encoded size of a frame with a `payload_len`-byte payload.
pub fn frame_len(payload_len: usize, masked: bool) -> usize {
    let len_bytes = match payload_len {
        0..=125 => 0,
        126..=0xFFFF => 2,
        _ => 8,
    };
    2 + len_bytes + if masked { 4 } else { 0 } + payload_len
}

/// Appends the header of an unmasked frame whose `len`-byte payload will follow separately, so
/// that a large payload can be written from where it is instead of copied after its header.
pub fn encode_unmasked_header(dst: &mut BytesMut, opcode: OpCode, fin: bool, len: usize) {
    dst.reserve(MAX_HEADER_LEN);
    encode_header(dst, opcode, fin, len, false);
}

/// The first byte and the length bytes; the mask key, if any, is the caller's to append.
fn encode_header(dst: &mut BytesMut, opcode: OpCode, fin: bool, len: usize, masked: bool) {
    dst.put_u8(u8::from(fin) << 7 | opcode.bits());
    let mask_bit = if masked { 0x80 } else { 0 };
    match len {
        len @ 0..=125 => dst.put_u8(mask_bit | len as u8),
        len @ 126..=0xFFFF => {
            dst.put_u8(mask_bit | 126);
            dst.put_u16(len as u16);
        }
        len => {
            dst.put_u8(mask_bit | 127);
            dst.put_u64(len as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_separate_header_and_payload_are_the_same_bytes_as_one_frame() {
        for len in [0, 125, 126, 0xFFFF, 0x1_0000] {
            let payload = vec![7u8; len];
            let mut whole = BytesMut::new();
            encode_frame(&mut whole, OpCode::Binary, true, &payload, None);
            let mut split = BytesMut::new();
            encode_unmasked_header(&mut split, OpCode::Binary, true, len);
            split.extend_from_slice(&payload);
            assert_eq!(split, whole, "payload of {len} bytes");
            assert_eq!(frame_len(len, false), whole.len());
            let mut masked = BytesMut::new();
            encode_frame(&mut masked, OpCode::Binary, true, &payload, Some([1, 2, 3, 4]));
            assert_eq!(frame_len(len, true), masked.len());
        }
    }

    #[test]
    fn parses_the_rfc_examples() {
        // RFC 6455 §5.7: a single-frame unmasked text message "Hello".
        let (h, len) = FrameHeader::parse(&[0x81, 0x05, b'H']).unwrap().unwrap();
        assert_eq!(
            (h.fin, h.opcode, h.mask, h.payload_len, len),
            (true, OpCode::Text, None, 5, 2)
        );
        // A masked "Hello".
        let masked = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        let (h, len) = FrameHeader::parse(&masked).unwrap().unwrap();
        assert_eq!((h.mask, len), (Some([0x37, 0xfa, 0x21, 0x3d]), 6));
        let mut payload = masked[6..].to_vec();
        apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(payload, b"Hello");
        // 256 bytes binary, 16-bit length; 64 KiB binary, 64-bit length.
        let (h, len) = FrameHeader::parse(&[0x82, 0x7E, 0x01, 0x00]).unwrap().unwrap();
        assert_eq!((h.payload_len, len), (256, 4));
        let long = [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0];
        assert_eq!(FrameHeader::parse(&long).unwrap().unwrap().0.payload_len, 65536);
    }

    #[test]
    fn waits_for_a_whole_header() {
        let masked = [0x82, 0xFE, 0x01, 0x00, 1, 2, 3, 4];
        for cut in 0..masked.len() {
            assert_eq!(FrameHeader::parse(&masked[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(FrameHeader::parse(&masked).unwrap().is_some());
    }

    #[test]
    fn rejects_what_the_rfc_forbids() {
        assert_eq!(FrameHeader::parse(&[0x83, 0]), Err(ProtocolError::ReservedOpCode(3)));
        assert_eq!(FrameHeader::parse(&[0x8B, 0]), Err(ProtocolError::ReservedOpCode(0xB)));
        assert_eq!(FrameHeader::parse(&[0x09, 0]), Err(ProtocolError::FragmentedControl));
        assert_eq!(
            FrameHeader::parse(&[0x89, 126, 0, 126]),
            Err(ProtocolError::ControlTooLong)
        );
        let huge = [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(FrameHeader::parse(&huge), Err(ProtocolError::InvalidLength));
    }

    #[test]
    fn encode_then_parse_round_trips_every_length_class() {
        for len in [0usize, 1, 125, 126, 65535, 65536, 100_000] {
            for mask in [None, Some([9, 8, 7, 6])] {
                let payload = vec![0xAB; len];
                let mut buf = BytesMut::new();
                encode_frame(&mut buf, OpCode::Binary, true, &payload, mask);
                let (h, hlen) = FrameHeader::parse(&buf).unwrap().unwrap();
                assert_eq!((h.payload_len as usize, h.mask), (len, mask));
                let mut body = buf[hlen..].to_vec();
                if let Some(key) = mask {
                    apply_mask(&mut body, key, 0);
                }
                assert_eq!(body, payload);
            }
        }
    }
}
