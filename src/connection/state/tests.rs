//! `ConnState` driven with byte fixtures and synthetic instants: no socket, no runtime.

use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::*;
use crate::message::Text;
use crate::metrics::Metrics;
use crate::protocol::{encode_frame, Decoder, Role};

/// A server connection's state, opened at `t0`.
fn server(config: Config, t0: Instant) -> ConnState {
    let shared = Arc::new(Shared::new(
        Role::Server,
        None,
        config.max_outbound_queue,
        Arc::new(Metrics::default()),
        None,
    ));
    ConnState::new(shared, Arc::new(config), t0, false, crate::limits::HeldSlots::default())
}

/// A masked client frame.
fn client_frame(opcode: OpCode, fin: bool, payload: &[u8]) -> BytesMut {
    let mut out = BytesMut::new();
    encode_frame(&mut out, opcode, fin, payload, Some([1, 2, 3, 4]));
    out
}

/// Every event `bytes` makes, at `now`.
fn events(state: &mut ConnState, bytes: BytesMut, now: Instant) -> Vec<Event> {
    state.receive(bytes);
    std::iter::from_fn(|| state.next_event(now)).collect()
}

/// Writes everything in flight "to the socket" and decodes it as the client would.
fn written(state: &mut ConnState) -> Vec<Event> {
    let mut client = Decoder::new(Role::Client, 1 << 20, 1 << 20);
    loop {
        let chunks: Vec<Bytes> = state.in_flight(None).iter().map(|c| c.bytes.clone()).collect();
        if chunks.is_empty() {
            break;
        }
        for chunk in &chunks {
            client.feed(chunk);
        }
        state.wrote(chunks.iter().map(Bytes::len).sum());
    }
    std::iter::from_fn(|| client.next_event().ok().flatten()).collect()
}

fn close(code: u16, reason: &str) -> Event {
    Event::Close(Some(CloseFrame::new(CloseCode(code), reason)))
}

#[test]
fn messages_come_out_reassembled_and_pings_are_answered_between_fragments() {
    let t0 = Instant::now();
    let mut state = server(Config::default(), t0);
    let mut wire = client_frame(OpCode::Text, false, b"hel");
    wire.extend_from_slice(&client_frame(OpCode::Ping, true, b"?"));
    wire.extend_from_slice(&client_frame(OpCode::Continuation, true, b"lo"));
    let got = events(&mut state, wire, t0);
    assert_eq!(
        got,
        vec![Event::Ping(Bytes::from_static(b"?")), Event::Text(Text::from("hello"))]
    );
    assert_eq!(written(&mut state), vec![Event::Pong(Bytes::from_static(b"?"))]);
    assert_eq!(state.shared().metrics.snapshot().messages_in, 1);
}

#[test]
fn the_peers_close_is_echoed_reading_stops_and_the_connection_is_done_once_written() {
    let t0 = Instant::now();
    let mut state = server(Config::default(), t0);
    let mut wire = BytesMut::new();
    encode_frame(
        &mut wire,
        OpCode::Close,
        true,
        &CloseFrame::new(CloseCode(4001), "bye").to_payload(),
        Some([9; 4]),
    );
    wire.extend_from_slice(&client_frame(OpCode::Text, true, b"after the close"));
    assert_eq!(
        events(&mut state, wire, t0),
        vec![close(4001, "bye")],
        "nothing after the close"
    );
    assert!(!state.wants_read(t0));
    assert!(!state.is_done(None), "the echo is not written yet");
    assert_eq!(written(&mut state), vec![close(4001, "")]);
    assert!(state.is_done(None));
    assert_eq!(state.shared().close_record().map(|f| f.code), Some(CloseCode(4001)));
}

#[test]
fn a_protocol_error_fails_the_connection_with_its_code_after_what_was_queued() {
    let t0 = Instant::now();
    let mut state = server(Config::default(), t0);
    let shared = state.shared().clone();
    shared
        .outbound
        .push(&shared.encode(OpCode::Text, b"queued before"))
        .unwrap();
    let mut wire = BytesMut::from(&[0x81u8, 0x02, b'h', b'i'][..]); // not masked
    wire.extend_from_slice(&client_frame(OpCode::Text, true, b"never read"));
    assert_eq!(events(&mut state, wire, t0), vec![]);
    assert!(!state.wants_read(t0));
    let out = written(&mut state);
    assert_eq!(out.first(), Some(&Event::Text(Text::from("queued before"))));
    assert!(matches!(out.last(), Some(Event::Close(Some(f))) if f.code == CloseCode::PROTOCOL));
    assert_eq!(shared.metrics.snapshot().protocol_errors, 1);
    assert!(state.is_done(None));
}

#[test]
fn our_close_waits_for_the_peers_answer_and_the_close_timeout_ends_a_silent_peer() {
    let t0 = Instant::now();
    let config = Config {
        close_timeout: Duration::from_secs(5),
        ping_interval: None,
        ..Config::default()
    };
    let mut state = server(config, t0);
    assert!(state
        .shared()
        .start_close(CloseFrame::new(CloseCode::NORMAL, "done"), true));
    assert!(state.wants_read(t0), "still reading for the answer");
    assert_eq!(written(&mut state), vec![close(1000, "done")]);
    assert!(!state.is_done(None), "the answer has not come");
    assert_eq!(state.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    state.handle_timeout(t0 + Duration::from_secs(5));
    assert!(state.is_aborted());
    assert_eq!(state.shared().close_record().map(|f| f.code), Some(CloseCode::NORMAL));
}

#[test]
fn keepalive_pings_carry_their_number_and_an_unanswered_one_drops_the_peer() {
    let t0 = Instant::now();
    let config = Config {
        ping_interval: Some(Duration::from_secs(10)),
        pong_timeout: Duration::from_secs(5),
        ..Config::default()
    };
    let mut state = server(config, t0);
    let at = |s: u64| t0 + Duration::from_secs(s);
    state.handle_timeout(at(10));
    assert_eq!(
        written(&mut state),
        vec![Event::Ping(Bytes::copy_from_slice(&1u64.to_be_bytes()))]
    );
    // Its pong answers it; anything else does not.
    let pong = client_frame(OpCode::Pong, true, &1u64.to_be_bytes());
    assert_eq!(events(&mut state, pong, at(11)).len(), 1);
    state.handle_timeout(at(20));
    assert_eq!(
        written(&mut state),
        vec![Event::Ping(Bytes::copy_from_slice(&2u64.to_be_bytes()))]
    );
    let mut chatter = client_frame(OpCode::Text, true, b"I write, I do not read");
    chatter.extend_from_slice(&client_frame(OpCode::Pong, true, b"unsolicited"));
    assert_eq!(events(&mut state, chatter, at(21)).len(), 2);
    assert_eq!(state.poll_timeout(), Some(at(25)));
    state.handle_timeout(at(25));
    assert!(!state.wants_read(at(25)));
    assert_eq!(written(&mut state), vec![close(1001, "keepalive timeout")]);
    let record = state.shared().close_record().unwrap();
    assert_eq!(record.code, CloseCode::ABNORMAL);
    assert!(record.reason.contains("keepalive timeout"));
    assert_eq!(state.shared().metrics.snapshot().keepalive_timeouts, 1);
}

#[test]
fn a_send_resolves_only_when_its_last_byte_is_written() {
    use futures_util::task::noop_waker;
    use std::future::Future;
    use std::task::Context;
    let t0 = Instant::now();
    let mut state = server(Config::default(), t0);
    let ws = crate::socket::WebSocket {
        shared: state.shared().clone(),
    };
    let mut send = Box::pin(ws.send("twelve bytes"));
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(send.as_mut().poll(&mut cx).is_pending());
    let len = state.in_flight(None).front().map_or(0, |c| c.bytes.len());
    state.wrote(len - 1);
    assert!(send.as_mut().poll(&mut cx).is_pending(), "one byte short");
    state.wrote(1);
    assert!(matches!(send.as_mut().poll(&mut cx), std::task::Poll::Ready(Ok(()))));
}

#[test]
fn dropping_the_state_is_the_teardown_unwritten_sends_fail_and_the_close_is_counted() {
    use futures_util::FutureExt;
    let t0 = Instant::now();
    let state = server(Config::default(), t0);
    let ws = crate::socket::WebSocket {
        shared: state.shared().clone(),
    };
    let send = ws.send("never written");
    drop(state);
    assert!(matches!(
        send.now_or_never(),
        Some(Err(crate::SendError::NotWritten(_)))
    ));
    assert_eq!(ws.close_code(), Some(CloseCode::ABNORMAL));
    let snapshot = ws.shared.metrics.snapshot();
    assert_eq!((snapshot.connections_total, snapshot.connections_open), (1, 0));
}
