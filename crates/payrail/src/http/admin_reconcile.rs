//! Reconciliation against a bank file over HTTP (`services::reconcile`).
//!
//! | method | path | body / query |
//! |---|---|---|
//! | POST | `/admin/v1/reconciliations` | the file's bytes; `format` (`csv`, `paysprint`), `columns`, `date`, `hold`, `name`, `report` (`json`, `csv`) |

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse as _, Response};
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};

use super::admin::Operator;
use super::admin_audit::{change_source, record};
use super::error::{json_response, ApiError};
use super::extract::Query;
use super::AppState;
use crate::domain::operator::Actor;
use crate::services::reconcile::{
    self, file::day_of, summarise, FileFormat, Finding, Holder, ReconcileError, Reconciliation, Request, Summary,
};

/// The largest file the API reads: a million lines of a bank's CSV.
pub const MAX_FILE: usize = 128 * 1024 * 1024;

/// The reconciliation route (table above).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/admin/v1/reconciliations", post(run))
}

/// A run's counts as operators see them.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SummaryView {
    lines: u64,
    matched: u64,
    amount_mismatch: u64,
    state_mismatch: u64,
    payrail_only: u64,
    file_only: u64,
    held: u64,
    noted: u64,
    already: u64,
}

impl From<&Summary> for SummaryView {
    fn from(s: &Summary) -> Self {
        SummaryView {
            lines: s.lines,
            matched: s.matched,
            amount_mismatch: s.amount_mismatch,
            state_mismatch: s.state_mismatch,
            payrail_only: s.payrail_only,
            file_only: s.file_only,
            held: s.held,
            noted: s.noted,
            already: s.already,
        }
    }
}

/// One finding as operators see it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FindingView {
    category: &'static str,
    utr: Option<String>,
    reference: Option<String>,
    ackno: Option<i64>,
    registration_id: Option<String>,
    payrail_amount: Option<String>,
    file_amount: Option<String>,
    payrail_state: Option<&'static str>,
    file_state: Option<&'static str>,
    line: Option<u64>,
    action: Option<&'static str>,
}

impl From<&Finding> for FindingView {
    fn from(f: &Finding) -> Self {
        FindingView {
            category: f.category.name(),
            utr: f.utr.clone(),
            reference: f.reference.clone(),
            ackno: f.ackno,
            registration_id: f.partner.map(|p| p.to_string()),
            payrail_amount: f.payrail_amount.map(|a| a.to_decimal_string()),
            file_amount: f.file_amount.map(|a| a.to_decimal_string()),
            payrail_state: f.payrail_state.map(|s| s.name()),
            file_state: f.file_state.map(|s| s.name()),
            line: f.line,
            action: f.action.map(|a| a.name()),
        }
    }
}

/// A run as the API and `payrail reconcile --json` print it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ReconciliationView {
    file: String,
    summary: SummaryView,
    findings: Vec<FindingView>,
}

impl From<&Reconciliation> for ReconciliationView {
    fn from(run: &Reconciliation) -> Self {
        ReconciliationView {
            file: run.file.clone(),
            summary: SummaryView::from(&run.summary),
            findings: run.findings.iter().map(FindingView::from).collect(),
        }
    }
}

/// The query of a run.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunQuery {
    /// The file's format: `csv` (default) or `paysprint`.
    pub format: Option<String>,
    /// For `csv`: `utr=UTR No,amount=Amt,…`.
    pub columns: Option<String>,
    /// Only this India-time day, `YYYY-MM-DD`.
    pub date: Option<String>,
    /// `true` to hold the mismatches.
    pub hold: Option<String>,
    /// The file's name, for the reasons (default `upload`).
    pub name: Option<String>,
    /// The answer: `json` (default) or `csv`.
    pub report: Option<String>,
}

/// Whether the answer is the CSV report.
pub fn wants_csv(query: &RunQuery) -> Result<bool, ApiError> {
    match query.report.as_deref() {
        None | Some("json") => Ok(false),
        Some("csv") => Ok(true),
        Some(_) => Err(ApiError::Validation("report: must be json or csv".into())),
    }
}

/// The run `query` asks for, by `actor`.
pub fn request(state: &AppState, query: &RunQuery, actor: &Actor) -> Result<Request, ApiError> {
    let format = FileFormat::parse(query.format.as_deref().unwrap_or("csv"), query.columns.as_deref())
        .map_err(ApiError::Validation)?;
    let day = match query.date.as_deref() {
        None | Some("") => None,
        Some(date) => Some(day_of(date).ok_or_else(|| ApiError::Validation("date: must be YYYY-MM-DD".into()))?),
    };
    let hold = match query.hold.as_deref() {
        None | Some("" | "false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::Validation("hold: must be true or false".into())),
    };
    let file = query.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "upload".into());
    if file.len() > 100 || file.chars().any(|c| c.is_control()) {
        return Err(ApiError::Validation("name: must be up to 100 characters, none of them control characters".into()));
    }
    let holder =
        hold.then(|| Holder { actor: actor.clone(), source: change_source(actor), metrics: state.metrics().clone() });
    Ok(Request { file, format, day, ref_prefix: state.upstream.settings.ref_prefix.clone(), hold: holder })
}

/// Runs a reconciliation of `bytes`, auditing a run that changed something.
pub async fn run_file(
    state: &AppState,
    request: &Request,
    bytes: &[u8],
    actor: &Actor,
) -> Result<Reconciliation, ApiError> {
    let run = reconcile::reconcile(&*state.store, &*state.clock, bytes, request).await.map_err(|e| match e {
        ReconcileError::Malformed(errors) => ApiError::Validation(format!("file: {}", summarise(&errors))),
        ReconcileError::Store(e) => e.into(),
    })?;
    if let Some(entry) = reconcile::run_audit(&run, actor, &*state.clock) {
        record(state, entry).await;
    }
    Ok(run)
}

async fn run(
    Operator(actor): Operator,
    State(state): State<Arc<AppState>>,
    Query(query): Query<RunQuery>,
    body: Body,
) -> Result<Response, ApiError> {
    let csv = wants_csv(&query)?;
    let request = request(&state, &query, &actor)?;
    let bytes = axum::body::to_bytes(body, MAX_FILE)
        .await
        .map_err(|e| ApiError::Validation(format!("body: the file could not be read (at most 128 MiB): {e}")))?;
    let run = run_file(&state, &request, &bytes, &actor).await?;
    if csv {
        return Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/csv; charset=utf-8")], reconcile::report_csv(&run))
            .into_response());
    }
    Ok(json_response(StatusCode::OK, &ReconciliationView::from(&run)))
}

/// The schemas of the OpenAPI document written here.
pub(crate) fn schemas(out: &mut super::openapi::Schemas) {
    super::openapi::collect!(out; ReconciliationView, SummaryView, FindingView);
}
