//! Payload masking (RFC 6455 §5.3): XOR with a 4-byte key, which is its own inverse.

/// XORs `buf` with `key`, as if `buf` started `offset` bytes into the masked payload.
///
/// The offset lets a frame be unmasked piece by piece as its bytes arrive. Eight bytes are done
/// per step, which the compiler turns into wide XORs.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let mut key = key;
    key.rotate_left(offset % 4);
    // Both halves hold the same four bytes, so this is right on either endianness.
    let half = u64::from(u32::from_ne_bytes(key));
    let wide = half | (half << 32);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    for (byte, k) in chunks.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
    }
}

/// A fresh masking key for a client frame.
///
/// RFC 6455 §5.3 asks for keys a third party cannot predict. Each key is SipHash, keyed with
/// random keys from the operating system (std's `RandomState`), of a per-thread counter: a keyed
/// pseudo-random function, so unpredictable without its key, and cheap.
pub fn random_mask() -> [u8; 4] {
    use std::cell::Cell;
    use std::hash::{BuildHasher, Hasher, RandomState};
    thread_local! {
        static KEYS: (RandomState, Cell<u64>) = (RandomState::new(), Cell::new(0));
    }
    KEYS.with(|(keys, counter)| {
        counter.set(counter.get().wrapping_add(1));
        let mut hasher = keys.build_hasher();
        hasher.write_u64(counter.get());
        let [a, b, c, d, ..] = hasher.finish().to_le_bytes();
        [a, b, c, d]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(buf: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[(offset + i) % 4];
        }
    }

    #[test]
    fn matches_the_bytewise_definition_at_every_offset_and_length() {
        let key = [0x12, 0x34, 0x56, 0x78];
        for len in 0..40 {
            for offset in 0..8 {
                let data: Vec<u8> = (0..len as u8).collect();
                let (mut fast, mut slow) = (data.clone(), data.clone());
                apply_mask(&mut fast, key, offset);
                naive(&mut slow, key, offset);
                assert_eq!(fast, slow, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn unmasking_in_pieces_equals_unmasking_at_once() {
        let key = [1, 2, 3, 4];
        let data: Vec<u8> = (0..=255).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        let mut pieces = data;
        let (a, b) = pieces.split_at_mut(13);
        apply_mask(a, key, 0);
        apply_mask(b, key, 13);
        assert_eq!(whole, pieces);
    }
}
