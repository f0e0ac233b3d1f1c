use futures_util::task::noop_waker;

use super::*;
use crate::protocol::CloseCode;

fn data(bytes: &'static [u8]) -> Bytes {
    Bytes::from_static(bytes)
}

fn written(queue: &Outbound, seq: u64) -> Poll<Written> {
    let waker = noop_waker();
    queue.poll_written(seq, &mut Context::from_waker(&waker))
}

/// What the writer takes now, and whether the queue is done.
fn take(queue: &Outbound) -> (Vec<Bytes>, bool) {
    let mut into = VecDeque::new();
    let done = queue.take(&mut into, 64, usize::MAX, None);
    (into.into_iter().map(|c| c.bytes).collect(), done)
}

fn frame(code: u16) -> CloseFrame {
    CloseFrame::new(CloseCode(code), "")
}

#[test]
fn a_frame_is_written_when_the_writer_says_so_not_when_it_takes_it() {
    let queue = Outbound::new(100);
    let a = queue.push(&data(b"aa")).unwrap();
    let b = queue.push(&data(b"bbb")).unwrap();
    assert_eq!(take(&queue), (vec![data(b"aabbb")], false));
    assert_eq!(written(&queue, a), Poll::Pending, "taken is not written");
    queue.wrote(a);
    assert_eq!(written(&queue, a), Poll::Ready(Written::Yes));
    assert_eq!(written(&queue, b), Poll::Pending);
    queue.wrote(b);
    assert_eq!(written(&queue, b), Poll::Ready(Written::Yes));
}

#[test]
fn nothing_follows_our_close_frame_and_the_peers_answer_ends_it() {
    let queue = Outbound::new(100);
    queue.push(&data(b"x")).unwrap();
    assert!(queue.close(frame(4000), data(b"CLOSE"), true));
    assert_eq!(queue.phase(), Phase::Closing);
    assert_eq!(queue.push(&data(b"y")), Err(PushError::Closed));
    assert_eq!(queue.push_pong(data(b"p")), Err(PushError::Closed));
    assert!(!queue.close(frame(1000), data(b"AGAIN"), false), "one close frame");
    // The peer's answer: the record is ours, nothing more is queued.
    let record = queue.end(frame(4000), Some(data(b"ECHO")), false);
    assert_eq!(record.code, CloseCode(4000));
    assert_eq!(take(&queue), (vec![data(b"x"), data(b"CLOSE")], true));
    assert!(queue.closed_by_user());
}

#[test]
fn the_peers_close_is_answered_and_a_failure_may_clear_what_waits() {
    let queue = Outbound::new(100);
    let lost = queue.push(&data(b"unread")).unwrap();
    let record = queue.end(frame(1008), Some(data(b"CLOSE")), true);
    assert_eq!(record.code, CloseCode::POLICY);
    assert_eq!(written(&queue, lost), Poll::Ready(Written::No));
    assert_eq!(take(&queue), (vec![data(b"CLOSE")], true));
    assert_eq!(queue.phase(), Phase::Closed);
    assert!(!queue.closed_by_user());
    // A later end keeps the first record.
    assert_eq!(queue.end(frame(1011), None, false).code, CloseCode::POLICY);
}

#[test]
fn an_abort_drops_everything_and_fails_the_sends() {
    let queue = Outbound::new(100);
    let a = queue.push(&data(b"x")).unwrap();
    queue.abort(frame(1006));
    assert_eq!(written(&queue, a), Poll::Ready(Written::No));
    assert_eq!(queue.queued_bytes(), 0);
    assert_eq!(queue.phase(), Phase::Aborted);
    assert_eq!(take(&queue), (vec![], true));
    assert_eq!(queue.close_state(), CloseState::Closed(frame(1006)));
}

#[test]
fn wakers_hear_of_frames_the_close_and_the_drain() {
    use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
    use std::task::Wake as WakeTrait;
    struct Count(AtomicUsize);
    impl WakeTrait for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, AtomicOrdering::SeqCst);
        }
    }
    let (writer, watcher) = (
        Arc::new(Count(AtomicUsize::new(0))),
        Arc::new(Count(AtomicUsize::new(0))),
    );
    let (writer_waker, watcher_waker) = (Waker::from(writer.clone()), Waker::from(watcher.clone()));
    let queue = Outbound::new(100);
    let mut into = VecDeque::new();
    assert!(!queue.take(&mut into, 64, usize::MAX, Some(&mut Context::from_waker(&writer_waker))));
    queue.push(&data(b"x")).unwrap();
    assert_eq!(writer.0.load(AtomicOrdering::SeqCst), 1, "a push wakes the writer");
    assert!(!queue.poll_drained(&mut Context::from_waker(&watcher_waker)));
    queue.end(frame(1000), Some(data(b"CLOSE")), false);
    assert_eq!(watcher.0.load(AtomicOrdering::SeqCst), 1, "the close wakes the watcher");
    assert!(!queue.poll_drained(&mut Context::from_waker(&watcher_waker)));
    assert!(queue.take(&mut into, 64, usize::MAX, None), "done once taken");
    assert_eq!(watcher.0.load(AtomicOrdering::SeqCst), 2, "the drain wakes the watcher");
}
