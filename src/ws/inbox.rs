//! The peer's messages on their way to a session actor: a queue the connection fills and the
//! actor's context reads as a stream (the `StreamHandler` an actix-web-actors actor implements).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_http::ws::{Message, ProtocolError};
use bytes::Bytes;
use futures_util::Stream;

/// Messages handed to the actor and not yet handled, past which the connection stops reading.
/// An actor busy on a `ctx.wait` future then holds the peer back in the kernel's buffers, not in
/// ours; 32 is two of actix's 16-item stream batches, so a quick actor never makes reads wait.
const INBOX_MAX: usize = 32;

/// Pings handed to the actor whose pong the connection already sent. An actor written for
/// actix-web-actors answers each ping with `ctx.pong`; a pong matching one of these is not sent
/// again (at most one pong per ping on the wire). 16 matches the pongs the core keeps waiting.
const PINGS_MAX: usize = 16;

/// What the connection and the actor's context share (one thread: the connection's).
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    items: RefCell<VecDeque<Result<Message, ProtocolError>>>,
    ended: Cell<bool>,
    pings: RefCell<VecDeque<Bytes>>,
}

impl Inbox {
    /// Queues one item for the actor.
    pub(crate) fn push(&self, item: Result<Message, ProtocolError>) {
        self.items.borrow_mut().push_back(item);
    }

    /// Whether the actor has enough waiting; the connection reads no more until it has less.
    pub(crate) fn is_full(&self) -> bool {
        self.items.borrow().len() >= INBOX_MAX
    }

    /// No more items will come: the stream ends once the actor took what is queued.
    pub(crate) fn end(&self) {
        self.ended.set(true);
    }

    /// A ping the connection answered is handed to the actor.
    pub(crate) fn ping_delivered(&self, payload: Bytes) {
        let mut pings = self.pings.borrow_mut();
        if pings.len() == PINGS_MAX {
            pings.pop_front();
        }
        pings.push_back(payload);
    }

    /// Whether a pong with `payload` answers a ping the connection answered already (and
    /// forgets that ping).
    pub(crate) fn answered_already(&self, payload: &[u8]) -> bool {
        let mut pings = self.pings.borrow_mut();
        match pings.iter().position(|ping| ping.as_ref() == payload) {
            Some(index) => {
                pings.remove(index);
                true
            }
            None => false,
        }
    }
}

/// The inbox as the stream the actor's context polls. It registers no waker: the connection
/// polls the actor right after it queues an item or ends the inbox.
#[derive(Debug)]
pub(crate) struct InboxStream(pub(crate) Rc<Inbox>);

impl Stream for InboxStream {
    type Item = Result<Message, ProtocolError>;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.0.items.borrow_mut().pop_front() {
            Some(item) => Poll::Ready(Some(item)),
            None if self.0.ended.get() => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}
