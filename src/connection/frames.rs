//! [`Frames`]: the encoded frames waiting for the socket, in order, measured in bytes and
//! numbered. No lock and no waker here: [`Outbound`](super::outbound::Outbound) holds it under
//! its lock, with the close state.
//!
//! Small frames are encoded back to back into one buffer and handed out together, so a burst of
//! small messages costs one allocation and one chunk instead of one each (the 32-byte echo
//! profile had the per-frame allocation and chunk handling among its top costs). A large payload
//! is queued by reference, after a header chunk of its own.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

/// Frames up to this size are copied into the open buffer; larger ones are queued as they are,
/// since copying them would cost more than a chunk of their own. `WebSocket::send` uses the same
/// line to queue a server's large payload by reference.
pub(crate) const COALESCE_MAX: usize = 4 * 1024;

/// The least the open buffer grows by: room for a burst of small frames in one allocation.
const OPEN_MIN: usize = 1024;

/// An open buffer holding more spare room than this after a hand-out, so an idle connection does
/// not keep the memory of its largest burst.
const OPEN_RETAIN_MAX: usize = 8 * 1024;

/// Pongs that may wait at once. Autobahn (cases 2.10 and 2.11) sends ten pings back to back and
/// expects each answered, which RFC 6455 does not require but peers check; more than this many
/// unanswered pings means a flood, and then only the newest is answered (RFC 6455 §5.5.3 allows
/// answering only the most recent).
pub(crate) const PONGS_MAX: usize = 16;

/// Bytes handed to the writer in one piece.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub(crate) bytes: Bytes,
    /// The sequence number of the last frame that ends with this chunk; `None` for the header of
    /// a frame whose payload follows, and for a pong (pongs are not numbered).
    pub(crate) last: Option<u64>,
    /// The header of a frame whose payload is the next chunk.
    header: bool,
}

impl Chunk {
    fn new(bytes: Bytes, last: Option<u64>) -> Chunk {
        Chunk {
            bytes,
            last,
            header: false,
        }
    }
}

/// The frames of one connection; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Frames {
    /// Chunks ready to hand out, oldest first; `open` comes after them.
    chunks: VecDeque<Chunk>,
    /// Small frames queued after the last chunk, back to back: the next chunk.
    open: BytesMut,
    /// Pongs waiting, at most [`PONGS_MAX`]; they go out ahead of queued data, between frames.
    /// A `Vec`, 8 bytes smaller than a `VecDeque` in every connection's queue; taking the first
    /// of at most 16 moves the rest, rarely and cheaply.
    pongs: Vec<Bytes>,
    /// Bytes waiting, pongs included.
    pub(crate) queued_bytes: usize,
    /// The most bytes that may wait.
    pub(crate) limit: usize,
    /// Sequence number of the last frame pushed.
    pub(crate) pushed: u64,
    /// Sequence number of the last frame written to its last byte.
    pub(crate) written: u64,
    /// Sequence number of the last frame handed out whole: a clear does not lose it.
    handed: u64,
    /// The first and last sequence numbers of the frames dropped by the last clear; (0, 0) names
    /// none, as numbering starts at 1.
    lost: (u64, u64),
    /// Chunks handed out so far: the progress of a writer that cannot see the socket.
    pub(crate) taken: u64,
}

impl Frames {
    /// Whether a frame of `len` more bytes fits under the limit.
    pub(crate) fn fits(&self, len: usize) -> bool {
        self.queued_bytes + len <= self.limit
    }

    /// Appends a small frame of `len` bytes that `encode` writes into the open buffer; answers
    /// its sequence number.
    pub(crate) fn push_encoded(&mut self, len: usize, encode: impl FnOnce(&mut BytesMut)) -> u64 {
        if self.open.capacity() - self.open.len() < len {
            self.open.reserve(len.max(OPEN_MIN));
        }
        let before = self.open.len();
        encode(&mut self.open);
        self.queued(self.open.len() - before)
    }

    /// Appends a frame of `len` bytes as one chunk, or two when `second` is not empty (a header
    /// and its payload), after the open buffer's frames; answers its sequence number.
    pub(crate) fn push_chunks(&mut self, len: usize, first: Bytes, second: Bytes) -> u64 {
        self.close_open();
        let seq = self.queued(len);
        if second.is_empty() {
            self.chunks.push_back(Chunk::new(first, Some(seq)));
        } else {
            self.chunks.push_back(Chunk {
                bytes: first,
                last: None,
                header: true,
            });
            self.chunks.push_back(Chunk::new(second, Some(seq)));
        }
        seq
    }

    /// Queues `pong`; when [`PONGS_MAX`] wait already, it replaces the newest. Answers `false`,
    /// queuing nothing, when it would pass the limit.
    pub(crate) fn push_pong(&mut self, pong: Bytes) -> bool {
        let full = self.pongs.len() >= PONGS_MAX;
        let replaced = if full {
            self.pongs.last().map_or(0, Bytes::len)
        } else {
            0
        };
        if self.queued_bytes - replaced + pong.len() > self.limit {
            return false;
        }
        if full {
            self.pongs.pop();
        }
        self.queued_bytes = self.queued_bytes - replaced + pong.len();
        self.pongs.push(pong);
        true
    }

    /// Moves whole frames into `into`, up to `max_chunks` chunks (a frame in two parts may pass
    /// it by one) and `max_bytes` bytes (at least one frame goes), pongs first. Answers how many
    /// chunks it moved.
    pub(crate) fn take(&mut self, into: &mut VecDeque<Chunk>, max_chunks: usize, max_bytes: usize) -> usize {
        let (mut chunks, mut bytes) = (0, 0);
        while chunks < max_chunks && (bytes < max_bytes || chunks == 0) {
            let Some(chunk) = self.next_chunk() else { break };
            bytes += chunk.bytes.len();
            chunks += 1;
            let header = chunk.header;
            into.push_back(chunk);
            if header {
                // The payload goes with its header: a clear never cuts a frame in two.
                if let Some(payload) = self.next_chunk() {
                    bytes += payload.bytes.len();
                    chunks += 1;
                    into.push_back(payload);
                }
            }
        }
        chunks
    }

    /// Drops every waiting frame (those handed out stay the writer's); they count as lost.
    pub(crate) fn clear(&mut self) {
        self.chunks.clear();
        self.open.clear();
        self.pongs.clear();
        self.queued_bytes = 0;
        self.lost = (self.handed + 1, self.pushed);
    }

    /// Drops everything and frees the open buffer: the connection is gone.
    pub(crate) fn drop_all(&mut self) {
        self.clear();
        self.open = BytesMut::new();
    }

    /// Whether frame `seq` was dropped by a clear.
    pub(crate) fn was_lost(&self, seq: u64) -> bool {
        (self.lost.0..=self.lost.1).contains(&seq)
    }

    /// Counts a frame of `len` bytes just queued; answers its sequence number.
    fn queued(&mut self, len: usize) -> u64 {
        self.queued_bytes += len;
        self.pushed += 1;
        self.pushed
    }

    /// The next chunk to write: a pong, else the oldest queued chunk, else the open buffer's
    /// frames as one. Never called between a frame's header and its payload.
    fn next_chunk(&mut self) -> Option<Chunk> {
        let pong = (!self.pongs.is_empty()).then(|| self.pongs.remove(0));
        let chunk = match pong {
            Some(pong) => Chunk::new(pong, None),
            None => match self.chunks.pop_front() {
                Some(chunk) => chunk,
                None if !self.open.is_empty() => self.take_open(),
                None => return None,
            },
        };
        self.queued_bytes -= chunk.bytes.len();
        self.taken += 1;
        if let Some(last) = chunk.last {
            self.handed = last;
        }
        Some(chunk)
    }

    /// Ends the open buffer's run of small frames: it becomes a chunk, ahead of what follows.
    fn close_open(&mut self) {
        if !self.open.is_empty() {
            let chunk = self.take_open();
            self.chunks.push_back(chunk);
        }
    }

    /// The open buffer's frames as one chunk; the buffer keeps its spare room unless that is more
    /// than an idle connection should hold.
    fn take_open(&mut self) -> Chunk {
        let bytes = self.open.split().freeze();
        if self.open.capacity() > OPEN_RETAIN_MAX {
            self.open = BytesMut::new();
        }
        Chunk::new(bytes, Some(self.pushed))
    }
}

#[cfg(test)]
mod tests;
