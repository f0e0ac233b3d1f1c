//! Incremental UTF-8 validation across frame and chunk boundaries.
//!
//! A text message may be split anywhere, even inside a character, and RFC 6455 §8.1 asks an
//! endpoint to fail the connection as soon as the bytes seen so far cannot begin valid UTF-8
//! ("fail fast"), not only once the message is complete.

/// The longest UTF-8 sequence, in bytes.
const MAX_CHAR: usize = 4;

/// Input that is not, and cannot become, valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

/// Validates a byte stream piece by piece, carrying an incomplete character between pieces.
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    /// The bytes of a character cut by the end of the last piece (a valid prefix, never complete).
    pending: [u8; MAX_CHAR],
    /// How many of `pending` are used: a byte, so that the validator takes 5 bytes, not 16.
    pending_len: u8,
}

impl Utf8Validator {
    /// Checks the next piece of the stream.
    ///
    /// # Errors
    ///
    /// [`InvalidUtf8`] as soon as the bytes seen so far cannot be the start of valid UTF-8.
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), InvalidUtf8> {
        if self.pending_len > 0 {
            input = self.complete_pending(input)?;
            if self.pending_len > 0 {
                return Ok(());
            }
        }
        match std::str::from_utf8(input) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(InvalidUtf8),
            Err(e) => {
                // An incomplete character at the end: at most 3 bytes, kept for the next piece.
                let tail = input.get(e.valid_up_to()..).unwrap_or_default();
                let slot = self.pending.get_mut(..tail.len()).ok_or(InvalidUtf8)?;
                slot.copy_from_slice(tail);
                self.pending_len = u8::try_from(tail.len()).map_err(|_| InvalidUtf8)?;
                Ok(())
            }
        }
    }

    /// Checks that the stream did not end inside a character.
    ///
    /// # Errors
    ///
    /// [`InvalidUtf8`] when the last piece ended with an incomplete character.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let complete = self.pending_len == 0;
        self.pending_len = 0;
        if complete {
            Ok(())
        } else {
            Err(InvalidUtf8)
        }
    }

    /// Adds bytes to the pending character; returns the input left after it.
    fn complete_pending<'a>(&mut self, input: &'a [u8]) -> Result<&'a [u8], InvalidUtf8> {
        let width = self.pending.first().copied().map_or(1, char_width);
        let pending = usize::from(self.pending_len);
        let take = width.saturating_sub(pending).min(input.len());
        let (head, rest) = input.split_at(take);
        let mut buf = self.pending;
        let len = pending + take;
        buf.get_mut(pending..len).ok_or(InvalidUtf8)?.copy_from_slice(head);
        match std::str::from_utf8(buf.get(..len).unwrap_or_default()) {
            Ok(_) => self.pending_len = 0,
            Err(e) if e.error_len().is_some() => return Err(InvalidUtf8),
            Err(_) => {
                self.pending = buf;
                self.pending_len = u8::try_from(len).map_err(|_| InvalidUtf8)?;
            }
        }
        Ok(rest)
    }
}

/// The length of the character a UTF-8 leading byte starts (pending bytes always begin with one).
fn char_width(lead: u8) -> usize {
    match lead {
        0xF0..=0xF7 => 4,
        0xE0..=0xEF => 3,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_split(bytes: &[u8], at: &[usize]) -> Result<(), InvalidUtf8> {
        let mut v = Utf8Validator::default();
        let mut start = 0;
        for &end in at.iter().chain(std::iter::once(&bytes.len())) {
            v.feed(&bytes[start..end])?;
            start = end;
        }
        v.finish()
    }

    #[test]
    fn accepts_valid_text_split_at_every_position() {
        let text = "κόσμε 𝄞 héllo €".as_bytes();
        for i in 0..=text.len() {
            for j in i..=text.len() {
                assert_eq!(feed_split(text, &[i, j]), Ok(()), "split at {i},{j}");
            }
        }
    }

    #[test]
    fn rejects_invalid_bytes_wherever_they_fall() {
        let bad = [
            0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
        ];
        for i in 0..=bad.len() {
            assert_eq!(feed_split(&bad, &[i]), Err(InvalidUtf8), "split at {i}");
        }
    }

    #[test]
    fn fails_fast_on_an_impossible_prefix() {
        let mut v = Utf8Validator::default();
        assert_eq!(v.feed(&[0xf4]), Ok(()));
        // U+10FFFF is the limit: F4 90 can never start a valid character.
        assert_eq!(v.feed(&[0x90]), Err(InvalidUtf8));
    }

    #[test]
    fn an_unfinished_character_at_the_end_is_invalid() {
        assert_eq!(feed_split(&[0xe2, 0x82], &[1]), Err(InvalidUtf8));
    }
}
