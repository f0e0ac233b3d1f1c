//! Broadcast fan-out grouped by the thread that owns each session.
//!
//! Profiling the broadcast benchmark showed the supervisor spending its time waking sessions one
//! by one across threads: each delivery from the supervisor's thread pushed a frame and woke a
//! connection task living on a worker thread. A fan-out instead sends one task per worker
//! thread, which queues the frame for all that worker's sessions locally, so a broadcast to N
//! sessions on W workers costs W cross-thread wakes instead of N. The grouping of a route's
//! sessions is cached until the route's membership changes.
//!
//! Broadcasts bound for a thread wait in its shard's queue until that thread's task runs, and the
//! task hands out everything queued by then, session by session. Under light load that is one
//! message; under load, several broadcasts reach each session together, so its connection wakes
//! once and writes them in one go, instead of once per message.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::ThreadId;

use actix_rt::ArbiterHandle;
use parking_lot::Mutex;

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

/// A broadcast waiting to be handed out, and the session it skips.
type Queued = (Outgoing, Option<SessionId>);

/// The sessions of one home.
struct Shard {
    home: Option<Home>,
    sinks: Vec<(SessionId, Arc<dyn SessionSink>)>,
    /// Broadcasts for this home not yet handed out; a task on the home's thread is on its way
    /// whenever this is not empty.
    queued: Mutex<Vec<Queued>>,
    /// Counts hand-outs, to start each at a different session.
    rounds: AtomicU64,
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
                    queued: Mutex::new(Vec::new()),
                    rounds: AtomicU64::new(0),
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
                    let first = {
                        let mut queued = shard.queued.lock();
                        queued.push((message.clone(), except));
                        queued.len() == 1
                    };
                    if first {
                        let (task_shard, undelivered) = (shard.clone(), undelivered.clone());
                        let spawned = home.arbiter.spawn(async move {
                            // Let the thread's ready tasks run first: broadcasts they cause
                            // meanwhile join this hand-out, and each socket gets one write.
                            tokio::task::yield_now().await;
                            let batch = std::mem::take(&mut *task_shard.queued.lock());
                            deliver_all(&task_shard, &batch, &undelivered);
                        });
                        if !spawned {
                            log::debug!("a worker thread is gone; its sessions missed a broadcast");
                            shard.queued.lock().clear();
                        }
                    }
                }
                _ => deliver_all(shard, &[(message.clone(), except)], undelivered),
            }
        }
        handed
    }
}

/// Hands `batch` to every session of `shard`, one session at a time so that each gets the whole
/// batch before its connection runs.
///
/// Each hand-out starts at a different session, spread over the shard, and wraps around: in a
/// fixed order the same sessions would always be written last, a whole fan-out behind the first.
fn deliver_all(shard: &Shard, batch: &[Queued], undelivered: &AtomicU64) {
    let round = shard.rounds.fetch_add(1, Ordering::Relaxed);
    // Fibonacci hashing spreads consecutive rounds over the whole shard.
    let start = (round.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % shard.sinks.len().max(1);
    let (tail, head) = shard.sinks.split_at(start);
    for (id, sink) in head.iter().chain(tail) {
        for (message, except) in batch {
            if Some(*id) != *except && sink.deliver(message).is_err() {
                undelivered.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use crate::message::Message;
    use crate::session::Undelivered;

    /// Records every delivery, in the order they happened, in a log shared by all sessions.
    struct Logger {
        id: SessionId,
        log: Arc<Mutex<Vec<(SessionId, Message)>>>,
        done: mpsc::Sender<()>,
    }

    impl SessionSink for Logger {
        fn deliver(&self, message: &Outgoing) -> Result<(), Undelivered> {
            self.log.lock().push((self.id, message.message().clone()));
            let _ = self.done.send(());
            Ok(())
        }

        fn close(&self, _: u16, _: &str) {}
    }

    /// `count` sessions logging into `log`, each delivery also signalled on `done`.
    fn loggers(
        count: usize,
        log: &Arc<Mutex<Vec<(SessionId, Message)>>>,
        done: &mpsc::Sender<()>,
    ) -> Vec<(SessionId, Arc<dyn SessionSink>)> {
        (0..count)
            .map(|_| {
                let id = SessionId::next();
                let sink = Logger {
                    id,
                    log: log.clone(),
                    done: done.clone(),
                };
                (id, Arc::new(sink) as Arc<dyn SessionSink>)
            })
            .collect()
    }

    #[test]
    fn broadcasts_queued_for_a_busy_thread_reach_each_session_together() {
        let _system = actix_rt::System::new();
        let worker = actix_rt::Arbiter::new();
        let (home_tx, home_rx) = mpsc::channel();
        worker.spawn_fn(move || home_tx.send(Home::current()).unwrap());
        let home = home_rx.recv().unwrap().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (done_tx, done_rx) = mpsc::channel();
        let sinks = loggers(2, &log, &done_tx);
        let fanout = Fanout::new(sinks.iter().map(|(id, sink)| (*id, Some(&home), sink)));

        // Keep the worker busy until both broadcasts are queued.
        let (release_tx, release_rx) = mpsc::channel::<()>();
        worker.spawn_fn(move || release_rx.recv().unwrap());
        let undelivered = Arc::new(AtomicU64::new(0));
        assert_eq!(fanout.deliver(&Outgoing::new("one"), None, &undelivered), 2);
        assert_eq!(fanout.deliver(&Outgoing::new("two"), Some(sinks[1].0), &undelivered), 1);
        release_tx.send(()).unwrap();
        for _ in 0..3 {
            done_rx.recv().unwrap();
        }

        // Session a gets both broadcasts back to back, in order; b, skipped by the second, one.
        let (a, b) = (sinks[0].0, sinks[1].0);
        let a_first = vec![
            (a, Message::from("one")),
            (a, Message::from("two")),
            (b, Message::from("one")),
        ];
        let b_first = vec![
            (b, Message::from("one")),
            (a, Message::from("one")),
            (a, Message::from("two")),
        ];
        let log = log.lock().clone();
        assert!(log == a_first || log == b_first, "{log:?}");
        assert_eq!(undelivered.load(Ordering::Relaxed), 0);
        worker.stop();
    }

    #[test]
    fn hand_outs_do_not_always_start_at_the_same_session() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let (done, _) = mpsc::channel();
        let sinks = loggers(4, &log, &done);
        // No home: delivered on this thread, at once.
        let fanout = Fanout::new(sinks.iter().map(|(id, sink)| (*id, None, sink)));
        let undelivered = Arc::new(AtomicU64::new(0));
        let mut firsts = std::collections::HashSet::new();
        for round in 0..8 {
            log.lock().clear();
            assert_eq!(
                fanout.deliver(&Outgoing::new(format!("{round}")), None, &undelivered),
                4
            );
            let served: Vec<SessionId> = log.lock().iter().map(|(id, _)| *id).collect();
            let mut sorted = served.clone();
            sorted.sort();
            assert_eq!(sorted, sinks.iter().map(|(id, _)| *id).collect::<Vec<_>>(), "each once");
            firsts.insert(served[0]);
        }
        assert!(firsts.len() > 1, "every hand-out started at the same session");
    }
}
