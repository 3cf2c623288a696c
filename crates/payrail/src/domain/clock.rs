//! The time of day, as payrail is handed it.
//!
//! Every wall-clock decision outside the store (is a poll or a callback due,
//! has an OTP or a token expired, which month's limit applies, what a history
//! row is stamped with) reads a [`Clock`] given to it by the application:
//! [`SystemClock`] in `payrail serve` and the CLI, a [`ManualClock`] in tests
//! that move time on instead of sleeping. Durations measured on the spot
//! (timeouts, rate-limit buckets) keep using `std::time::Instant`, which no
//! test needs to move; [`SharedMoment`] is such an instant that one thread
//! marks and another reads.
//!
//! Services that do one piece of work take a `&dyn Clock`; long-lived parts
//! (the HTTP state, the workers, the upstream sync, the sandbox) hold an
//! `Arc<dyn Clock>`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Timestamp;

/// Where the current instant comes from.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The system's clock: what payrail runs on outside tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

impl SystemClock {
    /// The system clock, shared, as the application's parts hold it.
    pub fn shared() -> Arc<dyn Clock> {
        Arc::new(SystemClock)
    }
}

/// When something last happened, in real (monotonic) time, or that it has
/// not happened since it was cleared: marked by one thread and read by
/// another without a lock (a commit read by the readers deciding whether
/// to map the file, a worker's batch read by `/readyz`).
#[derive(Debug)]
pub struct SharedMoment {
    epoch: Instant,
    /// Milliseconds after `epoch`, or [`SharedMoment::UNSET`].
    at_ms: AtomicU64,
}

impl SharedMoment {
    const UNSET: u64 = u64::MAX;

    /// Not marked yet.
    pub fn unset() -> Self {
        SharedMoment { epoch: Instant::now(), at_ms: AtomicU64::new(Self::UNSET) }
    }

    fn since_epoch_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(Self::UNSET - 1)
    }

    /// Marks now.
    pub fn mark(&self) {
        self.at_ms.store(self.since_epoch_ms(), Ordering::Release);
    }

    /// Unmarks.
    pub fn clear(&self) {
        self.at_ms.store(Self::UNSET, Ordering::Release);
    }

    /// How long ago it was marked, to the millisecond; `None` when unmarked.
    pub fn elapsed(&self) -> Option<Duration> {
        match self.at_ms.load(Ordering::Acquire) {
            Self::UNSET => None,
            at => Some(Duration::from_millis(self.since_epoch_ms().saturating_sub(at))),
        }
    }
}

/// A clock that stands still until it is set or advanced: tests drive time
/// with it. It only moves wall-clock decisions; a worker still wakes on its
/// real tick, and on that tick it reads this clock.
#[derive(Debug)]
pub struct ManualClock {
    unix: AtomicI64,
}

impl ManualClock {
    /// A clock standing at `at`.
    pub fn at(at: Timestamp) -> Self {
        ManualClock { unix: AtomicI64::new(at.unix()) }
    }

    /// A clock standing at the system's current time, so that what a test
    /// signs with the real time (partner tokens, upstream callbacks) is
    /// still within the skew payrail allows after a few advances.
    pub fn starting_now() -> Self {
        ManualClock::at(Timestamp::now())
    }

    /// Moves the clock to `at` (backwards too).
    pub fn set(&self, at: Timestamp) {
        self.unix.store(at.unix(), Ordering::SeqCst);
    }

    /// Moves the clock `by` forward, in whole seconds (a `Timestamp`'s grain).
    pub fn advance(&self, by: Duration) {
        let secs = i64::try_from(by.as_secs()).unwrap_or(i64::MAX);
        self.unix.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |unix| Some(unix.saturating_add(secs))).ok();
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix(self.unix.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_moment_is_unset_until_marked_and_again_once_cleared() {
        let moment = SharedMoment::unset();
        assert_eq!(moment.elapsed(), None);
        moment.mark();
        assert!(moment.elapsed().is_some_and(|ago| ago < Duration::from_secs(60)), "{:?}", moment.elapsed());
        moment.clear();
        assert_eq!(moment.elapsed(), None);
    }

    #[test]
    fn a_manual_clock_stands_still_until_set_or_advanced() {
        let clock = ManualClock::at(Timestamp::from_unix(1_000));
        assert_eq!(clock.now(), Timestamp::from_unix(1_000));
        clock.advance(Duration::from_millis(2_900));
        assert_eq!(clock.now(), Timestamp::from_unix(1_002), "whole seconds only");
        clock.set(Timestamp::from_unix(500));
        assert_eq!(clock.now(), Timestamp::from_unix(500));
    }

    #[test]
    fn the_system_clock_reads_the_system_time() {
        let before = Timestamp::now();
        let read = SystemClock.now();
        assert!(read >= before && read <= Timestamp::now(), "{read:?}");
    }
}
