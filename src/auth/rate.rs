//! Token buckets, refilled continuously: the per-key request rate, and the per-peer budget
//! of failed authentications.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::Mutex,
    time::{Duration, Instant},
};

/// How fast one caller may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Events per second, sustained.
    pub per_second: u32,
    /// Events at once after a quiet spell.
    pub burst: u32,
}

/// Counts each caller's events against its [`RateLimit`], keyed by `K` (an API key's name,
/// a peer's address).
#[derive(Debug)]
pub struct RateLimiter<K = String> {
    limit: RateLimit,
    /// Most buckets kept. When full, buckets that have refilled (their caller has been quiet
    /// for a whole burst) are dropped first: forgetting them changes nothing.
    capacity: usize,
    buckets: Mutex<HashMap<K, Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// A limiter giving every caller `limit`, keeping at most `capacity` callers' buckets.
    pub fn new(limit: RateLimit, capacity: usize) -> Self {
        Self {
            limit,
            capacity: capacity.max(1),
            buckets: Mutex::default(),
        }
    }

    /// The limit each caller gets.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Takes one event from `caller`'s bucket at `now`, or says how long until it holds one
    /// again.
    pub fn try_acquire(&self, caller: &K, now: Instant) -> Result<(), Duration> {
        self.with_bucket(caller, now, |bucket, rate| {
            if bucket.tokens >= 1.0 {
                bucket.tokens -= 1.0;
                Ok(())
            } else {
                Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
            }
        })
    }

    /// Whether `caller` could take one event at `now`, without taking it.
    pub fn check(&self, caller: &K, now: Instant) -> Result<(), Duration> {
        self.with_bucket(caller, now, |bucket, rate| {
            if bucket.tokens >= 1.0 {
                Ok(())
            } else {
                Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
            }
        })
    }

    /// Takes one event from `caller`'s bucket at `now` whether or not it holds one: the
    /// event happened already.
    pub fn charge(&self, caller: &K, now: Instant) {
        self.with_bucket(caller, now, |bucket, _| {
            bucket.tokens = (bucket.tokens - 1.0).max(0.0);
        });
    }

    /// Runs `body` on `caller`'s bucket, refilled up to `now`.
    fn with_bucket<T>(
        &self,
        caller: &K,
        now: Instant,
        body: impl FnOnce(&mut Bucket, f64) -> T,
    ) -> T {
        let rate = f64::from(self.limit.per_second.max(1));
        let burst = f64::from(self.limit.burst.max(1));
        // A panic elsewhere while the map was held leaves it whole: take it back.
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= self.capacity && !buckets.contains_key(caller) {
            let refill = Duration::from_secs_f64(burst / rate);
            buckets.retain(|_, bucket| now.saturating_duration_since(bucket.refilled_at) < refill);
        }
        let bucket = buckets.entry(caller.clone()).or_insert(Bucket {
            tokens: burst,
            refilled_at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.refilled_at);
        bucket.tokens = (bucket.tokens + elapsed.as_secs_f64() * rate).min(burst);
        bucket.refilled_at = now.max(bucket.refilled_at);
        body(bucket, rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_burst_then_its_rate_and_other_keys_are_not_charged() {
        let limiter = RateLimiter::new(
            RateLimit {
                per_second: 10,
                burst: 5,
            },
            100,
        );
        let (key_a, key_b) = ("key_a".to_owned(), "key_b".to_owned());
        let start = Instant::now();
        for _ in 0..5 {
            limiter.try_acquire(&key_a, start).unwrap();
        }
        let wait = limiter.try_acquire(&key_a, start).unwrap_err();
        assert!(
            wait > Duration::from_millis(90) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        // Another key has its own bucket.
        limiter.try_acquire(&key_b, start).unwrap();
        // 100 ms at 10/s buys exactly one more.
        let later = start + Duration::from_millis(100);
        limiter.try_acquire(&key_a, later).unwrap();
        assert!(limiter.try_acquire(&key_a, later).is_err());
        // A long quiet spell refills to the burst, no further.
        let much_later = later + Duration::from_secs(60);
        for _ in 0..5 {
            limiter.try_acquire(&key_a, much_later).unwrap();
        }
        assert!(limiter.try_acquire(&key_a, much_later).is_err());
    }

    #[test]
    fn a_clock_read_out_of_order_takes_nothing_extra() {
        let limiter = RateLimiter::new(
            RateLimit {
                per_second: 1,
                burst: 1,
            },
            100,
        );
        let key = "key".to_owned();
        let start = Instant::now() + Duration::from_secs(1);
        limiter.try_acquire(&key, start).unwrap();
        // An earlier instant (two threads racing to the lock) neither refills nor panics.
        assert!(
            limiter
                .try_acquire(&key, start - Duration::from_millis(500))
                .is_err()
        );
    }

    #[test]
    fn a_charge_without_room_empties_the_bucket_and_a_check_takes_nothing() {
        let limiter = RateLimiter::new(
            RateLimit {
                per_second: 1,
                burst: 2,
            },
            100,
        );
        let now = Instant::now();
        limiter.check(&1, now).unwrap();
        limiter.check(&1, now).unwrap();
        limiter.charge(&1, now);
        limiter.charge(&1, now);
        limiter.charge(&1, now);
        let wait = limiter.check(&1, now).unwrap_err();
        assert_eq!(wait, Duration::from_secs(1), "the bucket floors at empty");
        limiter.check(&1, now + Duration::from_secs(1)).unwrap();
    }

    #[test]
    fn a_full_limiter_forgets_quiet_callers_first() {
        let limiter = RateLimiter::new(
            RateLimit {
                per_second: 1,
                burst: 1,
            },
            2,
        );
        let start = Instant::now();
        limiter.try_acquire(&1, start).unwrap();
        limiter
            .try_acquire(&2, start + Duration::from_secs(5))
            .unwrap();
        // 1 has been quiet for longer than a burst takes to refill: it is the one forgotten.
        limiter
            .try_acquire(&3, start + Duration::from_secs(5))
            .unwrap();
        assert!(
            limiter
                .try_acquire(&2, start + Duration::from_secs(5))
                .is_err()
        );
        assert_eq!(limiter.buckets.lock().unwrap().len(), 2);
    }
}
