//! The console's pages, as maud templates: one layout, one function a page.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse as _, Response};
use maud::{html, Markup, DOCTYPE};
use serde_json::Value as Json;

use super::format::{ist, rupees, rupees_from_paise, state_class, state_with_code, state_words};
use super::{Counts, PartnerRow, SignedIn, Totals, CSRF_FIELD};
use crate::domain::event::PartnerEvent;
use crate::domain::fee_plan::FeePlanVersion;
use crate::domain::operator::{AuditEntry, AuditFilter};
use crate::domain::Timestamp;
use crate::domain::TxnKind;
use crate::services::search::{PageView, RowView, TxnDetail};

/// The console's pages.
pub struct Page;

pub(super) fn respond(status: StatusCode, markup: Markup) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], markup.into_string()).into_response()
}

/// The frame around every page: the header with the navigation and the
/// signed-in operator, and a logout form.
pub(super) fn layout(title: &str, user: Option<&SignedIn>, current: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · payrail console" }
                link rel="stylesheet" href="/console/console.css";
            }
            body {
                header.top {
                    a.brand href="/console/" { "payrail" }
                    @if let Some(user) = user {
                        nav {
                            @for (href, label) in [("/console/", "Dashboard"), ("/console/transactions", "Transactions"),
                                                   ("/console/held", "Held"), ("/console/events", "Events"),
                                                   ("/console/partners", "Partners"), ("/console/reconcile", "Reconcile"),
                                                   ("/console/audit", "Audit log")] {
                                a href=(href) class=(if current == label { "current" } else { "" }) { (label) }
                            }
                            @if user.role == crate::domain::operator::Role::Admin {
                                a href="/console/operators" class=(if current == "Operators" { "current" } else { "" }) { "Operators" }
                            }
                        }
                        div.who {
                            span #operator { (user.email) } " "
                            span.role { (user.role.as_str()) }
                            form.inline method="post" action="/console/logout" {
                                input type="hidden" name=(CSRF_FIELD) value=(user.csrf);
                                button.link #logout type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

fn txn_href(row: &RowView) -> String {
    match (row.ackno, row.txnid) {
        (Some(ackno), _) => format!("/console/dmt/{ackno}"),
        (None, Some(txnid)) => format!("/console/bbps/{txnid}"),
        _ => "/console/transactions".into(),
    }
}

fn txn_name(row: &RowView) -> String {
    match (row.ackno, row.txnid) {
        (Some(ackno), _) => format!("DMT {ackno}"),
        (None, Some(txnid)) => format!("BBPS {txnid}"),
        _ => String::new(),
    }
}

fn state_badge(name: &str, code: i64) -> Markup {
    html! { span class=(state_class(name)) { (state_with_code(name, code)) } }
}

/// The rows of a search page as a table; `empty` when there are none.
fn rows_table(rows: &[RowView], empty: Markup) -> Markup {
    html! {
        @if rows.is_empty() {
            div.empty { (empty) }
        } @else {
            div.scroll {
                table.rows #results {
                    thead { tr {
                        th { "Transaction" } th { "Partner" } th { "Reference" } th.num { "Amount" }
                        th { "State" } th { "UTR / operator ref" } th { "Created" }
                    } }
                    tbody {
                        @for row in rows {
                            tr {
                                td { a href=(txn_href(row)) { (txn_name(row)) } }
                                td { (row.registration_id) }
                                td.mono { (row.reference_id) }
                                td.num { (rupees(&row.amount)) }
                                td { (state_badge(row.status, row.code)) }
                                td.mono { (row.utr.as_deref().or(row.operator_ref.as_deref()).unwrap_or("—")) }
                                td.nowrap { (ist(&row.created_at)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The search form's fields: name, label, placeholder.
const FILTERS: [(&str, &str, &str); 13] = [
    ("reference", "Reference", "partner's reference_id"),
    ("utr", "UTR", "bank UTR"),
    ("ackno", "Ackno", "DMT number"),
    ("txnid", "Txnid", "BBPS number"),
    ("partner", "Partner", "AOP-1001"),
    ("mobile", "Mobile", "10 digits"),
    ("account", "Account", "beneficiary account"),
    ("canumber", "CA number", "bill account"),
    ("status", "State", "success, on_hold, …"),
    ("from", "From (IST)", "2026-01-31 or 2026-01-31 10:00:00"),
    ("to", "To (IST)", "2026-01-31"),
    ("min_amount", "Min ₹", "1000"),
    ("max_amount", "Max ₹", "50000"),
];

impl Page {
    /// A page with a heading and a sentence saying what happened and what to do.
    pub fn message(status: StatusCode, user: Option<&SignedIn>, heading: &str, text: &str) -> Response {
        let body = html! { section.card { h1 { (heading) } p.notice.bad { (text) } p { a href="/console/" { "Back to the dashboard" } } } };
        respond(status, layout(heading, user, "", body))
    }

    /// The login form.
    pub fn login(status: StatusCode, token: &str, error: Option<&str>, email: &str) -> Response {
        let body = html! {
            section.card.narrow {
                h1 { "Sign in" }
                p.muted { "The payrail operations console. Sign in with your operator email and password." }
                @if let Some(error) = error { p.notice.bad #error { (error) } }
                form method="post" action="/console/login" {
                    input type="hidden" name=(CSRF_FIELD) value=(token);
                    label { "Email" input #email type="email" name="email" value=(email) autocomplete="username" required autofocus; }
                    label { "Password" input #password type="password" name="password" autocomplete="current-password" required; }
                    button #sign-in type="submit" { "Sign in" }
                }
            }
        };
        respond(status, layout("Sign in", None, "", body))
    }

    /// The dashboard.
    pub fn dashboard(
        user: &SignedIn,
        counts: Counts,
        periods: &[(&str, Totals)],
        lowest: &[PartnerRow],
        recent: &PageView,
    ) -> Response {
        let rate = |totals: &Totals, kind: TxnKind| match totals.success_rate(kind) {
            Some((ok, all)) => format!("{:.1}% ({ok} of {all})", ok as f64 * 100.0 / all as f64),
            None => "—".into(),
        };
        let month_pending = periods.last().map(|(_, t)| t.pending()).unwrap_or(0);
        let body = html! {
            h1 { "Dashboard" }
            div.tiles {
                a.tile href="/console/held" { span.big #on-hold-count { (counts.on_hold) } span { "transfers on hold" } }
                a.tile href="/console/held" { span.big { (counts.held_polls) } span { "transactions the poller gave up on" } }
                a.tile href="/console/transactions?status=in_process,sent_to_bank,pending" {
                    span.big { (month_pending) } span { "pending this month (in process, sent to bank, pending)" }
                }
                a.tile href="/console/partners" {
                    span.big #outbox { (counts.outbox) } span { "partner events waiting for delivery" }
                }
                div.tile #upstream {
                    @match &counts.circuit_open {
                        Some(reason) => {
                            span.big.bad { "Circuit open" }
                            span { (reason) ". No new transaction is submitted until an operator closes it." }
                        }
                        None => {
                            span.big { (counts.upstream_unanswered) }
                            span { "upstream calls without an answer in the last hour (circuit closed)" }
                        }
                    }
                }
            }
            div.columns.even {
                @for (name, totals) in periods {
                    section.card.totals {
                        h2 { (name) }
                        p.muted { "Success rate: DMT " (rate(totals, TxnKind::Dmt)) " · BBPS " (rate(totals, TxnKind::Bbps)) }
                        @if totals.rows.is_empty() {
                            div.empty { "No transactions in this period yet." }
                        } @else {
                            table.rows {
                                thead { tr { th { "Kind" } th { "State" } th.num { "Count" } th.num { "Amount" } } }
                                tbody { @for (kind, state, code, count, paise) in &totals.rows { tr {
                                    td { (kind.as_str().to_uppercase()) }
                                    td { (state_badge(state, *code)) }
                                    td.num { (count) }
                                    td.num { (rupees_from_paise(*paise)) }
                                } } }
                            }
                        }
                    }
                }
            }
            section.card {
                h2 { "Partners with the lowest wallets" }
                @if lowest.is_empty() {
                    div.empty { "No partners yet. Add one with payrail partner add." }
                } @else {
                    table.rows #lowest-wallets {
                        thead { tr { th { "Partner" } th { "Name" } th.num { "Wallet" } } }
                        tbody { @for p in lowest { tr {
                            td { a href=(format!("/console/partners/{}", p.id)) { (p.id) } }
                            td { (p.name) }
                            td.num { (rupees_from_paise(p.balance)) }
                        } } }
                    }
                }
            }
            section.card {
                h2 { "Latest transactions" }
                (rows_table(&recent.transactions, html! { "No transactions yet. They appear here as partners send them." }))
            }
        };
        respond(StatusCode::OK, layout("Dashboard", Some(user), "Dashboard", body))
    }

    /// The search form and its results (or what is wrong with the search).
    pub fn search(
        status: StatusCode,
        user: &SignedIn,
        given: &[(String, String)],
        searched: bool,
        answer: Result<PageView, String>,
    ) -> Response {
        let value = |name: &str| given.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap_or_default();
        let kind = value("kind");
        let keep: Vec<(String, String)> = given.iter().filter(|(n, _)| n != "cursor").cloned().collect();
        let next_href = |cursor: &str| {
            let mut pairs = keep.clone();
            pairs.push(("cursor".into(), cursor.into()));
            format!("/console/transactions?{}", serde_urlencoded::to_string(&pairs).unwrap_or_default())
        };
        let csv_pairs: Vec<(String, String)> = keep.iter().filter(|(n, _)| n != "limit").cloned().collect();
        let csv_href = format!(
            "/admin/v1/transactions?format=csv&{}",
            serde_urlencoded::to_string(&csv_pairs).unwrap_or_default()
        );
        let body = html! {
            h1 { "Transactions" }
            form.card.filters #search method="get" action="/console/transactions" {
                div.grid {
                    label { "Kind" select name="kind" {
                        option value="" selected[kind.is_empty()] { "DMT and BBPS" }
                        option value="dmt" selected[kind == "dmt"] { "DMT" }
                        option value="bbps" selected[kind == "bbps"] { "BBPS" }
                    } }
                    @for (name, label, hint) in FILTERS {
                        label { (label) input id=(name) name=(name) value=(value(name)) placeholder=(hint); }
                    }
                    label { "Per page" input #limit name="limit" value=(value("limit")) placeholder="50"; }
                }
                div.actions {
                    button #search-button type="submit" { "Search" }
                    a.button.secondary href="/console/transactions" { "Clear" }
                }
            }
            @match &answer {
                Err(problem) => {
                    p.notice.bad #error { (problem) ". Fix the field and search again." }
                }
                Ok(page) => {
                    section.card {
                        (rows_table(&page.transactions, html! {
                            @if searched { "Nothing matches these filters. Loosen them (a date range, fewer fields) and search again." }
                            @else { "No transactions yet." }
                        }))
                        @if let Some(cursor) = &page.next_cursor {
                            p.actions { a.button #next-page href=(next_href(cursor)) { "Next page →" } }
                        }
                    }
                    p.muted { "The operator API exports every matching row as CSV: " code { (csv_href) } }
                }
            }
        };
        respond(status, layout("Transactions", Some(user), "Transactions", body))
    }

    /// A transaction: its record, the actions the role allows, and its timeline.
    pub fn transaction(
        status: StatusCode,
        user: &SignedIn,
        kind: TxnKind,
        detail: &TxnDetail,
        may_act: bool,
        notice: Option<(bool, String)>,
    ) -> Response {
        let t = &detail.transaction;
        let name = txn_name(t);
        let action = format!("{}/transition", txn_href(t));
        let targets: &[(&str, &str)] = match kind {
            TxnKind::Dmt => &[
                ("success", "Success (needs the UTR)"),
                ("failed", "Failed"),
                ("on_hold", "On hold"),
                ("sent_to_bank", "Sent to bank"),
                ("refunded", "Refunded"),
            ],
            TxnKind::Bbps => &[("success", "Success"), ("failed", "Failed"), ("refunded", "Refunded")],
        };
        let facts: Vec<(&str, String)> = [
            ("Partner", Some(t.registration_id.clone())),
            ("Reference", Some(t.reference_id.clone())),
            ("Amount", Some(rupees(&t.amount))),
            ("UTR", t.utr.clone()),
            ("Operator ref", t.operator_ref.clone()),
            ("Mobile", t.mobile.clone()),
            ("Account", t.account.clone()),
            ("CA number", t.canumber.clone()),
            ("Biller", t.operator_name.clone()),
            ("Created", Some(ist(&t.created_at))),
            ("Refund id", t.refund_txn_id.clone()),
            ("Refunded", t.refunded_at.as_deref().map(ist)),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
        let body = html! {
            h1 { (name) " " (state_badge(t.status, t.code)) }
            div.columns {
                section.card {
                    h2 { "Record" }
                    dl.facts #record {
                        @for (k, v) in &facts { dt { (k) } dd { (v) } }
                    }
                }
                section.card #actions {
                    h2 { "Change its state" }
                    @if let Some((ok, text)) = &notice {
                        p #notice class=(if *ok { "notice ok" } else { "notice bad" }) { (text) }
                    }
                    @if may_act {
                        form method="post" action=(action) {
                            input type="hidden" name=(CSRF_FIELD) value=(user.csrf);
                            label { "Move to" select #to name="to" {
                                @for (value, label) in targets { option value=(value) { (label) } }
                            } }
                            @if kind == TxnKind::Dmt {
                                label { "UTR" input #utr name="utr" placeholder="the bank's UTR, for success"; }
                            } @else {
                                label { "Operator ref" input #operator_id name="operator_id" placeholder="the biller's reference"; }
                            }
                            label { "Reason" textarea #reason name="reason" required placeholder="why: kept in the history and the audit log" {} }
                            button #apply type="submit" { "Apply" }
                        }
                    } @else {
                        p.muted #read-only { "Your role (" (user.role.as_str()) ") may read this transaction but not change it. Ask an operator or an admin." }
                    }
                }
            }
            section.card {
                h2 { "Timeline" }
                @if detail.timeline.is_empty() {
                    div.empty { "Nothing has happened to it yet." }
                } @else {
                    ol.timeline #timeline {
                        @for item in &detail.timeline {
                            li {
                                div.when { (ist(&item.at.to_ist_string())) }
                                div.what { strong { (state_words(item.kind)) } }
                                dl.details {
                                    @for (k, v) in item.details.iter().filter(|(_, v)| !v.is_null()) {
                                        dt { (k) } dd { (show_detail(k, v)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        };
        respond(status, layout(&name, Some(user), "Transactions", body))
    }

    /// Every partner, lowest wallet first.
    pub fn partners(user: &SignedIn, rows: &[PartnerRow]) -> Response {
        let body = html! {
            h1 { "Partners" }
            section.card {
                @if rows.is_empty() {
                    div.empty { "No partners yet. Add one with payrail partner add." }
                } @else {
                    div.scroll { table.rows #partners {
                        thead { tr { th { "Partner" } th { "Name" } th { "Status" } th.num { "Wallet" } th { "Callback URL" } } }
                        tbody { @for p in rows { tr {
                            td { a href=(format!("/console/partners/{}", p.id)) { (p.id) } }
                            td { (p.name) }
                            td { (state_words(p.status)) }
                            td.num { (rupees_from_paise(p.balance)) }
                            td.mono { (p.callback_url.as_deref().unwrap_or("none")) }
                        } } }
                    } }
                }
            }
        };
        respond(StatusCode::OK, layout("Partners", Some(user), "Partners", body))
    }

    /// A partner: wallet, callback URL, fee plans and recent events (with redelivery).
    #[allow(clippy::too_many_arguments)]
    pub fn partner(
        status: StatusCode,
        user: &SignedIn,
        p: &PartnerRow,
        plans: &[FeePlanVersion],
        events: &[PartnerEvent],
        may_redeliver: bool,
        now: Timestamp,
        notice: Option<(bool, String)>,
    ) -> Response {
        let body = html! {
            h1 { (p.id) " " span.muted { (p.name) } }
            @if let Some((ok, text)) = &notice {
                p #notice class=(if *ok { "notice ok" } else { "notice bad" }) { (text) }
            }
            div.columns {
                section.card {
                    h2 { "Wallet and callbacks" }
                    dl.facts #partner {
                        dt { "Status" } dd { (state_words(p.status)) }
                        dt { "Wallet" } dd #wallet { (rupees_from_paise(p.balance)) }
                        dt { "Callback URL" } dd.mono { (p.callback_url.as_deref().unwrap_or("none: events wait until one is set")) }
                        dt { "Transactions" } dd { a href=(format!("/console/transactions?partner={}", p.id)) { "Search this partner's transactions" } }
                    }
                    form.statement method="get" action=(format!("/console/partners/{}/statement", p.id)) {
                        h2 { "Wallet statement (CSV)" }
                        div.grid2 {
                            label { "From" input #statement-from type="date" name="from" required; }
                            label { "To" input #statement-to type="date" name="to" required; }
                        }
                        button #statement type="submit" { "Download" }
                    }
                }
                section.card {
                    h2 { "Fee plans" }
                    @if plans.is_empty() {
                        div.empty { "No plan of its own: the default plan applies." }
                    } @else {
                        @for v in plans {
                            p { strong { "Version " (v.version) } " · from " (ist(&v.effective_from.to_ist_string())) }
                            pre.mono.small { (v.plan.to_json()) }
                        }
                    }
                }
            }
            section.card {
                h2 { "Recent events" }
                @if events.is_empty() {
                    div.empty { "No events yet: they are made when its transactions reach a final state." }
                } @else {
                    (super::queue_pages::events_table(user, events, false, may_redeliver, now, &[("partner", &p.id)]))
                }
            }
        };
        respond(status, layout(&p.id, Some(user), "Partners", body))
    }

    /// The operators and their roles.
    pub fn operators(user: &SignedIn, operators: &[crate::domain::operator::OperatorAccount]) -> Response {
        let body = html! {
            h1 { "Operators" }
            p.muted { "Add, disable and change operators with " code { "payrail operator …" } "; every change is in the audit log." }
            section.card { div.scroll { table.rows #operators {
                thead { tr { th { "Email" } th { "Role" } th { "State" } th { "Added" } } }
                tbody { @for o in operators { tr {
                    td { (o.email) }
                    td { (o.role.as_str()) }
                    td { @if o.disabled { span.state.bad { "Disabled" } } @else { span.state.ok { "Active" } } }
                    td.nowrap { (ist(&o.created_at.to_ist_string())) }
                } } }
            } } }
        };
        respond(StatusCode::OK, layout("Operators", Some(user), "Operators", body))
    }

    /// The audit log, newest first.
    pub fn audit(user: &SignedIn, filter: &AuditFilter, entries: &[AuditEntry]) -> Response {
        let body = html! {
            h1 { "Audit log" }
            form.card.filters method="get" action="/console/audit" {
                div.grid {
                    label { "Operator" input name="operator" value=(filter.actor.as_deref().unwrap_or("")) placeholder="email, cli or bootstrap"; }
                    label { "Target" input name="target" value=(filter.target.as_deref().unwrap_or("")) placeholder="dmt:123, operator:a@b.in"; }
                }
                div.actions { button type="submit" { "Filter" } a.button.secondary href="/console/audit" { "Clear" } }
            }
            section.card {
                @if entries.is_empty() {
                    div.empty { "No entries match. Clear the filters to see every entry." }
                } @else {
                    div.scroll { table.rows #audit {
                        thead { tr { th { "When" } th { "Operator" } th { "Action" } th { "Target" } th { "Change" } } }
                        tbody { @for e in entries { tr {
                            td.nowrap { (ist(&e.entry.at.to_ist_string())) }
                            td { (e.entry.actor) }
                            td.mono { (e.entry.action) }
                            td.mono { (e.entry.target) }
                            td.mono.small { (e.entry.before.as_deref().unwrap_or("")) @if e.entry.after.is_some() { " → " (e.entry.after.as_deref().unwrap_or("")) } }
                        } } }
                    } }
                }
            }
        };
        respond(StatusCode::OK, layout("Audit log", Some(user), "Audit log", body))
    }
}

/// A timeline detail's value as text: states in words, the rest as the API writes it.
fn show_detail(name: &str, value: &Json) -> String {
    match (name, value) {
        ("from" | "to" | "status", Json::String(s)) if s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') => {
            state_words(s)
        }
        (_, Json::String(s)) => s.clone(),
        (_, other) => other.to_string(),
    }
}
