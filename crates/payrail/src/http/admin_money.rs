//! The operator API for money: wallets, statements, fee plans and the ledger
//! check. Same bearer token as the rest of `/admin/v1/`.
//!
//! | method | path | body / query |
//! |---|---|---|
//! | GET | `/admin/v1/partners/{id}/wallet` | |
//! | POST | `/admin/v1/partners/{id}/wallet/topup` | `amount` [, `memo`] |
//! | POST | `/admin/v1/partners/{id}/wallet/withdraw` | `amount` [, `memo`] |
//! | GET | `/admin/v1/partners/{id}/wallet/statement` | `?from=YYYY-MM-DD&to=YYYY-MM-DD` (both days included; CSV) |
//! | GET | `/admin/v1/partners/{id}/fee-plans` | |
//! | POST | `/admin/v1/partners/{id}/fee-plans` | `effective_from` (`YYYY-MM-DD` or `YYYY-MM-DD HH:MM:SS`, India time), `plan` |
//! | GET | `/admin/v1/verify` | |

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};

use super::admin::Operator;
use super::admin_audit::{entry, record};
use super::body::{parse_json, LimitedBody};
use super::error::{json_response, ApiError};
use super::extract::{Path, Query};
use super::AppState;
use crate::domain::fee_plan::{FeePlan, FeePlanVersion};
use crate::domain::ledger::WalletMove;
use crate::domain::text::check_text;
use crate::domain::{Paise, RegistrationId, Timestamp};
use crate::services::fees;
use crate::services::ledger::OperatorMove::{TopUp, Withdrawal};
use crate::services::ledger::{self, OperatorMove};
use crate::store::DebitError;

/// The operator API's wallet, fee-plan and verify routes (table above).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/v1/partners/{id}/wallet", get(balance))
        .route("/admin/v1/partners/{id}/wallet/topup", post(|op, st, id, body| move_wallet(op, st, id, body, TopUp)))
        .route(
            "/admin/v1/partners/{id}/wallet/withdraw",
            post(|op, st, id, body| move_wallet(op, st, id, body, Withdrawal)),
        )
        .route("/admin/v1/partners/{id}/wallet/statement", get(statement))
        .route("/admin/v1/partners/{id}/fee-plans", get(list_plans).post(set_plan))
        .route("/admin/v1/verify", get(verify))
}

fn partner(text: &str) -> Result<RegistrationId, ApiError> {
    RegistrationId::parse(text).map_err(|e| ApiError::Validation(format!("partner {e}")))
}

/// The partner named by `text`: 400 if it is not a registration id, 404 if there is no such partner.
pub(super) async fn existing_partner(state: &AppState, text: &str) -> Result<RegistrationId, ApiError> {
    let id = partner(text)?;
    match state.store.find_partner(id).await? {
        Some(_) => Ok(id),
        None => Err(ApiError::NotFound(format!("no partner {id}"))),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct Balance {
    partner: String,
    balance: String,
}

#[tracing::instrument(skip_all)]
async fn balance(
    _: Operator,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = existing_partner(&state, &id).await?;
    let balance = state.store.wallet_balance(id).await?;
    Ok(json_response(StatusCode::OK, &Balance { partner: id.to_string(), balance: balance.to_decimal_string() }))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct Movement {
    amount: String,
    memo: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Moved {
    partner: String,
    opening: String,
    closing: String,
}

fn wallet_error(error: ledger::WalletError, id: RegistrationId) -> ApiError {
    match error {
        ledger::WalletError::NotPositive => ApiError::Validation("amount must be more than 0".into()),
        ledger::WalletError::Debit(DebitError::InsufficientFunds { balance }) => {
            ApiError::Conflict(format!("insufficient wallet balance: {}", balance.to_decimal_string()))
        }
        ledger::WalletError::Debit(DebitError::UnknownPartner) => ApiError::NotFound(format!("no partner {id}")),
        ledger::WalletError::Debit(DebitError::Store(e)) => e.into(),
        ledger::WalletError::Debit(other) => ApiError::Internal(other.into()),
    }
}

/// `POST …/wallet/topup` and `…/wallet/withdraw`, as `way` says.
#[tracing::instrument(skip_all)]
async fn move_wallet(
    Operator(actor): Operator,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    LimitedBody(body): LimitedBody,
    way: OperatorMove,
) -> Result<Response, ApiError> {
    let id = partner(&id)?;
    let request: Movement = parse_json(&body)?;
    let amount = Paise::parse(&request.amount).map_err(|e| ApiError::Validation(format!("amount {e}")))?;
    let memo = request.memo.unwrap_or_else(|| way.default_memo().to_owned());
    if memo.chars().count() > 200 {
        return Err(ApiError::Validation("memo must be at most 200 characters".into()));
    }
    check_text(&memo).map_err(|e| ApiError::Validation(format!("memo {e}")))?;
    let moved: Result<WalletMove, _> = ledger::move_money(&*state.store, &*state.clock, id, way, amount, &memo).await;
    let moved = moved.map_err(|e| wallet_error(e, id))?;
    let action = match way {
        TopUp => "wallet.topup",
        Withdrawal => "wallet.withdraw",
    };
    let change = (
        serde_json::json!({ "balance": moved.opening.to_decimal_string() }),
        serde_json::json!({ "balance": moved.closing.to_decimal_string(), "amount": amount.to_decimal_string(), "memo": memo }),
    );
    record(&state, entry(&state, &actor, action, format!("partner:{id}"), Some(change))).await;
    let body = Moved {
        partner: id.to_string(),
        opening: moved.opening.to_decimal_string(),
        closing: moved.closing.to_decimal_string(),
    };
    Ok(json_response(StatusCode::OK, &body))
}

#[derive(Deserialize)]
struct Period {
    from: Option<String>,
    to: Option<String>,
}

/// `from` and `to` as the instants bounding both whole days.
pub fn period(from: &str, to: &str) -> Result<(Timestamp, Timestamp), String> {
    let start = Timestamp::parse_ist_date(from).map_err(|_| "from must be a date as YYYY-MM-DD".to_owned())?;
    let last = Timestamp::parse_ist_date(to).map_err(|_| "to must be a date as YYYY-MM-DD".to_owned())?;
    if last < start {
        return Err("to must not be before from".into());
    }
    Ok((start, Timestamp::from_unix(last.unix() + 86_400)))
}

#[tracing::instrument(skip_all)]
async fn statement(
    _: Operator,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(period_query): Query<Period>,
) -> Result<Response, ApiError> {
    let id = existing_partner(&state, &id).await?;
    let (Some(from), Some(to)) = (period_query.from, period_query.to) else {
        return Err(ApiError::Validation("from and to are required (YYYY-MM-DD)".into()));
    };
    let (start, end) = period(&from, &to).map_err(ApiError::Validation)?;
    let csv = ledger::statement_csv(&*state.store, id, start, end).await?;
    let disposition = format!("attachment; filename=\"statement-{id}-{from}-{to}.csv\"");
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (header::CONTENT_DISPOSITION, disposition)],
        csv,
    )
        .into_response())
}

#[derive(Serialize, utoipa::ToSchema)]
struct PlanVersion {
    partner: String,
    version: i64,
    effective_from: String,
    created_at: String,
    plan: serde_json::Value,
}

impl From<FeePlanVersion> for PlanVersion {
    fn from(v: FeePlanVersion) -> Self {
        PlanVersion {
            partner: v.partner.to_string(),
            version: v.version,
            effective_from: v.effective_from.to_ist_string(),
            created_at: v.created_at.to_ist_string(),
            plan: serde_json::from_str(&v.plan.to_json()).unwrap_or_default(),
        }
    }
}

/// A partner's fee plans as one document: the API's answer and `payrail plan show`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Plans {
    partner: String,
    default_plan: serde_json::Value,
    versions: Vec<PlanVersion>,
}

impl Plans {
    /// The plan `versions` of partner `id`, with the default plan.
    pub fn new(id: RegistrationId, versions: Vec<FeePlanVersion>) -> Self {
        let default_plan = serde_json::from_str(&FeePlan::default_plan().to_json()).unwrap_or_default();
        Plans { partner: id.to_string(), default_plan, versions: versions.into_iter().map(PlanVersion::from).collect() }
    }
}

#[tracing::instrument(skip_all)]
async fn list_plans(
    _: Operator,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = existing_partner(&state, &id).await?;
    let versions = state.store.fee_plans(id).await?;
    Ok(json_response(StatusCode::OK, &Plans::new(id, versions)))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct NewPlan<'a> {
    effective_from: String,
    #[serde(borrow)]
    #[schema(value_type = Object)]
    plan: &'a serde_json::value::RawValue,
}

/// An instant as `YYYY-MM-DD` (midnight) or `YYYY-MM-DD HH:MM:SS`, India time.
pub fn instant(text: &str) -> Result<Timestamp, String> {
    Timestamp::parse_ist(text)
        .or_else(|_| Timestamp::parse_ist_date(text))
        .map_err(|_| "effective_from must be YYYY-MM-DD or YYYY-MM-DD HH:MM:SS (India time)".to_owned())
}

#[tracing::instrument(skip_all)]
async fn set_plan(
    Operator(actor): Operator,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let id = partner(&id)?;
    let request: NewPlan<'_> = parse_json(&body)?;
    let from = instant(&request.effective_from).map_err(ApiError::Validation)?;
    let plan = FeePlan::from_json(request.plan.get()).map_err(|e| ApiError::Validation(format!("plan: {e}")))?;
    let version = fees::set_plan(&*state.store, &*state.clock, id, plan, from).await.map_err(|e| match e {
        DebitError::UnknownPartner => ApiError::NotFound(format!("no partner {id}")),
        DebitError::Store(e) => e.into(),
        other => ApiError::Internal(other.into()),
    })?;
    let version = PlanVersion::from(version);
    let after = serde_json::to_value(&version).unwrap_or_default();
    let change = Some((serde_json::Value::Null, after));
    record(&state, entry(&state, &actor, "fee_plan.set", format!("partner:{id}"), change)).await;
    Ok(json_response(StatusCode::CREATED, &version))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Verdict {
    ok: bool,
    journals: i64,
    /// Links of the tamper-evident history chains recomputed.
    links: u64,
    violations: Vec<String>,
}

#[tracing::instrument(skip_all)]
async fn verify(_: Operator, State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let checked = crate::services::verify::check(&*state.store, None).await?;
    let ok = checked.violations.is_empty();
    let verdict = Verdict { ok, journals: checked.journals, links: checked.links, violations: checked.violations };
    Ok(json_response(StatusCode::OK, &verdict))
}

/// This module's bodies, for the OpenAPI document ([`super::openapi`]).
pub(crate) fn schemas(out: &mut super::openapi::Schemas) {
    super::openapi::collect!(out; Balance, Movement, Moved, Plans, PlanVersion, NewPlan, Verdict);
}
