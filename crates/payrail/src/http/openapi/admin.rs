//! The operator API's operations (`/admin/v1/…`): bearer tokens, each
//! operation's least role from `ROUTE_ROLES` (added as `x-payrail-role`),
//! the samples of docs/API.md and the README.

use serde_json::json;

use super::{query_param, Op};

const TXNS: &str = "Operator: transactions";
const PARTNERS: &str = "Operator: partners";
const EVENTS: &str = "Operator: events";
const HELD: &str = "Operator: held work";
const SEARCH: &str = "Operator: search and audit";

const NO_TXN: (u16, &str) = (404, "No such transaction (code 2).");
const NO_PARTNER: (u16, &str) = (404, "No such partner (code 2).");
const PARTNER: &str = r#"{"registration_id":"AOP-1001","name":"Kirana Pay","status":"active","require_token":true,"allow_ips":[],"authorised_key_set":false,"previous_secret_valid_until":null,"created_at":"2026-12-04 10:02:11"}"#;
const HELD_ACTED: &str = r#"{"kind":"dmt","id":418502913,"action":"held.resolve_success","status":"success","history":[{"from":null,"to":"in_process","at":"2026-12-04 10:15:00","source":"partner","reason":null},{"from":"on_hold","to":"success","at":"2026-12-04 10:31:40","source":"operator:ops@example.in","reason":"bank statement shows it paid"}]}"#;

fn ackno(op: Op) -> Op {
    op.path_param("ackno", true, json!(418502913), "The transfer's number.")
}

fn txnid(op: Op) -> Op {
    op.path_param("txnid", true, json!(736120458), "The bill payment's number.")
}

fn partner(op: Op) -> Op {
    op.partner_param("AOP-554")
}

/// A change to the partner's access: the examples make it to the demo's
/// token partner, so that the seed partner stays reachable.
fn token_partner(op: Op) -> Op {
    op.partner_param("AOP-1001")
}

fn held(op: Op) -> Op {
    op.kind_param().path_param("id", false, json!("418502913"), "The transaction's number.")
}

/// Every operator operation.
pub(super) fn operations() -> Vec<Op> {
    vec![
        // Transactions (http/admin.rs).
        Op::post("/admin/v1/dmt", TXNS, "Creates a test transfer, in process, priced by the partner's plan")
            .body("CreateDmt", r#"{"registration_id":"AOP-554","reference_id":"OPS-1","amount":"1000","account":"123456789012"}"#)
            .answer(201, "The transfer and its history.", &["DmtView"])
            .refusals(&[(404, "No such partner (code 2)."), (409, "The reference is taken (code 8).")]),
        ackno(Op::get("/admin/v1/dmt/{ackno}", TXNS, "A transfer and its status history"))
            .answer(200, "The transfer.", &["DmtView"])
            .refusals(&[NO_TXN]),
        ackno(Op::post("/admin/v1/dmt/{ackno}/transition", TXNS, "Moves a transfer"))
            .body("Transition", r#"{"to":"success","utr":"UTR123456","reason":"bank statement shows it paid"}"#)
            .answer(200, "The transfer after the move.", &["DmtView"])
            .refusals(&[NO_TXN, (409, "Not allowed from its state (code 8).")]),
        Op::post("/admin/v1/bbps", TXNS, "Creates a test bill payment, pending")
            .body("CreateBill", r#"{"registration_id":"AOP-554","reference_id":"OPS-B1","operator_name":"Indane Gas","ca_number":"102277100","amount":"500"}"#)
            .answer(201, "The bill payment and its history.", &["BillView"])
            .refusals(&[(404, "No such partner (code 2)."), (409, "The reference is taken (code 8).")]),
        txnid(Op::get("/admin/v1/bbps/{txnid}", TXNS, "A bill payment and its status history"))
            .answer(200, "The bill payment.", &["BillView"])
            .refusals(&[NO_TXN]),
        txnid(Op::post("/admin/v1/bbps/{txnid}/transition", TXNS, "Moves a bill payment"))
            .body("Transition", r#"{"to":"failed","reason":"biller rejected it"}"#)
            .answer(200, "The bill payment after the move.", &["BillView"])
            .refusals(&[NO_TXN, (409, "Not allowed from its state (code 8).")]),
        // Partners (http/admin_partners.rs).
        Op::get("/admin/v1/partners", PARTNERS, "Every partner, by registration id (never a secret)")
            .answer(200, "The partners.", &["PartnerList"]),
        Op::post("/admin/v1/partners", PARTNERS, "Adds a partner; its token secret is shown this once")
            .body("NewPartner", r#"{"name":"Kirana Pay","allow_ips":[],"require_token":true}"#)
            .answer(201, "The partner and its secret.", &["Added"]),
        partner(Op::get("/admin/v1/partners/{id}", PARTNERS, "A partner"))
            .sample(200, "The partner.", &["PartnerView"], PARTNER)
            .refusals(&[NO_PARTNER]),
        token_partner(Op::post("/admin/v1/partners/{id}/suspend", PARTNERS, "Suspends a partner: every request refused"))
            .answer(200, "The partner.", &["PartnerView"])
            .refusals(&[NO_PARTNER]),
        token_partner(Op::post("/admin/v1/partners/{id}/activate", PARTNERS, "Activates a suspended partner"))
            .answer(200, "The partner.", &["PartnerView"])
            .refusals(&[NO_PARTNER]),
        token_partner(Op::post("/admin/v1/partners/{id}/rotate-secret", PARTNERS, "A new token secret, shown once; the old one works for the overlap"))
            .optional_body("Rotate", Some(r#"{"overlap_hours":1}"#))
            .answer(200, "The new secret.", &["Rotated"])
            .refusals(&[NO_PARTNER]),
        token_partner(Op::put("/admin/v1/partners/{id}/allowlist", PARTNERS, "Sets where a partner may call from"))
            .body("SetAllowlist", r#"{"allow_ips":["203.0.113.0/24","198.51.100.7"]}"#)
            .answer(200, "The partner.", &["PartnerView"])
            .refusals(&[NO_PARTNER]),
        token_partner(Op::put("/admin/v1/partners/{id}/authorised-key", PARTNERS, "Sets (or with null, clears) the Authorisedkey a partner must send"))
            .body("SetAuthorisedKey", r#"{"authorised_key":"ak-7f3e-SECRET"}"#)
            .answer(200, "The partner.", &["PartnerView"])
            .refusals(&[NO_PARTNER]),
        // Callbacks (http/admin_events.rs).
        partner(Op::get("/admin/v1/partners/{id}/callback", PARTNERS, "A partner's callback URL (never the secret)"))
            .answer(200, "The URL, or null.", &["CallbackView"])
            .refusals(&[NO_PARTNER]),
        partner(Op::put("/admin/v1/partners/{id}/callback", PARTNERS, "Sets a partner's callback URL (a first one issues the secret, shown once)"))
            .body("SetCallback", r#"{"url":"https://partner.example/payrail/callback"}"#)
            .answer(200, "The URL, and the secret if one was issued.", &["CallbackView"])
            .refusals(&[NO_PARTNER]),
        partner(Op::delete("/admin/v1/partners/{id}/callback", PARTNERS, "Clears a partner's callback URL"))
            .answer(200, "The URL (null).", &["CallbackView"])
            .refusals(&[NO_PARTNER]),
        partner(Op::post("/admin/v1/partners/{id}/callback/secret", PARTNERS, "A new callback secret, shown once; the old one also signs for the overlap"))
            .optional_body("RotateCallbackSecret", Some(r#"{"overlap_hours":24}"#))
            .answer(200, "The new secret.", &["RotatedCallbackSecret"])
            .refusals(&[NO_PARTNER]),
        // Events and the upstream (http/admin_events.rs).
        Op::get("/admin/v1/events", EVENTS, "Partner callback events, newest first")
            .query(crate::http::admin_events::event_params())
            .answer(200, "The events.", &["EventList"]),
        Op::get("/admin/v1/events/{id}", EVENTS, "An event, its body and every delivery attempt")
            .path_param("id", true, json!(1), "The event's id.")
            .answer(200, "The event.", &["EventDetail"])
            .refusals(&[(404, "No such event (code 2).")]),
        Op::post("/admin/v1/events/{id}/redeliver", EVENTS, "Delivers an event again")
            .path_param("id", true, json!(1), "The event's id.")
            .answer(200, "The event.", &["EventView"])
            .refusals(&[(404, "No such event (code 2)."), (409, "Not redeliverable now (code 8).")]),
        Op::get("/admin/v1/upstream/held", EVENTS, "Transactions the poller gave up on")
            .answer(200, "The transactions.", &["UpstreamHeldList"]),
        Op::get("/admin/v1/upstream", EVENTS, "The provider, its authentication circuit and its calls since the start")
            .sample(200, "The upstream's health.", &["UpstreamView"],
                r#"{"provider":"paysprint","circuit":{"state":"open","since":"2026-12-04 09:12:40","operation":"dmt/transact/transact","reason":"response_code 24: Invalid JWT token"},"calls":[{"operation":"dmt/kyc/remitter/queryremitter/kyc","outcome":"answered","count":1,"latency_ms_sum":4,"latency_ms_max":4},{"operation":"dmt/transact/transact","outcome":"auth_refused","count":1,"latency_ms_sum":3,"latency_ms_max":3}]}"#),
        Op::post("/admin/v1/upstream/circuit/close", EVENTS, "Closes the authentication circuit (body `{}` or none)")
            .sample(200, "Whether it was open, and the circuit now.", &["Closed"],
                r#"{"was_open":true,"circuit":{"state":"closed","since":null,"operation":null,"reason":null}}"#),
        Op::get("/admin/v1/upstream/refs/{kind}/{id}", EVENTS, "The reference the upstream knows a transaction by")
            .kind_param()
            .path_param("id", true, json!(418502913), "The ackno or txnid.")
            .sample(200, "The reference.", &["RefView"], r#"{"kind":"dmt","id":418502913,"upstream_ref":"PRD4185029137F3A09QMZTK"}"#)
            .refusals(&[(404, "Never sent upstream (code 2).")]),
        // Wallets, fee plans, verify (http/admin_money.rs).
        partner(Op::get("/admin/v1/partners/{id}/wallet", PARTNERS, "A partner's wallet balance"))
            .answer(200, "The balance.", &["Balance"])
            .refusals(&[NO_PARTNER]),
        partner(Op::post("/admin/v1/partners/{id}/wallet/topup", PARTNERS, "Credits a partner's wallet"))
            .body("Movement", r#"{"amount":"50000","memo":"NEFT UTR 1234"}"#)
            .answer(200, "The balance before and after.", &["Moved"])
            .refusals(&[NO_PARTNER]),
        partner(Op::post("/admin/v1/partners/{id}/wallet/withdraw", PARTNERS, "Debits a partner's wallet"))
            .body("Movement", r#"{"amount":"100","memo":"returned to the partner"}"#)
            .answer(200, "The balance before and after.", &["Moved"])
            .refusals(&[NO_PARTNER, (409, "The balance is too low (code 8).")]),
        partner(Op::get("/admin/v1/partners/{id}/wallet/statement", PARTNERS, "A partner's wallet statement, as CSV"))
            .query(vec![
                super::required_query("from", r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", "The first day, YYYY-MM-DD (India time)."),
                super::required_query("to", r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", "The last day, YYYY-MM-DD (India time)."),
            ])
            .csv(200, "The statement.")
            .refusals(&[NO_PARTNER]),
        partner(Op::get("/admin/v1/partners/{id}/fee-plans", PARTNERS, "A partner's fee plan versions and the default plan"))
            .answer(200, "The plans.", &["Plans"])
            .refusals(&[NO_PARTNER]),
        partner(Op::post("/admin/v1/partners/{id}/fee-plans", PARTNERS, "Adds a fee plan version"))
            .body("NewPlan", r#"{"effective_from":"2026-12-05","plan":{"dmt":{"slabs":[{"up_to":"1000","charge":"10","provider_share":"3.50"},{"charge_percent":"1","min_charge":"10","max_charge":"50","provider_share_percent":"35"}],"discount":"gst"},"bbps":{"default":{"percent":"0.21","cap":"50"},"categories":{"Electricity":{"percent":"0.25","cap":"40"}}},"penny_drop_fee":"3.54"}}"#)
            .answer(201, "The version.", &["PlanVersion"])
            .refusals(&[NO_PARTNER]),
        Op::get("/admin/v1/verify", SEARCH, "Checks the ledger's invariants")
            .answer(200, "Whether they hold, and any violation.", &["Verdict"]),
        // Search and timelines (http/admin_search.rs).
        Op::get("/admin/v1/transactions", SEARCH, "Searches every transfer and bill payment (JSON or CSV)")
            .query(search_params())
            .sample(200, "A page of rows, newest first (JSON); every row with format=csv.", &["PageView"],
                r#"{"transactions":[{"kind":"dmt","ackno":407133118,"txnid":null,"registration_id":"AOP-1001","reference_id":"DOC-1","amount":"1500","status":"success","code":1,"utr":"UTR77","operator_ref":null,"mobile":null,"account":"50000000001","canumber":null,"operator_name":null,"created_at":"2026-03-01 10:00:00","refund_txn_id":null,"refunded_at":null}],"next_cursor":"MTc3MjMzOTQwMDpkbXQ6NDA3MTMzMTE4"}"#)
            .csv(200, "With format=csv: every matching row."),
        ackno(Op::get("/admin/v1/dmt/{ackno}/timeline", SEARCH, "A transfer and everything that happened to it"))
            .answer(200, "The transaction and its timeline.", &["TxnDetail"])
            .refusals(&[NO_TXN]),
        txnid(Op::get("/admin/v1/bbps/{txnid}/timeline", SEARCH, "A bill payment and everything that happened to it"))
            .answer(200, "The transaction and its timeline.", &["TxnDetail"])
            .refusals(&[NO_TXN]),
        // Held work (http/admin_held.rs).
        Op::get("/admin/v1/held", HELD, "Transactions waiting for an operator, oldest hold first")
            .answer(200, "The held transactions.", &["HeldList"]),
        held(Op::post("/admin/v1/held/{kind}/{id}/resume", HELD, "Asks the upstream again from the top of the poll schedule"))
            .body("ActionBody", r#"{"reason":"upstream says retry"}"#)
            .answer(200, "The transaction's state and history.", &["Acted"])
            .refusals(&[NO_TXN, (409, "Not held (code 8).")]),
        held(Op::post("/admin/v1/held/{kind}/{id}/resolve-success", HELD, "Resolves a held transaction as paid"))
            .body("ActionBody", r#"{"reason":"bank statement shows it paid","utr":"UTR123456"}"#)
            .sample(200, "The transaction's state and history.", &["Acted"], HELD_ACTED)
            .refusals(&[NO_TXN, (409, "Not held (code 8).")]),
        held(Op::post("/admin/v1/held/{kind}/{id}/resolve-failed", HELD, "Resolves a held transaction as failed"))
            .body("ActionBody", r#"{"reason":"bank rejected it"}"#)
            .answer(200, "The transaction's state and history.", &["Acted"])
            .refusals(&[NO_TXN, (409, "Not held (code 8).")]),
        // The audit log (http/admin_audit.rs).
        Op::get("/admin/v1/audit", SEARCH, "The audit log of operator actions, newest first")
            .query(crate::http::admin_audit::audit_params())
            .answer(200, "A page of entries.", &["AuditPage"]),
    ]
}

/// `GET /admin/v1/transactions`'s parameters (`services::search::SearchParams`).
fn search_params() -> Vec<utoipa::openapi::path::Parameter> {
    vec![
        super::enum_query("kind", &["dmt", "bbps"], "`dmt` or `bbps`."),
        query_param("partner", false, "The partner, `AOP-1001` (also `registration_id`)."),
        query_param("reference", false, "The partner's reference (also `reference_id`)."),
        super::number_query("ackno", "The transfer with that number."),
        super::number_query("txnid", "The bill payment with that number."),
        query_param("utr", false, "Transfers with that UTR."),
        query_param("mobile", false, "Transfers of the remitter with that mobile."),
        query_param("account", false, "Transfers to that account."),
        query_param("canumber", false, "Bill payments for that customer account."),
        query_param("status", false, "States, comma-separated (words, or a transfer's 0–5)."),
        query_param("from", false, "Created at or after, India time: YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS]."),
        query_param("to", false, "Created before, India time (a date alone: the end of that day)."),
        query_param("min_amount", false, "Rupees, inclusive."),
        query_param("max_amount", false, "Rupees, inclusive."),
        query_param("limit", true, "Rows per page, 1 to 500 (default 50)."),
        query_param("cursor", false, "The previous page's next_cursor."),
        super::enum_query("format", &["json", "csv"], "`json` (default) or `csv`."),
    ]
}
