//! A token bucket on the caller's clock, for answers a peer can ask for as
//! fast as it can send (Echo-Requests): at most `burst` at once, then one
//! per `interval`.

use std::time::{Duration, Instant};

/// `burst` tokens, one more every `interval`, never more than `burst`.
#[derive(Clone, Copy, Debug)]
pub struct TokenBucket {
    burst: u32,
    interval: Duration,
    tokens: u32,
    /// When the tokens were last counted; `None` until the first take.
    counted_at: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket. A zero `interval` refills it at every take: no
    /// limit.
    pub fn new(burst: u32, interval: Duration) -> Self {
        TokenBucket {
            burst,
            interval,
            tokens: burst,
            counted_at: None,
        }
    }

    /// Takes a token if there is one at `now`. A `now` earlier than a
    /// previous one counts as no time passed.
    pub fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }

    fn refill(&mut self, now: Instant) {
        let Some(counted_at) = self.counted_at else {
            self.counted_at = Some(now);
            return;
        };
        let elapsed = now.saturating_duration_since(counted_at);
        if self.interval.is_zero() {
            self.tokens = self.burst;
            self.counted_at = Some(now);
            return;
        }
        let earned = elapsed.as_nanos() / self.interval.as_nanos();
        if earned == 0 {
            return;
        }
        let room = u128::from(self.burst - self.tokens);
        if earned >= room {
            self.tokens = self.burst;
            self.counted_at = Some(now);
        } else {
            // `earned < burst`, so the cast and the product are exact;
            // what is left of the elapsed time counts toward the next one.
            self.tokens += earned as u32;
            self.counted_at = Some(counted_at + self.interval * earned as u32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_per_interval_and_never_more_than_the_burst() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut bucket = TokenBucket::new(3, ms(100));
        assert_eq!((0..5).filter(|_| bucket.take(t0)).count(), 3);
        assert!(!bucket.take(t0 + ms(99)));
        assert!(bucket.take(t0 + ms(100)));
        assert!(!bucket.take(t0 + ms(150)));
        // The 50 ms since the last token count toward the next.
        assert!(bucket.take(t0 + ms(200)));
        // A long silence refills to the burst, no more.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!((0..5).filter(|_| bucket.take(later)).count(), 3);
        // Time going backwards earns nothing and breaks nothing.
        assert!(!bucket.take(t0));
        let mut unlimited = TokenBucket::new(2, Duration::ZERO);
        assert_eq!((0..5).filter(|_| unlimited.take(t0)).count(), 5);
        let mut none = TokenBucket::new(0, ms(1));
        assert!(!none.take(later));
    }
}
