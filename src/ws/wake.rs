//! Polling a session actor only when it has something to do.
//!
//! The connection's driver wakes for many reasons that are not the actor's (a hub delivery to
//! write, the socket ready for more). Polling the actor's context on each of them made the
//! session-actor relay of `bench_server` deliver 0.85× the callback relay's flat-out broadcast,
//! with 1.6× its p99 at 10,000 subscribers (`bench/run.sh`, one round). So the actor's context
//! gets a waker of its own, which marks the actor as due and wakes the connection; the driver
//! polls the actor only when it is due (woken, or handed the peer's messages). Afterwards the two
//! relays measured the same within the rounds' spread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};

use futures_util::task::AtomicWaker;

struct Due {
    due: AtomicBool,
    connection: AtomicWaker,
}

impl Wake for Due {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.due.store(true, Ordering::Release);
        self.connection.wake();
    }
}

/// The actor's waker, and whether it is due.
pub(crate) struct ActorWaker {
    due: Arc<Due>,
    waker: Waker,
}

impl ActorWaker {
    /// Due at once: the first poll starts the actor.
    pub(crate) fn new() -> ActorWaker {
        let due = Arc::new(Due {
            due: AtomicBool::new(true),
            connection: AtomicWaker::new(),
        });
        let waker = Waker::from(due.clone());
        ActorWaker { due, waker }
    }

    /// The actor has work (the connection handed it messages, or its stream ended).
    pub(crate) fn mark(&self) {
        self.due.due.store(true, Ordering::Release);
    }

    /// Marks the actor due and wakes the connection to poll it.
    pub(crate) fn wake(&self) {
        self.waker.wake_by_ref();
    }

    /// Remembers the connection's waker (what the actor's wakes wake) and answers whether the
    /// actor is due, no longer due after this.
    pub(crate) fn take_due(&self, cx: &Context<'_>) -> bool {
        self.due.connection.register(cx.waker());
        self.due.due.swap(false, Ordering::AcqRel)
    }

    /// The waker to poll the actor's context with.
    pub(crate) fn waker(&self) -> &Waker {
        &self.waker
    }
}
