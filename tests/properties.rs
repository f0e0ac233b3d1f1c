//! Property tests of everything switchboard parses itself: frames and reassembly, UTF-8 across
//! fragments, close payloads. Whatever the bytes, no panic and no allocation beyond the limits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use bytes::BytesMut;
use proptest::prelude::*;
use switchboard::protocol::{encode_frame, CloseCode, CloseFrame, Decoder, Event, OpCode, ProtocolError, Role};

const MAX_FRAME: usize = 1 << 12;
const MAX_MESSAGE: usize = 1 << 14;

/// Feeds `bytes` in pieces of the given sizes, collecting events until the first error.
fn decode(decoder: &mut Decoder, bytes: &[u8], pieces: &[usize]) -> Result<Vec<Event>, ProtocolError> {
    let mut events = Vec::new();
    let mut rest = bytes;
    let mut sizes = pieces.iter().cycle();
    while !rest.is_empty() {
        let take = sizes.next().copied().unwrap_or(rest.len()).clamp(1, rest.len());
        let (piece, tail) = rest.split_at(take);
        rest = tail;
        decoder.feed(piece);
        while let Some(event) = decoder.next_event()? {
            events.push(event);
        }
        // What it holds is what it was given and has not returned: never more.
        assert!(decoder.buffered() <= bytes.len());
    }
    Ok(events)
}

/// Splits `payload` into frames at `cuts` (fractions of its length), with a ping between each.
fn fragmented(opcode: OpCode, payload: &[u8], cuts: &[u16]) -> Vec<u8> {
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|c| usize::from(*c) * payload.len() / usize::from(u16::MAX))
        .collect();
    points.push(payload.len());
    points.sort_unstable();
    points.dedup();
    let mut wire = BytesMut::new();
    let mut start = 0;
    for (i, end) in points.iter().enumerate() {
        let op = if i == 0 { opcode } else { OpCode::Continuation };
        let last = i + 1 == points.len();
        encode_frame(&mut wire, op, last, &payload[start..*end], Some([1, 2, 3, 4]));
        if !last {
            encode_frame(&mut wire, OpCode::Ping, true, b"between", Some([5, 6, 7, 8]));
        }
        start = *end;
    }
    wire.to_vec()
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048),
                                   pieces in proptest::collection::vec(1usize..64, 1..8),
                                   server in any::<bool>()) {
        let role = if server { Role::Server } else { Role::Client };
        let mut decoder = Decoder::new(role, MAX_FRAME, MAX_MESSAGE);
        let _ = decode(&mut decoder, &bytes, &pieces);
    }

    #[test]
    fn fragmented_text_reassembles_exactly(text in "\\PC{0,300}",
                                           cuts in proptest::collection::vec(any::<u16>(), 0..6),
                                           pieces in proptest::collection::vec(1usize..40, 1..6)) {
        let wire = fragmented(OpCode::Text, text.as_bytes(), &cuts);
        let mut decoder = Decoder::new(Role::Server, MAX_FRAME, MAX_MESSAGE);
        let events = decode(&mut decoder, &wire, &pieces).unwrap();
        let texts: Vec<&str> = events.iter().filter_map(|e| match e { Event::Text(t) => Some(t.as_str()), _ => None }).collect();
        prop_assert_eq!(texts, vec![text.as_str()]);
        let pings = events.iter().filter(|e| matches!(e, Event::Ping(_))).count();
        prop_assert_eq!(pings + 1, events.len());
    }

    #[test]
    fn fragmented_binary_reassembles_exactly(payload in proptest::collection::vec(any::<u8>(), 0..3000),
                                             cuts in proptest::collection::vec(any::<u16>(), 0..6)) {
        let wire = fragmented(OpCode::Binary, &payload, &cuts);
        let mut decoder = Decoder::new(Role::Server, MAX_FRAME, MAX_MESSAGE);
        let events = decode(&mut decoder, &wire, &[7]).unwrap();
        prop_assert_eq!(events.last(), Some(&Event::Binary(payload.into())));
    }

    #[test]
    fn invalid_utf8_anywhere_in_fragments_is_1007(prefix in "\\PC{0,50}", suffix in "\\PC{0,50}",
                                                 bad in prop_oneof![Just(vec![0xFFu8]), Just(vec![0xC0, 0x80]), Just(vec![0xED, 0xA0, 0x80])],
                                                 cuts in proptest::collection::vec(any::<u16>(), 0..4)) {
        let mut payload = prefix.into_bytes();
        payload.extend_from_slice(&bad);
        payload.extend_from_slice(suffix.as_bytes());
        let wire = fragmented(OpCode::Text, &payload, &cuts);
        let mut decoder = Decoder::new(Role::Server, MAX_FRAME, MAX_MESSAGE);
        let error = decode(&mut decoder, &wire, &[3]).unwrap_err();
        prop_assert_eq!(error, ProtocolError::InvalidUtf8);
        prop_assert_eq!(error.close_code(), CloseCode::INVALID_DATA);
    }

    #[test]
    fn messages_over_the_limit_fail_without_buffering_them(len in (MAX_MESSAGE as u64 + 1)..(1u64 << 62)) {
        // Only the header is sent: the decoder must refuse it before any payload arrives.
        let mut header = vec![0x82u8, 0x80 | 127];
        header.extend_from_slice(&len.to_be_bytes());
        header.extend_from_slice(&[1, 2, 3, 4]);
        let mut decoder = Decoder::new(Role::Server, MAX_FRAME, MAX_MESSAGE);
        decoder.feed(&header);
        let error = decoder.next_event().unwrap_err();
        prop_assert_eq!(error.close_code(), CloseCode::TOO_BIG);
    }

    #[test]
    fn close_payloads_parse_as_the_rfc_says_and_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..130),
                                                           code in 3000u16..5000, reason in "\\PC{0,40}") {
        // RFC 6455 §5.5.1: empty, or a code allowed on the wire and a UTF-8 reason.
        let parsed = CloseFrame::parse(&bytes);
        match bytes.as_slice() {
            [] => prop_assert_eq!(parsed, Ok(None)),
            [_] => prop_assert_eq!(parsed, Err(ProtocolError::InvalidCloseCode(None))),
            [hi, lo, rest @ ..] => {
                let wire = u16::from_be_bytes([*hi, *lo]);
                match (CloseCode(wire).is_valid_on_wire(), std::str::from_utf8(rest)) {
                    (false, _) => prop_assert_eq!(parsed, Err(ProtocolError::InvalidCloseCode(Some(wire)))),
                    (true, Err(_)) => prop_assert_eq!(parsed, Err(ProtocolError::InvalidUtf8)),
                    (true, Ok(text)) => {
                        let frame = parsed.unwrap().unwrap();
                        prop_assert_eq!((frame.code, frame.reason.as_str()), (CloseCode(wire), text));
                        let payload = frame.to_payload();
                        prop_assert_eq!(payload.as_ref(), bytes.as_slice());
                    }
                }
            }
        }
        let frame = CloseFrame::new(CloseCode(code), reason);
        prop_assert_eq!(CloseFrame::parse(&frame.to_payload()), Ok(Some(frame)));
    }

    #[test]
    fn large_frames_decode_the_same_however_they_are_cut_and_fed(
        sizes in proptest::collection::vec(prop_oneof![0usize..200, 16_000usize..70_000], 1..5),
        text in any::<bool>(),
        fragment in any::<bool>(),
        cuts in proptest::collection::vec(any::<u16>(), 0..8),
    ) {
        // Each message in one frame, or in two fragments; text or binary; some of them large
        // enough for the decoder to take them in place (16 KiB and up).
        let opcode = if text { OpCode::Text } else { OpCode::Binary };
        let messages: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, size)| (0..*size).map(|j| b'a' + ((i + j) % 26) as u8).collect())
            .collect();
        let mut wire = BytesMut::new();
        for message in &messages {
            if fragment && message.len() > 1 {
                let (first, second) = message.split_at(message.len() / 2);
                encode_frame(&mut wire, opcode, false, first, Some([1, 2, 3, 4]));
                encode_frame(&mut wire, OpCode::Continuation, true, second, Some([5, 6, 7, 8]));
            } else {
                encode_frame(&mut wire, opcode, true, message, Some([1, 2, 3, 4]));
            }
        }
        let wire = wire.freeze();
        let mut points: Vec<usize> = cuts.iter().map(|c| usize::from(*c) * wire.len() / usize::from(u16::MAX)).collect();
        points.push(wire.len());
        points.sort_unstable();
        points.dedup();
        let expected: Vec<Event> = messages
            .iter()
            .map(|m| if text {
                Event::Text(switchboard::Text::try_from(bytes::Bytes::from(m.clone())).unwrap())
            } else {
                Event::Binary(m.clone().into())
            })
            .collect();
        const BIG: usize = 1 << 20;
        // Three ways in: chunks the decoder owns (unmasked in place), chunks another handle
        // still shares (copied out frame by frame), and copies.
        for way in 0..3 {
            let mut decoder = Decoder::new(Role::Server, BIG, BIG);
            let mut events = Vec::new();
            let mut start = 0;
            let mut kept = Vec::new();
            for end in &points {
                let chunk = wire.slice(start..*end);
                start = *end;
                match way {
                    0 => decoder.feed_owned(BytesMut::from(&chunk[..])),
                    1 => {
                        kept.push(chunk.clone());
                        decoder.feed_bytes(chunk);
                    }
                    _ => decoder.feed(&chunk),
                }
                while let Some(event) = decoder.next_event().unwrap() {
                    events.push(event);
                }
            }
            prop_assert_eq!(&events, &expected, "fed the {} way", ["owned", "shared", "copied"][way]);
            // A shared chunk is never changed (unmasked) in place.
            let rejoined: Vec<u8> = kept.iter().flat_map(|c| c.iter().copied()).collect();
            if way == 1 {
                prop_assert_eq!(rejoined.as_slice(), &wire[..]);
            }
        }
    }
}

#[test]
fn close_codes_follow_rfc_6455_section_7_4() {
    for code in 0..=u16::MAX {
        let payload = code.to_be_bytes();
        let allowed = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
        assert_eq!(CloseFrame::parse(&payload).is_ok(), allowed, "code {code}");
    }
}
