use super::*;

fn inflate_whole(inflater: &mut Inflater, frames: &[&[u8]], max: usize) -> Result<Vec<u8>, InflateError> {
    let mut out = Vec::new();
    for frame in frames {
        inflater.inflate(frame, max, &mut out)?;
    }
    inflater.finish(max, &mut out)?;
    Ok(out)
}

#[test]
fn the_rfc_example_inflates() {
    // RFC 7692 §7.2.3.1: "Hello" compressed, in one frame and split over two.
    let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let mut inflater = Inflater::new(15, false);
    assert_eq!(inflate_whole(&mut inflater, &[&hello], 1024).unwrap(), b"Hello");
    assert_eq!(
        inflate_whole(&mut inflater, &[&hello[..3], &hello[3..]], 1024).unwrap(),
        b"Hello"
    );
    // §7.2.3.3: with no compression (a stored block).
    let stored = [0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00];
    assert_eq!(
        inflate_whole(&mut Inflater::new(15, true), &[&stored], 1024).unwrap(),
        b"Hello"
    );
}

#[test]
fn messages_round_trip_with_and_without_context_takeover() {
    let messages: Vec<Vec<u8>> = vec![
        b"{\"type\":\"message\",\"room\":\"lobby\",\"text\":\"hello\"}".to_vec(),
        b"{\"type\":\"message\",\"room\":\"lobby\",\"text\":\"hello again\"}".to_vec(),
        Vec::new(),
        Vec::new(),
        b"after two empty messages".to_vec(),
        (0..70_000u32).map(|i| (i % 251) as u8).collect(),
    ];
    for bits in [8, 9, 12, 15] {
        for no_takeover in [false, true] {
            let (mut deflater, mut inflater) = (Deflater::new(bits, 8, no_takeover), Inflater::new(bits, no_takeover));
            let mut sizes = Vec::new();
            for message in &messages {
                let mut compressed = Vec::new();
                deflater.compress(message, &mut compressed);
                sizes.push(compressed.len());
                let inflated = inflate_whole(&mut inflater, &[&compressed], 1 << 20).unwrap();
                assert_eq!(&inflated, message, "bits {bits}, no takeover {no_takeover}");
            }
            if !no_takeover {
                assert!(sizes[1] < sizes[0], "the window is kept: {sizes:?}");
            }
        }
    }
}

#[test]
fn a_compression_bomb_stops_at_the_limit() {
    let zeros = vec![0u8; 16 << 20];
    let mut bomb = Vec::new();
    Deflater::new(15, 8, true).compress(&zeros, &mut bomb);
    assert!(bomb.len() < 64 << 10, "{}", bomb.len());
    let mut out = Vec::new();
    let limit = 1 << 20;
    let result = Inflater::new(15, true).inflate(&bomb, limit, &mut out);
    assert_eq!(result, Err(InflateError::TooBig));
    assert!(
        out.capacity() <= limit + INFLATE_STEP + 1,
        "allocated {}",
        out.capacity()
    );
}

#[test]
fn garbage_is_corrupt_and_the_inflater_recovers_for_the_next_message() {
    let mut inflater = Inflater::new(15, false);
    assert_eq!(
        inflate_whole(&mut inflater, &[&[0xff, 0xff, 0xff, 0xff]], 1024),
        Err(InflateError::Corrupt)
    );
    let mut compressed = Vec::new();
    Deflater::new(15, 5, false).compress(b"fine", &mut compressed);
    assert_eq!(inflate_whole(&mut inflater, &[&compressed], 1024).unwrap(), b"fine");
}
