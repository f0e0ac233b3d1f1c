//! The outbound queue: encoded frames waiting for the socket, bounded and measured in bytes.
//!
//! Any thread puts frames in ([`Outbound::push`]); the transport takes them out as a stream
//! ([`OutboundStream`]). Each frame gets a sequence number, so a send's future can tell when its
//! frame has been handed to the socket.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures_util::Stream;
use parking_lot::Mutex;

/// Why a frame could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The queue was finished or aborted: the connection is closing.
    Closed,
    /// Queuing the frame would pass the byte limit.
    Full,
}

/// What a frame is, for the queue's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameKind {
    /// Text, binary or continuation: counts against the limit.
    Data,
    /// Ping or pong: always queued while the connection is open.
    Control,
    /// The close frame: the last frame queued.
    Close,
}

/// How a frame's sequence number ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// Handed to the socket.
    Yes,
    /// Dropped because the connection ended first.
    No,
}

/// The shared queue of one connection.
#[derive(Debug)]
pub(crate) struct Outbound {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    frames: VecDeque<Bytes>,
    queued_bytes: usize,
    limit: usize,
    /// Sequence number of the last frame pushed.
    pushed: u64,
    /// Sequence number of the last frame handed to the socket.
    written: u64,
    /// A close frame is queued: no more pushes.
    closing: bool,
    /// The stream ends once the queue is empty.
    finished: bool,
    /// The queue was dropped: the stream ends now and unwritten frames are lost.
    aborted: bool,
    /// The transport, waiting for a frame.
    reader: Option<Waker>,
    /// Send futures waiting for their frame to be written.
    waiters: Vec<(u64, Waker)>,
}

impl Outbound {
    /// An empty queue that holds at most `limit` bytes (frames pushed with `force` excepted).
    pub(crate) fn new(limit: usize) -> Arc<Outbound> {
        Arc::new(Outbound {
            state: Mutex::new(State {
                limit,
                ..State::default()
            }),
        })
    }

    /// Queues `frame` and answers its sequence number.
    ///
    /// Data frames count against the byte limit; control and close frames do not (a pong or a
    /// close must reach even a slow peer). Once a close frame is queued nothing else is.
    pub(crate) fn push(&self, frame: Bytes, kind: FrameKind) -> Result<u64, PushError> {
        let mut state = self.state.lock();
        if state.closing || state.finished || state.aborted {
            return Err(PushError::Closed);
        }
        if kind == FrameKind::Data && state.queued_bytes + frame.len() > state.limit {
            return Err(PushError::Full);
        }
        state.closing = kind == FrameKind::Close;
        state.queued_bytes += frame.len();
        state.frames.push_back(frame);
        state.pushed += 1;
        let seq = state.pushed;
        let reader = state.reader.take();
        drop(state);
        if let Some(waker) = reader {
            waker.wake();
        }
        Ok(seq)
    }

    /// Whether a close frame has been queued.
    #[cfg(test)]
    pub(crate) fn is_closing(&self) -> bool {
        self.state.lock().closing
    }

    /// The stream ends once what is queued has been written.
    pub(crate) fn finish(&self) {
        let reader = {
            let mut state = self.state.lock();
            state.finished = true;
            state.reader.take()
        };
        if let Some(waker) = reader {
            waker.wake();
        }
    }

    /// Drops every queued frame and ends the stream now. Their send futures fail.
    pub(crate) fn abort(&self) {
        let (reader, waiters) = {
            let mut state = self.state.lock();
            state.aborted = true;
            state.frames.clear();
            state.queued_bytes = 0;
            (state.reader.take(), std::mem::take(&mut state.waiters))
        };
        reader
            .into_iter()
            .chain(waiters.into_iter().map(|(_, w)| w))
            .for_each(Waker::wake);
    }

    /// Drops every queued frame but keeps the queue open (for a close frame to follow).
    pub(crate) fn clear(&self) {
        let waiters = {
            let mut state = self.state.lock();
            state.frames.clear();
            state.queued_bytes = 0;
            std::mem::take(&mut state.waiters)
        };
        waiters.into_iter().for_each(|(_, w)| w.wake());
    }

    /// The bytes waiting to be written.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.state.lock().queued_bytes
    }

    /// Whether the frame `seq` has been written, was lost, or is still waiting (then `cx` is woken
    /// when that changes).
    pub(crate) fn poll_written(&self, seq: u64, cx: &mut Context<'_>) -> Poll<Written> {
        let mut state = self.state.lock();
        if state.written >= seq {
            return Poll::Ready(Written::Yes);
        }
        if state.aborted || !state.is_queued(seq) {
            return Poll::Ready(Written::No);
        }
        match state.waiters.iter_mut().find(|(s, _)| *s == seq) {
            Some((_, waker)) => waker.clone_from(cx.waker()),
            None => state.waiters.push((seq, cx.waker().clone())),
        }
        Poll::Pending
    }

    fn poll_next_frame(&self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let mut state = self.state.lock();
        if state.aborted {
            return Poll::Ready(None);
        }
        let Some(frame) = state.frames.pop_front() else {
            if state.finished {
                return Poll::Ready(None);
            }
            state.reader = Some(cx.waker().clone());
            return Poll::Pending;
        };
        state.queued_bytes -= frame.len();
        state.written += 1;
        let written = state.written;
        let woken = if state.waiters.is_empty() {
            Vec::new()
        } else {
            state.take_waiters_upto(written)
        };
        drop(state);
        woken.into_iter().for_each(Waker::wake);
        Poll::Ready(Some(frame))
    }
}

impl State {
    /// Whether frame `seq` is still in the queue (not written, not cleared).
    fn is_queued(&self, seq: u64) -> bool {
        let first_queued = self.pushed + 1 - self.frames.len() as u64;
        seq >= first_queued && seq <= self.pushed
    }

    fn take_waiters_upto(&mut self, written: u64) -> Vec<Waker> {
        let mut woken = Vec::new();
        self.waiters.retain(|(seq, waker)| {
            let done = *seq <= written;
            if done {
                woken.push(waker.clone());
            }
            !done
        });
        woken
    }
}

/// The transport's side of the queue: a stream of frames that ends when the connection is done.
///
/// Dropping it (the socket went away) aborts the queue.
#[derive(Debug)]
pub(crate) struct OutboundStream(pub(crate) Arc<Outbound>);

impl Stream for OutboundStream {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_next_frame(cx).map(|frame| frame.map(Ok))
    }
}

impl Drop for OutboundStream {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::task::noop_waker;

    fn next(stream: &mut OutboundStream) -> Poll<Option<Bytes>> {
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        Pin::new(stream)
            .poll_next(&mut cx)
            .map(|f| f.map(|r| r.unwrap_or_default()))
    }

    fn written(queue: &Outbound, seq: u64) -> Poll<Written> {
        let waker = noop_waker();
        queue.poll_written(seq, &mut Context::from_waker(&waker))
    }

    #[test]
    fn frames_come_out_in_order_and_are_marked_written() {
        let queue = Outbound::new(100);
        let mut stream = OutboundStream(queue.clone());
        let a = queue.push(Bytes::from_static(b"aa"), FrameKind::Data).unwrap();
        let b = queue.push(Bytes::from_static(b"bbb"), FrameKind::Data).unwrap();
        assert_eq!(queue.queued_bytes(), 5);
        assert_eq!(written(&queue, a), Poll::Pending);
        assert_eq!(next(&mut stream), Poll::Ready(Some(Bytes::from_static(b"aa"))));
        assert_eq!(written(&queue, a), Poll::Ready(Written::Yes));
        assert_eq!(written(&queue, b), Poll::Pending);
        assert_eq!(queue.queued_bytes(), 3);
        assert_eq!(next(&mut stream), Poll::Ready(Some(Bytes::from_static(b"bbb"))));
        assert_eq!(next(&mut stream), Poll::Pending);
    }

    #[test]
    fn the_byte_limit_refuses_but_forced_frames_pass() {
        let queue = Outbound::new(4);
        queue.push(Bytes::from_static(b"abc"), FrameKind::Data).unwrap();
        assert_eq!(
            queue.push(Bytes::from_static(b"de"), FrameKind::Data),
            Err(PushError::Full)
        );
        assert!(queue.push(Bytes::from_static(b"pong"), FrameKind::Control).is_ok());
        assert_eq!(queue.queued_bytes(), 7);
    }

    #[test]
    fn a_close_frame_is_the_last_and_finish_ends_after_it() {
        let queue = Outbound::new(100);
        let mut stream = OutboundStream(queue.clone());
        queue.push(Bytes::from_static(b"x"), FrameKind::Data).unwrap();
        queue.push(Bytes::from_static(b"close"), FrameKind::Close).unwrap();
        assert!(queue.is_closing());
        assert_eq!(
            queue.push(Bytes::from_static(b"y"), FrameKind::Data),
            Err(PushError::Closed)
        );
        assert_eq!(
            queue.push(Bytes::from_static(b"p"), FrameKind::Control),
            Err(PushError::Closed)
        );
        queue.finish();
        assert!(matches!(next(&mut stream), Poll::Ready(Some(_))));
        assert!(matches!(next(&mut stream), Poll::Ready(Some(_))));
        assert_eq!(next(&mut stream), Poll::Ready(None));
    }

    #[test]
    fn abort_and_clear_lose_frames_and_fail_their_sends() {
        let queue = Outbound::new(100);
        let a = queue.push(Bytes::from_static(b"x"), FrameKind::Data).unwrap();
        queue.clear();
        assert_eq!(written(&queue, a), Poll::Ready(Written::No));
        let b = queue.push(Bytes::from_static(b"y"), FrameKind::Data).unwrap();
        assert_eq!(written(&queue, b), Poll::Pending);
        drop(OutboundStream(queue.clone()));
        assert_eq!(written(&queue, b), Poll::Ready(Written::No));
        assert_eq!(queue.queued_bytes(), 0);
    }
}
