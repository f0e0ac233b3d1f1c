//! permessage-deflate (RFC 7692): negotiation (`negotiate.rs`), the codec (`codec.rs`), and each
//! endpoint's compressing and inflating sides, as the connection uses them.
//!
//! Without context takeover a side keeps no state between messages, so it borrows a compressor
//! or inflater of its thread for one message: no per-connection memory (the shared mode). With
//! context takeover the connection owns its own (the dedicated mode).

pub(crate) mod codec;
pub(crate) mod negotiate;

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;

use codec::{Deflater, InflateError, Inflater};
pub(crate) use negotiate::Agreed;

use super::{frame, OpCode, Role};

/// zlib's default memory level, for the compressors of the shared mode (one per thread).
const DEFAULT_MEM_LEVEL: u8 = 8;

/// The RSV1 bit of a frame's first byte: set on the first frame of a compressed message.
pub(crate) const RSV1: u8 = 0x40;
/// [`RSV1`] as the decoder's `rsv` field holds it (the three bits shifted down).
pub(crate) const RSV1_BITS: u8 = 0b100;

/// One endpoint's half of an agreement: how it compresses what it sends and inflates what it
/// receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Params {
    pub(crate) compress_window: u8,
    pub(crate) compress_no_takeover: bool,
    pub(crate) inflate_window: u8,
    pub(crate) inflate_no_takeover: bool,
}

impl Params {
    /// This endpoint's half of `agreed` (which is written from the server's point of view).
    pub(crate) fn new(agreed: Agreed, role: Role) -> Params {
        let server = Params {
            compress_window: agreed.server_max_window_bits,
            compress_no_takeover: agreed.server_no_context_takeover,
            inflate_window: agreed.client_max_window_bits,
            inflate_no_takeover: agreed.client_no_context_takeover,
        };
        match role {
            Role::Server => server,
            Role::Client => Params {
                compress_window: server.inflate_window,
                compress_no_takeover: server.inflate_no_takeover,
                inflate_window: server.compress_window,
                inflate_no_takeover: server.compress_no_takeover,
            },
        }
    }
}

thread_local! {
    /// The thread's compressors and inflaters for sides without context takeover, by window bits
    /// (index 0 is 8 bits): each is used for one whole message at a time, then reset.
    static DEFLATERS: RefCell<[Option<Deflater>; WINDOW_SIZES]> = const { RefCell::new([const { None }; WINDOW_SIZES]) };
    static INFLATERS: RefCell<[Option<Inflater>; WINDOW_SIZES]> = const { RefCell::new([const { None }; WINDOW_SIZES]) };
}

/// Window sizes permessage-deflate allows, 8 to 15 bits (RFC 7692 §7.1.2).
pub(crate) const WINDOW_SIZES: usize = (negotiate::MAX_WINDOW_BITS - negotiate::MIN_WINDOW_BITS + 1) as usize;

/// The index of `window` (8 to 15 bits) in a table with one entry per window size.
pub(crate) fn slot(window: u8) -> usize {
    usize::from(window.clamp(negotiate::MIN_WINDOW_BITS, negotiate::MAX_WINDOW_BITS) - negotiate::MIN_WINDOW_BITS)
}

/// Compresses `payload` with this thread's compressor for `window` (no context takeover).
pub(crate) fn compress_shared(window: u8, payload: &[u8], out: &mut Vec<u8>) {
    DEFLATERS.with_borrow_mut(|deflaters| {
        if let Some(deflater) = deflaters.get_mut(slot(window)) {
            deflater
                .get_or_insert_with(|| Deflater::new(window, DEFAULT_MEM_LEVEL, true))
                .compress(payload, out);
        }
    });
}

/// The receiving side: inflates whole compressed messages.
#[derive(Debug)]
pub(crate) struct Inflating {
    window: u8,
    /// With context takeover, the connection's own inflater, made at the first compressed
    /// message (an idle connection holds none); without, the thread's is borrowed.
    own: Option<Option<Inflater>>,
}

impl Inflating {
    pub(crate) fn new(params: &Params) -> Inflating {
        Inflating {
            window: params.inflate_window,
            own: (!params.inflate_no_takeover).then_some(None),
        }
    }

    /// Inflates one whole message (its frames' payloads, concatenated), refusing past `max`
    /// bytes without allocating them.
    pub(crate) fn message(&mut self, compressed: &[u8], max: usize) -> Result<Bytes, InflateError> {
        let mut out = Vec::new();
        let mut run = |inflater: &mut Inflater| {
            inflater.inflate(compressed, max, &mut out)?;
            inflater.finish(max, &mut out)
        };
        let window = self.window;
        match &mut self.own {
            Some(inflater) => run(inflater.get_or_insert_with(|| Inflater::new(window, false)))?,
            None => INFLATERS.with_borrow_mut(|inflaters| match inflaters.get_mut(slot(self.window)) {
                Some(inflater) => run(inflater.get_or_insert_with(|| Inflater::new(self.window, true))),
                None => Err(InflateError::Corrupt),
            })?,
        }
        Ok(Bytes::from(out))
    }
}

/// The sending side: compresses messages from `threshold` bytes up.
#[derive(Debug)]
pub(crate) struct Deflating {
    pub(crate) params: Params,
    pub(crate) threshold: usize,
    /// With context takeover, the connection's own compressor, made at the first compressed
    /// message (zlib-rs's takes about 150 KiB whatever the memory level, so an idle connection
    /// holds none) and given back when unused for a keepalive interval; without, the thread's
    /// is borrowed.
    own: Option<Mutex<Option<Deflater>>>,
    /// A message was compressed since the last [`Deflating::release_if_unused`].
    used: AtomicBool,
    mem_level: u8,
}

impl Deflating {
    pub(crate) fn new(params: Params, config: &crate::Config) -> Deflating {
        let mem_level = match config.compression {
            crate::Compression::Dedicated { mem_level, .. } => mem_level,
            _ => DEFAULT_MEM_LEVEL,
        };
        Deflating {
            params,
            threshold: config.compression_threshold,
            own: (!params.compress_no_takeover).then(|| Mutex::new(None)),
            used: AtomicBool::new(false),
            mem_level,
        }
    }

    /// Drops the connection's own compressor if no message was compressed since the last call
    /// (the connection calls it at each keepalive ping). The next message is compressed by a new
    /// one, starting from an empty window: the peer keeps its window under context takeover but
    /// nothing obliges us to refer to it, so this costs compression ratio on the first message
    /// after a pause, and saves the ~150 KiB a compressor holds for every connection that only
    /// idles.
    pub(crate) fn release_if_unused(&self) {
        if let Some(own) = &self.own {
            if !self.used.swap(false, Ordering::Relaxed) {
                if let Some(mut deflater) = own.try_lock() {
                    *deflater = None;
                }
            }
        }
    }

    /// Whether messages are compressed with the thread's compressor (no per-connection state),
    /// so that one compressed frame can serve every such connection.
    pub(crate) fn is_shared(&self) -> bool {
        self.own.is_none()
    }

    /// Compresses `payload` and encodes it as one frame with RSV1, then hands it to `push`; with
    /// context takeover, under the connection's compressor lock, so that frames are queued in
    /// the order they were compressed.
    pub(crate) fn frame<R>(
        &self,
        opcode: OpCode,
        payload: &[u8],
        mask: Option<[u8; 4]>,
        push: impl FnOnce(Bytes) -> R,
    ) -> R {
        let mut compressed = Vec::with_capacity(payload.len() / 2 + 16);
        match &self.own {
            Some(deflater) => {
                let mut deflater = deflater.lock();
                self.used.store(true, Ordering::Relaxed);
                let (window, mem_level) = (self.params.compress_window, self.mem_level);
                deflater
                    .get_or_insert_with(|| Deflater::new(window, mem_level, false))
                    .compress(payload, &mut compressed);
                push(encode(opcode, &compressed, mask))
            }
            None => {
                compress_shared(self.params.compress_window, payload, &mut compressed);
                push(encode(opcode, &compressed, mask))
            }
        }
    }
}

/// A whole compressed message as one frame: RSV1 set.
pub(crate) fn encode(opcode: OpCode, compressed: &[u8], mask: Option<[u8; 4]>) -> Bytes {
    let mut buf = BytesMut::with_capacity(compressed.len() + frame::MAX_HEADER_LEN);
    frame::encode_frame(&mut buf, opcode, true, compressed, mask);
    if let Some(first) = buf.first_mut() {
        *first |= RSV1;
    }
    buf.freeze()
}
