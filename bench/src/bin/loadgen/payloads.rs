//! The echo payloads and their checks.

/// The echo payloads: a message's first 16 bytes are its sequence number in hex and the rest is
/// filler, so each echo is checked byte for byte against what was sent without keeping a copy.
/// Made without formatting or per-check allocation: at half a million messages a second the load
/// generator's own cost per message decides what it can measure.
pub(crate) struct Payloads {
    filler: Vec<u8>,
}

/// The filler byte after each payload's sequence number.
const FILLER: u8 = b'x';

/// How much masked filler [`Payloads::write_masked`] builds per frame and then repeats: small
/// enough to build per frame at no cost worth measuring, large enough that a 64 KiB payload is a
/// few dozen copies from the first-level cache.
const MASKED_BLOCK: usize = 1024;

impl Payloads {
    pub(crate) fn new(size: usize) -> Payloads {
        Payloads {
            filler: vec![FILLER; size.max(16)],
        }
    }

    /// The payload length (at least 16 bytes).
    pub(crate) fn len(&self) -> usize {
        self.filler.len()
    }

    /// Appends payload `seq` to `out`.
    pub(crate) fn write(&self, seq: u64, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.filler);
        if let Some(head) = out.get_mut(start..start + 16) {
            head.copy_from_slice(&hex16(seq));
        }
    }

    /// Appends payload `seq` masked with `key`, in one pass. The filler is one repeated byte, so
    /// masked it is the key's 4-byte pattern repeated (the 16-byte head keeps the pattern in
    /// step): written from a small block, with no copy of `filler` and no second masking pass
    /// over a 64 KiB payload. Against a fast server the load generator's core is the limit at
    /// 64 KiB (docs/benchmarks.md), so its cost per payload is part of what is measured.
    pub(crate) fn write_masked(&self, seq: u64, key: [u8; 4], out: &mut Vec<u8>) {
        out.reserve(self.len());
        out.extend(hex16(seq).iter().zip(key.iter().cycle()).map(|(byte, k)| byte ^ k));
        let mut left = self.len() - 16;
        let pattern = key.map(|k| FILLER ^ k);
        let mut block = [0u8; MASKED_BLOCK];
        // Only as much of the block as this payload uses: a 32-byte payload builds 16 bytes.
        let used = block
            .get_mut(..left.min(MASKED_BLOCK).next_multiple_of(4))
            .unwrap_or_default();
        for word in used.chunks_exact_mut(4) {
            word.copy_from_slice(&pattern);
        }
        while left > 0 {
            let n = left.min(MASKED_BLOCK);
            out.extend_from_slice(block.get(..n).unwrap_or_default());
            left -= n;
        }
    }

    /// Whether `data` is payload `seq`.
    pub(crate) fn matches(&self, seq: u64, data: &[u8]) -> bool {
        data.len() == self.len() && data.get(..16) == Some(&hex16(seq)[..]) && data.get(16..) == self.filler.get(16..)
    }
}

/// `seq` as 16 lowercase hex digits.
fn hex16(seq: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, digit) in out.iter_mut().enumerate() {
        let nibble = (seq >> (60 - 4 * i)) & 0xF;
        *digit = b"0123456789abcdef".get(nibble as usize).copied().unwrap_or(b'0');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_carry_their_sequence_number_and_check_every_byte() {
        assert_eq!(&hex16(0x1234_abcd), b"000000001234abcd");
        let payloads = Payloads::new(32);
        let mut sent = Vec::new();
        payloads.write(7, &mut sent);
        assert_eq!(sent.len(), 32);
        assert!(payloads.matches(7, &sent));
        assert!(!payloads.matches(8, &sent));
        let mut changed = sent.clone();
        if let Some(last) = changed.last_mut() {
            *last = b'y';
        }
        assert!(!payloads.matches(7, &changed));
        assert!(!payloads.matches(7, sent.get(..31).unwrap_or_default()));
        assert_eq!(Payloads::new(4).len(), 16);
    }

    #[test]
    fn a_payload_written_masked_unmasks_to_the_payload() {
        let key = [0x12, 0x34, 0x56, 0x78];
        for size in [16, 17, 32, 1_040, 65_536, 70_001] {
            let payloads = Payloads::new(size);
            let mut masked = Vec::new();
            payloads.write_masked(0xfeed, key, &mut masked);
            assert_ne!(masked.get(16..20), Some(&b"xxxx"[..]), "size {size}: not masked");
            switchboard::protocol::apply_mask(&mut masked, key, 0);
            let mut plain = Vec::new();
            payloads.write(0xfeed, &mut plain);
            assert_eq!(masked, plain, "size {size}");
            assert!(payloads.matches(0xfeed, &masked), "size {size}");
        }
    }
}
