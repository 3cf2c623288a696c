//! How the upstream is doing: every call counted by operation and outcome
//! with its latency, and the authentication circuit.
//!
//! The counters live in memory (they start from zero at each start); the
//! operator sees them, with the circuit, at `GET /admin/v1/upstream`.
//!
//! The **circuit** opens when the upstream refuses payrail's credentials
//! (Paysprint codes 23–25, or a 401 whose message names the JWT or the
//! authentication). While it is open payrail submits nothing new: transfers
//! and bill payments are refused before any debit; status queries go on.
//! It closes when an operator says so (`POST /admin/v1/upstream/circuit/close`)
//! and on restart.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::domain::Timestamp;

/// The counters of one operation and outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// How many calls.
    pub count: u64,
    /// Their latencies added up, in milliseconds.
    pub latency_ms_sum: u64,
    /// The slowest, in milliseconds.
    pub latency_ms_max: u64,
}

/// Why and since when the circuit is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenCircuit {
    /// When the refusal came.
    pub since: Timestamp,
    /// The operation that was refused.
    pub operation: String,
    /// What the upstream said.
    pub reason: String,
}

#[derive(Debug, Default)]
struct Inner {
    tallies: BTreeMap<(String, String), Tally>,
    circuit: Option<OpenCircuit>,
    /// When the calls of the last [`RECENT_WINDOW`] that got no answer
    /// ended, oldest first (at most [`RECENT_MAX`] of them).
    recent_failures: VecDeque<Instant>,
}

/// How far back [`UpstreamHealth::failures_within`] can look.
pub const RECENT_WINDOW: Duration = Duration::from_secs(3600);

/// How many unanswered calls are remembered for [`RECENT_WINDOW`] at most
/// (beyond that the count says "at least").
const RECENT_MAX: usize = 100_000;

/// Counters and circuit of one upstream (see the module documentation).
#[derive(Debug, Default)]
pub struct UpstreamHealth {
    inner: Mutex<Inner>,
}

impl UpstreamHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one call of `operation` that ended as `outcome` after `latency`.
    pub fn record(&self, operation: &str, outcome: &str, latency: Duration) {
        self.record_at(operation, outcome, latency, Instant::now());
    }

    /// [`UpstreamHealth::record`] of a call that ended at `at`.
    fn record_at(&self, operation: &str, outcome: &str, latency: Duration, at: Instant) {
        let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        let mut inner = self.lock();
        if outcome != "answered" {
            forget_before(&mut inner.recent_failures, at);
            if inner.recent_failures.len() == RECENT_MAX {
                inner.recent_failures.pop_front();
            }
            inner.recent_failures.push_back(at);
        }
        let tally = inner.tallies.entry((operation.to_owned(), outcome.to_owned())).or_default();
        tally.count += 1;
        tally.latency_ms_sum = tally.latency_ms_sum.saturating_add(ms);
        tally.latency_ms_max = tally.latency_ms_max.max(ms);
    }

    /// How many calls got no answer (anything but `answered`) within
    /// `window` (at most [`RECENT_WINDOW`]) before `now`.
    pub fn failures_within(&self, window: Duration, now: Instant) -> usize {
        let window = window.min(RECENT_WINDOW);
        let inner = self.lock();
        inner.recent_failures.iter().filter(|&&at| now.saturating_duration_since(at) < window).count()
    }

    /// Every tally, by operation then outcome.
    pub fn tallies(&self) -> Vec<(String, String, Tally)> {
        self.lock().tallies.iter().map(|((op, outcome), tally)| (op.clone(), outcome.clone(), *tally)).collect()
    }

    /// Opens the circuit (the first refusal's reason is kept while it stays open).
    pub fn open_circuit(&self, since: Timestamp, operation: &str, reason: &str) {
        let mut inner = self.lock();
        if inner.circuit.is_none() {
            tracing::error!(
                operation,
                reason,
                "upstream refused payrail's credentials: circuit open, no new transfer or bill payment is submitted \
                 until an operator closes it (POST /admin/v1/upstream/circuit/close)"
            );
            inner.circuit = Some(OpenCircuit { since, operation: operation.to_owned(), reason: reason.to_owned() });
        }
    }

    /// Closes the circuit; whether it was open.
    pub fn close_circuit(&self) -> bool {
        let was = self.lock().circuit.take();
        if let Some(open) = &was {
            tracing::warn!(since = open.since.unix(), reason = %open.reason, "upstream circuit closed by an operator");
        }
        was.is_some()
    }

    /// The open circuit, if it is open.
    pub fn circuit(&self) -> Option<OpenCircuit> {
        self.lock().circuit.clone()
    }
}

/// Drops the failures older than [`RECENT_WINDOW`] before `now`.
fn forget_before(failures: &mut VecDeque<Instant>, now: Instant) {
    while failures.front().is_some_and(|&at| now.saturating_duration_since(at) >= RECENT_WINDOW) {
        failures.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unanswered_calls_are_counted_over_the_last_hour() {
        let health = UpstreamHealth::default();
        let start = Instant::now();
        let minutes = |m: u64| start + Duration::from_secs(60 * m);
        health.record_at("dmt/transact/transact", "timeout", Duration::ZERO, minutes(0));
        health.record_at("dmt/transact/transact", "answered", Duration::ZERO, minutes(10));
        health.record_at("dmt/query", "http_5xx", Duration::ZERO, minutes(30));
        health.record_at("dmt/query", "unreachable", Duration::ZERO, minutes(50));
        assert_eq!(health.failures_within(RECENT_WINDOW, minutes(50)), 3, "answered calls are not failures");
        assert_eq!(health.failures_within(RECENT_WINDOW, minutes(70)), 2, "the first is over an hour old");
        assert_eq!(health.failures_within(Duration::from_secs(60 * 15), minutes(55)), 1);
        assert_eq!(health.failures_within(RECENT_WINDOW, minutes(200)), 0);
        // A later failure forgets those over an hour old; the tallies keep everything.
        health.record_at("dmt/query", "timeout", Duration::ZERO, minutes(200));
        assert_eq!(health.lock().recent_failures.len(), 1);
        assert_eq!(health.tallies().iter().map(|(_, _, t)| t.count).sum::<u64>(), 5);
    }

    #[test]
    fn calls_are_tallied_by_operation_and_outcome() {
        let health = UpstreamHealth::default();
        health.record("transact", "answered", Duration::from_millis(30));
        health.record("transact", "answered", Duration::from_millis(10));
        health.record("transact", "timeout", Duration::from_millis(700));
        let tallies = health.tallies();
        assert_eq!(
            tallies,
            vec![
                ("transact".into(), "answered".into(), Tally { count: 2, latency_ms_sum: 40, latency_ms_max: 30 }),
                ("transact".into(), "timeout".into(), Tally { count: 1, latency_ms_sum: 700, latency_ms_max: 700 }),
            ]
        );
    }

    #[test]
    fn the_circuit_keeps_its_first_reason_until_closed() {
        let health = UpstreamHealth::default();
        assert!(!health.close_circuit());
        health.open_circuit(Timestamp::from_unix(5), "transact", "code 23");
        health.open_circuit(Timestamp::from_unix(6), "paybill", "code 24");
        assert_eq!(health.circuit().map(|c| c.reason), Some("code 23".into()));
        assert!(health.close_circuit());
        assert_eq!(health.circuit(), None);
    }
}
