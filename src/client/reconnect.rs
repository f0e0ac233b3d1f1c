//! Automatic reconnection with exponential backoff and jitter.

use std::time::Duration;

use super::ClientBuilder;
use crate::protocol::random_mask;
use crate::socket::WebSocket;

/// When and how often a dropped client connection is reopened.
///
/// A connection counts as dropped when it closes without this side asking (`close`,
/// `close_with`): the server went away, the network failed, keepalive gave up. Attempt `n` waits
/// `initial_delay * 2^(n-1)`, capped at `max_delay`, then scaled by a random factor in `[0.5, 1]`
/// so that many clients dropped together do not return together.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reconnect {
    /// Wait before the first attempt (default 500 ms).
    pub initial_delay: Duration,
    /// The longest wait between attempts (default 30 s).
    pub max_delay: Duration,
    /// Give up after this many failed attempts in a row; `None` (default) never gives up.
    pub max_attempts: Option<u32>,
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect {
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_attempts: None,
        }
    }
}

impl Reconnect {
    /// The wait before attempt `attempt` (1-based), with jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        let base = self.initial_delay.saturating_mul(1u32 << doublings).min(self.max_delay);
        let random = u32::from_le_bytes(random_mask());
        base.mul_f64(0.5 + 0.5 * f64::from(random) / f64::from(u32::MAX))
    }
}

/// Watches `ws`; when it drops, reconnects with `builder` until it succeeds or the policy gives
/// up, then watches the new connection.
pub(super) async fn keep_connected(builder: ClientBuilder, policy: Reconnect, mut ws: WebSocket) {
    loop {
        let code = ws.closed().await;
        if ws.shared.outbound.closed_by_user() {
            return;
        }
        log::info!("client connection to {} dropped ({code}); reconnecting", builder.url);
        let mut attempt = 0;
        ws = loop {
            attempt += 1;
            if policy.max_attempts.is_some_and(|max| attempt > max) {
                log::warn!("giving up on {} after {} attempts", builder.url, attempt - 1);
                return;
            }
            tokio::time::sleep(policy.delay(attempt)).await;
            match builder.open().await {
                Ok(new) => break new,
                Err(error) => log::info!("reconnect attempt {attempt} to {} failed: {error}", builder.url),
            }
        };
        log::info!("client reconnected to {} after {attempt} attempts", builder.url);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_with_jitter() {
        let policy = Reconnect {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_attempts: None,
        };
        for (attempt, full) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (40, 1000)] {
            let delay = policy.delay(attempt).as_millis();
            assert!(delay >= full / 2 && delay <= full, "attempt {attempt}: {delay} ms");
        }
    }
}
