//! A session actor's bounded mailbox: [`SessionAddr`], how any code (and the hub) reaches a
//! session's actor with a typed message, and the rule for a full mailbox.
//!
//! actix's `Addr::do_send` ignores the mailbox's capacity, so a producer faster than the actor
//! grows its queue without bound. A `SessionAddr` never does: past
//! [`Config::mailbox_capacity`](crate::Config::mailbox_capacity) a message that may not be lost
//! closes the session with 1008 (as a full outbound queue does), and a message its sender marked
//! droppable (a typing indicator, a cursor position) is dropped instead, the oldest or the
//! newest. Both are counted in metrics (`mailbox_closes`, `mailbox_drops`).

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use actix::dev::{Envelope, EnvelopeProxy};
use actix::{Actor, ActorFuture, AsyncContext, Handler};
use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::metrics::Metrics;
use crate::protocol::{CloseCode, CloseFrame};
use crate::socket::Shared;

use super::WebsocketContext;

/// Messages the actor handles from its bounded mailbox per poll before it lets the connection
/// read and write again, as actix handles 16 of its own mailbox's.
const BATCH: usize = 16;

/// What a [`SessionAddr`] does with a droppable message when the mailbox is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Drop the oldest message waiting, and queue this one (the latest state wins: cursor
    /// positions, typing indicators).
    DropOldest,
    /// Drop this message, and keep what waits.
    DropNewest,
}

/// Why a [`SessionAddr`] did not queue a message; each variant hands the message back.
#[derive(PartialEq, Eq, thiserror::Error)]
pub enum MailboxError<M> {
    /// The session has ended: there is no actor to handle it.
    #[error("the session has ended")]
    Closed(M),
    /// The mailbox was full: the session is being closed with 1008.
    #[error("the session's mailbox is full; the session is being closed")]
    Full(M),
    /// The mailbox was full and the message was droppable ([`Overflow::DropNewest`]): dropped.
    #[error("the session's mailbox is full; the message was dropped")]
    Dropped(M),
}

impl<M> fmt::Debug for MailboxError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            MailboxError::Closed(_) => "Closed",
            MailboxError::Full(_) => "Full",
            MailboxError::Dropped(_) => "Dropped",
        };
        write!(f, "MailboxError::{name}(..)")
    }
}

impl<M> MailboxError<M> {
    /// The message that was not queued.
    pub fn into_inner(self) -> M {
        match self {
            MailboxError::Closed(m) | MailboxError::Full(m) | MailboxError::Dropped(m) => m,
        }
    }
}

/// What the session's address and its actor share.
pub(crate) struct Queue<A: Actor> {
    items: Mutex<Items<A>>,
    capacity: usize,
    waker: AtomicWaker,
    /// The connection, to close on overflow (weak: the connection may hold this queue).
    shared: Weak<Shared>,
    metrics: Arc<Metrics>,
}

struct Items<A: Actor> {
    queue: VecDeque<Envelope<A>>,
    closed: bool,
}

impl<A: Actor<Context = WebsocketContext<A>>> Queue<A> {
    pub(crate) fn new(capacity: usize, shared: &Arc<Shared>) -> Arc<Queue<A>> {
        Arc::new(Queue {
            items: Mutex::new(Items {
                queue: VecDeque::new(),
                closed: false,
            }),
            capacity: capacity.max(1),
            waker: AtomicWaker::new(),
            shared: Arc::downgrade(shared),
            metrics: shared.metrics.clone(),
        })
    }

    /// Queues `msg` under the overflow rule (`None`: close the session when full).
    pub(crate) fn push<M>(
        &self,
        msg: M,
        reply: Option<oneshot::Sender<M::Result>>,
        overflow: Option<Overflow>,
    ) -> Result<(), MailboxError<M>>
    where
        A: Handler<M>,
        M: actix::Message + Send + 'static,
        M::Result: Send,
    {
        let mut items = self.items.lock();
        if items.closed {
            return Err(MailboxError::Closed(msg));
        }
        if items.queue.len() >= self.capacity {
            match overflow {
                None => {
                    drop(items);
                    self.overflowed();
                    return Err(MailboxError::Full(msg));
                }
                Some(Overflow::DropNewest) => {
                    self.metrics.mailbox_drop();
                    return Err(MailboxError::Dropped(msg));
                }
                Some(Overflow::DropOldest) => {
                    items.queue.pop_front();
                    self.metrics.mailbox_drop();
                }
            }
        }
        items.queue.push_back(Envelope::new(msg, reply));
        drop(items);
        self.waker.wake();
        Ok(())
    }

    /// A message that may not be lost found the mailbox full: the session closes with 1008.
    fn overflowed(&self) {
        let Some(shared) = self.shared.upgrade() else { return };
        log::warn!("session {}: actor mailbox full, closing with 1008", shared.id);
        self.metrics.mailbox_close();
        shared.start_close(CloseFrame::new(CloseCode::POLICY, "mailbox full"), false);
    }

    /// The session ended: what waits is dropped (their senders' replies fail) and nothing more
    /// is queued.
    pub(crate) fn close(&self) {
        let mut items = self.items.lock();
        items.closed = true;
        items.queue.clear();
    }

    fn pop(&self) -> Option<Envelope<A>> {
        self.items.lock().queue.pop_front()
    }
}

/// A typed, bounded address of one session's actor, from [`Hub::addr`](crate::Hub::addr) or
/// [`WebsocketContext::session_addr`]. Cheap to clone, `Send` and `Sync`.
///
/// It does not keep the actor alive: once the session ends, sends fail with
/// [`MailboxError::Closed`].
pub struct SessionAddr<A: Actor> {
    queue: Arc<Queue<A>>,
}

impl<A: Actor> Clone for SessionAddr<A> {
    fn clone(&self) -> Self {
        SessionAddr {
            queue: self.queue.clone(),
        }
    }
}

impl<A: Actor> fmt::Debug for SessionAddr<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionAddr")
            .field("capacity", &self.queue.capacity)
            .finish_non_exhaustive()
    }
}

impl<A: Actor<Context = WebsocketContext<A>>> SessionAddr<A> {
    pub(crate) fn new(queue: Arc<Queue<A>>) -> SessionAddr<A> {
        SessionAddr { queue }
    }

    /// Queues `msg` for the actor without waiting.
    ///
    /// # Errors
    ///
    /// [`MailboxError::Full`] when the mailbox is full: the session is closed with 1008 (the
    /// mailbox's stated rule; mark messages that may be lost with
    /// [`do_send_droppable`](Self::do_send_droppable)). [`MailboxError::Closed`] when the session
    /// has ended.
    pub fn do_send<M>(&self, msg: M) -> Result<(), MailboxError<M>>
    where
        A: Handler<M>,
        M: actix::Message + Send + 'static,
        M::Result: Send,
    {
        self.queue.push(msg, None, None)
    }

    /// Queues `msg`, which may be lost: when the mailbox is full, `overflow` says which message
    /// is dropped. The session stays open.
    ///
    /// # Errors
    ///
    /// [`MailboxError::Dropped`] when `msg` itself was dropped ([`Overflow::DropNewest`]),
    /// [`MailboxError::Closed`] when the session has ended.
    pub fn do_send_droppable<M>(&self, msg: M, overflow: Overflow) -> Result<(), MailboxError<M>>
    where
        A: Handler<M>,
        M: actix::Message + Send + 'static,
        M::Result: Send,
    {
        self.queue.push(msg, None, Some(overflow))
    }

    /// Queues `msg` as [`do_send`](Self::do_send) does, and waits for the actor's answer.
    ///
    /// # Errors
    ///
    /// [`MailboxError::Full`] and [`MailboxError::Closed`] as for `do_send`;
    /// `Err(MailboxError::Closed(()))` too when the session ended before the actor answered.
    pub async fn send<M>(&self, msg: M) -> Result<M::Result, MailboxError<Option<M>>>
    where
        A: Handler<M>,
        M: actix::Message + Send + 'static,
        M::Result: Send,
    {
        let (tx, rx) = oneshot::channel();
        self.queue.push(msg, Some(tx), None).map_err(|e| match e {
            MailboxError::Closed(m) => MailboxError::Closed(Some(m)),
            MailboxError::Full(m) => MailboxError::Full(Some(m)),
            MailboxError::Dropped(m) => MailboxError::Dropped(Some(m)),
        })?;
        rx.await.map_err(|_| MailboxError::Closed(None))
    }
}

/// The actor's side of the queue: a future spawned on its context that hands it what waits, in
/// order, while the actor is not waiting on a `ctx.wait` future.
pub(crate) struct Pump<A: Actor> {
    queue: Arc<Queue<A>>,
}

impl<A: Actor> Pump<A> {
    pub(crate) fn new(queue: Arc<Queue<A>>) -> Pump<A> {
        Pump { queue }
    }
}

impl<A: Actor<Context = WebsocketContext<A>>> ActorFuture<A> for Pump<A> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, act: &mut A, ctx: &mut WebsocketContext<A>, task: &mut Context<'_>) -> Poll<()> {
        self.queue.waker.register(task.waker());
        for _ in 0..BATCH {
            if ctx.waiting() {
                return Poll::Pending;
            }
            let Some(mut envelope) = self.queue.pop() else {
                return Poll::Pending;
            };
            envelope.handle(act, ctx);
        }
        // More may wait: come back after the connection had its turn.
        task.waker().wake_by_ref();
        Poll::Pending
    }
}
