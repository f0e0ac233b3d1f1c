use super::super::frame::encode_frame;
use super::*;

const KEY: [u8; 4] = [0xA1, 0xB2, 0xC3, 0xD4];

fn client_frame(opcode: OpCode, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode_frame(&mut buf, opcode, fin, payload, Some(KEY));
    buf.to_vec()
}

fn server() -> Decoder {
    Decoder::new(Role::Server, 1024, 4096)
}

fn decode_all(decoder: &mut Decoder, bytes: &[u8]) -> Result<Vec<Event>, ProtocolError> {
    decoder.feed(bytes);
    let mut events = Vec::new();
    while let Some(event) = decoder.next_event()? {
        events.push(event);
    }
    Ok(events)
}

fn text(s: &str) -> Event {
    Event::Text(Text::try_from(Bytes::copy_from_slice(s.as_bytes())).unwrap())
}

#[test]
fn decodes_a_masked_text_frame_fed_byte_by_byte() {
    let bytes = client_frame(OpCode::Text, true, "héllo".as_bytes());
    let mut d = server();
    let mut events = Vec::new();
    for b in &bytes {
        events.extend(decode_all(&mut d, std::slice::from_ref(b)).unwrap());
    }
    assert_eq!(events, vec![text("héllo")]);
}

#[test]
fn a_payload_arriving_in_pieces_is_unmasked_as_it_comes() {
    let mut d = Decoder::new(Role::Server, 1 << 20, 1 << 20);
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut bytes = client_frame(OpCode::Binary, true, &payload);
    bytes.extend(client_frame(OpCode::Text, true, "after".as_bytes()));
    let mut events = Vec::new();
    for piece in bytes.chunks(7_919) {
        events.extend(decode_all(&mut d, piece).unwrap());
        assert!(d.buffered() <= bytes.len());
    }
    assert_eq!(events, vec![Event::Binary(Bytes::from(payload)), text("after")]);
    assert_eq!(d.buffered(), 0);
}

#[test]
fn invalid_utf8_in_a_payload_arriving_in_pieces_fails_at_its_piece() {
    let mut payload = vec![b'a'; 5_000];
    payload[3_000] = 0xFF;
    let frame = client_frame(OpCode::Text, true, &payload);
    let mut d = Decoder::new(Role::Server, 1 << 16, 1 << 16);
    assert_eq!(decode_all(&mut d, &frame[..2_000]).unwrap(), vec![]);
    assert_eq!(
        decode_all(&mut d, &frame[2_000..3_500]),
        Err(ProtocolError::InvalidUtf8)
    );
}

#[test]
fn reassembles_fragments_around_interleaved_control_frames() {
    let mut bytes = client_frame(OpCode::Text, false, "frag".as_bytes());
    bytes.extend(client_frame(OpCode::Ping, true, b"p"));
    bytes.extend(client_frame(OpCode::Continuation, false, "men".as_bytes()));
    bytes.extend(client_frame(OpCode::Continuation, true, "ted €".as_bytes()));
    bytes.extend(client_frame(OpCode::Binary, true, &[1, 2, 3]));
    let events = decode_all(&mut server(), &bytes).unwrap();
    assert_eq!(
        events,
        vec![
            Event::Ping(Bytes::from_static(b"p")),
            text("fragmented €"),
            Event::Binary(Bytes::from_static(&[1, 2, 3]))
        ]
    );
}

#[test]
fn empty_messages_are_messages() {
    let mut bytes = client_frame(OpCode::Text, true, b"");
    bytes.extend(client_frame(OpCode::Binary, true, b""));
    let events = decode_all(&mut server(), &bytes).unwrap();
    assert_eq!(events, vec![text(""), Event::Binary(Bytes::new())]);
}

#[test]
fn utf8_split_across_fragments_is_accepted() {
    let euro = "€".as_bytes();
    let mut bytes = client_frame(OpCode::Text, false, &euro[..1]);
    bytes.extend(client_frame(OpCode::Continuation, true, &euro[1..]));
    assert_eq!(decode_all(&mut server(), &bytes).unwrap(), vec![text("€")]);
}

#[test]
fn invalid_utf8_fails_fast_before_the_message_ends() {
    let mut d = server();
    let first = client_frame(OpCode::Text, false, &[b'a', 0xFF]);
    assert_eq!(decode_all(&mut d, &first), Err(ProtocolError::InvalidUtf8));
    // Inside one frame whose end has not arrived yet.
    let mut d = server();
    let frame = client_frame(OpCode::Text, true, &[b'a', 0xC0, b'b', b'c', b'd']);
    assert_eq!(decode_all(&mut d, &frame[..8]), Err(ProtocolError::InvalidUtf8));
}

#[test]
fn protocol_violations_have_their_close_codes() {
    let cases: Vec<(Vec<u8>, ProtocolError, u16)> = vec![
        (vec![0x81, 0x00], ProtocolError::UnmaskedFrame, 1002),
        (
            client_frame(OpCode::Continuation, true, b"x"),
            ProtocolError::UnexpectedContinuation,
            1002,
        ),
        (
            [
                client_frame(OpCode::Text, false, b"a"),
                client_frame(OpCode::Text, true, b"b"),
            ]
            .concat(),
            ProtocolError::ExpectedContinuation,
            1002,
        ),
        (vec![0xC1, 0x80, 0, 0, 0, 0], ProtocolError::ReservedBits(4), 1002),
        (
            client_frame(OpCode::Close, true, &[3]),
            ProtocolError::InvalidCloseCode(None),
            1002,
        ),
        (
            client_frame(OpCode::Close, true, &[3, 0xE8, 0xFF]),
            ProtocolError::InvalidUtf8,
            1007,
        ),
        (
            client_frame(OpCode::Binary, true, &[0; 1025]),
            ProtocolError::FrameTooBig { size: 1025, max: 1024 },
            1009,
        ),
    ];
    for (bytes, expected, code) in cases {
        let err = decode_all(&mut server(), &bytes).unwrap_err();
        assert_eq!(err, expected);
        assert_eq!(err.close_code().0, code);
    }
}

#[test]
fn a_large_frame_whole_in_an_owned_chunk_is_unmasked_where_it_lies() {
    let mut d = Decoder::new(Role::Server, 1 << 20, 1 << 20);
    let payload: Vec<u8> = (0..IN_PLACE_MIN as u32).map(|i| (i % 251) as u8).collect();
    let mut wire = client_frame(OpCode::Binary, true, &payload);
    wire.extend(client_frame(OpCode::Text, true, "ok".as_bytes()));
    let chunk = Bytes::from(wire);
    let range = chunk.as_ptr_range();
    d.feed_bytes(chunk);
    match d.next_event() {
        Ok(Some(Event::Binary(data))) => {
            assert_eq!(&data[..], &payload[..]);
            assert!(range.contains(&data.as_ptr()), "the payload was copied");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(d.next_event(), Ok(Some(text("ok"))));
    assert_eq!(d.next_event(), Ok(None));
}

#[test]
fn a_shared_chunk_is_read_not_changed() {
    let mut d = Decoder::new(Role::Server, 1 << 20, 1 << 20);
    let payload = vec![9u8; IN_PLACE_MIN];
    let chunk = Bytes::from(client_frame(OpCode::Binary, true, &payload));
    let kept = chunk.clone(); // as actix-web keeps its read buffer
    let range = chunk.as_ptr_range();
    d.feed_bytes(chunk);
    match d.next_event() {
        Ok(Some(Event::Binary(data))) => {
            assert_eq!(&data[..], &payload[..]);
            assert!(!range.contains(&data.as_ptr()));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(kept, Bytes::from(client_frame(OpCode::Binary, true, &payload)));
}

#[test]
fn a_spent_chunk_is_let_go_on_request() {
    let mut d = Decoder::new(Role::Server, 1 << 20, 1 << 20);
    d.feed_owned(BytesMut::from(
        &client_frame(OpCode::Binary, true, &[5; IN_PLACE_MIN])[..],
    ));
    let Ok(Some(Event::Binary(data))) = d.next_event() else {
        panic!("no message");
    };
    assert_eq!(d.next_event(), Ok(None));
    // The payload shares the chunk with the decoder's empty rest of it...
    let data = data.try_into_mut().expect_err("the decoder let the chunk go by itself");
    d.release_spent_input();
    // ...until the decoder lets that go.
    assert!(data.try_into_mut().is_ok());
}

#[test]
fn large_text_taken_in_place_is_still_checked_as_utf8() {
    let large = || Decoder::new(Role::Server, 1 << 20, 1 << 20);
    let euro = "€".repeat(IN_PLACE_MIN / 3 + 1); // each `€` is three bytes
    let mut d = large();
    let mut wire = client_frame(OpCode::Text, false, &euro.as_bytes()[..IN_PLACE_MIN + 1]);
    wire.extend(client_frame(
        OpCode::Continuation,
        true,
        &euro.as_bytes()[IN_PLACE_MIN + 1..],
    ));
    assert_eq!(decode_all(&mut d, &wire).unwrap(), vec![text(&euro)]);

    let mut bad = euro.clone().into_bytes();
    bad[IN_PLACE_MIN / 2] = 0xFF;
    let mut d = large();
    assert_eq!(
        decode_all(&mut d, &client_frame(OpCode::Text, true, &bad)),
        Err(ProtocolError::InvalidUtf8)
    );
    let mut d = large();
    assert_eq!(
        decode_all(&mut d, &client_frame(OpCode::Text, false, &bad)),
        Err(ProtocolError::InvalidUtf8)
    );
}

#[test]
fn a_frame_over_the_limit_is_refused_when_it_arrives_whole() {
    let mut d = Decoder::new(Role::Server, IN_PLACE_MIN, IN_PLACE_MIN);
    assert!(matches!(
        decode_all(&mut d, &client_frame(OpCode::Binary, true, &[7; IN_PLACE_MIN + 1])),
        Err(ProtocolError::FrameTooBig { .. })
    ));
}

#[test]
fn a_message_over_the_limit_is_refused_at_the_fragment_that_crosses_it() {
    let mut d = server();
    let mut bytes = client_frame(OpCode::Binary, false, &[0; 1000]);
    for _ in 0..3 {
        bytes.extend(client_frame(OpCode::Continuation, false, &[0; 1000]));
    }
    assert_eq!(decode_all(&mut d, &bytes).unwrap(), vec![]);
    let crossing = client_frame(OpCode::Continuation, true, &[0; 97]);
    assert_eq!(
        decode_all(&mut d, &crossing),
        Err(ProtocolError::MessageTooBig { size: 4097, max: 4096 })
    );
}

#[test]
fn a_client_refuses_masked_frames() {
    let mut d = Decoder::new(Role::Client, 1024, 1024);
    let bytes = client_frame(OpCode::Text, true, b"x");
    assert_eq!(decode_all(&mut d, &bytes), Err(ProtocolError::MaskedFrame));
}

#[test]
fn close_frames_decode_with_and_without_a_code() {
    let mut bytes = client_frame(OpCode::Close, true, &[0x03, 0xE8, b'o', b'k']);
    bytes.extend(client_frame(OpCode::Close, true, b""));
    let events = decode_all(&mut server(), &bytes).unwrap();
    assert_eq!(
        events,
        vec![
            Event::Close(Some(CloseFrame::new(1000.into(), "ok"))),
            Event::Close(None)
        ]
    );
}
