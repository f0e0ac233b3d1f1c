use std::sync::mpsc;
use std::sync::Arc;

use actix::Actor;

use super::supervisor::{Supervisor, MAILBOX_CAPACITY};
use super::{Hub, HubError};
use crate::metrics::Metrics;

#[test]
fn try_publish_is_refused_and_counted_while_the_supervisor_is_busy() {
    let system = actix_rt::System::new();
    let arbiter = actix_rt::Arbiter::new();
    let metrics = Arc::new(Metrics::default());
    let counted = metrics.clone();
    let addr = Supervisor::start_in_arbiter(&arbiter.handle(), move |_| Supervisor::new(counted));
    let hub = Hub {
        addr,
        metrics,
        actors: Arc::default(),
    };
    // A round trip: the supervisor has started (and set its mailbox capacity).
    system.block_on(hub.routes()).unwrap();
    let (blocked_tx, blocked_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    arbiter.spawn_fn(move || {
        blocked_tx.send(()).unwrap();
        release_rx.recv().unwrap();
    });
    blocked_rx.recv().unwrap();
    let mut accepted = 0;
    while hub.try_publish("/r", "x").is_ok() {
        accepted += 1;
        assert!(accepted <= 2 * MAILBOX_CAPACITY, "the mailbox took {accepted} messages");
    }
    assert_eq!(hub.try_publish("/r", "x"), Err(HubError::Full));
    // futures' channel semantics: the capacity, plus one slot per sender.
    assert!(
        (MAILBOX_CAPACITY..=MAILBOX_CAPACITY + 1).contains(&accepted),
        "{accepted}"
    );
    assert_eq!(hub.metrics.snapshot().hub_refusals, 2);
    release_tx.send(()).unwrap();
    // Once the supervisor has caught up, publishing works again.
    system.block_on(hub.routes()).unwrap();
    assert_eq!(hub.try_publish("/r", "x"), Ok(()));
    arbiter.stop();
}
