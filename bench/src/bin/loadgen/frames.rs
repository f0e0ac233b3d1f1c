//! The load generator's own WebSocket framing: masked client frames out, server frames in.
//!
//! With tungstenite's client, the load generator spent 1.2–1.4 µs of its core per 32-byte echo,
//! more than any server under test spent on its own core, so every server measured the same thing:
//! the client (docs/bench-results/history.md, "The load generator was the ceiling"). The handshake
//! still goes through tokio-tungstenite; after it, these functions do what a load generator needs
//! and no more. Every server frame is still parsed and checked
//! (`switchboard::protocol::FrameHeader::parse`, then no mask and no reserved bits), fragmented
//! messages are put together, pings are answered, and every client frame is masked with a fresh key
//! (`apply_mask`). Reusing the library's protocol core here costs the benchmark no independence:
//! every echo is checked byte for byte, and `bench/tests/loadgen.rs` runs this code against the
//! tokio-tungstenite server. A connection that negotiated permessage-deflate inflates each
//! compressed message (RSV1 on its first frame) with flate2, as any client must.

use bytes::{Buf, BytesMut};
use flate2::{Decompress, FlushDecompress};
use switchboard::protocol::{apply_mask, FrameHeader, OpCode};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;

/// Mask keys from xorshift64: a fresh key per frame, as RFC 6455 asks of clients, at a few
/// instructions each. (`switchboard::protocol::random_mask` runs a keyed hash per key so that no
/// third party can predict it; a load generator on loopback needs fresh keys, not secret ones.)
#[derive(Debug)]
pub(crate) struct Masks(u64);

impl Masks {
    /// A generator seeded from `seed` (any value; zero is replaced).
    pub(crate) fn new(seed: u64) -> Masks {
        Masks(seed | 1)
    }

    fn next(&mut self) -> [u8; 4] {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 as u32).to_ne_bytes()
    }
}

/// Appends a masked client frame of `len` payload bytes, which `fill` appends to `out`.
pub(crate) fn encode(
    opcode: OpCode,
    len: usize,
    masks: &mut Masks,
    out: &mut Vec<u8>,
    fill: impl FnOnce(&mut Vec<u8>),
) {
    encode_masked(opcode, len, masks, out, |out, key| {
        let start = out.len();
        fill(out);
        apply_mask(out.get_mut(start..).unwrap_or_default(), key, 0);
    });
}

/// Appends a masked client frame of `len` payload bytes, which `fill` appends to `out` already
/// masked with the key it is given: for a payload it can write masked in one pass, where
/// [`encode`] copies it and then masks it in a second pass.
pub(crate) fn encode_masked(
    opcode: OpCode,
    len: usize,
    masks: &mut Masks,
    out: &mut Vec<u8>,
    fill: impl FnOnce(&mut Vec<u8>, [u8; 4]),
) {
    out.push(0x80 | opcode.bits());
    match len {
        0..=125 => out.push(0x80 | len as u8),
        126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    let key = masks.next();
    out.extend_from_slice(&key);
    fill(out, key);
}

/// A whole server frame at the start of a buffer: its header, where its payload starts, and how
/// long the payload is.
struct Header {
    header: FrameHeader,
    start: usize,
    len: usize,
}

/// RSV1: a compressed message's first frame (RFC 7692).
const RSV1: u8 = 0b100;

/// Parses the server frame at the start of `buf` (`FrameHeader::parse`); `None` until the whole
/// frame is there. RSV1 is allowed where `rsv1_allowed`, that is with permessage-deflate.
///
/// # Errors
/// What `FrameHeader::parse` refuses, a masked frame or reserved bits: the server broke RFC 6455.
fn parse(buf: &[u8], rsv1_allowed: bool) -> Result<Option<Header>, String> {
    let Some((header, start)) = FrameHeader::parse(buf).map_err(|e| format!("server frame: {e}"))? else {
        return Ok(None);
    };
    let allowed_rsv = if rsv1_allowed { RSV1 } else { 0 };
    if header.rsv & !allowed_rsv != 0 || header.mask.is_some() {
        return Err("server frame has reserved bits set or is masked".into());
    }
    let len = usize::try_from(header.payload_len).map_err(|_| "server frame too large".to_string())?;
    if buf.len() - start < len {
        return Ok(None);
    }
    Ok(Some(Header { header, start, len }))
}

/// Reads server frames from one connection and hands over each whole text or binary message.
#[derive(Debug)]
pub(crate) struct FrameReader {
    read: OwnedReadHalf,
    buf: BytesMut,
    /// How much room to make before each read.
    chunk: usize,
    /// The opcode and bytes so far of a fragmented message.
    fragments: Option<(OpCode, Vec<u8>)>,
    /// Pongs to send, for the pings read so far.
    pub(crate) replies: Vec<u8>,
    masks: Masks,
    /// With permessage-deflate: the inflater, and the inflated message.
    inflate: Option<Inflate>,
    /// Payload bytes of every data frame read, as they came on the wire, and the messages they
    /// made.
    pub(crate) wire_bytes: u64,
    pub(crate) messages: u64,
}

/// What a connection with permessage-deflate needs to read compressed messages.
struct Inflate {
    /// One raw inflate stream for the connection: it reads messages compressed with or without
    /// context takeover alike.
    stream: Decompress,
    /// The message being read is compressed (its first frame had RSV1).
    compressed: bool,
    out: Vec<u8>,
}

impl std::fmt::Debug for Inflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflate")
            .field("compressed", &self.compressed)
            .finish_non_exhaustive()
    }
}

impl Inflate {
    /// The end of a sync flush, which the sender removed from each message (RFC 7692 §7.2.2).
    const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

    /// Inflates one whole compressed message into `self.out`.
    fn inflate(&mut self, message: &[u8]) -> Result<&[u8], String> {
        self.out.clear();
        for mut input in [message, &Self::TAIL[..]] {
            loop {
                self.out.reserve((4 * input.len()).max(4096));
                let (before, written) = (self.stream.total_in(), self.out.len());
                self.stream
                    .decompress_vec(input, &mut self.out, FlushDecompress::Sync)
                    .map_err(|e| format!("server sent bad deflate data: {e}"))?;
                let used = usize::try_from(self.stream.total_in() - before).unwrap_or(input.len());
                input = input.get(used..).unwrap_or_default();
                if input.is_empty() && self.out.len() < self.out.capacity() {
                    break;
                }
                if used == 0 && self.out.len() == written && self.out.len() < self.out.capacity() {
                    return Err("server sent deflate data that does not inflate".into());
                }
            }
        }
        Ok(&self.out)
    }
}

impl FrameReader {
    /// A reader that makes `chunk` bytes of room before each read.
    pub(crate) fn new(read: OwnedReadHalf, chunk: usize, seed: u64) -> FrameReader {
        FrameReader {
            read,
            buf: BytesMut::new(),
            chunk,
            fragments: None,
            replies: Vec::new(),
            masks: Masks::new(seed),
            inflate: None,
            wire_bytes: 0,
            messages: 0,
        }
    }

    /// Accepts compressed messages from now on (the handshake agreed on permessage-deflate).
    pub(crate) fn inflate_messages(&mut self) {
        self.inflate = Some(Inflate {
            stream: Decompress::new(false),
            compressed: false,
            out: Vec::new(),
        });
    }

    /// Reads the socket once, then calls `on_message(opcode, payload)` for every whole message
    /// that arrived. Answers pings into `replies`, for the caller to send.
    ///
    /// # Errors
    /// The connection closed or failed, the server sent a close frame or broke the protocol, or
    /// `on_message` failed.
    pub(crate) async fn read(
        &mut self,
        mut on_message: impl FnMut(OpCode, &[u8]) -> Result<(), String>,
    ) -> Result<(), String> {
        if self.buf.capacity() == 0 {
            // Twice the read size, so that `reserve` below can move a partial frame to the front
            // of the same allocation instead of making a new one after every full read.
            self.buf.reserve(2 * self.chunk);
        } else if self.buf.capacity() - self.buf.len() < self.chunk {
            self.buf.reserve(self.chunk);
        }
        if self.read.read_buf(&mut self.buf).await.map_err(|e| e.to_string())? == 0 {
            return Err("connection closed".into());
        }
        let mut at = 0;
        let deflate = self.inflate.is_some();
        while let Some(header) = parse(self.buf.get(at..).unwrap_or_default(), deflate)? {
            let payload = self
                .buf
                .get(at + header.start..at + header.start + header.len)
                .unwrap_or_default();
            at += header.start + header.len;
            let FrameHeader { opcode, fin, rsv, .. } = header.header;
            if let (Some(inflate), OpCode::Text | OpCode::Binary) = (self.inflate.as_mut(), opcode) {
                inflate.compressed = rsv & RSV1 != 0;
            } else if rsv != 0 {
                return Err("server set RSV1 on a frame that does not start a message".into());
            }
            if !opcode.is_control() {
                self.wire_bytes += payload.len() as u64;
            }
            let mut deliver = |opcode, message: &[u8]| {
                self.messages += 1;
                match self.inflate.as_mut() {
                    Some(inflate) if inflate.compressed => on_message(opcode, inflate.inflate(message)?),
                    _ => on_message(opcode, message),
                }
            };
            match (opcode, fin, self.fragments.as_mut()) {
                (OpCode::Text | OpCode::Binary, true, None) => deliver(opcode, payload)?,
                (OpCode::Text | OpCode::Binary, false, None) => self.fragments = Some((opcode, payload.to_vec())),
                (OpCode::Continuation, fin, Some((_, message))) => {
                    message.extend_from_slice(payload);
                    if fin {
                        if let Some((opcode, message)) = self.fragments.take() {
                            deliver(opcode, &message)?;
                        }
                    }
                }
                (OpCode::Ping, _, _) => {
                    encode(OpCode::Pong, payload.len(), &mut self.masks, &mut self.replies, |out| {
                        out.extend_from_slice(payload);
                    })
                }
                (OpCode::Pong, _, _) => {}
                (OpCode::Close, _, _) => return Err(format!("server closed the connection: {payload:?}")),
                _ => return Err("server fragments out of order".into()),
            }
        }
        self.buf.advance(at);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use switchboard::protocol::{Decoder, Event, Role};

    use super::*;

    #[test]
    fn a_server_decodes_what_the_load_generator_encodes() {
        let mut masks = Masks::new(7);
        let mut decoder = Decoder::new(Role::Server, 1 << 20, 1 << 20);
        for len in [0usize, 5, 300, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut out = Vec::new();
            encode(OpCode::Binary, len, &mut masks, &mut out, |out| {
                out.extend_from_slice(&payload)
            });
            decoder.feed(&out);
            match decoder.next_event() {
                Ok(Some(Event::Binary(data))) => assert_eq!(&data[..], &payload[..], "length {len}"),
                other => panic!("length {len}: {other:?}"),
            }
        }
    }

    #[test]
    fn encodes_each_length_form_and_parses_server_frames() {
        let mut masks = Masks::new(7);
        for len in [5usize, 300, 70_000] {
            let mut out = Vec::new();
            encode(OpCode::Binary, len, &mut masks, &mut out, |out| {
                out.resize(out.len() + len, 9)
            });
            let header = match len {
                5 => 6,
                300 => 8,
                _ => 14,
            };
            assert_eq!(out.len(), header + len);
            assert_eq!(out.first(), Some(&0x82));
        }
        let server = [0x81, 3, b'a', b'b', b'c', 0x89, 0];
        let first = parse(&server, false)
            .ok()
            .flatten()
            .map(|h| (h.header.opcode, h.start, h.len));
        assert_eq!(first, Some((OpCode::Text, 2, 3)));
        assert!(parse(server.get(..4).unwrap_or_default(), false)
            .ok()
            .flatten()
            .is_none());
        assert!(parse(&[0x81, 0x83, 0, 0, 0, 0], false).is_err());
        assert!(parse(&[0xC1, 0], false).is_err());
        assert!(parse(&[0xC1, 0], true).is_ok());
        assert!(parse(&[0xA1, 0], true).is_err());
        assert!(parse(&[0x83, 0], false).is_err());
    }
}
