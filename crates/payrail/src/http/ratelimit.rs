//! Per-partner rate limiting: a token bucket per partner, in this process.
//! Several instances behind a load balancer each enforce the limit, so the
//! effective limit scales with the instance count; that is stated in the README.

use std::collections::HashMap;
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
}
