//! The load generator's own WebSocket framing: masked client frames out, server frames in.
//!
//! With tungstenite's client, the load generator spent 1.2–1.4 µs of its core per 32-byte echo,
//! more than any server under test spent on its own core, so every server measured the same
//! thing: the client (docs/benchmarks.md, "The load generator"). The handshake still goes through
//! tokio-tungstenite; after it, these functions do what a load generator needs and no more.
//! Every server frame is still parsed and checked (no mask, no reserved bits, a known opcode),
//! fragmented messages are put together, pings are answered, and every client frame is masked
//! with a fresh key.

use bytes::{Buf, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;

/// Continuation frame.
const CONTINUATION: u8 = 0;
/// Text frame.
pub(crate) const TEXT: u8 = 1;
/// Binary frame.
pub(crate) const BINARY: u8 = 2;
/// Close frame.
pub(crate) const CLOSE: u8 = 8;
/// Ping frame.
const PING: u8 = 9;
/// Pong frame.
const PONG: u8 = 10;

/// Mask keys from xorshift64: a fresh key per frame, as RFC 6455 asks of clients, at a few
/// instructions each.
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
pub(crate) fn encode(opcode: u8, len: usize, masks: &mut Masks, out: &mut Vec<u8>, fill: impl FnOnce(&mut Vec<u8>)) {
    out.push(0x80 | opcode);
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
    let start = out.len();
    fill(out);
    apply_mask(out.get_mut(start..).unwrap_or_default(), key);
}

/// XORs `data` with `key`, eight bytes at a time.
fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    let [a, b, c, d] = key;
    let wide = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut words = data.chunks_exact_mut(8);
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        word.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ wide).to_ne_bytes());
    }
    // The remainder starts at a multiple of 8, so its key index starts at 0.
    for (byte, k) in words.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
    }
}

/// A frame header: where the payload starts and how long it is.
struct Header {
    fin: bool,
    opcode: u8,
    start: usize,
    len: usize,
}

/// Parses the server frame header at the start of `buf`; `None` until the whole frame is there.
///
/// # Errors
/// A masked frame, reserved bits or an unknown opcode: the server broke RFC 6455.
fn parse(buf: &[u8]) -> Result<Option<Header>, String> {
    let (Some(&b0), Some(&b1)) = (buf.first(), buf.get(1)) else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err("server frame has reserved bits set".into());
    }
    if b1 & 0x80 != 0 {
        return Err("server frame is masked".into());
    }
    let opcode = b0 & 0x0F;
    if !matches!(opcode, CONTINUATION | TEXT | BINARY | CLOSE | PING | PONG) {
        return Err(format!("server frame has unknown opcode {opcode}"));
    }
    let (len, start) = match b1 & 0x7F {
        126 => match buf.get(2..4).and_then(|ext| <[u8; 2]>::try_from(ext).ok()) {
            Some(ext) => (u64::from(u16::from_be_bytes(ext)), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10).and_then(|ext| <[u8; 8]>::try_from(ext).ok()) {
            Some(ext) => (u64::from_be_bytes(ext), 10),
            None => return Ok(None),
        },
        short => (u64::from(short), 2),
    };
    let len = usize::try_from(len).map_err(|_| "server frame too large".to_string())?;
    if buf.len() - start < len {
        return Ok(None);
    }
    Ok(Some(Header {
        fin: b0 & 0x80 != 0,
        opcode,
        start,
        len,
    }))
}

/// Reads server frames from one connection and hands over each whole text or binary message.
#[derive(Debug)]
pub(crate) struct FrameReader {
    read: OwnedReadHalf,
    buf: BytesMut,
    /// How much room to make before each read.
    chunk: usize,
    /// The opcode and bytes so far of a fragmented message.
    fragments: Option<(u8, Vec<u8>)>,
    /// Pongs to send, for the pings read so far.
    pub(crate) replies: Vec<u8>,
    masks: Masks,
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
        }
    }

    /// Reads the socket once, then calls `on_message(opcode, payload)` for every whole message
    /// that arrived. Answers pings into `replies`, for the caller to send.
    ///
    /// # Errors
    /// The connection closed or failed, the server sent a close frame or broke the protocol, or
    /// `on_message` failed.
    pub(crate) async fn read(
        &mut self,
        mut on_message: impl FnMut(u8, &[u8]) -> Result<(), String>,
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
        while let Some(header) = parse(self.buf.get(at..).unwrap_or_default())? {
            let payload = self
                .buf
                .get(at + header.start..at + header.start + header.len)
                .unwrap_or_default();
            at += header.start + header.len;
            match (header.opcode, header.fin, self.fragments.as_mut()) {
                (TEXT | BINARY, true, None) => on_message(header.opcode, payload)?,
                (TEXT | BINARY, false, None) => self.fragments = Some((header.opcode, payload.to_vec())),
                (CONTINUATION, fin, Some((_, message))) => {
                    message.extend_from_slice(payload);
                    if fin {
                        if let Some((opcode, message)) = self.fragments.take() {
                            on_message(opcode, &message)?;
                        }
                    }
                }
                (PING, _, _) => encode(PONG, payload.len(), &mut self.masks, &mut self.replies, |out| {
                    out.extend_from_slice(payload);
                }),
                (PONG, _, _) => {}
                (CLOSE, _, _) => return Err(format!("server closed the connection: {payload:?}")),
                _ => return Err("server fragments out of order".into()),
            }
        }
        self.buf.advance(at);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_twice_gives_the_payload_back_at_every_length() {
        for len in 0..40 {
            let data: Vec<u8> = (0..len as u8).collect();
            let mut masked = data.clone();
            apply_mask(&mut masked, [1, 2, 3, 4]);
            if len > 0 {
                assert_ne!(masked, data);
            }
            let expected: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ [1u8, 2, 3, 4][i % 4])
                .collect();
            assert_eq!(masked, expected);
        }
    }

    #[test]
    fn encodes_each_length_form_and_parses_server_frames() {
        let mut masks = Masks::new(7);
        for len in [5usize, 300, 70_000] {
            let mut out = Vec::new();
            encode(BINARY, len, &mut masks, &mut out, |out| out.resize(out.len() + len, 9));
            let header = match len {
                5 => 6,
                300 => 8,
                _ => 14,
            };
            assert_eq!(out.len(), header + len);
            assert_eq!(out.first(), Some(&0x82));
        }
        let server = [0x81, 3, b'a', b'b', b'c', 0x89, 0];
        let first = parse(&server).ok().flatten().map(|h| (h.opcode, h.start, h.len));
        assert_eq!(first, Some((TEXT, 2, 3)));
        assert!(parse(server.get(..4).unwrap_or_default()).ok().flatten().is_none());
        assert!(parse(&[0x81, 0x83, 0, 0, 0, 0]).is_err());
        assert!(parse(&[0xC1, 0]).is_err());
        assert!(parse(&[0x83, 0]).is_err());
    }
}
