//! Per-partner rate limiting: a token bucket per partner, in this process.
//! Several instances behind a load balancer each enforce the limit, so the
//! effective limit scales with the instance count; that is stated in the README.
//!
//! And per-address limiting of failed authentication ([`FailureLimiter`]):
//! an address that keeps failing is refused before its requests reach the
//! store, so a flood of bad credentials costs no lookups.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use crate::domain::RegistrationId;

/// Admits up to `per_second` requests a second per partner, in bursts of as many.
pub struct RateLimiter {
    per_second: f64,
    buckets: Mutex<HashMap<RegistrationId, Bucket>>,
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl RateLimiter {
    /// A limiter; `per_second` 0 admits everything.
    pub fn new(per_second: u32) -> Self {
        RateLimiter { per_second: f64::from(per_second), buckets: Mutex::new(HashMap::new()) }
    }

    /// `Ok` if the partner may make a request now, else the seconds to wait.
    pub fn admit(&self, partner: RegistrationId) -> Result<(), u64> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else { return Ok(()) };
        let bucket = buckets.entry(partner).or_insert(Bucket { tokens: self.per_second, refilled: now });
        let elapsed = now.duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.per_second);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / self.per_second).ceil().max(1.0) as u64)
        }
    }
}

/// Counts authentication failures per client address: at most `per_second`
/// a second (in bursts of as many); past that the address is refused until
/// its bucket refills.
pub struct FailureLimiter {
    per_second: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

/// Addresses remembered at most; past it, those that are no longer refused are forgotten.
const MAX_ADDRESSES: usize = 100_000;

impl FailureLimiter {
    /// A limiter; `per_second` 0 refuses nobody.
    pub fn new(per_second: u32) -> Self {
        FailureLimiter { per_second: f64::from(per_second), buckets: Mutex::new(HashMap::new()) }
    }

    /// `Ok` if `address` may try now, else the seconds until it may.
    pub fn check(&self, address: IpAddr) -> Result<(), u64> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let Ok(mut buckets) = self.buckets.lock() else { return Ok(()) };
        let Some(bucket) = buckets.get_mut(&address) else { return Ok(()) };
        let tokens = self.refill(bucket, Instant::now());
        if tokens >= 1.0 {
            Ok(())
        } else {
            Err(((1.0 - tokens) / self.per_second).ceil().max(1.0) as u64)
        }
    }

    /// Records that `address` failed authentication.
    pub fn failed(&self, address: IpAddr) {
        if self.per_second <= 0.0 {
            return;
        }
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else { return };
        if buckets.len() >= MAX_ADDRESSES && !buckets.contains_key(&address) {
            let full = self.per_second;
            let per_second = self.per_second;
            buckets.retain(|_, b| b.tokens + now.duration_since(b.refilled).as_secs_f64() * per_second < full);
        }
        let bucket = buckets.entry(address).or_insert(Bucket { tokens: self.per_second, refilled: now });
        let tokens = self.refill(bucket, now);
        bucket.tokens = (tokens - 1.0).max(0.0);
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) -> f64 {
        let elapsed = now.duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.per_second);
        bucket.refilled = now;
        bucket.tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_beyond_the_limit_is_refused_and_partners_are_independent() {
        let limiter = RateLimiter::new(5);
        let a = RegistrationId::new(1);
        let admitted = (0..20).filter(|_| limiter.admit(a).is_ok()).count();
        assert_eq!(admitted, 5);
        assert!(limiter.admit(RegistrationId::new(2)).is_ok());
        assert_eq!(limiter.admit(a), Err(1));
    }

    #[test]
    fn zero_means_unlimited() {
        let limiter = RateLimiter::new(0);
        assert!((0..10_000).all(|_| limiter.admit(RegistrationId::new(1)).is_ok()));
    }

    #[test]
    fn an_address_that_keeps_failing_is_refused_and_others_are_not() {
        let limiter = FailureLimiter::new(3);
        let (a, b): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        for _ in 0..3 {
            assert!(limiter.check(a).is_ok());
            limiter.failed(a);
        }
        assert_eq!(limiter.check(a), Err(1));
        assert!(limiter.check(b).is_ok());
        assert!(FailureLimiter::new(0).check(a).is_ok());
    }
}
