//! The console's work queues, as maud templates: held transactions and
//! partner events, each with the actions the operator's role allows.

use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};

use super::actions::EventsShown;
use super::format::{ist, rupees_from_paise, state_words};
use super::pages::{layout, respond};
use super::{Page, SignedIn, CSRF_FIELD};
use crate::domain::event::{EventState, PartnerEvent};
use crate::domain::{Timestamp, TxnKind};
use crate::services::held::Held;

fn notice_line(notice: &Option<(bool, String)>) -> Markup {
    html! {
        @if let Some((ok, text)) = notice {
            p #notice class=(if *ok { "notice ok" } else { "notice bad" }) { (text) }
        }
    }
}

/// The form that resumes or resolves one held transaction.
fn held_form(user: &SignedIn, h: &Held) -> Markup {
    let key = format!("{}-{}", h.kind.as_str(), h.id);
    html! {
        form.held method="post" action=(format!("/console/held/{}/{}", h.kind.as_str(), h.id)) id=(format!("held-{key}")) {
            input type="hidden" name=(CSRF_FIELD) value=(user.csrf);
            label { "Action" select name="action" {
                option value="resume" { "Resume (ask again)" }
                option value="resolve-success" { "Resolve as paid" }
                option value="resolve-failed" { "Resolve as failed" }
            } }
            @if h.kind == TxnKind::Dmt {
                label { "UTR" input name="utr" placeholder="to resolve as paid"; }
            } @else {
                label { "Operator ref" input name="operator_id" placeholder="if known"; }
            }
            label { "Reason" input name="reason" required placeholder="why (kept in the history)"; }
            button type="submit" { "Apply" }
        }
    }
}

/// Partner events as a table (with a partner column when `with_partner`),
/// each with a redelivery form for roles that may; `back` are the form's
/// hidden fields that bring the answer back to the page it was on.
pub(super) fn events_table(
    user: &SignedIn,
    events: &[PartnerEvent],
    with_partner: bool,
    may_redeliver: bool,
    now: Timestamp,
    back: &[(&str, &str)],
) -> Markup {
    html! {
        div.scroll { table.rows #events {
            thead { tr {
                th { "Event" } @if with_partner { th { "Partner" } } th { "Transaction" } th { "Status" } th { "Delivery" }
                th.num { "Attempts" } th { "Made" } th { "Next attempt" } th {}
            } }
            tbody { @for e in events { tr {
                td { (e.id) }
                @if with_partner { td { a href=(format!("/console/partners/{}", e.partner)) { (e.partner) } } }
                td { a href=(format!("/console/{}/{}", e.kind.as_str(), e.txn_id)) { (e.kind.as_str().to_uppercase()) " " (e.txn_id) } }
                td { (e.status) }
                td { (state_words(e.state.name())) }
                td.num { (e.attempts) }
                td.nowrap { (ist(&e.created_at.to_ist_string())) }
                td.nowrap { (e.next_attempt_shown(now).map(|t| ist(&t.to_ist_string())).unwrap_or_else(|| "—".into())) }
                td { @if may_redeliver {
                    form.inline method="post" action=(format!("/console/events/{}/redeliver", e.id)) {
                        input type="hidden" name=(CSRF_FIELD) value=(user.csrf);
                        @for (name, value) in back { input type="hidden" name=(name) value=(value); }
                        button.small type="submit" { "Redeliver" }
                    }
                } }
            } } }
        } }
    }
}

/// The link to the page of events older than `last`, with the same filters.
fn older_href(shown: &EventsShown<'_>, last: i64) -> String {
    let query = [("partner", shown.partner), ("state", shown.state), ("before", &last.to_string())];
    format!("/console/events?{}", serde_urlencoded::to_string(query).unwrap_or_default())
}

impl Page {
    /// The held queue: each held transaction with since when and why, and
    /// (for roles that may) a form to resume or resolve it.
    pub fn held(
        status: StatusCode,
        user: &SignedIn,
        held: &[Held],
        may_act: bool,
        notice: Option<(bool, String)>,
    ) -> Response {
        let body = html! {
            h1 { "Held" }
            p.muted { "Transfers on hold and bill payments the poller gave up on: each waits for an operator. \
                       Resume asks the upstream again; resolving needs what the bank or biller says, and a reason." }
            (notice_line(&notice))
            @if !may_act {
                p.muted #read-only { "Your role (" (user.role.as_str()) ") may read the queue but not act on it. Ask an operator or an admin." }
            }
            section.card {
                @if held.is_empty() {
                    div.empty { "Nothing is held: every transaction is settled or being followed." }
                } @else {
                    div.scroll { table.rows #held {
                        thead { tr {
                            th { "Transaction" } th { "Partner" } th { "Reference" } th.num { "Amount" }
                            th { "Held since" } th { "Why" } th.num { "Polls" }
                            @if may_act { th { "Act" } }
                        } }
                        tbody { @for h in held { tr {
                            td { a href=(format!("/console/{}/{}", h.kind.as_str(), h.id)) { (h.kind.as_str().to_uppercase()) " " (h.id) } }
                            td { (h.partner) }
                            td.mono { (h.reference) }
                            td.num { (rupees_from_paise(h.amount.get())) }
                            td.nowrap { (ist(&h.since.to_ist_string())) }
                            td { (h.reason) span.muted { " (" (h.source) ")" } }
                            td.num { (h.polls.map(|p| p.to_string()).unwrap_or_else(|| "—".into())) }
                            @if may_act { td { (held_form(user, h)) } }
                        } } }
                    } }
                }
            }
        };
        respond(status, layout("Held", Some(user), "Held", body))
    }

    /// Partner events across partners, newest first, with their delivery
    /// and (for roles that may) redelivery.
    pub fn events(
        status: StatusCode,
        user: &SignedIn,
        events: &[PartnerEvent],
        shown: &EventsShown<'_>,
        may_redeliver: bool,
        now: Timestamp,
        notice: Option<(bool, String)>,
    ) -> Response {
        let body = html! {
            h1 { "Events" }
            form.card.filters method="get" action="/console/events" {
                div.grid {
                    label { "Partner" input #events-partner name="partner" value=(shown.partner) placeholder="AOP-1001"; }
                    label { "Delivery" select #events-state name="state" {
                        option value="" selected[shown.state.is_empty()] { "any" }
                        @for s in EventState::ALL {
                            option value=(s.name()) selected[shown.state == s.name()] { (state_words(s.name())) }
                        }
                    } }
                }
                div.actions { button type="submit" { "Filter" } a.button.secondary href="/console/events" { "Clear" } }
            }
            (notice_line(&notice))
            section.card {
                @if events.is_empty() {
                    div.empty { "No events match. Events are made when transactions reach a final state; clear the filters to see them all." }
                } @else {
                    (events_table(user, events, true, may_redeliver, now, &[("from", "events"), ("partner", shown.partner), ("state", shown.state)]))
                    @if let Some(last) = shown.older {
                        p { a #older href=(older_href(shown, last)) { "Older events →" } }
                    }
                }
            }
        };
        respond(status, layout("Events", Some(user), "Events", body))
    }
}
