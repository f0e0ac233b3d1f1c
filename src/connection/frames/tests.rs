use super::*;

fn data(bytes: &'static [u8]) -> Bytes {
    Bytes::from_static(bytes)
}

fn frames(limit: usize) -> Frames {
    Frames {
        limit,
        ..Frames::default()
    }
}

/// Everything `frames` hands out, a chunk at a time.
fn drain(frames: &mut Frames) -> Vec<(Bytes, Option<u64>)> {
    let mut into = VecDeque::new();
    while frames.take(&mut into, 1, usize::MAX) > 0 {}
    into.into_iter().map(|c| (c.bytes, c.last)).collect()
}

#[test]
fn small_frames_go_out_together_large_ones_keep_their_place() {
    let mut frames = frames(1 << 20);
    let big = Bytes::from(vec![7u8; COALESCE_MAX + 1]);
    let a = frames.push_encoded(1, |b| b.extend_from_slice(b"a"));
    let b = frames.push_encoded(2, |b| b.extend_from_slice(b"bb"));
    let whole = frames.push_chunks(big.len(), big.clone(), Bytes::new());
    let parts = frames.push_chunks(5, data(b"h"), data(b"body"));
    let c = frames.push_encoded(1, |b| b.extend_from_slice(b"c"));
    assert_eq!((a, b, whole, parts, c), (1, 2, 3, 4, 5));
    assert_eq!(frames.queued_bytes, 3 + big.len() + 5 + 1);
    assert_eq!(
        drain(&mut frames),
        vec![
            (data(b"abb"), Some(2)),
            (big, Some(3)),
            (data(b"h"), None),
            (data(b"body"), Some(4)),
            (data(b"c"), Some(5)),
        ]
    );
    assert_eq!(frames.queued_bytes, 0);
}

#[test]
fn a_take_moves_whole_frames_within_its_bounds() {
    let mut frames = frames(1 << 20);
    for _ in 0..3 {
        frames.push_chunks(5, data(b"h"), data(b"body"));
    }
    let mut into = VecDeque::new();
    // One chunk asked: the header comes with its payload.
    assert_eq!(frames.take(&mut into, 1, usize::MAX), 2);
    // A byte bound: at least one frame goes, then it stops.
    assert_eq!(frames.take(&mut into, 64, 1), 2);
    assert_eq!(into.len(), 4);
    assert_eq!(frames.take(&mut into, 64, usize::MAX), 2);
}

#[test]
fn past_its_few_pongs_a_newer_pong_replaces_the_newest_and_they_go_first() {
    let mut frames = frames(1 << 20);
    frames.push_encoded(4, |b| b.extend_from_slice(b"data"));
    let pong = |i: u32| Bytes::from(i.to_be_bytes().to_vec());
    for i in 0..10_000u32 {
        assert!(frames.push_pong(pong(i)));
    }
    assert_eq!(
        frames.queued_bytes,
        4 + 4 * PONGS_MAX,
        "a few pongs wait, not ten thousand"
    );
    let out = drain(&mut frames);
    let pongs: Vec<Bytes> = out.iter().take(PONGS_MAX).map(|(b, _)| b.clone()).collect();
    let mut expected: Vec<Bytes> = (0..PONGS_MAX as u32 - 1).map(pong).collect();
    expected.push(pong(9_999));
    assert_eq!(pongs, expected, "the first ones in order, the newest last");
    assert_eq!(out.last(), Some(&(data(b"data"), Some(1))), "then the data");
}

#[test]
fn the_limit_counts_data_and_pongs() {
    let mut frames = frames(6);
    assert!(frames.fits(6));
    frames.push_encoded(4, |b| b.extend_from_slice(b"data"));
    assert!(!frames.fits(3));
    assert!(!frames.push_pong(data(b"pong")));
    assert!(frames.push_pong(data(b"po")));
    assert_eq!(frames.queued_bytes, 6);
}

#[test]
fn a_clear_loses_what_waits_and_keeps_what_was_handed_out() {
    let mut frames = frames(1 << 20);
    let first = frames.push_chunks(5, data(b"h"), data(b"body"));
    let mut into = VecDeque::new();
    frames.take(&mut into, 1, usize::MAX);
    let second = frames.push_encoded(1, |b| b.extend_from_slice(b"x"));
    let third = frames.push_encoded(1, |b| b.extend_from_slice(b"y"));
    frames.clear();
    assert!(!frames.was_lost(first), "the writer holds it");
    assert!(frames.was_lost(second) && frames.was_lost(third));
    assert_eq!(frames.queued_bytes, 0);
    let later = frames.push_encoded(1, |b| b.extend_from_slice(b"z"));
    assert!(!frames.was_lost(later));
    assert_eq!(drain(&mut frames), vec![(data(b"z"), Some(later))]);
}

#[test]
fn an_idle_queue_lets_go_of_a_big_burst_buffer() {
    let mut frames = frames(1 << 20);
    for _ in 0..8 {
        frames.push_encoded(COALESCE_MAX, |b| b.extend_from_slice(&[1u8; COALESCE_MAX]));
    }
    assert_eq!(drain(&mut frames).len(), 1);
    assert!(frames.open.capacity() <= OPEN_RETAIN_MAX);
}
