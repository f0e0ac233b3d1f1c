//! Compressing and inflating message payloads (RFC 7692 §7.2): zlib-rs's own API compresses (it
//! takes a memory level, which flate2 does not expose), flate2 on zlib-rs inflates.
//!
//! A message is compressed with a sync flush and sent without the flush's last four bytes
//! (`00 00 ff ff`); the receiver puts them back before inflating. Without context takeover each
//! message starts from an empty window (the stream is reset after it).

use flate2::{Decompress, FlushDecompress, Status};
use zlib_rs::{Deflate, DeflateConfig, DeflateFlush};

/// The end of a sync flush, removed from each compressed message and put back to inflate it.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// Inflated bytes reserved per step: output grows with what the peer really sent, never by what
/// a header or a ratio claims, so a compression bomb costs at most the limit plus this.
const INFLATE_STEP: usize = 16 << 10;

/// The window zlib works with for a negotiated window of `bits`.
///
/// zlib cannot compress with an 8-bit window (it silently uses 9) and flate2 refuses 8 outright,
/// so a negotiated 8 compresses with 9. That stays within an 8-bit window's reach: zlib never
/// emits a match distance above its window minus 262 bytes (`MIN_LOOKAHEAD`), 250 with a 9-bit
/// window, under the 256 an 8-bit window holds. Inflating with 9 reads an 8-bit stream as well.
fn zlib_window(bits: u8) -> u8 {
    bits.clamp(9, 15)
}

/// Why a compressed message could not be inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum InflateError {
    /// It inflates past the size limit (close with 1009); inflating stopped there.
    #[error("the message inflates past the size limit")]
    TooBig,
    /// It is not a valid deflate stream (close with 1007).
    #[error("the message is not valid deflate data")]
    Corrupt,
}

/// Compresses the messages of one direction.
pub(crate) struct Deflater {
    stream: Deflate,
    no_context_takeover: bool,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater")
            .field("no_context_takeover", &self.no_context_takeover)
            .finish_non_exhaustive()
    }
}

impl Deflater {
    /// A compressor for a negotiated window of `window_bits` (8 to 15) with zlib's memory level
    /// `mem_level` (1 to 9; 8 is zlib's default).
    pub(crate) fn new(window_bits: u8, mem_level: u8, no_context_takeover: bool) -> Deflater {
        let config = DeflateConfig {
            // Negative: a raw deflate stream, no zlib header.
            window_bits: -i32::from(zlib_window(window_bits)),
            mem_level: i32::from(mem_level.clamp(1, 9)),
            ..DeflateConfig::default()
        };
        Deflater {
            stream: Deflate::new_with_config(config),
            no_context_takeover,
        }
    }

    /// Appends `payload`, compressed as one message (without the trailing `00 00 ff ff`), to `out`.
    pub(crate) fn compress(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        let before = self.stream.total_in();
        loop {
            let consumed = usize::try_from(self.stream.total_in() - before).unwrap_or(usize::MAX);
            let rest = payload.get(consumed..).unwrap_or_default();
            let room = (rest.len() / 2).max(64);
            let (written_before, out_before) = (out.len(), self.stream.total_out());
            out.resize(written_before + room, 0);
            // Compressing into a buffer with room cannot fail; a failure would be a zlib bug.
            let _ = self.stream.compress(
                rest,
                out.get_mut(written_before..).unwrap_or_default(),
                DeflateFlush::SyncFlush,
            );
            let produced = usize::try_from(self.stream.total_out() - out_before).unwrap_or(room);
            out.truncate(written_before + produced);
            let all_in = self.stream.total_in() - before == payload.len() as u64;
            // The flush is complete once a call leaves room in the output.
            if all_in && produced < room {
                break;
            }
        }
        if out.len() >= start + TAIL.len() && out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        } else if out.len() == start {
            // An empty message right after another: zlib has nothing to flush and writes
            // nothing, but the peer will inflate `00 00 ff ff` after what we send, which must
            // then be an empty stored block: its first byte (RFC 7692 §7.2.3.6).
            out.push(0x00);
        }
        if self.no_context_takeover {
            self.stream.reset();
        }
    }
}

/// Inflates the messages of one direction, a message's frames one at a time.
#[derive(Debug)]
pub(crate) struct Inflater {
    stream: Decompress,
    no_context_takeover: bool,
    /// The peer ended its deflate stream (a final block): the rest of the message is ignored and
    /// the next one starts afresh.
    ended: bool,
}

impl Inflater {
    /// An inflater for a negotiated window of `window_bits` (8 to 15).
    pub(crate) fn new(window_bits: u8, no_context_takeover: bool) -> Inflater {
        Inflater {
            stream: Decompress::new_with_window_bits(false, zlib_window(window_bits)),
            no_context_takeover,
            ended: false,
        }
    }

    /// Inflates one frame's compressed payload, appending to `out`, which may hold at most
    /// `max` bytes (the message so far included).
    ///
    /// # Errors
    ///
    /// [`InflateError`]: the message must fail; nothing past `max` was kept.
    pub(crate) fn inflate(&mut self, input: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), InflateError> {
        let result = self.inflate_into(input, max, out);
        if result.is_err() {
            // The message fails; whatever comes next starts from a clean stream.
            self.stream.reset(false);
            self.ended = false;
        }
        result
    }

    fn inflate_into(&mut self, input: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), InflateError> {
        let before = self.stream.total_in();
        while !self.ended {
            let consumed = usize::try_from(self.stream.total_in() - before).unwrap_or(usize::MAX);
            let rest = input.get(consumed..).unwrap_or_default();
            if rest.is_empty() && out.len() < out.capacity() {
                return Ok(());
            }
            if out.len() > max {
                return Err(InflateError::TooBig);
            }
            out.reserve_exact(INFLATE_STEP.min(max + 1 - out.len()).max(1));
            let produced_before = out.len();
            let status = self
                .stream
                .decompress_vec(rest, out, FlushDecompress::Sync)
                .map_err(|_| InflateError::Corrupt)?;
            if out.len() > max {
                out.truncate(max);
                return Err(InflateError::TooBig);
            }
            match status {
                Status::StreamEnd => self.ended = true,
                Status::BufError
                    if out.len() == produced_before && self.stream.total_in() - before == input.len() as u64 =>
                {
                    return Ok(())
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Ends the message: inflates the removed `00 00 ff ff` so that everything is out, and
    /// resets the window if it is not kept between messages.
    ///
    /// # Errors
    ///
    /// As [`Inflater::inflate`].
    pub(crate) fn finish(&mut self, max: usize, out: &mut Vec<u8>) -> Result<(), InflateError> {
        let result = self.inflate(&TAIL, max, out);
        if self.no_context_takeover || self.ended {
            self.stream.reset(false);
            self.ended = false;
        }
        result
    }
}

#[cfg(test)]
mod tests;
