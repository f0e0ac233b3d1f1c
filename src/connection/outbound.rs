//! [`Outbound`]: a connection's frames waiting for the socket ([`Frames`]) and its close state,
//! under one lock, shared by every thread that sends.
//!
//! Any thread puts frames in ([`Outbound::push`] and its siblings); the connection's one writer
//! takes whole frames out ([`Outbound::take`]) and reports each written to its last byte
//! ([`Outbound::wrote`]). Every frame gets a sequence number, so a send's future resolves when
//! its frame is written, or fails when the connection ends first.
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

use super::frames::Frames;
pub(crate) use super::frames::{Chunk, COALESCE_MAX};
use crate::protocol::CloseFrame;

/// Why a frame could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The connection is closing or closed.
    Closed,
    /// Queuing the frame would pass the byte limit.
    Full,
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum CloseState {
    /// Frames may be queued.
    #[default]
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

#[derive(Debug, Default)]
struct State {
    frames: Frames,
    close: CloseState,
    /// The application asked to close (`close`, `close_with`), as opposed to the peer, a failure
    /// or the runtime: a client then does not reconnect.
    closed_by_user: bool,
    /// The writer gave up: nothing more is written and unwritten frames are lost.
    aborted: bool,
    /// The writer, waiting for frames.
    writer: Option<Waker>,
    /// A driver that does not write itself (under actix-web's `HttpServer`), waiting for the
    /// close state to change or the queue to drain.
    watcher: Option<Waker>,
    /// The futures waiting on the queue, once one has.
    waiters: Option<Box<Waiters>>,
}

/// Futures waiting on one connection's queue. Boxed, and allocated by the first future that
/// waits: a connection whose sends nobody awaits holds 8 bytes for them, not 48 (idle memory,
/// docs/benchmarks.md).
#[derive(Debug, Default)]
struct Waiters {
    /// Send futures waiting for their frame to be written.
    sends: Vec<(u64, Waker)>,
    /// `closed()` futures waiting for the connection to end.
    closed: Vec<Waker>,
}

impl State {
    /// Whether frames may be queued.
    fn open(&self) -> bool {
        self.close == CloseState::Open && !self.aborted
    }

    /// Closed, with nothing left to hand out (or aborted).
    fn drained(&self) -> bool {
        self.aborted || (self.frames.queued_bytes == 0 && matches!(self.close, CloseState::Closed(_)))
    }

    /// The waiting futures, allocated on first use.
    fn waiters(&mut self) -> &mut Waiters {
        self.waiters.get_or_insert_with(Box::default)
    }

    /// Hands every waiting send future to `wake` (their frames were written or are lost).
    fn release_sends(&mut self, wake: &mut Wake) {
        if let Some(waiters) = self.waiters.as_mut() {
            wake.0.extend(waiters.sends.drain(..).map(|(_, waker)| waker));
        }
    }

    /// Hands every `closed()` future to `wake`.
    fn release_closed(&mut self, wake: &mut Wake) {
        if let Some(waiters) = self.waiters.as_mut() {
            wake.0.append(&mut waiters.closed);
        }
    }

    fn phase(&self) -> Phase {
        match (&self.close, self.aborted) {
            (_, true) => Phase::Aborted,
            (CloseState::Open, _) => Phase::Open,
            (CloseState::Closing(_), _) => Phase::Closing,
            (CloseState::Closed(_), _) => Phase::Closed,
        }
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
        let mut state = State::default();
        state.frames.limit = limit;
        Arc::new(Outbound {
            state: Mutex::new(state),
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

    /// Runs `change` under the lock, then publishes the phase and wakes what it asked for.
    fn update<T>(&self, change: impl FnOnce(&mut State, &mut Wake) -> T) -> T {
        let mut wake = Wake::default();
        let mut state = self.state.lock();
        let answer = change(&mut state, &mut wake);
        self.phase.store(state.phase() as u8, Ordering::Release);
        drop(state);
        wake.run();
        answer
    }

    /// Queues the encoded `frame` and answers its sequence number. Pings count against the limit
    /// like data. A small frame is copied and `frame` left untouched, so that a broadcast's one
    /// shared frame is not cloned and dropped for each recipient (an atomic operation each, on
    /// one cache line for all of them).
    ///
    /// # Errors
    ///
    /// [`PushError::Closed`] unless the connection is open, [`PushError::Full`] past the limit.
    pub(crate) fn push(&self, frame: &Bytes) -> Result<u64, PushError> {
        let len = frame.len();
        if len <= COALESCE_MAX {
            return self.push_encoded(len, |open| open.extend_from_slice(frame));
        }
        self.push_parts(frame.clone(), Bytes::new())
    }

    /// Queues a frame of `len` bytes that `encode` appends to the buffer it is given, as
    /// [`Outbound::push`] does; `encode` runs under the queue's lock, so it must be quick.
    pub(crate) fn push_encoded(&self, len: usize, encode: impl FnOnce(&mut BytesMut)) -> Result<u64, PushError> {
        self.push_with(len, |frames| frames.push_encoded(len, encode))
    }

    /// Queues a frame made of `head` followed by `body` (or `head` alone when `body` is empty),
    /// as [`Outbound::push`] does one buffer; `body` is handed out as it is, not copied.
    pub(crate) fn push_parts(&self, head: Bytes, body: Bytes) -> Result<u64, PushError> {
        let len = head.len() + body.len();
        self.push_with(len, |frames| frames.push_chunks(len, head, body))
    }

    fn push_with(&self, len: usize, push: impl FnOnce(&mut Frames) -> u64) -> Result<u64, PushError> {
        let mut state = self.state.lock();
        if !state.open() {
            return Err(PushError::Closed);
        }
        if !state.frames.fits(len) {
            return Err(PushError::Full);
        }
        let seq = push(&mut state.frames);
        let writer = state.writer.take();
        drop(state);
        if let Some(writer) = writer {
            writer.wake();
        }
        Ok(seq)
    }

    /// Queues `pong`, ahead of data; past a few waiting it replaces the newest. It counts against
    /// the limit.
    ///
    /// # Errors
    ///
    /// [`PushError::Closed`] unless the connection is open, [`PushError::Full`] past the limit.
    pub(crate) fn push_pong(&self, pong: Bytes) -> Result<(), PushError> {
        self.update(|state, wake| {
            if !state.open() {
                return Err(PushError::Closed);
            }
            if !state.frames.push_pong(pong) {
                return Err(PushError::Full);
            }
            wake.add(state.writer.take());
            Ok(())
        })
    }

    /// Starts our side of the close handshake: queues `encoded` (our close frame, for `frame`)
    /// after everything queued, and nothing may follow it. Answers `false`, queuing nothing, when
    /// the connection is not open. `by_user` marks a close the application asked for.
    pub(crate) fn close(&self, frame: CloseFrame, encoded: Bytes, by_user: bool) -> bool {
        self.update(|state, wake| {
            state.closed_by_user |= by_user;
            if !state.open() {
                return false;
            }
            state.frames.push_chunks(encoded.len(), encoded, Bytes::new());
            state.close = CloseState::Closing(frame);
            wake.add(state.writer.take());
            wake.add(state.watcher.take());
            true
        })
    }

    /// The connection is over for the application, with `frame` as its close record unless one
    /// is set already. `answer`, if given, is queued as our close frame when we had not sent one
    /// (the echo of the peer's close, or the close of a failure). `clear` first drops the data
    /// frames queued (a peer that does not read will not get them). Answers the record.
    pub(crate) fn end(&self, frame: CloseFrame, answer: Option<Bytes>, clear: bool) -> CloseFrame {
        self.update(|state, wake| {
            let record = match std::mem::take(&mut state.close) {
                CloseState::Open => {
                    if clear {
                        state.frames.clear();
                        state.release_sends(wake);
                    }
                    if let Some(answer) = answer.filter(|_| !state.aborted) {
                        state.frames.push_chunks(answer.len(), answer, Bytes::new());
                    }
                    frame
                }
                // Our close frame is queued, last; it must go, and nothing was queued after it.
                CloseState::Closing(ours) => ours,
                CloseState::Closed(record) => record,
            };
            state.close = CloseState::Closed(record.clone());
            state.release_closed(wake);
            wake.add(state.writer.take());
            wake.add(state.watcher.take());
            record
        })
    }

    /// Drops every queued frame and stops the writer: unwritten frames are lost and their send
    /// futures fail. The connection is closed with `frame` unless it was already.
    pub(crate) fn abort(&self, frame: CloseFrame) {
        self.update(|state, wake| {
            state.aborted = true;
            state.frames.drop_all();
            state.release_sends(wake);
            if !matches!(state.close, CloseState::Closed(_)) {
                state.close = CloseState::Closed(frame);
                state.release_closed(wake);
            }
            wake.add(state.writer.take());
            wake.add(state.watcher.take());
        });
    }

    /// The close state now.
    pub(crate) fn close_state(&self) -> CloseState {
        self.state.lock().close.clone()
    }

    /// Whether the application asked to close.
    pub(crate) fn closed_by_user(&self) -> bool {
        self.state.lock().closed_by_user
    }

    /// The bytes waiting to be handed to the writer.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.state.lock().frames.queued_bytes
    }

    /// How many chunks the writer has taken, and whether anything waits: a writer that takes
    /// nothing while something waits is stuck (for writers that do not see the socket).
    pub(crate) fn progress(&self) -> (u64, bool) {
        let state = self.state.lock();
        (state.frames.taken, state.frames.queued_bytes > 0)
    }

    /// Ready with the close record once the connection is closed; otherwise `cx` is woken then.
    pub(crate) fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<CloseFrame> {
        let mut state = self.state.lock();
        if let CloseState::Closed(record) = &state.close {
            return Poll::Ready(record.clone());
        }
        let closed = &mut state.waiters().closed;
        if !closed.iter().any(|w| w.will_wake(cx.waker())) {
            closed.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Whether the frame `seq` has been written, was lost, or is still waiting (then `cx` is woken
    /// when that changes).
    pub(crate) fn poll_written(&self, seq: u64, cx: &mut Context<'_>) -> Poll<Written> {
        let mut state = self.state.lock();
        if state.frames.was_lost(seq) {
            return Poll::Ready(Written::No);
        }
        if state.frames.written >= seq {
            return Poll::Ready(Written::Yes);
        }
        if state.aborted || seq > state.frames.pushed {
            return Poll::Ready(Written::No);
        }
        let sends = &mut state.waiters().sends;
        match sends.iter_mut().find(|(s, _)| *s == seq) {
            Some((_, waker)) => waker.clone_from(cx.waker()),
            None => sends.push((seq, cx.waker().clone())),
        }
        Poll::Pending
    }

    /// Moves whole frames into `into` for the writer (see [`Frames::take`]). When there is
    /// nothing to take, `cx`'s waker is kept and woken by the next push or close. Answers whether
    /// the queue is done: closed with nothing left, or aborted.
    pub(crate) fn take(
        &self,
        into: &mut VecDeque<Chunk>,
        max_chunks: usize,
        max_bytes: usize,
        cx: Option<&mut Context<'_>>,
    ) -> bool {
        self.update(|state, wake| {
            if state.aborted {
                return true;
            }
            let taken = state.frames.take(into, max_chunks, max_bytes);
            let done = state.drained();
            if done {
                wake.add(state.watcher.take());
            } else if taken == 0 {
                if let Some(cx) = cx {
                    state.writer = Some(cx.waker().clone());
                }
            }
            done
        })
    }

    /// Whether the connection is closed and everything queued was taken (or it was aborted);
    /// otherwise `cx` is woken when the close state changes or the queue drains.
    pub(crate) fn poll_drained(&self, cx: &mut Context<'_>) -> bool {
        let mut state = self.state.lock();
        let drained = state.drained();
        if !drained {
            state.watcher = Some(cx.waker().clone());
        }
        drained
    }

    /// The frames up to `seq` are written to their last byte: their send futures resolve.
    pub(crate) fn wrote(&self, seq: u64) {
        let mut state = self.state.lock();
        if seq <= state.frames.written {
            return;
        }
        state.frames.written = seq;
        let Some(waiters) = state.waiters.as_mut().filter(|w| !w.sends.is_empty()) else {
            return;
        };
        let mut woken = Vec::new();
        waiters.sends.retain(|(waiting, waker)| {
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

#[cfg(test)]
mod tests;
