//! [`Alarm`]: the one tokio timer a connection's task sleeps on, armed for its state's next
//! deadline. Both drivers use it.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Instant;

use tokio::time::Sleep;

/// The timer, boxed: an idle connection holds one.
#[derive(Debug, Default)]
pub(super) struct Alarm(Option<Pin<Box<Sleep>>>);

impl Alarm {
    /// Arms the timer for `deadline` (`None` lets it go) and answers whether it has passed; when
    /// it has not, the task wakes when it does.
    pub(super) fn poll(&mut self, deadline: Option<Instant>, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = deadline else {
            self.0 = None;
            return false;
        };
        let deadline = tokio::time::Instant::from_std(deadline);
        let timer = match &mut self.0 {
            Some(timer) => {
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                timer
            }
            None => self.0.insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        timer.as_mut().poll(cx).is_ready()
    }
}
