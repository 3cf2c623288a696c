//! The console's reconcile page, `/console/reconcile`: a form to paste a
//! bank file (a textarea, posted with the session's CSRF token) and the
//! run's summary and findings, through the same service, role and audit as
//! `POST /admin/v1/reconciliations`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use maud::{html, Markup};

use super::pages::{layout, respond};
use super::session::{csrf_ok, csrf_refused, signed_in, to_login};
use super::{form, SignedIn, CSRF_FIELD};
use crate::domain::operator::Role;
use crate::http::admin_auth::role_for;
use crate::http::admin_reconcile::{request, run_file, RunQuery};
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::services::reconcile::{Finding, Reconciliation};

/// The largest form the page reads (a pasted file).
const MAX_FORM: usize = 8 * 1024 * 1024;

/// The role the operator API's route needs: the console asks the same table.
fn run_role() -> Role {
    role_for(&Method::POST, "/admin/v1/reconciliations").unwrap_or(Role::Admin)
}

/// `GET /console/reconcile`: the form.
pub(super) async fn page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let Some(user) = signed_in(&state, &headers).await? else { return Ok(to_login()) };
    Ok(render(StatusCode::OK, &user, None, None))
}

/// `POST /console/reconcile`: runs the pasted file.
pub(super) async fn run(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Some(user) = signed_in(&state, &headers).await? else { return Ok(to_login()) };
    let body = axum::body::to_bytes(body, MAX_FORM)
        .await
        .map_err(|_| ApiError::Validation("the form could not be read (at most 8 MiB)".into()))?;
    let fields = form(&body)?;
    if !csrf_ok(&user, &fields) {
        return Ok(csrf_refused());
    }
    let needs = run_role();
    if user.role < needs {
        let message = format!("Your role ({}) may not run a reconciliation: this needs the {needs} role.", user.role);
        return Ok(render(StatusCode::FORBIDDEN, &user, Some((false, message)), None));
    }
    let field = |name: &str| fields.get(name).filter(|v| !v.is_empty()).cloned();
    let query = RunQuery {
        format: field("format"),
        columns: field("columns"),
        date: field("date"),
        hold: fields.get("hold").map(|_| "true".to_owned()),
        name: field("name"),
        report: None,
    };
    let file = fields.get("file").cloned().unwrap_or_default();
    let outcome = match request(&state, &query, &user.actor) {
        Ok(request) => run_file(&state, &request, file.as_bytes(), &user.actor).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(run) => Ok(render(StatusCode::OK, &user, None, Some(&run))),
        Err(ApiError::Validation(message)) => Ok(render(
            StatusCode::BAD_REQUEST,
            &user,
            Some((false, format!("Refused, nothing changed: {message}"))),
            None,
        )),
        Err(e) => Err(e),
    }
}

fn render(
    status: StatusCode,
    user: &SignedIn,
    notice: Option<(bool, String)>,
    run: Option<&Reconciliation>,
) -> Response {
    let may_run = user.role >= run_role();
    let body = html! {
        section.card {
            h1 { "Reconcile against a bank file" }
            @if let Some((ok, text)) = &notice {
                p #notice class=(if *ok { "notice ok" } else { "notice bad" }) { (text) }
            }
            @if may_run {
                (upload_form(user))
            } @else {
                p { "Your role (" (user.role) ") may look but not run a reconciliation: this needs the " (run_role()) " role." }
            }
        }
        @if let Some(run) = run { (results(run)) }
    };
    respond(status, layout("Reconcile", Some(user), "Reconcile", body))
}

fn upload_form(user: &SignedIn) -> Markup {
    html! {
        form #reconcile method="post" action="/console/reconcile" {
            input type="hidden" name=(CSRF_FIELD) value=(user.csrf);
            label { "Format" select name="format" {
                option value="csv" { "CSV (utr,amount,date,status[,reference])" }
                option value="paysprint" { "Paysprint daily report" }
            } }
            label { "Columns" input name="columns" placeholder="utr=UTR No,amount=Amt,… (CSV only)"; }
            label { "Date" input name="date" placeholder="YYYY-MM-DD (only this day)"; }
            label { "File name" input name="name" placeholder="kept in the reasons"; }
            label { "File" textarea name="file" rows="12" cols="80" required {} }
            label.check { input type="checkbox" name="hold" value="true"; " Hold mismatched transfers for review" }
            button type="submit" { "Reconcile" }
        }
    }
}

fn results(run: &Reconciliation) -> Markup {
    let s = &run.summary;
    let counts = [
        ("Lines", s.lines),
        ("Matched", s.matched),
        ("Amount mismatch", s.amount_mismatch),
        ("State mismatch", s.state_mismatch),
        ("In payrail only", s.payrail_only),
        ("In the file only", s.file_only),
        ("Held now", s.held),
        ("Noted now", s.noted),
        ("Already held or noted", s.already),
    ];
    html! {
        section.card #summary {
            h2 { "Summary of " (run.file) }
            table { tbody { @for (label, n) in counts { tr { th { (label) } td { (n) } } } } }
        }
        section.card {
            h2 { "Findings" }
            @if run.findings.is_empty() {
                p #no-findings { "No discrepancies." }
            } @else {
                table #findings {
                    thead { tr { th { "Category" } th { "UTR" } th { "Reference" } th { "Transaction" } th { "Partner" }
                                 th { "Amount here" } th { "Amount in file" } th { "State here" } th { "State in file" }
                                 th { "Line" } th { "Action" } } }
                    tbody { @for f in &run.findings { (finding_row(f)) } }
                }
            }
        }
    }
}

fn finding_row(f: &Finding) -> Markup {
    let amount = |p: Option<crate::domain::Paise>| p.map(|p| p.to_decimal_string()).unwrap_or_default();
    html! {
        tr {
            td { (f.category.name()) }
            td { (f.utr.as_deref().unwrap_or_default()) }
            td { (f.reference.as_deref().unwrap_or_default()) }
            td { @if let Some(ackno) = f.ackno { a href=(format!("/console/dmt/{ackno}")) { "DMT " (ackno) } } }
            td { (f.partner.map(|p| p.to_string()).unwrap_or_default()) }
            td { (amount(f.payrail_amount)) }
            td { (amount(f.file_amount)) }
            td { (f.payrail_state.map_or("", |s| s.name())) }
            td { (f.file_state.map_or("", |s| s.name())) }
            td { (f.line.map(|l| l.to_string()).unwrap_or_default()) }
            td { (f.action.map_or("", |a| a.name())) }
        }
    }
}
