//! A connection's clocks: keepalive, idle, close and write deadlines, as values.
//!
//! [`Timers::due`] is asked with the time, and answers what is due. The connection asks on every
//! chunk it reads as well as when its one timer fires: a peer that floods the connection keeps
//! its actor busy, and under such a flood actix's timers were seen not to fire for over a second
//! while the deadlines passed (tests/hostile.rs, the ping flood).

use std::num::NonZeroU64;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::config::Config;

/// What is due now, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// The close handshake (or a failed connection's last write) ran out of time: drop it.
    CloseTimeout,
    /// No answer to a keepalive ping within the pong timeout.
    KeepaliveTimeout,
    /// Look whether the queue moved (transports that do not see the socket).
    WriteCheck,
    /// A write has waited `write_timeout` without the socket taking a byte.
    WriteTimeout,
    /// No message within the idle timeout: close with 1001.
    Idle,
    /// Send keepalive ping number `n` (its payload).
    Ping(u64),
}

/// The deadlines of one connection. The durations come from the connection's [`Config`], passed
/// in on each call rather than copied here: every idle connection holds one of these, which is
/// also why its points in time are [`Tick`]s.
#[derive(Debug)]
pub(crate) struct Timers {
    /// Whether the queue's progress is checked (transports that do not see the socket).
    watch_writes: bool,
    /// The idle clock runs (it stops once the connection is closing).
    idle: bool,
    next_ping: Option<Tick>,
    /// Keepalive pings sent; each carries its number (as 8 bytes), which the peer's pong must
    /// echo. 32 bits keep `Timers` at 56 bytes; at one ping a second they last 136 years, and
    /// past that the count stays at its maximum, still echoed.
    pings: u32,
    /// Since when a keepalive ping has waited for its answer.
    unanswered_since: Option<Tick>,
    last_message: Tick,
    close_deadline: Option<Tick>,
    next_write_check: Option<Tick>,
    /// Since when the socket has taken no byte of what waits to be written.
    write_stalled_since: Option<Tick>,
}

/// A point in time as nanoseconds since the process's [`epoch`], plus one: never zero, so an
/// `Option<Tick>` takes 8 bytes where an `Option<Instant>` takes 16. With six of them a
/// connection's task fits tokio's 512-byte size class instead of 640 (`driver.rs`). 64 bits of
/// nanoseconds last 584 years.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Tick(NonZeroU64);

/// How far before the first connection the epoch lies, so that every instant a test or a
/// connection passes in comes after it (instants before it would count as the epoch itself).
const EPOCH_BACKDATE: Duration = Duration::from_secs(24 * 60 * 60);

/// The time origin of every [`Tick`]: a day before the first clock was read (or that first
/// reading itself, where the monotonic clock cannot go back a day).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(|| {
        let now = Instant::now();
        now.checked_sub(EPOCH_BACKDATE).unwrap_or(now)
    })
}

impl Tick {
    fn at(instant: Instant) -> Tick {
        let nanos = instant.saturating_duration_since(epoch()).as_nanos();
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX - 1);
        Tick(NonZeroU64::MIN.saturating_add(nanos))
    }

    fn instant(self) -> Instant {
        epoch() + Duration::from_nanos(self.0.get() - 1)
    }

    fn plus(self, duration: Duration) -> Tick {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        Tick(self.0.saturating_add(nanos))
    }
}

/// How many times per write timeout a transport that does not see the socket looks whether its
/// queue moved: it notices a stall within a quarter of the timeout after it passes.
const WRITE_CHECKS_PER_TIMEOUT: u32 = 4;

/// Every how long the queue's progress is checked, on transports that need it.
fn write_check(config: &Config, watch_writes: bool) -> Option<Duration> {
    config
        .write_timeout
        .filter(|_| watch_writes)
        .map(|t| t / WRITE_CHECKS_PER_TIMEOUT)
}

impl Timers {
    /// The clocks of a connection opened at `now`; `watch_writes` for transports that cannot
    /// time their writes themselves.
    pub(crate) fn new(config: &Config, now: Instant, watch_writes: bool) -> Timers {
        Timers {
            watch_writes,
            idle: true,
            next_ping: config.ping_interval.map(|i| Tick::at(now).plus(i)),
            pings: 0,
            unanswered_since: None,
            last_message: Tick::at(now),
            close_deadline: None,
            next_write_check: write_check(config, watch_writes).map(|c| Tick::at(now).plus(c)),
            write_stalled_since: None,
        }
    }

    /// A text or binary message arrived: the idle clock starts again.
    pub(crate) fn message(&mut self, now: Instant) {
        self.last_message = Tick::at(now);
    }

    /// A pong arrived. If it echoes one of our keepalive pings (their numbers run from 1 to the
    /// last sent), the peer read it: the keepalive is answered. Other pongs (unsolicited ones,
    /// answers to the application's own pings) prove nothing about reading.
    pub(crate) fn pong(&mut self, payload: &[u8]) {
        let echoed = <[u8; 8]>::try_from(payload).map(u64::from_be_bytes);
        if echoed.is_ok_and(|n| (1..=u64::from(self.pings)).contains(&n)) {
            self.unanswered_since = None;
        }
    }

    /// The connection started closing (or failed) at `now`: it must be gone by the close timeout.
    /// Keepalive and idle stop; a later call keeps the first deadline.
    pub(crate) fn closing(&mut self, config: &Config, now: Instant) {
        self.close_deadline
            .get_or_insert(Tick::at(now).plus(config.close_timeout));
        self.next_ping = None;
        self.unanswered_since = None;
        self.idle = false;
    }

    /// A write is waiting for the socket at `now` (the first such `now` counts).
    pub(crate) fn write_blocked(&mut self, now: Instant) {
        self.write_stalled_since.get_or_insert(Tick::at(now));
    }

    /// The socket took bytes, or nothing waits for it any more.
    pub(crate) fn write_moved(&mut self) {
        self.write_stalled_since = None;
    }

    /// The most urgent thing due at `now`, if any. Each is answered once: a timeout is taken, a
    /// ping or a write check schedules the next one.
    pub(crate) fn due(&mut self, config: &Config, now: Instant) -> Option<Due> {
        let now = Tick::at(now);
        if self.close_deadline.is_some_and(|d| now >= d) {
            self.close_deadline = None;
            return Some(Due::CloseTimeout);
        }
        if self
            .unanswered_since
            .is_some_and(|since| now >= since.plus(config.pong_timeout))
        {
            self.unanswered_since = None;
            self.next_ping = None;
            return Some(Due::KeepaliveTimeout);
        }
        if let (Some(since), Some(timeout)) = (self.write_stalled_since, config.write_timeout) {
            if now >= since.plus(timeout) {
                self.write_stalled_since = None;
                return Some(Due::WriteTimeout);
            }
        }
        if let (Some(at), Some(every)) = (self.next_write_check, write_check(config, self.watch_writes)) {
            if now >= at {
                self.next_write_check = Some(now.plus(every));
                return Some(Due::WriteCheck);
            }
        }
        if self.idle_deadline(config).is_some_and(|deadline| now >= deadline) {
            self.idle = false;
            return Some(Due::Idle);
        }
        if let (Some(at), Some(every)) = (self.next_ping, config.ping_interval) {
            if now >= at {
                self.next_ping = Some(now.plus(every));
                self.pings = self.pings.saturating_add(1);
                self.unanswered_since.get_or_insert(now);
                return Some(Due::Ping(u64::from(self.pings)));
            }
        }
        None
    }

    fn idle_deadline(&self, config: &Config) -> Option<Tick> {
        config
            .idle_timeout
            .filter(|_| self.idle)
            .map(|idle| self.last_message.plus(idle))
    }

    /// When something is next due, for the connection's timer.
    pub(crate) fn next_deadline(&self, config: &Config) -> Option<Instant> {
        [
            self.close_deadline,
            self.unanswered_since.map(|since| since.plus(config.pong_timeout)),
            self.next_write_check,
            self.write_stalled_since
                .zip(config.write_timeout)
                .map(|(since, t)| since.plus(t)),
            self.idle_deadline(config),
            self.next_ping,
        ]
        .into_iter()
        .flatten()
        .min()
        .map(Tick::instant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config {
            ping_interval: Some(Duration::from_secs(10)),
            pong_timeout: Duration::from_secs(5),
            close_timeout: Duration::from_secs(2),
            write_timeout: Some(Duration::from_secs(8)),
            ..Config::default()
        }
    }

    fn secs(start: Instant, s: u64) -> Instant {
        start + Duration::from_secs(s)
    }

    #[test]
    fn a_tick_is_8_bytes_and_keeps_an_instant_to_the_nanosecond() {
        assert_eq!(size_of::<Option<Tick>>(), 8);
        let now = Instant::now();
        assert_eq!(Tick::at(now).instant(), now);
        let later = now + Duration::from_millis(1500);
        assert_eq!(Tick::at(now).plus(Duration::from_millis(1500)), Tick::at(later));
        assert!(Tick::at(now) < Tick::at(later));
    }

    #[test]
    fn timeouts_too_long_to_add_to_an_instant_mean_never() {
        let config = Config {
            ping_interval: Some(Duration::MAX),
            pong_timeout: Duration::MAX,
            close_timeout: Duration::MAX,
            write_timeout: Some(Duration::MAX),
            idle_timeout: Some(Duration::MAX),
            ..Config::default()
        };
        let t0 = Instant::now();
        let mut timers = Timers::new(&config, t0, true);
        timers.write_blocked(t0);
        assert_eq!(timers.due(&config, secs(t0, 1_000_000)), None);
        timers.closing(&config, t0);
        assert_eq!(timers.due(&config, secs(t0, 1_000_000)), None);
        assert!(timers.next_deadline(&config).is_some_and(|d| d > secs(t0, 1_000_000)));
    }

    #[test]
    fn a_peer_that_answers_each_ping_stays_and_one_that_does_not_times_out() {
        let (config, t0) = (config(), Instant::now());
        let mut timers = Timers::new(&config, t0, false);
        assert_eq!(timers.due(&config, secs(t0, 9)), None);
        assert_eq!(timers.next_deadline(&config), Some(secs(t0, 10)));
        for round in 1..=5u64 {
            let at = secs(t0, 10 * round);
            assert_eq!(timers.due(&config, at), Some(Due::Ping(round)));
            assert_eq!(timers.due(&config, at), None, "the ping is taken");
            timers.pong(&round.to_be_bytes());
        }
        // Pongs that echo no ping of ours prove nothing.
        assert_eq!(timers.due(&config, secs(t0, 60)), Some(Due::Ping(6)));
        timers.pong(b"unsolicited");
        timers.pong(&7u64.to_be_bytes());
        assert_eq!(timers.due(&config, secs(t0, 64)), None);
        assert_eq!(timers.next_deadline(&config), Some(secs(t0, 65)));
        assert_eq!(timers.due(&config, secs(t0, 65)), Some(Due::KeepaliveTimeout));
        assert_eq!(timers.due(&config, secs(t0, 66)), None, "a timeout is answered once");
    }

    #[test]
    fn a_message_resets_the_idle_clock() {
        let config = Config {
            ping_interval: None,
            idle_timeout: Some(Duration::from_secs(30)),
            ..config()
        };
        let t0 = Instant::now();
        let mut timers = Timers::new(&config, t0, false);
        timers.message(secs(t0, 20));
        assert_eq!(timers.due(&config, secs(t0, 45)), None);
        assert_eq!(timers.next_deadline(&config), Some(secs(t0, 50)));
        assert_eq!(timers.due(&config, secs(t0, 50)), Some(Due::Idle));
        assert_eq!(timers.due(&config, secs(t0, 51)), None, "a timeout is answered once");
    }

    #[test]
    fn closing_keeps_the_first_deadline_and_stops_the_other_clocks() {
        let config = Config {
            idle_timeout: Some(Duration::from_secs(1)),
            ..config()
        };
        let t0 = Instant::now();
        let mut timers = Timers::new(&config, t0, false);
        timers.closing(&config, t0);
        timers.closing(&config, secs(t0, 1));
        assert_eq!(
            timers.due(&config, secs(t0, 1)),
            None,
            "no idle close, no ping while closing"
        );
        assert_eq!(timers.next_deadline(&config), Some(secs(t0, 2)));
        assert_eq!(timers.due(&config, secs(t0, 2)), Some(Due::CloseTimeout));
        assert_eq!(timers.due(&config, secs(t0, 3)), None, "a timeout is answered once");
    }

    #[test]
    fn a_write_stalled_for_the_write_timeout_is_due_and_progress_resets_it() {
        let config = Config {
            ping_interval: None,
            ..config()
        };
        let t0 = Instant::now();
        let mut timers = Timers::new(&config, t0, false);
        timers.write_blocked(secs(t0, 1));
        timers.write_blocked(secs(t0, 5));
        assert_eq!(timers.next_deadline(&config), Some(secs(t0, 9)));
        timers.write_moved();
        timers.write_blocked(secs(t0, 6));
        assert_eq!(timers.due(&config, secs(t0, 13)), None);
        assert_eq!(timers.due(&config, secs(t0, 14)), Some(Due::WriteTimeout));
        assert_eq!(timers.due(&config, secs(t0, 15)), None, "a timeout is answered once");
    }

    #[test]
    fn write_checks_come_only_where_asked() {
        let (config, t0) = (config(), Instant::now());
        let mut watched = Timers::new(&config, t0, true);
        assert_eq!(watched.due(&config, secs(t0, 2)), Some(Due::WriteCheck));
        assert_eq!(watched.due(&config, secs(t0, 3)), None);
        assert_eq!(watched.due(&config, secs(t0, 4)), Some(Due::WriteCheck));
        let mut unwatched = Timers::new(&config, t0, false);
        assert_eq!(unwatched.due(&config, secs(t0, 9)), None);
    }
}
