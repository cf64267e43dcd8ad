//! The retry policy: how long to wait before the next attempt, and when to stop.
//!
//! Pure: callers pass the randomness in, so the schedule is tested by table.

use std::time::Duration;

/// Exponential backoff with jitter, capped, and a budget of attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts a delivery gets before it is dead-lettered (the first try counts).
    pub max_attempts: u32,
    /// Delay after the first failed attempt; it doubles with each further failure.
    pub base: Duration,
    /// The backoff never exceeds this (jitter adds up to a quarter on top), and a `Retry-After`
    /// is honoured up to it.
    pub cap: Duration,
}

impl RetryPolicy {
    /// 18 attempts, 5 s doubling to a 6 h cap: the delays grow from 5 s to the cap by the 14th
    /// failure, and the whole schedule spans ~35 hours before a delivery is dead-lettered, enough
    /// to ride out a receiver that is down for a day.
    pub const DEFAULT: Self = Self {
        max_attempts: 18,
        base: Duration::from_secs(5),
        cap: Duration::from_secs(6 * 3600),
    };

    /// The backoff before attempt `failed_attempts + 1`, without jitter.
    /// `failed_attempts` counts from 1 (after the first failure the delay is `base`).
    pub fn backoff(&self, failed_attempts: u32) -> Duration {
        let exponent = failed_attempts.saturating_sub(1).min(40);
        let factor = 1u64 << exponent;
        let base_ms = u64::try_from(self.base.as_millis()).unwrap_or(u64::MAX);
        let cap_ms = u64::try_from(self.cap.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(base_ms.saturating_mul(factor).min(cap_ms))
    }

    /// The delay before the next attempt: min(base × 2^(n-1), cap) plus jitter. `jitter` in
    /// `[0, 1)` adds up to a quarter of the backoff, so receivers recovering from an outage are
    /// not hit by a synchronized wave (at the cap too). A `Retry-After` from the receiver wins
    /// when it asks for longer, up to the cap.
    pub fn next_delay(
        &self,
        failed_attempts: u32,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Duration {
        let backoff = self.backoff(failed_attempts);
        let delay = backoff + backoff.mul_f64(jitter.clamp(0.0, 1.0) * 0.25);
        match retry_after {
            Some(asked) => delay.max(asked.min(self.cap)),
            None => delay,
        }
    }

    /// Whether a delivery that has failed `failed_attempts` times in its current budget may try
    /// again.
    pub fn allows_another(&self, failed_attempts: u32) -> bool {
        failed_attempts < self.max_attempts
    }

    /// How long the whole schedule lasts without jitter, from the first attempt to the last.
    pub fn span(&self) -> Duration {
        (1..self.max_attempts).map(|n| self.backoff(n)).sum()
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn backoff_doubles_then_caps() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base: MS(100),
            cap: MS(1000),
        };
        let table = [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (60, 1000),
        ];
        for (failed, expected) in table {
            assert_eq!(
                policy.backoff(failed),
                MS(expected),
                "after {failed} failures"
            );
        }
    }

    #[test]
    fn jitter_adds_at_most_a_quarter_and_retry_after_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base: MS(100),
            cap: MS(1000),
        };
        let table = [
            (1, 0.0, None, 100),
            (1, 0.999_999, None, 124),
            (3, 0.5, None, 450),
            (5, 0.9, None, 1225),
            (9, 0.0, None, 1000),
            (1, 0.0, Some(MS(700)), 700),
            (1, 0.0, Some(MS(50)), 100),
            (1, 0.0, Some(Duration::from_secs(3600)), 1000),
            (4, 0.5, Some(MS(500)), 900),
        ];
        for (failed, jitter, retry_after, expected) in table {
            let delay = policy.next_delay(failed, retry_after, jitter);
            assert_eq!(
                delay.as_millis(),
                expected,
                "failed={failed} jitter={jitter} retry_after={retry_after:?}"
            );
        }
    }

    #[test]
    fn budget_counts_the_first_try() {
        let policy = RetryPolicy {
            max_attempts: 3,
            base: MS(1),
            cap: MS(1),
        };
        assert!(policy.allows_another(1));
        assert!(policy.allows_another(2));
        assert!(!policy.allows_another(3));
    }

    #[test]
    fn default_schedule_rides_out_a_day_of_outage() {
        let span = RetryPolicy::DEFAULT.span();
        assert!(span > Duration::from_secs(24 * 3600), "span is {span:?}");
    }
}
