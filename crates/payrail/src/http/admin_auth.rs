//! Who may call the operator API: bearer tokens and the role each route needs.
//!
//! A request to a route in [`ROUTE_ROLES`] carries `Authorization: Bearer
//! <token>`, either the bootstrap admin token (`PAYRAIL_ADMIN_TOKEN`,
//! attributed to `bootstrap`) or an operator's personal token
//! (`prt_<id>_<secret>`, looked up on every request: nothing is cached,
//! so a revoked token or a disabled operator stops working at once).
//!
//! [`authorize`] runs before every routed handler: no, a bad, an expired or
//! a revoked token, or a disabled operator, is 401; a role below the
//! route's is 403; either way the handler does not run, so nothing
//! changes. A route under `/admin/` that is not in the table is refused to
//! everyone (fail closed) until it is given a role there: one line.

use std::sync::Arc;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use secrecy::ExposeSecret as _;
use subtle::ConstantTimeEq as _;

use super::error::ApiError;
use super::AppState;
use crate::domain::operator::{Actor, Role, TOKEN_PREFIX};
use crate::services::operators::authenticate_token;

/// A route and the least role that may call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRole {
    /// The HTTP method (`HEAD` counts as `GET`).
    pub method: &'static str,
    /// The route's path pattern, as the router has it.
    pub path: &'static str,
    /// The least role that may call it.
    pub role: Role,
}

const fn route(method: &'static str, path: &'static str, role: Role) -> RouteRole {
    RouteRole { method, path, role }
}

use Role::{Admin, Operator as Op, Viewer};

/// Every operator route and its role: the one table the routes are checked
/// against (docs/API.md shows it). A new route is one line here.
pub const ROUTE_ROLES: &[RouteRole] = &[
    // Transactions (http/admin.rs).
    route("POST", "/admin/v1/dmt", Op),
    route("GET", "/admin/v1/dmt/{ackno}", Viewer),
    route("POST", "/admin/v1/dmt/{ackno}/transition", Op),
    route("POST", "/admin/v1/bbps", Op),
    route("GET", "/admin/v1/bbps/{txnid}", Viewer),
    route("POST", "/admin/v1/bbps/{txnid}/transition", Op),
    // Partners (http/admin_partners.rs).
    route("GET", "/admin/v1/partners", Viewer),
    route("POST", "/admin/v1/partners", Admin),
    route("GET", "/admin/v1/partners/{id}", Viewer),
    route("POST", "/admin/v1/partners/{id}/suspend", Admin),
    route("POST", "/admin/v1/partners/{id}/activate", Admin),
    route("POST", "/admin/v1/partners/{id}/rotate-secret", Admin),
    route("PUT", "/admin/v1/partners/{id}/allowlist", Admin),
    route("PUT", "/admin/v1/partners/{id}/authorised-key", Admin),
    // Held work (http/admin_held.rs).
    route("GET", "/admin/v1/held", Viewer),
    route("POST", "/admin/v1/held/{kind}/{id}/resume", Op),
    route("POST", "/admin/v1/held/{kind}/{id}/resolve-success", Op),
    route("POST", "/admin/v1/held/{kind}/{id}/resolve-failed", Op),
    // Callbacks, events, held work (http/admin_events.rs).
    route("GET", "/admin/v1/partners/{id}/callback", Viewer),
    route("PUT", "/admin/v1/partners/{id}/callback", Admin),
    route("DELETE", "/admin/v1/partners/{id}/callback", Admin),
    route("POST", "/admin/v1/partners/{id}/callback/secret", Admin),
    route("GET", "/admin/v1/events", Viewer),
    route("GET", "/admin/v1/events/{id}", Viewer),
    route("POST", "/admin/v1/events/{id}/redeliver", Op),
    route("GET", "/admin/v1/upstream/held", Viewer),
    // The upstream's health, circuit and references (http/admin_events.rs).
    route("GET", "/admin/v1/upstream", Viewer),
    route("POST", "/admin/v1/upstream/circuit/close", Op),
    route("GET", "/admin/v1/upstream/refs/{kind}/{id}", Viewer),
    // Wallets, fee plans, verify (http/admin_money.rs).
    route("GET", "/admin/v1/partners/{id}/wallet", Viewer),
    route("POST", "/admin/v1/partners/{id}/wallet/topup", Op),
    route("POST", "/admin/v1/partners/{id}/wallet/withdraw", Op),
    route("GET", "/admin/v1/partners/{id}/wallet/statement", Viewer),
    // Commission settlement and the TDS report (http/admin_settlement.rs).
    route("POST", "/admin/v1/settlements", Admin),
    route("GET", "/admin/v1/settlements", Viewer),
    route("GET", "/admin/v1/tds-report", Viewer),
    // Reconciliation against a bank file (http/admin_reconcile.rs).
    route("POST", "/admin/v1/reconciliations", Op),
    route("GET", "/admin/v1/partners/{id}/fee-plans", Viewer),
    route("POST", "/admin/v1/partners/{id}/fee-plans", Admin),
    route("GET", "/admin/v1/verify", Viewer),
    // Search and timelines (http/admin_search.rs).
    route("GET", "/admin/v1/transactions", Viewer),
    route("GET", "/admin/v1/dmt/{ackno}/timeline", Viewer),
    route("GET", "/admin/v1/bbps/{txnid}/timeline", Viewer),
    // The audit log (http/admin_audit.rs).
    route("GET", "/admin/v1/audit", Viewer),
    // The sandbox upstream's hand control (http/upstream.rs).
    route("POST", "/sandbox/v1/advance", Op),
];

/// The role `method` on `path` needs, if the table has the route.
pub fn role_for(method: &Method, path: &str) -> Option<Role> {
    let method = if method == Method::HEAD { "GET" } else { method.as_str() };
    ROUTE_ROLES.iter().find(|r| r.method == method && r.path == path).map(|r| r.role)
}

/// Whether a routed path is an operator route (one [`authorize`] guards).
fn is_operator_path(path: &str) -> bool {
    path.starts_with("/admin/") || ROUTE_ROLES.iter().any(|r| r.path == path)
}

/// 401 in the operator API's one shape, `status` first; never says which check failed.
pub fn unauthenticated() -> ApiError {
    ApiError::Refused { status: StatusCode::UNAUTHORIZED, code: 11, message: "Authentication failed".into() }
}

/// 403: authenticated, but the role is too low.
fn forbidden(has: Role, needs: Role) -> ApiError {
    let message = format!("Forbidden: this needs the {needs} role; yours is {has}");
    ApiError::Refused { status: StatusCode::FORBIDDEN, code: 11, message }
}

/// The credentials of `Bearer <token>`; the scheme is case-insensitive
/// (RFC 9110 §11.1), so `bearer` and `BEARER` do as well.
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim_start())
}

/// Who the request's bearer token belongs to, or 401.
async fn authenticate(parts: &Parts, state: &AppState) -> Result<Actor, ApiError> {
    let sent = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .ok_or_else(unauthenticated)?;
    if sent.starts_with(TOKEN_PREFIX) {
        let actor = authenticate_token(&*state.store, state.clock.now(), sent).await?;
        return actor.ok_or_else(unauthenticated);
    }
    let bootstrap = state.settings.admin_token.as_ref().ok_or_else(unauthenticated)?;
    let matches: bool = sent.as_bytes().ct_eq(bootstrap.expose_secret().as_bytes()).into();
    matches.then_some(Actor::Bootstrap).ok_or_else(unauthenticated)
}

/// Authenticates every operator route's caller and checks the route's role
/// ([`ROUTE_ROLES`]) before the handler runs; hands the caller to the
/// handler as an [`Operator`].
pub async fn authorize(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    // Decided on the borrowed path: a partner request passes without a copy of it.
    let operator_path =
        request.extensions().get::<MatchedPath>().map(MatchedPath::as_str).filter(|p| is_operator_path(p));
    let Some(path) = operator_path.map(str::to_owned) else {
        return next.run(request).await;
    };
    let (mut parts, body) = request.into_parts();
    let actor = match authenticate(&parts, &state).await {
        Ok(actor) => actor,
        Err(refused) => return refused.into_response(),
    };
    super::request_log::record_operator(actor.name());
    let Some(needs) = role_for(&parts.method, &path) else {
        tracing::error!(method = %parts.method, path, "an operator route has no role in ROUTE_ROLES: refused");
        return forbidden(actor.role(), Role::Admin).into_response();
    };
    if actor.role() < needs {
        return forbidden(actor.role(), needs).into_response();
    }
    parts.extensions.insert(Operator(actor));
    next.run(Request::from_parts(parts, body)).await
}

/// The caller of an operator route, authenticated and allowed by [`authorize`].
#[derive(Debug, Clone)]
pub struct Operator(pub Actor);

impl FromRequestParts<Arc<AppState>> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        // Only a route behind `authorize` has one: anything else is refused.
        parts.extensions.get::<Operator>().cloned().ok_or_else(unauthenticated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_in_the_table_once() {
        for (i, a) in ROUTE_ROLES.iter().enumerate() {
            let twice = ROUTE_ROLES[i + 1..].iter().any(|b| a.method == b.method && a.path == b.path);
            assert!(!twice, "{} {} is in the table twice", a.method, a.path);
        }
    }

    #[test]
    fn head_is_read_as_get_and_unknown_routes_have_no_role() {
        assert_eq!(role_for(&Method::HEAD, "/admin/v1/verify"), Some(Role::Viewer));
        assert_eq!(role_for(&Method::POST, "/admin/v1/verify"), None);
        assert_eq!(role_for(&Method::GET, "/admin/v1/nothing"), None);
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
    }
}
