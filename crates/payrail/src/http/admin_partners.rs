//! Partners over HTTP: what `payrail partner …` does, through the same
//! service functions (`services::partners`). Reads never show a secret or
//! an `Authorisedkey`; a partner's token secret is shown once, in the
//! answer that made it. Every change is audited with the partner before
//! and after (without secrets).
//!
//! | method | path | body |
//! |---|---|---|
//! | GET | `/admin/v1/partners` | |
//! | POST | `/admin/v1/partners` | `name` [, `allow_ips` (list of addresses or CIDR blocks), `require_token` (default true), `authorised_key`] |
//! | GET | `/admin/v1/partners/{id}` | |
//! | POST | `/admin/v1/partners/{id}/suspend` | |
//! | POST | `/admin/v1/partners/{id}/activate` | |
//! | POST | `/admin/v1/partners/{id}/rotate-secret` | [`overlap_hours` (default 24, at most 720)] |
//! | PUT | `/admin/v1/partners/{id}/allowlist` | `allow_ips` [, `require_token` (default: unchanged)] |
//! | PUT | `/admin/v1/partners/{id}/authorised-key` | `authorised_key` (a string, or `null` for none) |

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::Router;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use super::admin::Operator;
use super::admin_audit::{entry, record};
use super::admin_money::existing_partner;
use super::body::{parse_json, LimitedBody};
use super::error::{json_response, ApiError};
use super::extract::Path;
use super::AppState;
use crate::domain::operator::Actor;
use crate::domain::text::check_text;
use crate::domain::{IpAllowlist, Partner, PartnerStatus, RegistrationId};
use crate::services::partners::{self, PartnerRequest, PartnerView};
use axum::extract::State;

/// The partner routes (table above).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/v1/partners", get(list).post(add))
        .route("/admin/v1/partners/{id}", get(show))
        .route("/admin/v1/partners/{id}/suspend", post(|op, st, id| status(op, st, id, PartnerStatus::Suspended)))
        .route("/admin/v1/partners/{id}/activate", post(|op, st, id| status(op, st, id, PartnerStatus::Active)))
        .route("/admin/v1/partners/{id}/rotate-secret", post(rotate_secret))
        .route("/admin/v1/partners/{id}/allowlist", put(set_allowlist))
        .route("/admin/v1/partners/{id}/authorised-key", put(set_authorised_key))
}

fn bad(message: impl std::fmt::Display) -> ApiError {
    ApiError::Validation(message.to_string())
}

/// The stored partner `id` names: 400 if it is not a registration id, 404 if none.
async fn stored(state: &AppState, id: &str) -> Result<Partner, ApiError> {
    let id = existing_partner(state, id).await?;
    state.store.find_partner(id).await?.ok_or_else(|| ApiError::NotFound(format!("no partner {id}")))
}

/// A service refusal: the rule a partner breaks is the caller's (400), the rest ours.
fn refused(error: anyhow::Error, field: &str) -> ApiError {
    match error.downcast::<partners::PartnerRuleError>() {
        Ok(rule) => bad(format!("{field}: {rule}")),
        Err(other) => ApiError::Internal(other),
    }
}

/// Audits `action` on `partner` by `actor`, with it before and after.
async fn audit(state: &AppState, actor: &Actor, action: &str, before: Option<&PartnerView>, after: &PartnerView) {
    let before = before.map(PartnerView::to_json).unwrap_or(serde_json::Value::Null);
    let target = format!("partner:{}", after.registration_id);
    record(state, entry(state, actor, action, target, Some((before, after.to_json())))).await;
}

/// The partner as it is now, answered with `status`.
async fn answer(state: &AppState, id: RegistrationId) -> Result<(PartnerView, Response), ApiError> {
    let partner = state.store.find_partner(id).await?.ok_or_else(|| ApiError::NotFound(format!("no partner {id}")))?;
    let view = PartnerView::new(&partner);
    let response = json_response(StatusCode::OK, &view);
    Ok((view, response))
}

#[derive(Serialize, utoipa::ToSchema)]
struct PartnerList {
    partners: Vec<PartnerView>,
}

#[tracing::instrument(name = "list_partners", skip_all)]
async fn list(_: Operator, State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let partners = state.store.list_partners().await?.iter().map(PartnerView::new).collect();
    Ok(json_response(StatusCode::OK, &PartnerList { partners }))
}

#[tracing::instrument(name = "show_partner", skip_all)]
async fn show(_: Operator, State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let partner = stored(&state, &id).await?;
    Ok(json_response(StatusCode::OK, &PartnerView::new(&partner)))
}

/// An allowlist as sent: a list of addresses or CIDR blocks.
fn allowlist(items: &[String]) -> Result<IpAllowlist, ApiError> {
    if items.len() > 100 {
        return Err(bad("allow_ips: at most 100 entries"));
    }
    IpAllowlist::parse(items.iter().map(|s| s.trim())).map_err(|e| bad(format!("allow_ips: {e}")))
}

/// An `Authorisedkey` as sent: 1 to 200 printable characters.
fn authorised_key(text: &str) -> Result<SecretString, ApiError> {
    if text.trim().is_empty() || text.chars().count() > 200 || text.chars().any(char::is_control) {
        return Err(bad("authorised_key: must be 1 to 200 printable characters"));
    }
    Ok(SecretString::from(text.to_owned()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewPartner {
    name: String,
    #[serde(default)]
    allow_ips: Vec<String>,
    require_token: Option<bool>,
    #[schema(min_length = 1, max_length = 200)]
    authorised_key: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Added {
    registration_id: String,
    /// The token secret: shown this once.
    secret: String,
    partner: PartnerView,
}

#[tracing::instrument(name = "add_partner", skip_all)]
async fn add(
    Operator(actor): Operator,
    State(state): State<Arc<AppState>>,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let request: NewPartner = parse_json(&body)?;
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(bad("name: must be 1 to 100 characters"));
    }
    check_text(name).map_err(|e| bad(format!("name: {e}")))?;
    let request = PartnerRequest {
        number: None,
        name: name.to_owned(),
        allowlist: allowlist(&request.allow_ips)?,
        require_token: request.require_token.unwrap_or(true),
        authorised_key: request.authorised_key.as_deref().map(authorised_key).transpose()?,
    };
    let added = partners::add_partner(&*state.store, &*state.clock, &state.key, request)
        .await
        .map_err(|e| refused(e, "allow_ips"))?;
    let view = PartnerView::new(&added.partner);
    audit(&state, &actor, "partner.add", None, &view).await;
    let added = Added {
        registration_id: view.registration_id.clone(),
        secret: added.secret.expose_secret().to_owned(),
        partner: view,
    };
    Ok(json_response(StatusCode::CREATED, &added))
}

#[tracing::instrument(name = "partner_status", skip_all)]
async fn status(
    Operator(actor): Operator,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    to: PartnerStatus,
) -> Result<Response, ApiError> {
    let partner = stored(&state, &id).await?;
    let (before, id) = (PartnerView::new(&partner), partner.registration_id);
    partners::set_status(&*state.store, id, to).await.map_err(ApiError::Internal)?;
    let (after, response) = answer(&state, id).await?;
    let action = match to {
        PartnerStatus::Suspended => "partner.suspend",
        PartnerStatus::Active => "partner.activate",
    };
    audit(&state, &actor, action, Some(&before), &after).await;
    Ok(response)
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Rotate {
    #[schema(maximum = 720)]
    overlap_hours: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Rotated {
    registration_id: String,
    /// The new token secret: shown this once.
    secret: String,
    /// Until when the previous secret also works (India time).
    previous_secret_valid_until: String,
}

#[tracing::instrument(skip_all)]
async fn rotate_secret(
    Operator(actor): Operator,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let partner = stored(&state, &id).await?;
    let (before, id) = (PartnerView::new(&partner), partner.registration_id);
    let request: Rotate = if body.iter().all(u8::is_ascii_whitespace) { Rotate::default() } else { parse_json(&body)? };
    let hours = request.overlap_hours.unwrap_or(24);
    if hours > 24 * 30 {
        return Err(bad("overlap_hours: must be at most 720"));
    }
    let overlap = std::time::Duration::from_secs(hours * 3600);
    let (secret, until) = partners::rotate_secret(&*state.store, &*state.clock, &state.key, id, overlap)
        .await
        .map_err(ApiError::Internal)?;
    let (after, _) = answer(&state, id).await?;
    audit(&state, &actor, "partner.rotate_secret", Some(&before), &after).await;
    let rotated = Rotated {
        registration_id: id.to_string(),
        secret: secret.expose_secret().to_owned(),
        previous_secret_valid_until: until.to_ist_string(),
    };
    Ok(json_response(StatusCode::OK, &rotated))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SetAllowlist {
    allow_ips: Vec<String>,
    require_token: Option<bool>,
}

#[tracing::instrument(skip_all)]
async fn set_allowlist(
    Operator(actor): Operator,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let partner = stored(&state, &id).await?;
    let request: SetAllowlist = parse_json(&body)?;
    let list = allowlist(&request.allow_ips)?;
    let require_token = request.require_token.unwrap_or(partner.require_token);
    let id = partner.registration_id;
    partners::set_access(&*state.store, id, require_token, list).await.map_err(|e| refused(e, "allow_ips"))?;
    let (after, response) = answer(&state, id).await?;
    audit(&state, &actor, "partner.set_allowlist", Some(&PartnerView::new(&partner)), &after).await;
    Ok(response)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SetAuthorisedKey {
    #[schema(min_length = 1, max_length = 200)]
    authorised_key: Option<String>,
}

#[tracing::instrument(skip_all)]
async fn set_authorised_key(
    Operator(actor): Operator,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let partner = stored(&state, &id).await?;
    let value: serde_json::Value = parse_json(&body)?;
    if value.get("authorised_key").is_none() {
        return Err(bad("authorised_key: is required (a string, or null for none)"));
    }
    let request: SetAuthorisedKey = parse_json(&body)?;
    let key = request.authorised_key.as_deref().map(authorised_key).transpose()?;
    let id = partner.registration_id;
    partners::set_authorised_key(&*state.store, id, key.as_ref()).await.map_err(ApiError::Internal)?;
    let (after, response) = answer(&state, id).await?;
    audit(&state, &actor, "partner.set_authorised_key", Some(&PartnerView::new(&partner)), &after).await;
    Ok(response)
}

/// This module's bodies, for the OpenAPI document ([`super::openapi`]).
pub(crate) fn schemas(out: &mut super::openapi::Schemas) {
    super::openapi::collect!(out; PartnerList, NewPartner, Added, Rotate, Rotated, SetAllowlist, SetAuthorisedKey, crate::services::partners::PartnerView);
}
