//! Refusals at the gate, made cheap to repeat: each peer address's budget of failed
//! authentications, so a flood of bad keys is refused before any key is looked up, and a
//! throttle that writes one audit record per peer (or key) per interval instead of one per
//! refusal.
//!
//! A peer that spends its budget is refused for a while before its credential is even looked
//! at, whatever it presents: a client with a good key behind the same address waits too, as it
//! would behind any address-based limit.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use super::{RateLimit, RateLimiter};

/// Where a call came from; `None` when the transport does not say (an in-process caller).
pub type Peer = Option<IpAddr>;

/// How often, at most, one peer's (or one key's) refusals are written to the audit log. The
/// record says how many were refused since the last one.
pub const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Most peers whose failures are remembered at once. When more fail, the quietest are
/// forgotten first.
const MAX_PEERS: usize = 65_536;

/// Each peer's budget of failed authentications.
#[derive(Debug)]
pub struct FailedAuthentications {
    budget: RateLimiter<Peer>,
}

#[derive(Debug)]
struct Logged {
    at: Instant,
    /// Failures since `at` that no record has told of yet.
    untold: u64,
}

impl FailedAuthentications {
    /// Each peer may fail `limit.burst` times at once, then `limit.per_second`.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            budget: RateLimiter::new(limit, MAX_PEERS),
        }
    }

    /// The budget each peer gets.
    pub fn limit(&self) -> RateLimit {
        self.budget.limit()
    }

    /// Whether `peer` may try to authenticate at `now`, or how long until it may.
    pub fn check(&self, peer: Peer, now: Instant) -> Result<(), Duration> {
        self.budget.check(&peer, now)
    }

    /// Charges one failure to `peer`.
    pub fn charge(&self, peer: Peer, now: Instant) {
        self.budget.charge(&peer, now);
    }
}

/// Who a refusal is charged to in the audit log: a caller known by its key, else its peer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Refused {
    /// A caller whose key was recognised (and refused for its rate or scope).
    Key(String),
    /// A caller that did not show a good key.
    Peer(Peer),
}

/// When each subject's refusals were last written to the audit log.
#[derive(Debug, Default)]
pub struct RefusalLog {
    logged: Mutex<HashMap<Refused, Logged>>,
}

impl RefusalLog {
    /// Whether a refusal of `subject` at `now` is written to the audit log: `Some(n)` when it
    /// is, `n` being the refusals since its last record that went unwritten; `None` while its
    /// last record is under [`FAILURE_LOG_INTERVAL`] old.
    pub fn to_log(&self, subject: Refused, now: Instant) -> Option<u64> {
        // A panic elsewhere while the map was held leaves it whole: take it back.
        let mut logged = self
            .logged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entry) = logged.get_mut(&subject) {
            if now.saturating_duration_since(entry.at) < FAILURE_LOG_INTERVAL {
                entry.untold += 1;
                return None;
            }
            let untold = entry.untold;
            *entry = Logged { at: now, untold: 0 };
            return Some(untold);
        }
        if logged.len() >= MAX_PEERS {
            logged
                .retain(|_, entry| now.saturating_duration_since(entry.at) < FAILURE_LOG_INTERVAL);
        }
        logged.insert(subject, Logged { at: now, untold: 0 });
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_peer_spends_its_budget_and_another_keeps_its_own() {
        let failures = FailedAuthentications::new(RateLimit {
            per_second: 2,
            burst: 3,
        });
        let (flooder, neighbour) = (
            Some(IpAddr::from([10, 0, 0, 1])),
            Some(IpAddr::from([10, 0, 0, 2])),
        );
        let now = Instant::now();
        for _ in 0..3 {
            failures.check(flooder, now).unwrap();
            failures.charge(flooder, now);
        }
        let wait = failures.check(flooder, now).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        failures.check(neighbour, now).unwrap();
        failures.check(flooder, now + wait).unwrap();
    }

    #[test]
    fn a_flood_is_told_once_per_interval_with_the_count_it_left_out() {
        let log = RefusalLog::default();
        let peer = Refused::Peer(Some(IpAddr::from([10, 0, 0, 1])));
        let start = Instant::now();
        assert_eq!(log.to_log(peer.clone(), start), Some(0));
        for step in 1..=999 {
            assert_eq!(
                log.to_log(peer.clone(), start + Duration::from_millis(step)),
                None
            );
        }
        assert_eq!(
            log.to_log(Refused::Peer(None), start),
            Some(0),
            "another peer is told at once"
        );
        assert_eq!(
            log.to_log(Refused::Key("key_a".into()), start),
            Some(0),
            "and so is a known key"
        );
        assert_eq!(
            log.to_log(peer, start + FAILURE_LOG_INTERVAL),
            Some(999),
            "the next record counts what the interval left out"
        );
    }
}
