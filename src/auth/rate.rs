//! The per-key request rate: a token bucket for each caller, refilled continuously.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// How fast one key may call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per second, sustained.
    pub per_second: u32,
    /// Requests a key may make at once after a quiet spell.
    pub burst: u32,
}

/// Counts each caller's requests against its [`RateLimit`].
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    /// Only callers the gate has let in get a bucket, so there are at most as many as keys.
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

impl RateLimiter {
    /// A limiter giving every caller `limit`.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::default(),
        }
    }

    /// The limit each caller gets.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Takes one request from `caller`'s bucket at `now`, or says how long until it holds
    /// one again.
    pub fn try_acquire(&self, caller: &str, now: Instant) -> Result<(), Duration> {
        let rate = f64::from(self.limit.per_second.max(1));
        let burst = f64::from(self.limit.burst.max(1));
        // A panic elsewhere while the map was held leaves it whole: take it back.
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = buckets.entry(caller.to_owned()).or_insert(Bucket {
            tokens: burst,
            refilled_at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.refilled_at);
        bucket.tokens = (bucket.tokens + elapsed.as_secs_f64() * rate).min(burst);
        bucket.refilled_at = now.max(bucket.refilled_at);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_burst_then_its_rate_and_other_keys_are_not_charged() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 10,
            burst: 5,
        });
        let start = Instant::now();
        for _ in 0..5 {
            limiter.try_acquire("key_a", start).unwrap();
        }
        let wait = limiter.try_acquire("key_a", start).unwrap_err();
        assert!(
            wait > Duration::from_millis(90) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        // Another key has its own bucket.
        limiter.try_acquire("key_b", start).unwrap();
        // 100 ms at 10/s buys exactly one more.
        let later = start + Duration::from_millis(100);
        limiter.try_acquire("key_a", later).unwrap();
        assert!(limiter.try_acquire("key_a", later).is_err());
        // A long quiet spell refills to the burst, no further.
        let much_later = later + Duration::from_secs(60);
        for _ in 0..5 {
            limiter.try_acquire("key_a", much_later).unwrap();
        }
        assert!(limiter.try_acquire("key_a", much_later).is_err());
    }

    #[test]
    fn a_clock_read_out_of_order_takes_nothing_extra() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 1,
            burst: 1,
        });
        let start = Instant::now() + Duration::from_secs(1);
        limiter.try_acquire("key", start).unwrap();
        // An earlier instant (two threads racing to the lock) neither refills nor panics.
        assert!(
            limiter
                .try_acquire("key", start - Duration::from_millis(500))
                .is_err()
        );
    }
}
