//! The connector's transport (issue 12, items 7 and 8): https only (loopback
//! excepted), answers capped at 1 MiB, calls counted and shown to the
//! operator, the authentication circuit, upstream references unique across
//! installations and restores, and callbacks as Paysprint sends them.

use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::{spawn_app_in, text, AppOptions, Engine, TestApp, TestUpstream};
use crate::journey::{
    add_beneficiary_account, assert_verify_clean, balance, beneficiary_with_account, transfer, MOBILE,
};
use crate::mock_upstream::{MockUpstream, Reply, Script, HUGE_ANSWER_BYTES};
use crate::upstream_paysprint::{app_with_mock, app_with_mock_and, connector, dmt_ref, JWT_KEY, PARTNER_ID};
use crate::upstream_sandbox::{bses, dmt, funded_partner, send};

both_engines!(
    an_oversized_answer_is_refused_unread_and_the_transfer_stays_pending,
    an_authentication_refusal_opens_the_circuit_until_an_operator_closes_it,
    two_installations_sharing_an_upstream_account_send_different_references,
    a_callback_as_paysprint_sends_it_triggers_a_query_whose_answer_is_applied,
    transactions_made_before_installation_ids_keep_their_references,
);

/// `payrail serve --provider paysprint` with this upstream URL, on a fresh
/// data directory; what it printed and how it exited (it must not start).
fn serve_with_url(url: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::process::Command::new(env!("CARGO_BIN_EXE_payrail"))
        .args(["--data-dir"])
        .arg(dir.path())
        .args(["serve", "--provider", "paysprint", "--listen", "127.0.0.1:0"])
        .env_remove("PAYRAIL_DATABASE_URL")
        .env("PAYRAIL_MASTER_KEY", "00".repeat(32))
        .env("PAYRAIL_PAYSPRINT_URL", url)
        .env("PAYRAIL_PAYSPRINT_PARTNER_ID", PARTNER_ID)
        .env("PAYRAIL_PAYSPRINT_JWT_KEY", JWT_KEY)
        .env("PAYRAIL_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("run payrail: {e}"))
}

#[test]
fn serve_refuses_an_http_upstream_that_is_not_loopback() {
    let missing_partner = {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::process::Command::new(env!("CARGO_BIN_EXE_payrail"))
            .args(["--data-dir"])
            .arg(dir.path())
            .args(["serve", "--provider", "paysprint", "--listen", "127.0.0.1:0"])
            .env_remove("PAYRAIL_DATABASE_URL")
            .env_remove("PAYRAIL_PAYSPRINT_PARTNER_ID")
            .env("PAYRAIL_MASTER_KEY", "00".repeat(32))
            .env("PAYRAIL_PAYSPRINT_URL", "https://api.paysprint.in/api/v1/service")
            .env("PAYRAIL_PAYSPRINT_JWT_KEY", JWT_KEY)
            .output()
            .unwrap_or_else(|e| panic!("run payrail: {e}"))
    };
    assert!(!missing_partner.status.success(), "a configuration error");
    for url in ["http://api.paysprint.in/api/v1/service", "http://10.0.0.7:8080/api/v1/service", "http://[::2]/x"] {
        let out = serve_with_url(url);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), missing_partner.status.code(), "exits as other configuration errors: {stderr}");
        assert!(stderr.contains("must be https://") && stderr.contains("loopback"), "{url}: {stderr}");
    }
    let out = serve_with_url("ftp://api.paysprint.in/");
    assert!(!out.status.success() && text(&out.stderr).contains("https://"), "{}", text(&out.stderr));
}

/// A transfer to a beneficiary on `account`; the raw answer.
async fn try_send(
    app: &TestApp,
    partner: &crate::helpers::TestPartner,
    account: &str,
    reference: &str,
) -> crate::helpers::Answer {
    let bene = match beneficiary_with_account(app, partner, MOBILE, account).await {
        Some(bene) => bene,
        None => add_beneficiary_account(app, partner, MOBILE, account).await,
    };
    transfer(app, partner, MOBILE, &bene, "1000", reference).await
}

/// The upstream reference of the transfer a `Transaction` answer is about,
/// as the fake saw it submitted (the last transact call).
fn last_submitted(mock: &MockUpstream) -> String {
    mock.calls()
        .iter()
        .rev()
        .find(|c| c.path == "dmt/transact/transact")
        .and_then(|c| c.reference.clone())
        .expect("a transact call")
}

/// The tallies `GET /admin/v1/upstream` shows for `operation` and `outcome`.
async fn tally(app: &TestApp, operation: &str, outcome: &str) -> Option<Value> {
    let health = app.admin("/admin/v1/upstream", None).await;
    assert_eq!(health.status, 200, "{}", health.body);
    let calls = health.json()["calls"].as_array().cloned().expect("calls is an array");
    calls.into_iter().find(|c| c["operation"] == operation && c["outcome"] == outcome)
}

async fn an_oversized_answer_is_refused_unread_and_the_transfer_stays_pending(engine: Engine) {
    let (app, mock) = app_with_mock(engine, "1h").await;
    let (partner, _receiver) = funded_partner(&app).await;
    let start = balance(&app, &partner).await;
    for (n, content_length) in [(1, true), (2, false)] {
        let huge = Reply::Huge { content_length };
        mock.script_next(Script::new().submit(huge.clone()).status(huge));
        let before = mock.huge_bytes_sent();
        let sent = send(&app, &partner, "123456789012", "1000", &format!("BIG-{n}")).await;
        assert_eq!(sent["txn_status"], "2", "no answer: still in process ({content_length}): {sent}");
        // A status lookup asks again and gets the same: still pending.
        assert_eq!(dmt(&app, &partner, &format!("BIG-{n}")).await["txn_status"], "2");
        let read = mock.huge_bytes_sent() - before;
        assert!(read < HUGE_ANSWER_BYTES / 4, "abandoned early, not read whole: {read} bytes ({content_length})");
    }
    let refused = tally(&app, "dmt/transact/transact", "too_large").await.expect("counted as too large");
    assert_eq!(refused["count"], 2, "{refused}");
    let queried = tally(&app, "dmt/transact/transact/querytransact", "too_large").await.expect("queries too");
    assert!(queried["count"].as_u64().is_some_and(|n| n >= 2), "{queried}");
    let spent =
        start.parse::<f64>().expect("an amount") - balance(&app, &partner).await.parse::<f64>().expect("an amount");
    assert!((spent - 2.0 * 1010.0).abs() < 0.001, "debited once each, nothing refunded: {spent}");
    assert_verify_clean(&app);
}

async fn an_authentication_refusal_opens_the_circuit_until_an_operator_closes_it(engine: Engine) {
    let options = AppOptions { poll_schedule: Some("1h"), ..AppOptions::default() };
    let (app, mock) = app_with_mock_and(engine, options).await;
    let (partner, _receiver) = funded_partner(&app).await;
    let closed = app.admin("/admin/v1/upstream", None).await.json();
    assert_eq!(closed["circuit"], json!({"state": "closed", "since": null, "operation": null, "reason": null}));
    assert_eq!(closed["provider"], "paysprint");

    // Paysprint refuses the token: 401, response_code 24 (a JWT refusal).
    let refusal = json!({"status": false, "response_code": 24, "message": "Invalid JWT token"});
    mock.script_next(Script::new().submit(Reply::HttpBody(401, refusal)));
    let first = try_send(&app, &partner, "123456789012", "CIR-1").await;
    assert_eq!(first.status, 200, "the refused submission is answered as the code table says: {}", first.body);
    let open = app.admin("/admin/v1/upstream", None).await.json();
    assert_eq!(open["circuit"]["state"], "open", "{open}");
    assert_eq!(open["circuit"]["operation"], "dmt/transact/transact", "{open}");
    assert!(open["circuit"]["reason"].as_str().is_some_and(|r| r.contains("24")), "{open}");
    let auth = tally(&app, "dmt/transact/transact", "auth_refused").await.expect("counted");
    assert_eq!(auth["count"], 1);

    // The next transfer and bill payment are refused before any debit, and nothing is sent.
    let wallet = balance(&app, &partner).await;
    let calls = mock.calls().len();
    let refused = try_send(&app, &partner, "123456789012", "CIR-2").await;
    assert_eq!(refused.status, 502, "{}", refused.body);
    let body = refused.json();
    assert_eq!((&body["status"], &body["response_code"]), (&json!(false), &json!(17)), "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("nothing was debited")), "{body}");
    let operator = bses(&app, &partner).await;
    let fields = json!({"operator": operator, "canumber": "150012345678", "amount": "500", "referenceid": "CIR-B"});
    let bill = app.call("/api/AOP/BillPaymentPaybill", &partner, fields).await;
    assert_eq!((bill.status, bill.json()["response_code"].clone()), (502, json!(17)), "{}", bill.body);
    assert_eq!(balance(&app, &partner).await, wallet, "nothing debited while the circuit is open");
    let sent_since: Vec<String> = mock.calls()[calls..].iter().map(|c| c.path.clone()).collect();
    assert!(
        sent_since.iter().all(|p| p != "dmt/transact/transact" && p != "bill-payment/bill/paybill"),
        "{sent_since:?}"
    );
    // The refused reference is free: the same referenceid goes through once the circuit is closed.
    let closing = app.admin("/admin/v1/upstream/circuit/close", Some(json!({}))).await;
    assert_eq!(closing.status, 200, "{}", closing.body);
    assert_eq!(closing.json()["was_open"], true);
    assert_eq!(closing.json()["circuit"]["state"], "closed");
    let again = try_send(&app, &partner, "123456789012", "CIR-2").await;
    assert_eq!((again.status, again.json()["txn_status"].clone()), (200, json!("3")), "{}", again.body);
    assert_eq!(mock.submits(&last_submitted(&mock)), 1);
    // Closing a closed circuit says so.
    let twice = app.admin("/admin/v1/upstream/circuit/close", Some(json!({}))).await.json();
    assert_eq!(twice["was_open"], false);
    assert_verify_clean(&app);
}

#[tokio::test]
async fn the_upstream_view_needs_the_operator_token() {
    let app = crate::helpers::spawn_app_with(Engine::Sqlite, AppOptions::default()).await;
    let anonymous =
        reqwest::Client::new().get(app.url("/admin/v1/upstream")).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(anonymous.status().as_u16(), 401);
    let closing = reqwest::Client::new()
        .post(app.url("/admin/v1/upstream/circuit/close"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(closing.status().as_u16(), 401);
    let shown = app.admin("/admin/v1/upstream", None).await.json();
    assert_eq!(
        (&shown["provider"], &shown["circuit"]["state"], &shown["calls"]),
        (&json!("manual"), &json!("closed"), &json!([]))
    );
}

/// `PR` `D` ackno, then the installation id (six capital hex digits) and
/// five random capital letters: the installation id part of `reference`.
fn installation_part<'a>(reference: &'a str, ackno: &str) -> &'a str {
    let rest = reference.strip_prefix(&format!("PRD{ackno}")).unwrap_or_else(|| panic!("{reference} vs {ackno}"));
    assert_eq!(rest.len(), 11, "{reference}");
    assert!(rest[..6].bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase()), "{reference}");
    assert!(rest[6..].bytes().all(|b| b.is_ascii_uppercase()), "{reference}");
    &rest[..6]
}

async fn two_installations_sharing_an_upstream_account_send_different_references(engine: Engine) {
    let (first, mock) = app_with_mock(engine, "1h").await;
    let options = AppOptions {
        upstream: TestUpstream::Provider(connector(&mock)),
        poll_schedule: Some("1h"),
        ..AppOptions::default()
    };
    let second = crate::helpers::spawn_app_with(engine, options).await;
    let mut seen = Vec::new();
    let mut partners = Vec::new();
    for app in [&first, &second] {
        let (partner, _receiver) = funded_partner(app).await;
        partners.push(crate::helpers::TestPartner { id: partner.id, secret: partner.secret.clone() });
        let sent = send(app, &partner, "123456789012", "1000", "SAME-1").await;
        let ackno = sent["ackno"].as_str().expect("ackno is a string").to_owned();
        let reference = dmt_ref(app, &sent).await;
        assert_eq!(last_submitted(&mock), reference, "sent with the stored reference");
        assert!(reference.len() <= 30, "{reference}");
        seen.push((installation_part(&reference, &ackno).to_owned(), reference));
    }
    assert_ne!(seen[0].0, seen[1].0, "each store has its own installation id: {seen:?}");
    assert_ne!(seen[0].1, seen[1].1);
    // A status lookup asks about the stored reference, and a restarted server keeps the installation id.
    let again = crate::helpers::spawn_app_beside(
        &first,
        AppOptions { upstream: TestUpstream::Provider(connector(&mock)), ..AppOptions::default() },
    )
    .await;
    let sent = send(&again, &partners[0], "123456789012", "1000", "SAME-2").await;
    let ackno = sent["ackno"].as_str().expect("ackno is a string").to_owned();
    assert_eq!(installation_part(&dmt_ref(&again, &sent).await, &ackno), seen[0].0, "kept in the store");
}

#[tokio::test]
async fn a_store_restored_from_a_copy_sends_different_references_for_the_same_numbers() {
    let (original, mock) = app_with_mock(Engine::Sqlite, "1h").await;
    let (partner, _receiver) = funded_partner(&original).await;
    let first = send(&original, &partner, "123456789012", "1000", "BEFORE").await;
    let first_ref = dmt_ref(&original, &first).await;

    // A backup, taken while the server runs, restored on a second server with the same master key.
    let restored_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let copy = restored_dir.path().join("payrail.db");
    let conn =
        rusqlite::Connection::open(original.data_dir.path().join("payrail.db")).unwrap_or_else(|e| panic!("{e}"));
    conn.execute("VACUUM INTO ?1", [copy.to_string_lossy().as_ref()]).unwrap_or_else(|e| panic!("{e}"));
    drop(conn);
    let options = AppOptions {
        upstream: TestUpstream::Provider(connector(&mock)),
        poll_schedule: Some("1h"),
        master_key_hex: Some(original.master_key_hex.clone()),
        ..AppOptions::default()
    };
    let restored = spawn_app_in(restored_dir, options).await;
    // The restored store knows the first transfer by the reference it was sent with.
    assert_eq!(dmt_ref(&restored, &first).await, first_ref);

    // Both now make "the next" transfer: the same number, told apart upstream.
    let mut made = Vec::new();
    for app in [&original, &restored] {
        let sent = send(app, &partner, "123456789012", "1000", "AFTER").await;
        let reference = dmt_ref(app, &sent).await;
        assert_eq!(mock.submits(&reference), 1, "{reference} sent once");
        made.push((sent["ackno"].as_str().expect("ackno is a string").to_owned(), reference));
    }
    assert_eq!(made[0].0, made[1].0, "a restored store hands out the same numbers again: {made:?}");
    assert_eq!(installation_part(&made[0].1, &made[0].0), installation_part(&made[1].1, &made[1].0));
    assert_ne!(made[0].1, made[1].1, "yet the upstream references differ: {made:?}");
}

/// A callback body's `param_inc` replaced by `signed`.
fn with_param_inc(body: &Value, signed: String) -> Value {
    let mut body = body.clone();
    body["param_inc"] = Value::String(signed);
    body
}

async fn a_callback_as_paysprint_sends_it_triggers_a_query_whose_answer_is_applied(engine: Engine) {
    // The poller waits an hour: only callbacks (and the queries they trigger) move this transfer.
    let options = AppOptions { poll_schedule: Some("1h"), ..AppOptions::default() }.on_manual_clock();
    let (app, mock) = app_with_mock_and(engine, options).await;
    let (partner, _receiver) = funded_partner(&app).await;
    let base = app.url("");
    let sent = send(&app, &partner, "123456789012", "1000", "PCB-1").await;
    assert_eq!(sent["txn_status"], "3");
    let reference = dmt_ref(&app, &sent).await;
    let ackno = sent["ackno"].as_str().expect("ackno is a string").to_owned();
    // The upstream's status query says "in process", then "paid".
    mock.script(
        &reference,
        Script::new()
            .status(Reply::dmt(2, None))
            .status(Reply::Hang(std::time::Duration::from_secs(3)))
            .status(Reply::dmt(1, Some("UTRPCB000001"))),
    );

    // No header at all, the signed copy of param as Paysprint makes it: taken,
    // but the query says "in process", so the claimed success changes nothing.
    let success = MockUpstream::dmt_callback(&reference, 1, Some("UTRFORGED01"));
    let answer = mock.post_callback(&base, None, &success).await;
    assert_eq!(answer, (200, r#"{"status":200,"message":"Transaction completed successfully"}"#.to_owned()));
    assert_eq!(mock.status_queries(&reference), 1, "the callback triggered one status query");
    // (Read from the operator API, which does not ask the upstream as a partner's status lookup would.)
    let shown = app.admin(&format!("/admin/v1/dmt/{ackno}"), None).await.json();
    assert_eq!((&shown["status"], &shown["utr"]), (&json!("sent_to_bank"), &Value::Null), "the query's: {shown}");
    assert!(shown["history"].as_array().is_some_and(|h| h.iter().all(|e| e["to"] != "success")), "{shown}");

    // Sent again byte for byte: a duplicate, answered, no query.
    let again = mock.post_exactly(&base, None, &mock.signed(&success)).await;
    assert_eq!(again, (200, r#"{"status":200,"message":"Duplicate callback: already received"}"#.to_owned()));
    assert_eq!(mock.status_queries(&reference), 1);

    // Forged: signed with another key, or `alg: none`, or not signed at all: refused, no query.
    let param = success["param"].to_string();
    let other_key = payrail_client::token::sign_raw(b"not-the-key", br#"{"alg":"HS256"}"#, param.as_bytes());
    let none = payrail_client::token::sign_raw(b"", br#"{"alg":"none"}"#, param.as_bytes());
    let none = format!("{}.", none.rsplit_once('.').map(|(head, _)| head).expect("a JWT has dots"));
    for forged in [with_param_inc(&success, other_key), with_param_inc(&success, none), success.clone()] {
        let answer = mock.post_exactly(&base, None, &forged).await;
        assert_eq!(answer.0, 401, "{forged}: {}", answer.1);
    }
    assert_eq!(mock.status_queries(&reference), 1);

    // The query does not answer: 503, nothing changes, and the same callback sent again is acted on.
    let settled = MockUpstream::dmt_callback(&reference, 1, Some("UTRPCB000001"));
    let answer = mock.post_callback(&base, None, &settled).await;
    assert_eq!(answer.0, 503, "{}", answer.1);
    assert_eq!(app.admin(&format!("/admin/v1/dmt/{ackno}"), None).await.json()["status"], "sent_to_bank");
    let answer = mock.post_callback(&base, None, &settled).await;
    assert_eq!(answer.0, 200, "the retry is not a duplicate: {}", answer.1);
    let status = dmt(&app, &partner, "PCB-1").await;
    assert_eq!((&status["txn_status"], &status["utr"]), (&json!("1"), &json!("UTRPCB000001")), "the query's answer");
    let last = shown_last(&app, &ackno).await;
    assert_eq!((&last["to"], &last["source"]), (&json!("success"), &json!("upstream-callback")), "{last}");
    assert_verify_clean(&app);
}

async fn shown_last(app: &TestApp, ackno: &str) -> Value {
    let shown = app.admin(&format!("/admin/v1/dmt/{ackno}"), None).await.json();
    shown["history"].as_array().and_then(|h| h.last().cloned()).expect("a history")
}

async fn transactions_made_before_installation_ids_keep_their_references(engine: Engine) {
    // The store of an older payrail: its migration gives it an installation id and
    // writes down the references its transactions were sent with.
    let (app, _database) = crate::store_from_old_main::open_fixture(engine).await;
    let transfer = app.admin("/admin/v1/upstream/refs/dmt/128", None).await;
    assert_eq!(transfer.status, 200, "{}", transfer.body);
    assert_eq!(transfer.json(), json!({"kind": "dmt", "id": 128, "upstream_ref": "PRD128"}));
    let unknown = app.admin("/admin/v1/upstream/refs/dmt/999999999", None).await;
    assert_eq!((unknown.status, unknown.json()["response_code"].clone()), (404, json!(2)), "{}", unknown.body);
    let bad = app.admin("/admin/v1/upstream/refs/upi/1", None).await;
    assert_eq!((bad.status, bad.json()["message"].clone()), (400, json!("kind must be dmt or bbps")));
    let installation: String = app.store.installation_id().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(installation.len() == 6 && installation.bytes().all(|b| b.is_ascii_hexdigit()), "{installation}");
}
