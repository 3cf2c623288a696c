//! Commission settlement and the TDS report over HTTP (`services::settlement`).
//!
//! | method | path | body / query |
//! |---|---|---|
//! | POST | `/admin/v1/settlements` | `month` (`YYYY-MM`, a month that is over) |
//! | GET | `/admin/v1/settlements` | `?month=YYYY-MM` |
//! | GET | `/admin/v1/tds-report` | `?quarter=YYYY-YY-QN` (CSV) |

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};

use super::admin::Operator;
use super::admin_audit::{entry, record};
use super::body::{parse_json, LimitedBody};
use super::error::{json_response, ApiError};
use super::extract::Query;
use super::AppState;
use crate::domain::{Paise, RegistrationId};
use crate::services::settlement::{self, Month, Quarter, SettleError, SettlementRun};
use crate::store::ledger::Settled;

/// The settlement routes (table above).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/admin/v1/settlements", get(list).post(run)).route("/admin/v1/tds-report", get(tds_report))
}

/// One settlement as operators see it.
#[derive(Serialize)]
pub struct SettledView {
    registration_id: String,
    amount: String,
    journal_id: i64,
    at: String,
}

impl From<&Settled> for SettledView {
    fn from(s: &Settled) -> Self {
        SettledView {
            registration_id: s.partner.to_string(),
            amount: s.amount.to_decimal_string(),
            journal_id: s.journal_id,
            at: s.at.to_ist_string(),
        }
    }
}

/// A partner paid nothing, and why: its month's net.
#[derive(Serialize)]
pub struct NothingView {
    registration_id: String,
    net: String,
}

/// A settlement run's outcome, as the API and `payrail settle --json` print it.
#[derive(Serialize)]
pub struct RunView {
    month: String,
    paid: Vec<SettledView>,
    already_paid: Vec<SettledView>,
    nothing_to_pay: Vec<NothingView>,
}

impl RunView {
    /// The view of `run` for `month`.
    pub fn new(month: Month, run: &SettlementRun) -> RunView {
        let nothing = |(partner, net): &(RegistrationId, Paise)| NothingView {
            registration_id: partner.to_string(),
            net: net.to_decimal_string(),
        };
        RunView {
            month: month.to_string(),
            paid: run.paid.iter().map(SettledView::from).collect(),
            already_paid: run.already.iter().map(SettledView::from).collect(),
            nothing_to_pay: run.nothing.iter().map(nothing).collect(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunBody {
    month: Option<String>,
}

fn month(text: Option<&str>) -> Result<Month, ApiError> {
    let text = text.ok_or_else(|| ApiError::Validation("month is required (YYYY-MM)".into()))?;
    Month::parse(text).map_err(ApiError::Validation)
}

async fn run(
    Operator(actor): Operator,
    State(state): State<Arc<AppState>>,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let request: RunBody = parse_json(&body)?;
    let month = month(request.month.as_deref())?;
    let outcome = settlement::settle(&*state.store, &*state.clock, month).await.map_err(|e| match e {
        SettleError::NotOver(_) => ApiError::Conflict(e.to_string()),
        SettleError::Store(e) => e.into(),
    })?;
    let view = RunView::new(month, &outcome);
    if !outcome.paid.is_empty() {
        let paid = serde_json::to_value(&view.paid).unwrap_or_default();
        let change = (serde_json::Value::Null, serde_json::json!({ "paid": paid }));
        record(&state, entry(&state, &actor, "settlement.run", format!("month:{month}"), Some(change))).await;
    }
    Ok(json_response(StatusCode::OK, &view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MonthQuery {
    month: Option<String>,
}

#[derive(Serialize)]
struct List {
    month: String,
    settlements: Vec<SettledView>,
}

async fn list(
    _: Operator,
    State(state): State<Arc<AppState>>,
    Query(query): Query<MonthQuery>,
) -> Result<Response, ApiError> {
    let month = month(query.month.as_deref())?;
    let settled = state.store.settlements(&month.memo()).await?;
    let list = List { month: month.to_string(), settlements: settled.iter().map(SettledView::from).collect() };
    Ok(json_response(StatusCode::OK, &list))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuarterQuery {
    quarter: Option<String>,
}

async fn tds_report(
    _: Operator,
    State(state): State<Arc<AppState>>,
    Query(query): Query<QuarterQuery>,
) -> Result<Response, ApiError> {
    let text = query.quarter.ok_or_else(|| ApiError::Validation("quarter is required (YYYY-YY-QN)".into()))?;
    let quarter = Quarter::parse(&text).map_err(ApiError::Validation)?;
    let lines = settlement::tds_report(&*state.store, quarter).await?;
    let disposition = format!("attachment; filename=\"tds-194H-{quarter}.csv\"");
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (header::CONTENT_DISPOSITION, disposition)],
        settlement::tds_csv(quarter, &lines),
    )
        .into_response())
}
