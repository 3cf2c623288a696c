//! `GET /healthz`, `GET /readyz` and `GET /metrics`: unauthenticated, for
//! load balancers, orchestrators and Prometheus (see docs/API.md, "Health and metrics").
//!
//! - `/healthz` answers 200 as long as the process serves HTTP; it asks
//!   nothing of the store.
//! - `/readyz` answers 200 when the store answers a query within
//!   [`STORE_TIMEOUT`], its schema is the version this binary migrates to,
//!   and every worker loop is running and not stuck (no batch worked on for
//!   longer than the lease); otherwise 503, with each reason.
//!   A database that hangs gives 503 after the timeout, never a hang.
//! - `/metrics` renders [`crate::observe::Metrics`] in the Prometheus text
//!   format, the store's gauges read afresh (same timeout). It is on the
//!   main listener unless `--metrics-listen` gives it a listener of its
//!   own, and absent under `--no-metrics`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;

use super::error::json_response;
use super::AppState;
use crate::observe::metrics::{store_error_kind, CONTENT_TYPE};
use crate::services::workers::{LoopState, WorkerHealth};

/// How long a health check or a scrape waits for the store.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// `/healthz` and `/readyz`, and `/metrics` unless it has its own listener
/// (or metrics are off).
pub fn routes(metrics_here: bool) -> Router<Arc<AppState>> {
    let routes = Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz));
    if metrics_here {
        routes.route("/metrics", get(metrics))
    } else {
        routes
    }
}

/// The router of `--metrics-listen`'s listener: `/metrics` only.
pub fn metrics_router(state: Arc<AppState>) -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(state)
}

#[derive(Serialize)]
struct Alive {
    status: &'static str,
}

/// `GET /healthz`: `{"status":"ok"}`.
async fn healthz() -> Response {
    no_store(json_response(StatusCode::OK, &Alive { status: "ok" }))
}

/// What `/readyz` answers.
#[derive(Serialize)]
struct Readiness {
    /// `ready` or `not ready`.
    status: &'static str,
    /// Why not; empty when ready.
    reasons: Vec<String>,
    store: StoreCheck,
    workers: Vec<WorkerCheck>,
}

#[derive(Serialize)]
struct StoreCheck {
    engine: &'static str,
    /// Whether it answered in time.
    answered: bool,
    /// The schema version it has applied, when it answered.
    schema_version: Option<i64>,
    /// The version this binary migrates to.
    expected_schema_version: i64,
}

#[derive(Serialize)]
struct WorkerCheck {
    name: &'static str,
    running: bool,
}

/// `GET /readyz`: 200 when ready, 503 with the reasons otherwise.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let metrics = state.upstream.metrics();
    let mut reasons = Vec::new();
    let expected = state.store.expected_schema_version();
    let version = match tokio::time::timeout(STORE_TIMEOUT, state.store.schema_version()).await {
        Ok(Ok(version)) => Some(version),
        Ok(Err(e)) => {
            metrics.store_error(store_error_kind(&e));
            tracing::warn!(error = %e, "readiness: the store did not answer");
            reasons.push(format!("store: {e}"));
            None
        }
        Err(_) => {
            metrics.store_error("timeout");
            tracing::warn!("readiness: the store did not answer within {} s", STORE_TIMEOUT.as_secs());
            reasons.push(format!("store: no answer within {} s", STORE_TIMEOUT.as_secs()));
            None
        }
    };
    if let Some(version) = version.filter(|v| *v != expected) {
        reasons.push(format!("migrations: the store is at schema version {version}, this binary expects {expected}"));
    }
    let loops = state.workers.as_ref().map(WorkerHealth::loops).unwrap_or_default();
    let lease = state.workers.as_ref().map_or(0, |health| health.stuck_after().as_secs());
    for worker in &loops {
        if !worker.running {
            reasons.push(format!("workers: the {} is not running", worker.name));
        } else if let Some(taken) = worker.stuck_for {
            reasons.push(format!(
                "workers: the {} has worked on one batch for {:.1} s, longer than its {lease} s lease",
                worker.name,
                taken.as_secs_f64()
            ));
        }
    }
    let workers: Vec<WorkerCheck> =
        loops.into_iter().map(|LoopState { name, running, .. }| WorkerCheck { name, running }).collect();
    let ready = reasons.is_empty();
    let body = Readiness {
        status: if ready { "ready" } else { "not ready" },
        reasons,
        store: StoreCheck {
            engine: state.store.engine(),
            answered: version.is_some(),
            schema_version: version,
            expected_schema_version: expected,
        },
        workers,
    };
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    no_store(json_response(status, &body))
}

/// `GET /metrics`: the Prometheus text, with the store's gauges read now.
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let metrics = state.upstream.metrics();
    if !metrics.enabled() {
        return super::no_such_endpoint().await;
    }
    match tokio::time::timeout(STORE_TIMEOUT, state.store.gauges(state.clock.now())).await {
        Ok(Ok(gauges)) => metrics.set_store_gauges(&gauges),
        Ok(Err(e)) => {
            metrics.store_error(store_error_kind(&e));
            tracing::warn!(error = %e, "metrics: the store's gauges could not be read");
        }
        Err(_) => {
            metrics.store_error("timeout");
            tracing::warn!("metrics: the store's gauges were not read within {} s", STORE_TIMEOUT.as_secs());
        }
    }
    let mut response = (StatusCode::OK, metrics.render()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    no_store(response)
}

/// A health answer is about now: never cached.
fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
