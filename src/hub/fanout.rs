//! Broadcast fan-out grouped by the thread that owns each session.
//!
//! Profiling the broadcast benchmark showed the supervisor spending its time waking sessions one
//! by one across threads: each delivery from the supervisor's thread pushed a frame and woke a
//! connection task living on a worker thread. A fan-out instead sends one task per worker
//! thread, which queues the frame for all that worker's sessions locally, so a broadcast to N
//! sessions on W workers costs W cross-thread wakes instead of N. The grouping of a route's (or a
//! room's) sessions is cached until its membership changes.
//!
//! Broadcasts bound for a thread wait in its shard's queue until that thread's task runs, and the
//! task hands out everything queued by then, session by session. Under light load that is one
//! message; under load, several broadcasts reach each session together, so its connection wakes
//! once and writes them in one go, instead of once per message. That queue is bounded
//! ([`SHARD_BACKLOG_MAX`]): a worker thread too busy to take its broadcasts loses the newest ones,
//! counted as [`DropReason::Backlog`], rather than making the process hold them without limit.

use std::borrow::Borrow;
use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::ThreadId;

use actix_rt::ArbiterHandle;
use parking_lot::Mutex;

use super::session::{SessionId, SessionSink};
use super::supervisor::Session;
use crate::message::Outgoing;
use crate::metrics::{DropReason, Metrics};

/// Broadcasts that may wait for one worker thread. A healthy worker takes its queue within
/// microseconds, so thousands waiting means it is stuck or overloaded; each one holds only a
/// shared message, so the bound keeps a stuck worker's backlog to a few hundred kilobytes.
pub(crate) const SHARD_BACKLOG_MAX: usize = 4096;

/// The actix arbiter (thread) a session's connection runs on.
#[derive(Debug, Clone)]
pub(crate) struct Home {
    thread: ThreadId,
    arbiter: ArbiterHandle,
}

impl Home {
    /// The arbiter of the calling thread, if it is one.
    pub(crate) fn current() -> Option<Home> {
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

/// A route's or a room's sessions, grouped by home.
pub(crate) struct Fanout {
    shards: Vec<Arc<Shard>>,
}

impl Fanout {
    /// The fan-out cached under `name` (a route or a room), built by `build` and kept under
    /// `key()` on a miss. Looked up before inserting, so that a hit, every broadcast but the first
    /// after a membership change, allocates no key.
    pub(crate) fn cached<K: Borrow<str> + Hash + Eq>(
        cache: &mut HashMap<K, Arc<Fanout>>,
        name: &str,
        key: impl FnOnce() -> K,
        build: impl FnOnce() -> Fanout,
    ) -> Arc<Fanout> {
        if let Some(fanout) = cache.get(name) {
            return fanout.clone();
        }
        let fanout = Arc::new(build());
        cache.insert(key(), fanout.clone());
        fanout
    }

    /// Groups the sessions named in `ids` by home.
    pub(crate) fn of(ids: &BTreeSet<SessionId>, sessions: &HashMap<SessionId, Box<Session>>) -> Fanout {
        Fanout::new(
            ids.iter()
                .filter_map(|id| sessions.get(id).map(|s| (*id, s.home.as_ref(), &s.sink))),
        )
    }

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
    /// task on their own thread. Answers how many sessions it was handed to; deliveries that are
    /// refused (closed or full sessions) or dropped (a worker's backlog is full) are counted in
    /// `metrics`.
    pub(crate) fn deliver(&self, message: &Outgoing, except: Option<SessionId>, metrics: &Arc<Metrics>) -> usize {
        let here = std::thread::current().id();
        let mut handed = 0;
        for shard in &self.shards {
            let recipients = shard.sinks.iter().filter(|(id, _)| Some(*id) != except).count();
            match &shard.home {
                Some(home) if home.thread != here => {
                    if shard.enqueue(home, message, except, metrics) {
                        handed += recipients;
                    } else {
                        metrics.undelivered(DropReason::Backlog, recipients as u64);
                    }
                }
                _ => {
                    deliver_all(shard, &[(message.clone(), except)], metrics);
                    handed += recipients;
                }
            }
        }
        handed
    }
}

impl Shard {
    /// Queues a broadcast for this shard's thread, starting its task if none is on its way.
    /// Answers `false` when the backlog is full or the thread is gone: the broadcast is dropped.
    fn enqueue(
        self: &Arc<Self>,
        home: &Home,
        message: &Outgoing,
        except: Option<SessionId>,
        metrics: &Arc<Metrics>,
    ) -> bool {
        let first = {
            let mut queued = self.queued.lock();
            if queued.len() >= SHARD_BACKLOG_MAX {
                log::debug!("a worker thread has {} broadcasts waiting; dropping one", queued.len());
                return false;
            }
            queued.push((message.clone(), except));
            queued.len() == 1
        };
        if !first {
            return true;
        }
        let (shard, metrics) = (self.clone(), metrics.clone());
        let spawned = home.arbiter.spawn(async move {
            // Let the thread's ready tasks run first: broadcasts they cause meanwhile join this
            // hand-out, and each socket gets one write.
            tokio::task::yield_now().await;
            let batch = std::mem::take(&mut *shard.queued.lock());
            deliver_all(&shard, &batch, &metrics);
        });
        if !spawned {
            log::debug!("a worker thread is gone; its sessions missed a broadcast");
            self.queued.lock().clear();
        }
        spawned
    }
}

/// Hands `batch` to every session of `shard`, one session at a time so that each gets the whole
/// batch before its connection runs.
///
/// Each hand-out starts at a different session, spread over the shard, and wraps around: in a
/// fixed order the same sessions would always be written last, a whole fan-out behind the first.
fn deliver_all(shard: &Shard, batch: &[Queued], metrics: &Metrics) {
    let round = shard.rounds.fetch_add(1, Ordering::Relaxed);
    // Fibonacci hashing spreads consecutive rounds over the whole shard.
    let start = (round.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % shard.sinks.len().max(1);
    let (tail, head) = shard.sinks.split_at(start);
    for (id, sink) in head.iter().chain(tail) {
        for (message, except) in batch {
            if Some(*id) != *except {
                if let Err(reason) = sink.deliver(message) {
                    metrics.undelivered(reason.into(), 1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use crate::hub::Undelivered;
    use crate::message::Message;
    use crate::protocol::CloseFrame;

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

        fn close(&self, _: &CloseFrame) {}
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

    /// A worker thread held busy until the answered sender is used (or dropped), and its home.
    fn busy_worker() -> (actix_rt::Arbiter, Home, mpsc::Sender<()>) {
        let worker = actix_rt::Arbiter::new();
        let (home_tx, home_rx) = mpsc::channel();
        worker.spawn_fn(move || home_tx.send(Home::current()).unwrap());
        let home = home_rx.recv().unwrap().unwrap();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        worker.spawn_fn(move || {
            let _ = release_rx.recv();
        });
        (worker, home, release_tx)
    }

    #[test]
    fn broadcasts_queued_for_a_busy_thread_reach_each_session_together() {
        let _system = actix_rt::System::new();
        // Keep the worker busy until both broadcasts are queued.
        let (worker, home, release_tx) = busy_worker();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (done_tx, done_rx) = mpsc::channel();
        let sinks = loggers(2, &log, &done_tx);
        let fanout = Fanout::new(sinks.iter().map(|(id, sink)| (*id, Some(&home), sink)));
        let metrics = Arc::new(Metrics::default());
        assert_eq!(fanout.deliver(&Outgoing::new("one"), None, &metrics), 2);
        assert_eq!(fanout.deliver(&Outgoing::new("two"), Some(sinks[1].0), &metrics), 1);
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
        assert_eq!(metrics.snapshot().undelivered.values().sum::<u64>(), 0);
        worker.stop();
    }

    #[test]
    fn a_stuck_worker_thread_holds_a_bounded_backlog_and_the_rest_is_counted() {
        let _system = actix_rt::System::new();
        let (worker, home, release_tx) = busy_worker();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (done_tx, _done_rx) = mpsc::channel();
        let sinks = loggers(2, &log, &done_tx);
        let fanout = Fanout::new(sinks.iter().map(|(id, sink)| (*id, Some(&home), sink)));
        let metrics = Arc::new(Metrics::default());
        const EXTRA: usize = 5;
        let mut handed = 0;
        for i in 0..SHARD_BACKLOG_MAX + EXTRA {
            handed += fanout.deliver(&Outgoing::new(format!("{i}")), None, &metrics);
        }
        assert_eq!(
            handed,
            2 * SHARD_BACKLOG_MAX,
            "each session was handed the backlog's worth"
        );
        let snapshot = metrics.snapshot();
        assert_eq!(
            snapshot.undelivered.get(&DropReason::Backlog),
            Some(&(2 * EXTRA as u64))
        );
        assert!(fanout.shards.iter().all(|s| s.queued.lock().len() <= SHARD_BACKLOG_MAX));
        release_tx.send(()).unwrap();
        worker.stop();
    }

    #[test]
    fn hand_outs_do_not_always_start_at_the_same_session() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let (done, _) = mpsc::channel();
        let sinks = loggers(4, &log, &done);
        // No home: delivered on this thread, at once.
        let fanout = Fanout::new(sinks.iter().map(|(id, sink)| (*id, None, sink)));
        let metrics = Arc::new(Metrics::default());
        let mut firsts = std::collections::HashSet::new();
        for round in 0..8 {
            log.lock().clear();
            assert_eq!(fanout.deliver(&Outgoing::new(format!("{round}")), None, &metrics), 4);
            let served: Vec<SessionId> = log.lock().iter().map(|(id, _)| *id).collect();
            let mut sorted = served.clone();
            sorted.sort();
            assert_eq!(sorted, sinks.iter().map(|(id, _)| *id).collect::<Vec<_>>(), "each once");
            firsts.insert(served[0]);
        }
        assert!(firsts.len() > 1, "every hand-out started at the same session");
    }
}
