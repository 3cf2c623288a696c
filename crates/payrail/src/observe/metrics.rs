//! The Prometheus metrics: one [`Metrics`] per running server, rendered by
//! `GET /metrics` in the Prometheus text format (version 0.0.4).
//!
//! # Why `prometheus-client`
//!
//! Measured on this machine, a fresh release build of an empty crate
//! with each choice: `prometheus-client` 0.26 took 7.6 s and 18 crates;
//! `metrics` 0.24 with `metrics-exporter-prometheus` 0.18 (no default
//! features, so no HTTP listener) took 56.6 s and 45 crates. Beyond the
//! build cost, `prometheus-client` keeps its metrics in a [`Registry`] that
//! is a plain value: each server (each `TestApp` of the tests, which run
//! side by side in one process) has its own, so a test sees exactly the
//! counts its own requests made. `metrics` records through one global
//! recorder (or a thread-local one, which a multi-threaded runtime's tasks
//! do not see), so parallel tests would count each other's requests.
//!
//! # Cost
//!
//! Every handle the hot path uses is a field made once; a labelled family
//! looks its child up under a read lock by a key that borrows nothing
//! new (the route's name is an `Arc<str>` that axum already holds, the
//! status a number). With `--no-metrics` every call returns at once.
//! BENCHMARKS.md gives status-lookup throughput with and without.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::domain::Paise;

/// The label value of requests that matched no route: one value, so that
/// scanners probing random paths cannot grow the metrics without bound.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// A route pattern as the router matched it (`/admin/v1/dmt/{ackno}`).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Route(pub Arc<str>);

impl EncodeLabelValue for Route {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, &self.0)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: Route,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TxnLabels {
    kind: &'static str,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabel {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartnerLabel {
    partner: String,
}

/// One route and status's request handles, as a thread caches them.
struct HttpHandles {
    /// The [`Metrics`] they belong to (its `id`).
    registry: u64,
    status: u16,
    route: Arc<str>,
    counter: Counter,
    histogram: Histogram,
}

/// At most this many handles per thread (routes × statuses in use); past
/// it the cache starts afresh.
const HTTP_HANDLES_PER_THREAD: usize = 64;

thread_local! {
    static HTTP_HANDLES: std::cell::RefCell<Vec<HttpHandles>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Gives each [`Metrics`] its id (never reused, unlike an address).
static NEXT_REGISTRY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Request and upstream call latencies: 1 ms to about 33 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Callback delivery latencies (from the event to its delivery, by the
/// clock, in whole seconds): 1 s to about 4.5 h.
fn delivery_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 15))
}

/// The store's figures `/metrics` shows as gauges, read at each scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreGauges {
    /// Poll jobs due now (not held).
    pub polls_due: i64,
    /// Poll jobs held for an operator.
    pub polls_held: i64,
    /// Partner events waiting for their (next) delivery attempt.
    pub events_pending: i64,
    /// Each partner's wallet balance, by partner (`AOP-554`).
    pub wallets: Vec<(String, Paise)>,
}

/// Every metric payrail keeps; see docs/API.md ("Health and metrics") for the table.
pub struct Metrics {
    enabled: bool,
    /// This registry's id in the threads' handle caches.
    id: u64,
    /// Each route pattern's name, made once (see [`Metrics::http`]).
    routes: RwLock<HashMap<String, Arc<str>>>,
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Histograms<HttpLabels>,
    created: Family<TxnLabels, Counter>,
    settled: Family<TxnLabels, Counter>,
    debited: Counter,
    refunded: Counter,
    upstream_calls: Family<CallLabels, Counter>,
    upstream_duration: Histograms<OperationLabel>,
    poll_jobs: Family<StateLabel, Gauge>,
    partner_events: Family<StateLabel, Gauge>,
    deliveries: Family<OutcomeLabel, Counter>,
    delivery_latency: Histogram,
    otps: Family<OutcomeLabel, Counter>,
    store_errors: Family<KindLabel, Counter>,
    wallet_balance: Family<PartnerLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(true)
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("enabled", &self.enabled).finish_non_exhaustive()
    }
}

impl Metrics {
    /// A fresh registry with every metric in it; `enabled: false` records nothing.
    pub fn new(enabled: bool) -> Self {
        let mut registry = Registry::default();
        let http_requests = Family::default();
        let http_duration = Histograms::new_with_constructor(latency_histogram as fn() -> Histogram);
        let created = Family::default();
        let settled = Family::default();
        let debited = Counter::default();
        let refunded = Counter::default();
        let upstream_calls = Family::default();
        let upstream_duration = Histograms::new_with_constructor(latency_histogram as fn() -> Histogram);
        let poll_jobs = Family::default();
        let partner_events = Family::default();
        let deliveries = Family::default();
        let delivery_latency = delivery_histogram();
        let otps = Family::default();
        let store_errors = Family::default();
        let wallet_balance = Family::default();
        // Counters are registered without `_total`: the encoder adds it.
        registry.register(
            "payrail_http_requests",
            "HTTP requests answered, by matched route and status",
            http_requests.clone(),
        );
        registry.register(
            "payrail_http_request_duration_seconds",
            "Time from a request's headers to its answer, by matched route and status",
            http_duration.clone(),
        );
        registry.register(
            "payrail_transactions_created",
            "Transfers and bill payments created (debited and committed), by kind and the state they were left in",
            created.clone(),
        );
        registry.register(
            "payrail_transactions_settled",
            "Transaction state changes after creation (upstream or partner driven), by kind and new state",
            settled.clone(),
        );
        registry.register(
            "payrail_money_debited_paise",
            "Paise taken from partner wallets for new transactions",
            debited.clone(),
        );
        registry.register(
            "payrail_money_refunded_paise",
            "Paise paid back to partner wallets for failed transactions",
            refunded.clone(),
        );
        registry.register(
            "payrail_upstream_calls",
            "Calls to the upstream provider, by operation and outcome",
            upstream_calls.clone(),
        );
        registry.register(
            "payrail_upstream_call_duration_seconds",
            "Latency of calls to the upstream provider, by operation",
            upstream_duration.clone(),
        );
        registry.register(
            "payrail_poll_jobs",
            "Upstream poll jobs due now and held for an operator",
            poll_jobs.clone(),
        );
        registry.register(
            "payrail_partner_events",
            "Partner callback events waiting for delivery",
            partner_events.clone(),
        );
        registry.register(
            "payrail_partner_event_deliveries",
            "Callback delivery attempts recorded, by outcome (delivered, retry, failed)",
            deliveries.clone(),
        );
        registry.register(
            "payrail_partner_event_delivery_seconds",
            "Time from a partner event's creation to its delivery",
            delivery_latency.clone(),
        );
        registry.register("payrail_otps", "OTP texts sent, refused over the limit, or not delivered", otps.clone());
        registry.register("payrail_store_errors", "Store failures, by kind (unavailable, other)", store_errors.clone());
        registry.register("payrail_wallet_balance_paise", "Each partner's wallet balance", wallet_balance.clone());
        Metrics {
            enabled,
            id: NEXT_REGISTRY.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            routes: RwLock::default(),
            registry,
            http_requests,
            http_duration,
            created,
            settled,
            debited,
            refunded,
            upstream_calls,
            upstream_duration,
            poll_jobs,
            partner_events,
            deliveries,
            delivery_latency,
            otps,
            store_errors,
            wallet_balance,
        }
    }

    /// Whether metrics are kept (not `--no-metrics`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Counts one answered request of `route` (`None`: no route matched).
    ///
    /// The hot path touches no lock but the histogram's own: each thread
    /// keeps the handles it used last in a small cache of its own (keyed by
    /// this registry's id, the status and the route), so that the two
    /// server threads do not contend on a shared map for every request.
    pub fn http(&self, route: Option<&str>, status: u16, elapsed: Duration) {
        if !self.enabled {
            return;
        }
        let route = route.unwrap_or(UNMATCHED_ROUTE);
        let seconds = elapsed.as_secs_f64();
        let counted = HTTP_HANDLES.with(|cache| {
            let Ok(cache) = cache.try_borrow() else { return false };
            let found = cache.iter().find(|h| h.registry == self.id && h.status == status && &*h.route == route);
            match found {
                Some(handles) => {
                    handles.counter.inc();
                    handles.histogram.observe(seconds);
                    true
                }
                None => false,
            }
        });
        if counted {
            return;
        }
        let handles = self.http_handles(route, status);
        handles.counter.inc();
        handles.histogram.observe(seconds);
        HTTP_HANDLES.with(|cache| {
            if let Ok(mut cache) = cache.try_borrow_mut() {
                if cache.len() >= HTTP_HANDLES_PER_THREAD {
                    cache.clear();
                }
                cache.push(handles);
            }
        });
    }

    /// The handles of `route` and `status`, made once (registered in their
    /// families) and shared by every thread.
    fn http_handles(&self, route: &str, status: u16) -> HttpHandles {
        let name = match self.routes.write() {
            Ok(mut routes) => routes.entry(route.to_owned()).or_insert_with(|| Arc::from(route)).clone(),
            Err(_) => Arc::from(route),
        };
        let labels = HttpLabels { route: Route(name.clone()), status };
        HttpHandles {
            registry: self.id,
            status,
            route: name,
            counter: self.http_requests.get_or_create_owned(&labels),
            histogram: self.http_duration.get_or_create_owned(&labels),
        }
    }

    /// Counts a transaction created in `state`, paid with `debited` from the wallet.
    pub fn created(&self, kind: &'static str, state: &'static str, debited: Paise) {
        if !self.enabled {
            return;
        }
        self.created.get_or_create(&TxnLabels { kind, state }).inc();
        self.debited.inc_by(debited.get().max(0) as u64);
    }

    /// Counts a committed state change of a transaction to `state`.
    pub fn settled(&self, kind: &'static str, state: &'static str) {
        if self.enabled {
            self.settled.get_or_create(&TxnLabels { kind, state }).inc();
        }
    }

    /// Counts a committed change of a `kind` transaction from state `from`
    /// (`None`: unknown, but other than `to`) to `to`; a change into
    /// `refunded` paid `refund()` back to the wallet (a refunded record
    /// always has its ledger refund: `payrail verify` checks it).
    pub fn changed(&self, kind: &'static str, from: Option<&str>, to: &'static str, refund: impl FnOnce() -> Paise) {
        if !self.enabled || from == Some(to) {
            return;
        }
        self.settled(kind, to);
        if to == "refunded" {
            self.refunded(refund());
        }
    }

    /// Counts money paid back to a wallet.
    pub fn refunded(&self, paise: Paise) {
        if self.enabled {
            self.refunded.inc_by(paise.get().max(0) as u64);
        }
    }

    /// Counts one call to the upstream.
    pub fn upstream_call(&self, operation: &'static str, outcome: &'static str, elapsed: Duration) {
        if !self.enabled {
            return;
        }
        self.upstream_calls.get_or_create(&CallLabels { operation, outcome }).inc();
        self.upstream_duration.get_or_create(&OperationLabel { operation }).observe(elapsed.as_secs_f64());
    }

    /// Counts a recorded delivery attempt: `delivered`, `retry` or `failed`
    /// (given up); a delivery's latency from its event's creation.
    pub fn delivery(&self, outcome: &'static str, latency_secs: Option<i64>) {
        if !self.enabled {
            return;
        }
        self.deliveries.get_or_create(&OutcomeLabel { outcome }).inc();
        if let Some(secs) = latency_secs {
            self.delivery_latency.observe(secs.max(0) as f64);
        }
    }

    /// Counts an OTP text: `sent`, `refused` (over the limit) or `not_delivered`.
    pub fn otp(&self, outcome: &'static str) {
        if self.enabled {
            self.otps.get_or_create(&OutcomeLabel { outcome }).inc();
        }
    }

    /// Counts a store failure of `kind` (`unavailable` or `other`).
    pub fn store_error(&self, kind: &'static str) {
        if self.enabled {
            self.store_errors.get_or_create(&KindLabel { kind }).inc();
        }
    }

    /// Sets the gauges read from the store.
    pub fn set_store_gauges(&self, gauges: &StoreGauges) {
        if !self.enabled {
            return;
        }
        self.poll_jobs.get_or_create(&StateLabel { state: "due" }).set(gauges.polls_due);
        self.poll_jobs.get_or_create(&StateLabel { state: "held" }).set(gauges.polls_held);
        self.partner_events.get_or_create(&StateLabel { state: "pending" }).set(gauges.events_pending);
        for (partner, balance) in &gauges.wallets {
            self.wallet_balance.get_or_create(&PartnerLabel { partner: partner.clone() }).set(balance.get());
        }
    }

    /// Every metric in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut text = String::with_capacity(16 * 1024);
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry) {
            tracing::warn!(error = %e, "could not render the metrics");
        }
        text
    }
}

/// The `kind` label of a store failure.
pub fn store_error_kind(error: &crate::store::StoreError) -> &'static str {
    match error {
        crate::store::StoreError::Unavailable(_) => "unavailable",
        crate::store::StoreError::Other(_) => "other",
    }
}

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
