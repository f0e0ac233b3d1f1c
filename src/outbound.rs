//! The outbound queue: encoded frames waiting for the socket, bounded and measured in bytes.
//!
//! Any thread puts frames in ([`Outbound::push`] and its siblings); the transport takes them out
//! as a stream of chunks ([`OutboundStream`]). Each frame gets a sequence number, so a send's
//! future can tell when its frame has been handed to the socket.
//!
//! Small frames are encoded back to back into one buffer and handed out together, so a burst of
//! small messages costs one allocation and one chunk for the transport instead of one each (the
//! 32-byte echo profile had the per-frame allocation and chunk handling among its top costs).
//! A large payload is queued by reference, after a header chunk of its own
//! ([`Outbound::push_parts`]).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use parking_lot::Mutex;

/// Frames up to this size are copied into the open buffer; larger ones are queued as they are,
/// since copying them would cost more than a chunk of their own. `WebSocket::send` uses the same
/// line to queue a server's large payload by reference.
pub(crate) const COALESCE_MAX: usize = 4 * 1024;

/// The least the open buffer grows by: room for a burst of small frames in one allocation.
const OPEN_MIN: usize = 1024;

/// Pongs that may wait at once. Autobahn (cases 2.10 and 2.11) sends ten pings back to back and
/// expects each answered, which RFC 6455 does not require but peers check; more than this many
/// unanswered pings means a flood, and then only the newest is answered.
pub(crate) const PONGS_MAX: usize = 16;

/// An open buffer holding more spare room than this after a hand-out is released, so an idle
/// connection does not keep the memory of its largest burst.
const OPEN_RETAIN_MAX: usize = 8 * 1024;

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
    /// A ping: counts against the limit too, so that a peer cannot make us queue control frames
    /// without bound. (Pongs have a small queue of their own, [`Outbound::push_pong`].)
    Control,
    /// The close frame: the last frame queued, let through whatever the queue holds.
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

/// Bytes handed to the transport in one piece.
#[derive(Debug)]
struct Chunk {
    bytes: Bytes,
    /// The sequence number of the last frame that ends with this chunk; `None` for the header
    /// of a frame whose payload follows.
    last: Option<u64>,
}

#[derive(Debug, Default)]
struct State {
    /// Chunks ready to hand out, oldest first; `open` comes after them.
    chunks: VecDeque<Chunk>,
    /// Small frames queued after the last chunk, back to back: the next chunk.
    open: BytesMut,
    queued_bytes: usize,
    limit: usize,
    /// The last chunk handed out was a header whose payload is the front chunk: that chunk goes
    /// next whatever happens to the queue (except an abort), or the stream would break mid-frame.
    mid_frame: bool,
    /// Sequence number of the last frame pushed.
    pushed: u64,
    /// Sequence number of the last frame handed to the socket.
    written: u64,
    /// The first and last sequence numbers of the frames dropped by the last
    /// [`Outbound::clear`]; (0, 0) names none, as numbering starts at 1.
    lost: (u64, u64),
    /// A close frame is queued: no more pushes.
    closing: bool,
    /// The stream ends once the queue is empty.
    finished: bool,
    /// The queue was dropped: the stream ends now and unwritten frames are lost.
    aborted: bool,
    /// Bytes a write-through took but the socket did not: they go out before anything else,
    /// and a clear leaves them (their frames were counted written when taken).
    carry: VecDeque<Bytes>,
    /// The transport holds chunks it took and has not yet reported written
    /// ([`Outbound::release`]): a write-through would pass them, so it waits.
    held: bool,
    /// Pongs waiting to be written, at most [`PONGS_MAX`]; past that a newer ping's pong replaces
    /// the newest waiting one (RFC 6455 §5.5.3 allows answering only the most recent ping), so a
    /// ping flood holds a few pongs, not one per ping. They go out ahead of queued data, between
    /// frames.
    pongs: VecDeque<Bytes>,
    /// Chunks handed to the transport so far: the progress a transport that cannot see the
    /// socket (actix-web's) makes, for the write timeout.
    taken: u64,
    /// The transport, waiting for a frame.
    reader: Option<Waker>,
    /// Send futures waiting for their frame to be written.
    waiters: Vec<(u64, Waker)>,
}

impl Outbound {
    /// An empty queue that holds at most `limit` bytes of data frames.
    pub(crate) fn new(limit: usize) -> Arc<Outbound> {
        Arc::new(Outbound {
            state: Mutex::new(State {
                limit,
                ..State::default()
            }),
        })
    }

    /// Queues the encoded `frame` and answers its sequence number.
    ///
    /// Data and control frames count against the byte limit; a close frame does not (it must
    /// reach even a slow peer). Once a close frame is queued nothing else is.
    pub(crate) fn push(&self, frame: Bytes, kind: FrameKind) -> Result<u64, PushError> {
        let len = frame.len();
        if len <= COALESCE_MAX {
            return self.push_encoded(len, kind, |open| open.extend_from_slice(&frame));
        }
        self.push_chunks(len, kind, [frame, Bytes::new()])
    }

    /// Queues a frame of `len` bytes that `encode` appends to the buffer it is given, as
    /// [`Outbound::push`] does; `encode` runs under the queue's lock, so it must be quick.
    pub(crate) fn push_encoded(
        &self,
        len: usize,
        kind: FrameKind,
        encode: impl FnOnce(&mut BytesMut),
    ) -> Result<u64, PushError> {
        let mut state = self.state.lock();
        state.admit(len, kind)?;
        if state.open.capacity() - state.open.len() < len {
            state.open.reserve(len.max(OPEN_MIN));
        }
        let before = state.open.len();
        encode(&mut state.open);
        let added = state.open.len() - before;
        let (seq, reader) = state.queued(added, kind);
        drop(state);
        wake(reader);
        Ok(seq)
    }

    /// Queues a frame made of `head` followed by `body`, as [`Outbound::push`] does one buffer;
    /// `body` is handed out as it is, not copied.
    pub(crate) fn push_parts(&self, head: Bytes, body: Bytes, kind: FrameKind) -> Result<u64, PushError> {
        self.push_chunks(head.len() + body.len(), kind, [head, body])
    }

    /// Queues a frame as a chunk, or two when the second is not empty.
    fn push_chunks(&self, len: usize, kind: FrameKind, [first, second]: [Bytes; 2]) -> Result<u64, PushError> {
        let mut state = self.state.lock();
        state.admit(len, kind)?;
        state.close_open();
        let (seq, reader) = state.queued(len, kind);
        if !second.is_empty() {
            state.chunks.push_back(Chunk {
                bytes: first,
                last: None,
            });
            state.chunks.push_back(Chunk {
                bytes: second,
                last: Some(seq),
            });
        } else {
            state.chunks.push_back(Chunk {
                bytes: first,
                last: Some(seq),
            });
        }
        drop(state);
        wake(reader);
        Ok(seq)
    }

    /// Queues `pong`; when [`PONGS_MAX`] wait already, it replaces the newest of them. It counts
    /// against the limit.
    ///
    /// # Errors
    ///
    /// [`PushError::Closed`] once the connection is closing, [`PushError::Full`] when the queue is
    /// at its limit (the peer is not reading).
    pub(crate) fn push_pong(&self, pong: Bytes) -> Result<(), PushError> {
        let mut state = self.state.lock();
        if state.closing || state.finished || state.aborted {
            return Err(PushError::Closed);
        }
        let replaced = if state.pongs.len() >= PONGS_MAX {
            state.pongs.back().map_or(0, Bytes::len)
        } else {
            0
        };
        let queued = state.queued_bytes - replaced + pong.len();
        if queued > state.limit {
            return Err(PushError::Full);
        }
        state.queued_bytes = queued;
        if state.pongs.len() >= PONGS_MAX {
            state.pongs.pop_back();
        }
        state.pongs.push_back(pong);
        let reader = state.reader.take();
        drop(state);
        wake(reader);
        Ok(())
    }

    /// How many chunks the transport has taken, and whether anything is waiting to be taken: a
    /// transport that takes nothing while something waits is stuck. (For transports whose writer
    /// sees the socket, `writer::write_frames` times each write itself.)
    pub(crate) fn progress(&self) -> (u64, bool) {
        let state = self.state.lock();
        (state.taken, state.queued_bytes > 0 || !state.carry.is_empty())
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
        wake(reader);
    }

    /// Drops every queued frame and ends the stream now. Their send futures fail.
    pub(crate) fn abort(&self) {
        let (reader, waiters) = {
            let mut state = self.state.lock();
            state.aborted = true;
            state.chunks.clear();
            state.carry.clear();
            state.pongs.clear();
            state.open = BytesMut::new();
            state.queued_bytes = 0;
            (state.reader.take(), std::mem::take(&mut state.waiters))
        };
        reader
            .into_iter()
            .chain(waiters.into_iter().map(|(_, w)| w))
            .for_each(Waker::wake);
    }

    /// Ready once the queue is aborted; otherwise wakes `cx` on its next change. Lets the
    /// transport give up a write the peer never reads.
    pub(crate) fn poll_aborted(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.state.lock();
        if state.aborted {
            return Poll::Ready(());
        }
        state.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Drops every queued frame but keeps the queue open (for a close frame to follow). The rest
    /// of a frame already partly handed out stays.
    pub(crate) fn clear(&self) {
        let waiters = {
            let mut state = self.state.lock();
            let rest = if state.mid_frame {
                state.chunks.pop_front()
            } else {
                None
            };
            state.chunks.clear();
            state.open.clear();
            state.pongs.clear();
            state.queued_bytes = rest.as_ref().map_or(0, |c| c.bytes.len());
            let first_lost = state.written + 1 + u64::from(rest.is_some());
            state.lost = (first_lost, state.pushed);
            state.chunks.extend(rest);
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
        if state.was_lost(seq) {
            return Poll::Ready(Written::No);
        }
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

    /// The next chunk for the transport: what a write-through left, else the oldest queued
    /// chunk, or every small frame queued since, as one. The transport holds it until
    /// [`Outbound::release`].
    fn poll_next_chunk(&self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let mut state = self.state.lock();
        if state.aborted {
            return Poll::Ready(None);
        }
        if let Some(bytes) = state.carry.pop_front() {
            state.held = true;
            return Poll::Ready(Some(bytes));
        }
        let mut woken = Vec::new();
        let Some(bytes) = state.take_chunk(&mut woken) else {
            if state.finished {
                return Poll::Ready(None);
            }
            state.reader = Some(cx.waker().clone());
            return Poll::Pending;
        };
        state.held = true;
        drop(state);
        woken.into_iter().for_each(Waker::wake);
        Poll::Ready(Some(bytes))
    }

    /// The transport has written every chunk it took: a write-through may go again.
    pub(crate) fn release(&self) {
        self.state.lock().held = false;
    }

    /// Takes up to `max` queued chunks into `into` for a write-through, unless the transport
    /// holds chunks of its own or the queue is aborted. Answers whether it took any; if so, the
    /// caller must hand back what it did not write ([`Outbound::put_back`]).
    ///
    /// Only for a transport whose writer reports each batch written (`writer::write_frames`
    /// calls [`Outbound::release`]); any other holds chunks forever, as far as this knows. The
    /// caller must put back before it yields, on the writer's thread: the writer does not wait
    /// for a write-through in progress, it never runs during one (the owned transport's reader
    /// and writer run on the connection's one actix worker thread).
    pub(crate) fn take_now(&self, max: usize, into: &mut Vec<Bytes>) -> bool {
        let mut woken = Vec::new();
        let mut state = self.state.lock();
        if state.held || state.aborted || !state.carry.is_empty() {
            return false;
        }
        while into.len() < max {
            match state.take_chunk(&mut woken) {
                Some(bytes) => into.push(bytes),
                None => break,
            }
        }
        state.held = !into.is_empty();
        let took = state.held;
        drop(state);
        woken.into_iter().for_each(Waker::wake);
        took
    }

    /// Ends a write-through: `rest`, what the socket did not take, goes out first, by the
    /// transport.
    pub(crate) fn put_back(&self, rest: impl Iterator<Item = Bytes>) {
        let reader = {
            let mut state = self.state.lock();
            state.held = false;
            if !state.aborted {
                state.carry.extend(rest);
            }
            // Woken even with nothing left: a finished queue may now be empty, and its stream
            // should end.
            state.reader.take()
        };
        wake(reader);
    }
}

impl State {
    /// Takes the next chunk out of the queue and counts its frames written; their send futures'
    /// wakers go into `woken`, to wake once the lock is released.
    fn take_chunk(&mut self, woken: &mut Vec<Waker>) -> Option<Bytes> {
        if !self.mid_frame {
            if let Some(pong) = self.pongs.pop_front() {
                self.queued_bytes -= pong.len();
                self.taken += 1;
                return Some(pong);
            }
        }
        let chunk = match self.chunks.pop_front() {
            Some(chunk) => chunk,
            None if !self.open.is_empty() => self.take_open(),
            None => return None,
        };
        self.queued_bytes -= chunk.bytes.len();
        self.taken += 1;
        self.mid_frame = chunk.last.is_none();
        if let Some(last) = chunk.last {
            self.written = last;
            if !self.waiters.is_empty() {
                woken.append(&mut self.take_waiters_upto(last));
            }
        }
        Some(chunk.bytes)
    }

    /// Refuses a frame of `len` bytes the queue may not take.
    fn admit(&self, len: usize, kind: FrameKind) -> Result<(), PushError> {
        if self.closing || self.finished || self.aborted {
            return Err(PushError::Closed);
        }
        if kind != FrameKind::Close && self.queued_bytes + len > self.limit {
            return Err(PushError::Full);
        }
        Ok(())
    }

    /// Counts a frame of `len` bytes just queued; answers its sequence number and the transport's
    /// waker, to wake once the lock is released.
    fn queued(&mut self, len: usize, kind: FrameKind) -> (u64, Option<Waker>) {
        self.closing = kind == FrameKind::Close;
        self.queued_bytes += len;
        self.pushed += 1;
        (self.pushed, self.reader.take())
    }

    /// Ends the open buffer's run of small frames: it becomes a chunk, ahead of what follows.
    fn close_open(&mut self) {
        if !self.open.is_empty() {
            let chunk = self.take_open();
            self.chunks.push_back(chunk);
        }
    }

    /// The open buffer's frames as one chunk; the buffer keeps its spare room unless that is
    /// more than an idle connection should hold.
    ///
    /// The open buffer ends with the last frame pushed: a frame queued as a chunk of its own
    /// first closes the open buffer.
    fn take_open(&mut self) -> Chunk {
        let bytes = self.open.split().freeze();
        if self.open.capacity() > OPEN_RETAIN_MAX {
            self.open = BytesMut::new();
        }
        Chunk {
            bytes,
            last: Some(self.pushed),
        }
    }

    /// Whether frame `seq` is still in the queue (not written, not cleared).
    fn is_queued(&self, seq: u64) -> bool {
        seq > self.written && seq <= self.pushed && !self.was_lost(seq)
    }

    /// Whether frame `seq` was dropped by a clear.
    fn was_lost(&self, seq: u64) -> bool {
        (self.lost.0..=self.lost.1).contains(&seq)
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

fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
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
        self.0.poll_next_chunk(cx).map(|frame| frame.map(Ok))
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

    fn data(bytes: &'static [u8]) -> Bytes {
        Bytes::from_static(bytes)
    }

    #[test]
    fn small_frames_come_out_together_in_order_and_are_marked_written() {
        let queue = Outbound::new(100);
        let mut stream = OutboundStream(queue.clone());
        let a = queue.push(data(b"aa"), FrameKind::Data).unwrap();
        let b = queue
            .push_encoded(3, FrameKind::Data, |buf| buf.extend_from_slice(b"bbb"))
            .unwrap();
        assert_eq!(queue.queued_bytes(), 5);
        assert_eq!(written(&queue, a), Poll::Pending);
        assert_eq!(next(&mut stream), Poll::Ready(Some(data(b"aabbb"))));
        assert_eq!(
            (written(&queue, a), written(&queue, b)),
            (Poll::Ready(Written::Yes), Poll::Ready(Written::Yes))
        );
        assert_eq!(queue.queued_bytes(), 0);
        assert_eq!(next(&mut stream), Poll::Pending);
    }

    #[test]
    fn a_write_through_waits_while_the_transport_holds_chunks() {
        let queue = Outbound::new(1 << 20);
        let mut stream = OutboundStream(queue.clone());
        let mut taken = Vec::new();
        queue.push(data(b"a"), FrameKind::Data).unwrap();
        assert_eq!(next(&mut stream), Poll::Ready(Some(data(b"a"))));
        queue.push(data(b"b"), FrameKind::Data).unwrap();
        assert!(!queue.take_now(8, &mut taken), "the transport has not written `a` yet");
        queue.release();
        assert!(queue.take_now(8, &mut taken));
        assert_eq!(taken, vec![data(b"b")]);
        assert!(!queue.take_now(8, &mut Vec::new()), "nothing queued, and `b` is out");
    }

    #[test]
    fn what_a_write_through_hands_back_goes_first_and_outlives_a_clear() {
        let queue = Outbound::new(1 << 20);
        let mut stream = OutboundStream(queue.clone());
        let big = Bytes::from(vec![7u8; COALESCE_MAX + 1]);
        let first = queue.push(data(b"a"), FrameKind::Data).unwrap();
        queue.push(big.clone(), FrameKind::Data).unwrap();
        let mut taken = Vec::new();
        assert!(queue.take_now(8, &mut taken));
        assert_eq!(written(&queue, first), Poll::Ready(Written::Yes));
        let later = queue.push(data(b"c"), FrameKind::Data).unwrap();
        // The socket took `a` and part of the big frame: the rest must still go, and first.
        queue.put_back(taken.drain(..).skip(1).map(|chunk| chunk.slice(10..)));
        assert!(!queue.take_now(8, &mut taken), "the writer sends what was handed back");
        queue.clear();
        assert_eq!(next(&mut stream), Poll::Ready(Some(big.slice(10..))));
        assert_eq!(next(&mut stream), Poll::Pending);
        assert_eq!(written(&queue, later), Poll::Ready(Written::No));
        queue.put_back(std::iter::once(data(b"x")));
        queue.abort();
        assert_eq!(next(&mut stream), Poll::Ready(None));
    }

    #[test]
    fn large_frames_keep_their_place_between_small_ones() {
        let queue = Outbound::new(1 << 20);
        let mut stream = OutboundStream(queue.clone());
        let big = Bytes::from(vec![7u8; COALESCE_MAX + 1]);
        queue.push(data(b"a"), FrameKind::Data).unwrap();
        let whole = queue.push(big.clone(), FrameKind::Data).unwrap();
        queue.push(data(b"b"), FrameKind::Data).unwrap();
        let parts = queue.push_parts(data(b"h"), data(b"body"), FrameKind::Data).unwrap();
        queue.push(data(b"c"), FrameKind::Data).unwrap();
        let chunks: Vec<Bytes> = std::iter::from_fn(|| match next(&mut stream) {
            Poll::Ready(Some(chunk)) => Some(chunk),
            _ => None,
        })
        .collect();
        assert_eq!(
            chunks,
            vec![data(b"a"), big, data(b"b"), data(b"h"), data(b"body"), data(b"c")]
        );
        assert_eq!(written(&queue, whole), Poll::Ready(Written::Yes));
        assert_eq!(written(&queue, parts), Poll::Ready(Written::Yes));
    }

    #[test]
    fn a_frame_in_two_parts_comes_out_whole_even_across_a_clear() {
        let queue = Outbound::new(100);
        let mut stream = OutboundStream(queue.clone());
        let a = queue.push_parts(data(b"h"), data(b"body"), FrameKind::Data).unwrap();
        let b = queue.push(data(b"next"), FrameKind::Data).unwrap();
        assert_eq!(queue.queued_bytes(), 9);
        assert_eq!(next(&mut stream), Poll::Ready(Some(data(b"h"))));
        // The head is out: the frame is not written yet, and a clear must not cut it.
        assert_eq!(written(&queue, a), Poll::Pending);
        queue.clear();
        assert_eq!(written(&queue, b), Poll::Ready(Written::No));
        assert_eq!(queue.queued_bytes(), 4);
        assert_eq!(next(&mut stream), Poll::Ready(Some(data(b"body"))));
        assert_eq!(written(&queue, a), Poll::Ready(Written::Yes));
        let c = queue.push(data(b"after"), FrameKind::Data).unwrap();
        assert_eq!(next(&mut stream), Poll::Ready(Some(data(b"after"))));
        assert_eq!(written(&queue, c), Poll::Ready(Written::Yes));
        // A frame lost in the clear stays lost once later frames are written.
        assert_eq!(written(&queue, b), Poll::Ready(Written::No));
        assert_eq!(next(&mut stream), Poll::Pending);
    }

    #[test]
    fn the_byte_limit_counts_control_frames_and_lets_only_the_close_pass() {
        let queue = Outbound::new(5);
        queue.push(data(b"abc"), FrameKind::Data).unwrap();
        assert_eq!(queue.push(data(b"def"), FrameKind::Data), Err(PushError::Full));
        assert_eq!(
            queue.push_encoded(3, FrameKind::Data, |buf| buf.extend_from_slice(b"def")),
            Err(PushError::Full)
        );
        assert_eq!(queue.push(data(b"ping"), FrameKind::Control), Err(PushError::Full));
        assert_eq!(queue.push_pong(data(b"pong")), Err(PushError::Full));
        queue.push_pong(data(b"po")).unwrap();
        assert_eq!(queue.queued_bytes(), 5);
        assert!(queue.push(data(b"close"), FrameKind::Close).is_ok());
        assert_eq!(queue.queued_bytes(), 10);
    }

    #[test]
    fn past_its_few_pongs_a_newer_pong_replaces_the_newest_and_they_go_between_frames() {
        let queue = Outbound::new(1 << 20);
        let mut stream = OutboundStream(queue.clone());
        let pong = |i: u32| Bytes::from(i.to_be_bytes().to_vec());
        for i in 0..10_000u32 {
            queue.push_pong(pong(i)).unwrap();
        }
        assert_eq!(
            queue.queued_bytes(),
            4 * PONGS_MAX,
            "a few pongs are held, not ten thousand"
        );
        // The first ones in order, then the newest in the last place.
        for i in 0..PONGS_MAX as u32 - 1 {
            assert_eq!(next(&mut stream), Poll::Ready(Some(pong(i))));
        }
        assert_eq!(next(&mut stream), Poll::Ready(Some(pong(9_999))));
        // A pong never cuts a frame queued as header and payload in two.
        queue.push_parts(data(b"h"), data(b"body"), FrameKind::Data).unwrap();
        assert_eq!(next(&mut stream), Poll::Ready(Some(data(b"h"))));
        queue.push_pong(data(b"pong")).unwrap();
        assert_eq!(next(&mut stream), Poll::Ready(Some(data(b"body"))));
        assert_eq!(next(&mut stream), Poll::Ready(Some(data(b"pong"))));
        let (taken, waiting) = queue.progress();
        assert_eq!((taken, waiting), (PONGS_MAX as u64 + 3, false));
        queue.push(data(b"close"), FrameKind::Close).unwrap();
        assert_eq!(queue.push_pong(data(b"late")), Err(PushError::Closed));
    }

    #[test]
    fn a_close_frame_is_the_last_and_finish_ends_after_it() {
        let queue = Outbound::new(100);
        let mut stream = OutboundStream(queue.clone());
        queue.push(data(b"x"), FrameKind::Data).unwrap();
        queue.push(data(b"close"), FrameKind::Close).unwrap();
        assert!(queue.is_closing());
        assert_eq!(queue.push(data(b"y"), FrameKind::Data), Err(PushError::Closed));
        assert_eq!(queue.push(data(b"p"), FrameKind::Control), Err(PushError::Closed));
        queue.finish();
        assert_eq!(next(&mut stream), Poll::Ready(Some(data(b"xclose"))));
        assert_eq!(next(&mut stream), Poll::Ready(None));
    }

    #[test]
    fn abort_and_clear_lose_frames_and_fail_their_sends() {
        let queue = Outbound::new(100);
        let a = queue.push(data(b"x"), FrameKind::Data).unwrap();
        queue.clear();
        assert_eq!(written(&queue, a), Poll::Ready(Written::No));
        let b = queue.push(data(b"y"), FrameKind::Data).unwrap();
        assert_eq!(written(&queue, b), Poll::Pending);
        drop(OutboundStream(queue.clone()));
        assert_eq!(written(&queue, b), Poll::Ready(Written::No));
        assert_eq!(queue.queued_bytes(), 0);
    }

    #[test]
    fn an_idle_queue_lets_go_of_a_big_burst_buffer() {
        let queue = Outbound::new(1 << 20);
        let mut stream = OutboundStream(queue.clone());
        for _ in 0..8 {
            queue
                .push(Bytes::from(vec![1u8; COALESCE_MAX]), FrameKind::Data)
                .unwrap();
        }
        assert!(matches!(next(&mut stream), Poll::Ready(Some(chunk)) if chunk.len() == 8 * COALESCE_MAX));
        assert!(queue.state.lock().open.capacity() <= OPEN_RETAIN_MAX);
    }
}
