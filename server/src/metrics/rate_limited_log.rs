//! Rate-limited log lines for events that can repeat without bound
//! (refused connections, dropped datagrams): the event counters
//! have every occurrence; the log gets at most one line per interval.

use std::time::{Duration, Instant};

/// At most one log line per interval for a repeating event, with the
/// number of occurrences not logged since the last line. The counters have
/// them all; the log stays readable under a flood.
#[derive(Debug)]
pub struct RateLimitedLog {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    /// At most one line per `interval`.
    pub const fn new(interval: Duration) -> Self {
        RateLimitedLog {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(occurrences not logged since the last line)` when a line is
    /// due.
    pub fn due(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < self.interval)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}
