//! The outbound queue: encoded frames waiting for the socket, bounded and measured in bytes, and
//! the connection's close state.
//!
//! Any thread puts frames in ([`Outbound::push`] and its siblings); the connection's one writer
//! takes whole frames out ([`Outbound::take`]) and reports each written to its last byte
//! ([`Outbound::wrote`]). Every frame gets a sequence number, so a send's future resolves when
//! its frame is written, or fails when the connection ends first.
//!
//! Small frames are encoded back to back into one buffer and handed out together, so a burst of
//! small messages costs one allocation and one chunk instead of one each (the 32-byte echo
//! profile had the per-frame allocation and chunk handling among its top costs). A large payload
//! is queued by reference, after a header chunk of its own ([`Outbound::push_parts`]).
//!
//! The close state lives here, under the same lock as the frames, because any thread may close
//! (the handle, the hub) while the writer runs: "no frame after the close frame" is a rule about
//! the queue's order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;

use crate::protocol::CloseFrame;

/// Frames up to this size are copied into the open buffer; larger ones are queued as they are,
/// since copying them would cost more than a chunk of their own. `WebSocket::send` uses the same
/// line to queue a server's large payload by reference.
pub(crate) const COALESCE_MAX: usize = 4 * 1024;

/// The least the open buffer grows by: room for a burst of small frames in one allocation.
const OPEN_MIN: usize = 1024;

/// An open buffer holding more spare room than this after a hand-out, so an idle connection does
/// not keep the memory of its largest burst.
const OPEN_RETAIN_MAX: usize = 8 * 1024;

/// Pongs that may wait at once. Autobahn (cases 2.10 and 2.11) sends ten pings back to back and
/// expects each answered, which RFC 6455 does not require but peers check; more than this many
/// unanswered pings means a flood, and then only the newest is answered (RFC 6455 §5.5.3 allows
/// answering only the most recent).
pub(crate) const PONGS_MAX: usize = 16;

/// Why a frame could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The connection is closing or closed.
    Closed,
    /// Queuing the frame would pass the byte limit.
    Full,
}

/// What a frame is, for the queue's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameKind {
    /// Text, binary or continuation: counts against the limit.
    Data,
    /// A ping: counts against the limit too, so that nothing makes us queue control frames without
    /// bound. (Pongs have a small queue of their own, [`Outbound::push_pong`].)
    Control,
}

/// How a frame's sequence number ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// The socket accepted its last byte.
    Yes,
    /// Dropped because the connection ended first (or the queue was cleared).
    No,
}

/// Where the connection is in its close handshake. One value, for every thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CloseState {
    /// Frames may be queued.
    Open,
    /// Our close frame is queued (or written), and nothing may follow it; we wait for the peer's.
    Closing(CloseFrame),
    /// The connection is over for the application: the close handshake finished, or the
    /// connection failed or was lost. What is queued is still written, until the writer gives up.
    Closed(CloseFrame),
}

/// Where the close handshake is, readable without the lock: [`CloseState`]'s variant, or
/// aborted. The writer looks at it on every turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    Open = 0,
    Closing = 1,
    Closed = 2,
    Aborted = 3,
}

/// The shared queue of one connection.
#[derive(Debug)]
pub(crate) struct Outbound {
    state: Mutex<State>,
    /// A copy of the state's phase, written under the lock.
    phase: AtomicU8,
}

/// Bytes handed to the writer in one piece.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub(crate) bytes: Bytes,
    /// The sequence number of the last frame that ends with this chunk; `None` for the header of
    /// a frame whose payload follows, and for a pong (pongs are not numbered).
    pub(crate) last: Option<u64>,
    /// The header of a frame whose payload is the next chunk.
    header: bool,
}

impl Chunk {
    fn new(bytes: Bytes, last: Option<u64>) -> Chunk {
        Chunk {
            bytes,
            last,
            header: false,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// Chunks ready to hand out, oldest first; `open` comes after them.
    chunks: VecDeque<Chunk>,
    /// Small frames queued after the last chunk, back to back: the next chunk.
    open: BytesMut,
    /// Pongs waiting, at most [`PONGS_MAX`]; they go out ahead of queued data, between frames.
    pongs: VecDeque<Bytes>,
    queued_bytes: usize,
    limit: usize,
    /// Sequence number of the last frame pushed.
    pushed: u64,
    /// Sequence number of the last frame written to its last byte.
    written: u64,
    /// Sequence number of the last frame handed to the writer whole: a clear does not lose it.
    handed: u64,
    /// The first and last sequence numbers of the frames dropped by the last [`Outbound::clear`];
    /// (0, 0) names none, as numbering starts at 1.
    lost: (u64, u64),
    close: CloseStateCell,
    /// The application asked to close (`close`, `close_with`), as opposed to the peer, a failure
    /// or the runtime: a client then does not reconnect.
    closed_by_user: bool,
    /// The writer gave up: nothing more is written and unwritten frames are lost.
    aborted: bool,
    /// Chunks handed to the writer so far: the progress a writer that cannot see the socket
    /// (actix-web's) makes, for the write timeout.
    taken: u64,
    /// The writer, waiting for frames.
    writer: Option<Waker>,
    /// A driver that does not write itself (under actix-web's `HttpServer`), waiting for the
    /// close state to change or the queue to drain.
    watcher: Option<Waker>,
    /// Send futures waiting for their frame to be written.
    waiters: Vec<(u64, Waker)>,
    /// `closed()` futures waiting for the connection to end.
    closed_waiters: Vec<Waker>,
}

/// [`CloseState`] with a default, for `State`'s.
#[derive(Debug)]
struct CloseStateCell(CloseState);

impl Default for CloseStateCell {
    fn default() -> Self {
        CloseStateCell(CloseState::Open)
    }
}

/// Wakers to wake once the lock is released.
#[derive(Default)]
struct Wake(Vec<Waker>);

impl Wake {
    fn add(&mut self, waker: Option<Waker>) {
        self.0.extend(waker);
    }

    fn run(self) {
        self.0.into_iter().for_each(Waker::wake);
    }
}

impl Outbound {
    /// An empty, open queue that holds at most `limit` bytes of frames.
    pub(crate) fn new(limit: usize) -> Arc<Outbound> {
        Arc::new(Outbound {
            state: Mutex::new(State {
                limit,
                ..State::default()
            }),
            phase: AtomicU8::new(Phase::Open as u8),
        })
    }

    /// The phase now, without taking the lock.
    pub(crate) fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Open,
            1 => Phase::Closing,
            2 => Phase::Closed,
            _ => Phase::Aborted,
        }
    }

    /// Publishes `state`'s phase; called under its lock.
    fn set_phase(&self, state: &State) {
        let phase = match (&state.close.0, state.aborted) {
            (_, true) => Phase::Aborted,
            (CloseState::Open, _) => Phase::Open,
            (CloseState::Closing(_), _) => Phase::Closing,
            (CloseState::Closed(_), _) => Phase::Closed,
        };
        self.phase.store(phase as u8, Ordering::Release);
    }

    /// Queues the encoded `frame` and answers its sequence number.
    ///
    /// # Errors
    ///
    /// [`PushError::Closed`] unless the connection is open, [`PushError::Full`] past the limit.
    pub(crate) fn push(&self, frame: Bytes, kind: FrameKind) -> Result<u64, PushError> {
        let len = frame.len();
        if len <= COALESCE_MAX {
            return self.push_encoded(len, kind, |open| open.extend_from_slice(&frame));
        }
        self.push_chunks(len, [frame, Bytes::new()])
    }

    /// Queues a frame of `len` bytes that `encode` appends to the buffer it is given, as
    /// [`Outbound::push`] does; `encode` runs under the queue's lock, so it must be quick.
    pub(crate) fn push_encoded(
        &self,
        len: usize,
        _kind: FrameKind,
        encode: impl FnOnce(&mut BytesMut),
    ) -> Result<u64, PushError> {
        let mut state = self.state.lock();
        state.admit(len)?;
        if state.open.capacity() - state.open.len() < len {
            state.open.reserve(len.max(OPEN_MIN));
        }
        let before = state.open.len();
        encode(&mut state.open);
        let added = state.open.len() - before;
        let (seq, writer) = state.queued(added);
        drop(state);
        wake(writer);
        Ok(seq)
    }

    /// Queues a frame made of `head` followed by `body`, as [`Outbound::push`] does one buffer;
    /// `body` is handed out as it is, not copied.
    pub(crate) fn push_parts(&self, head: Bytes, body: Bytes, _kind: FrameKind) -> Result<u64, PushError> {
        self.push_chunks(head.len() + body.len(), [head, body])
    }

    /// Queues a frame as a chunk, or two when the second is not empty.
    fn push_chunks(&self, len: usize, [first, second]: [Bytes; 2]) -> Result<u64, PushError> {
        let mut state = self.state.lock();
        state.admit(len)?;
        let (seq, writer) = state.queue_chunks(len, first, second);
        drop(state);
        wake(writer);
        Ok(seq)
    }

    /// Queues `pong`; when [`PONGS_MAX`] wait already, it replaces the newest of them. It counts
    /// against the limit.
    ///
    /// # Errors
    ///
    /// [`PushError::Closed`] unless the connection is open, [`PushError::Full`] past the limit.
    pub(crate) fn push_pong(&self, pong: Bytes) -> Result<(), PushError> {
        let mut state = self.state.lock();
        if state.close.0 != CloseState::Open || state.aborted {
            return Err(PushError::Closed);
        }
        let replaced = match state.pongs.back() {
            Some(newest) if state.pongs.len() >= PONGS_MAX => newest.len(),
            _ => 0,
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
        let writer = state.writer.take();
        drop(state);
        wake(writer);
        Ok(())
    }

    /// Starts our side of the close handshake: queues `encoded` (our close frame, for `frame`)
    /// after everything queued, and nothing may follow it. Answers `false`, queuing nothing, when
    /// the connection is not open. `by_user` marks a close the application asked for.
    pub(crate) fn close(&self, frame: CloseFrame, encoded: Bytes, by_user: bool) -> bool {
        let mut state = self.state.lock();
        state.closed_by_user |= by_user;
        if state.close.0 != CloseState::Open || state.aborted {
            return false;
        }
        let (_, writer) = state.queue_chunks(encoded.len(), encoded, Bytes::new());
        state.close.0 = CloseState::Closing(frame);
        self.set_phase(&state);
        let watcher = state.watcher.take();
        drop(state);
        wake(writer);
        wake(watcher);
        true
    }

    /// The connection is over for the application, with `frame` as its close record unless one
    /// is set already. `answer`, if given, is queued first as our close frame, when we had not
    /// sent one (the echo of the peer's close, or the close of a failure). `clear` drops the
    /// data frames queued (a peer that does not read will not get them). Answers the record.
    pub(crate) fn end(&self, frame: CloseFrame, answer: Option<Bytes>, clear: bool) -> CloseFrame {
        let mut wake = Wake::default();
        let mut state = self.state.lock();
        // Once our close frame is queued nothing else is, and it must go: nothing to clear.
        if clear && state.close.0 == CloseState::Open {
            state.clear(&mut wake);
        }
        let record = match std::mem::replace(&mut state.close.0, CloseState::Open) {
            CloseState::Open => {
                if let Some(answer) = answer.filter(|_| !state.aborted) {
                    let (_, writer) = state.queue_chunks(answer.len(), answer, Bytes::new());
                    wake.add(writer);
                }
                frame
            }
            CloseState::Closing(ours) => ours,
            CloseState::Closed(record) => record,
        };
        state.close.0 = CloseState::Closed(record.clone());
        self.set_phase(&state);
        wake.0.append(&mut state.closed_waiters);
        wake.add(state.writer.take());
        wake.add(state.watcher.take());
        drop(state);
        wake.run();
        record
    }

    /// Drops every queued frame and stops the writer: unwritten frames are lost and their send
    /// futures fail. The connection is closed with `frame` unless it was already.
    pub(crate) fn abort(&self, frame: CloseFrame) {
        let mut wake = Wake::default();
        let mut state = self.state.lock();
        state.aborted = true;
        state.chunks.clear();
        state.pongs.clear();
        state.open = BytesMut::new();
        state.queued_bytes = 0;
        wake.0.extend(state.waiters.drain(..).map(|(_, w)| w));
        if !matches!(state.close.0, CloseState::Closed(_)) {
            state.close.0 = CloseState::Closed(frame);
            wake.0.append(&mut state.closed_waiters);
        }
        self.set_phase(&state);
        wake.add(state.writer.take());
        wake.add(state.watcher.take());
        drop(state);
        wake.run();
    }

    /// The close state now.
    pub(crate) fn close_state(&self) -> CloseState {
        self.state.lock().close.0.clone()
    }

    /// Whether the application asked to close.
    pub(crate) fn closed_by_user(&self) -> bool {
        self.state.lock().closed_by_user
    }

    /// The bytes waiting to be handed to the writer.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.state.lock().queued_bytes
    }

    /// How many chunks the writer has taken, and whether anything waits: a writer that takes
    /// nothing while something waits is stuck (for writers that do not see the socket).
    pub(crate) fn progress(&self) -> (u64, bool) {
        let state = self.state.lock();
        (state.taken, state.queued_bytes > 0)
    }

    /// Ready with the close record once the connection is closed; otherwise `cx` is woken then.
    pub(crate) fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<CloseFrame> {
        let mut state = self.state.lock();
        if let CloseState::Closed(record) = &state.close.0 {
            return Poll::Ready(record.clone());
        }
        if !state.closed_waiters.iter().any(|w| w.will_wake(cx.waker())) {
            state.closed_waiters.push(cx.waker().clone());
        }
        Poll::Pending
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
        if state.aborted || seq > state.pushed {
            return Poll::Ready(Written::No);
        }
        match state.waiters.iter_mut().find(|(s, _)| *s == seq) {
            Some((_, waker)) => waker.clone_from(cx.waker()),
            None => state.waiters.push((seq, cx.waker().clone())),
        }
        Poll::Pending
    }

    /// Moves whole frames into `into`, up to `max_chunks` chunks (a frame in two parts may pass
    /// it by one) and `max_bytes` bytes (at least one frame goes), pongs first. When there is
    /// nothing to take, `cx`'s waker is kept and woken by the next push or close. Answers whether
    /// the queue is done: closed, empty, and nothing more can come (or aborted).
    pub(crate) fn take(
        &self,
        into: &mut VecDeque<Chunk>,
        max_chunks: usize,
        max_bytes: usize,
        cx: Option<&mut Context<'_>>,
    ) -> bool {
        let mut state = self.state.lock();
        if state.aborted {
            return true;
        }
        let (mut chunks, mut bytes) = (0, 0);
        while chunks < max_chunks && (bytes < max_bytes || chunks == 0) {
            let Some(chunk) = state.next_chunk() else { break };
            bytes += chunk.bytes.len();
            chunks += 1;
            let header = chunk.header;
            into.push_back(chunk);
            if header {
                // The payload goes with its header: a clear never cuts a frame in two.
                if let Some(payload) = state.next_chunk() {
                    bytes += payload.bytes.len();
                    into.push_back(payload);
                }
            }
        }
        let done = state.queued_bytes == 0 && matches!(state.close.0, CloseState::Closed(_));
        if chunks == 0 && !done {
            if let Some(cx) = cx {
                state.writer = Some(cx.waker().clone());
            }
        }
        let watcher = if done { state.watcher.take() } else { None };
        drop(state);
        wake(watcher);
        done
    }

    /// Whether the connection is closed and everything queued was taken (or it was aborted);
    /// otherwise `cx` is woken when the close state changes or the queue drains.
    pub(crate) fn poll_drained(&self, cx: &mut Context<'_>) -> bool {
        let mut state = self.state.lock();
        let drained = state.aborted || (state.queued_bytes == 0 && matches!(state.close.0, CloseState::Closed(_)));
        if !drained {
            state.watcher = Some(cx.waker().clone());
        }
        drained
    }

    /// The frames up to `seq` are written to their last byte: their send futures resolve.
    pub(crate) fn wrote(&self, seq: u64) {
        let mut state = self.state.lock();
        if seq <= state.written {
            return;
        }
        state.written = seq;
        if state.waiters.is_empty() {
            return;
        }
        let mut woken = Vec::new();
        state.waiters.retain(|(waiting, waker)| {
            let done = *waiting <= seq;
            if done {
                woken.push(waker.clone());
            }
            !done
        });
        drop(state);
        woken.into_iter().for_each(Waker::wake);
    }
}

impl State {
    /// Refuses a frame of `len` bytes the queue may not take.
    fn admit(&self, len: usize) -> Result<(), PushError> {
        if self.close.0 != CloseState::Open || self.aborted {
            return Err(PushError::Closed);
        }
        if self.queued_bytes + len > self.limit {
            return Err(PushError::Full);
        }
        Ok(())
    }

    /// Counts a frame of `len` bytes just queued; answers its sequence number and the writer's
    /// waker, to wake once the lock is released.
    fn queued(&mut self, len: usize) -> (u64, Option<Waker>) {
        self.queued_bytes += len;
        self.pushed += 1;
        (self.pushed, self.writer.take())
    }

    /// Queues a frame of `len` bytes as one chunk, or two when `second` is not empty, after the
    /// open buffer's frames.
    fn queue_chunks(&mut self, len: usize, first: Bytes, second: Bytes) -> (u64, Option<Waker>) {
        self.close_open();
        let (seq, writer) = self.queued(len);
        if second.is_empty() {
            self.chunks.push_back(Chunk::new(first, Some(seq)));
        } else {
            self.chunks.push_back(Chunk {
                bytes: first,
                last: None,
                header: true,
            });
            self.chunks.push_back(Chunk::new(second, Some(seq)));
        }
        (seq, writer)
    }

    /// The next chunk to write: a pong, else the oldest queued chunk, else the open buffer's
    /// frames as one. Never called between a frame's header and its payload.
    fn next_chunk(&mut self) -> Option<Chunk> {
        let chunk = match self.pongs.pop_front() {
            Some(pong) => Chunk::new(pong, None),
            None => match self.chunks.pop_front() {
                Some(chunk) => chunk,
                None if !self.open.is_empty() => self.take_open(),
                None => return None,
            },
        };
        self.queued_bytes -= chunk.bytes.len();
        self.taken += 1;
        if let Some(last) = chunk.last {
            self.handed = last;
        }
        Some(chunk)
    }

    /// Ends the open buffer's run of small frames: it becomes a chunk, ahead of what follows.
    fn close_open(&mut self) {
        if !self.open.is_empty() {
            let chunk = self.take_open();
            self.chunks.push_back(chunk);
        }
    }

    /// The open buffer's frames as one chunk; the buffer keeps its spare room unless that is more
    /// than an idle connection should hold.
    fn take_open(&mut self) -> Chunk {
        let bytes = self.open.split().freeze();
        if self.open.capacity() > OPEN_RETAIN_MAX {
            self.open = BytesMut::new();
        }
        Chunk::new(bytes, Some(self.pushed))
    }

    /// Drops the queued data frames (the writer's in-flight ones stay) and fails their sends.
    fn clear(&mut self, wake: &mut Wake) {
        self.chunks.clear();
        self.open.clear();
        self.pongs.clear();
        self.queued_bytes = 0;
        self.lost = (self.handed + 1, self.pushed);
        // Every waiter looks again: those of lost frames fail, the writer's still wait.
        wake.0.extend(self.waiters.drain(..).map(|(_, w)| w));
    }

    /// Whether frame `seq` was dropped by a clear.
    fn was_lost(&self, seq: u64) -> bool {
        (self.lost.0..=self.lost.1).contains(&seq)
    }
}

fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}
