//! Broadcast fan-out grouped by the thread that owns each session.
//!
//! Profiling the broadcast benchmark showed the supervisor spending its time waking sessions one
//! by one across threads: each delivery from the supervisor's thread pushed a frame and woke a
//! connection task living on a worker thread. A fan-out instead sends one task per worker
//! thread, which queues the frame for all that worker's sessions locally, so a broadcast to N
//! sessions on W workers costs W cross-thread wakes instead of N. The grouping of a route's
//! sessions is cached until the route's membership changes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::ThreadId;

use actix_rt::ArbiterHandle;

use crate::message::Outgoing;
use crate::session::{SessionId, SessionSink};

/// The actix arbiter (thread) a session's connection runs on.
#[derive(Debug, Clone)]
pub struct Home {
    thread: ThreadId,
    arbiter: ArbiterHandle,
}

impl Home {
    /// The arbiter of the calling thread, if it is one.
    pub fn current() -> Option<Home> {
        actix_rt::Arbiter::try_current().map(|arbiter| Home {
            thread: std::thread::current().id(),
            arbiter,
        })
    }
}

/// The sessions of one home.
struct Shard {
    home: Option<Home>,
    sinks: Vec<(SessionId, Arc<dyn SessionSink>)>,
}

/// A route's sessions, grouped by home.
pub(crate) struct Fanout {
    shards: Vec<Arc<Shard>>,
}

impl Fanout {
    /// Groups `sessions` by home.
    pub(crate) fn new<'a>(
        sessions: impl Iterator<Item = (SessionId, Option<&'a Home>, &'a Arc<dyn SessionSink>)>,
    ) -> Fanout {
        let mut shards: Vec<Shard> = Vec::new();
        for (id, home, sink) in sessions {
            let thread = home.map(|h| h.thread);
            let entry = (id, sink.clone());
            match shards.iter_mut().find(|s| s.home.as_ref().map(|h| h.thread) == thread) {
                Some(shard) => shard.sinks.push(entry),
                None => shards.push(Shard {
                    home: home.cloned(),
                    sinks: vec![entry],
                }),
            }
        }
        Fanout {
            shards: shards.into_iter().map(Arc::new).collect(),
        }
    }

    /// Queues `message` for every session but `except`; sessions on other threads get it from a
    /// task on their own thread. Answers how many sessions it was handed to; refusals (closed or
    /// full sessions) are added to `undelivered`.
    pub(crate) fn deliver(&self, message: &Outgoing, except: Option<SessionId>, undelivered: &Arc<AtomicU64>) -> usize {
        let here = std::thread::current().id();
        let mut handed = 0;
        for shard in &self.shards {
            handed += shard.sinks.iter().filter(|(id, _)| Some(*id) != except).count();
            match &shard.home {
                Some(home) if home.thread != here => {
                    let (shard, message, undelivered) = (shard.clone(), message.clone(), undelivered.clone());
                    let spawned = home
                        .arbiter
                        .spawn(async move { deliver_all(&shard, &message, except, &undelivered) });
                    if !spawned {
                        log::debug!("a worker thread is gone; its sessions missed a broadcast");
                    }
                }
                _ => deliver_all(shard, message, except, undelivered),
            }
        }
        handed
    }
}

fn deliver_all(shard: &Shard, message: &Outgoing, except: Option<SessionId>, undelivered: &AtomicU64) {
    for (id, sink) in &shard.sinks {
        if Some(*id) != except && sink.deliver(message).is_err() {
            undelivered.fetch_add(1, Ordering::Relaxed);
        }
    }
}
