//! The operator API: create transactions and move them through their states.

use serde_json::json;

use crate::both_engines;
use crate::helpers::{spawn_app, Answer, Engine, ADMIN_TOKEN};

both_engines!(
    every_operator_answer_is_json_in_one_shape,
    a_transfer_moves_through_its_states_and_keeps_its_history,
    a_bill_payment_fails_and_is_refunded,
    impossible_transitions_and_bad_input_are_refused,
    the_operator_api_needs_its_bearer_token,
);

async fn a_transfer_moves_through_its_states_and_keeps_its_history(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(false, &[]).await;
    let create =
        json!({"registration_id": partner.name(), "reference_id": "T-1", "amount": "5000", "account": "50100200300"});
    let created = app.admin("/admin/v1/dmt", Some(create)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let ackno = created.json()["ackno"].as_i64().expect("ackno is a number");
    let path = format!("/admin/v1/dmt/{ackno}/transition");
    for step in [
        json!({"to": "sent_to_bank"}),
        json!({"to": "success", "utr": "412345678901"}),
        json!({"to": "failed", "reason": "bank return R03"}),
        json!({"to": "refunded"}),
    ] {
        let answer = app.admin(&path, Some(step.clone())).await;
        assert_eq!(answer.status, 200, "{step}: {}", answer.body);
    }
    let shown = app.admin(&format!("/admin/v1/dmt/{ackno}"), None).await.json();
    let history: Vec<(String, String)> = shown["history"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|h| {
            (
                h["to"].as_str().expect("to is a string").to_owned(),
                h["source"].as_str().expect("source is a string").to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = ["in_process", "sent_to_bank", "success", "failed", "refunded"]
        .iter()
        .map(|s| (s.to_string(), "admin".to_string()))
        .collect();
    assert_eq!(history, expected);
    assert_eq!(shown["history"][3]["reason"], "bank return R03");

    let status = app.dmt_status(&partner.name(), "T-1", None).await.json();
    assert_eq!(status["txn_status"], "0");
    assert_eq!(status["message"], "Transaction Refunded");
    assert_eq!(status["utr"], "412345678901");
    assert!(status["refundtxnid"].as_str().is_some_and(|id| !id.is_empty()), "{status}");
    let today = payrail::domain::Timestamp::now().to_ist_string()[..10].to_owned();
    assert!(status["daterefunded"].as_str().is_some_and(|d| d.len() == 19 && d.starts_with(&today)), "{status}");
    assert_eq!(status["customercharge"], "50.00");
}

async fn a_bill_payment_fails_and_is_refunded(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(false, &[]).await;
    let create = json!({"registration_id": partner.name(), "reference_id": "B-1", "operator_name": "BSES Yamuna Power Limited", "ca_number": "100200300", "amount": "1000", "ad1": "Rahul"});
    let created = app.admin("/admin/v1/bbps", Some(create)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let txnid = created.json()["txnid"].as_i64().expect("txnid is a number");

    let pending = app.bill_status(&partner.name(), "B-1", None).await.json();
    assert_eq!(
        (pending["data"]["status"].as_str(), pending["message"].as_str()),
        (Some("2"), Some("Transaction Pending"))
    );
    assert_eq!(pending["data"]["ad1"], "Rahul");
    assert_eq!(pending["data"]["comm"], "2.10");
    assert_eq!(pending["data"]["tds"], "0.04");

    let path = format!("/admin/v1/bbps/{txnid}/transition");
    assert_eq!(app.admin(&path, Some(json!({"to": "failed"}))).await.status, 200);
    let failed = app.bill_status(&partner.name(), "B-1", None).await.json();
    assert_eq!(
        (failed["data"]["status"].as_str(), failed["message"].as_str()),
        (Some("0"), Some("Transaction Failed"))
    );
    assert_eq!(failed["data"]["refunded"], "0");
    assert_eq!(failed["data"]["refundtxnid"], serde_json::Value::Null);

    assert_eq!(app.admin(&path, Some(json!({"to": "refunded", "refund_txn_id": "RF-77"}))).await.status, 200);
    let refunded = app.bill_status(&partner.name(), "B-1", None).await.json();
    assert_eq!(refunded["message"], "Transaction Refunded");
    assert_eq!(refunded["data"]["refunded"], "1");
    assert_eq!(refunded["data"]["refundtxnid"], "RF-77");
}

async fn impossible_transitions_and_bad_input_are_refused(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(false, &[]).await;
    let create =
        json!({"registration_id": partner.name(), "reference_id": "T-2", "amount": "100", "account": "50100200300"});
    let ackno =
        app.admin("/admin/v1/dmt", Some(create.clone())).await.json()["ackno"].as_i64().expect("ackno is a number");
    let path = format!("/admin/v1/dmt/{ackno}/transition");

    let refund_first = app.admin(&path, Some(json!({"to": "refunded"}))).await;
    assert_eq!(refund_first.status, 409, "{}", refund_first.body);
    assert!(
        refund_first.body.contains("cannot move a transaction from in_process to refunded"),
        "{}",
        refund_first.body
    );
    let no_utr = app.admin(&path, Some(json!({"to": "success"}))).await;
    assert_eq!((no_utr.status, no_utr.json()["response_code"].as_i64()), (400, Some(8)));
    assert_eq!(app.admin(&path, Some(json!({"to": "teleported"}))).await.status, 400);
    assert_eq!(app.admin("/admin/v1/dmt/999999/transition", Some(json!({"to": "failed"}))).await.status, 404);

    let duplicate = app.admin("/admin/v1/dmt", Some(create)).await;
    assert_eq!(duplicate.status, 409, "{}", duplicate.body);
    let bad_amount =
        json!({"registration_id": partner.name(), "reference_id": "T-3", "amount": "1.234", "account": "50100200300"});
    assert_eq!(app.admin("/admin/v1/dmt", Some(bad_amount)).await.status, 400);
    let no_partner =
        json!({"registration_id": "AOP-424242", "reference_id": "T-4", "amount": "1", "account": "50100200300"});
    assert_eq!(app.admin("/admin/v1/dmt", Some(no_partner)).await.status, 404);

    // Nothing refused left a trace in the history.
    let shown = app.admin(&format!("/admin/v1/dmt/{ackno}"), None).await.json();
    assert_eq!(shown["history"].as_array().map(Vec::len), Some(1));
    assert_eq!(shown["status"], "in_process");
}

async fn the_operator_api_needs_its_bearer_token(engine: Engine) {
    let app = spawn_app(engine).await;
    let anonymous = app.http.get(app.url("/admin/v1/dmt/1")).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(anonymous.status().as_u16(), 401);
    let wrong =
        app.http.get(app.url("/admin/v1/dmt/1")).bearer_auth("guess").send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(wrong.status().as_u16(), 401);
}

/// `{"status":false,"response_code":N,"message":"…"}`, in that order, as JSON.
fn assert_one_shape(case: &str, answer: &Answer, status: u16, code: i64) {
    assert_eq!(answer.status, status, "{case}: {}", answer.body);
    assert!(answer.content_type.starts_with("application/json"), "{case}: content type {:?}", answer.content_type);
    let json = answer.json();
    let prefix = format!(r#"{{"status":false,"response_code":{code},"message":""#);
    assert!(answer.body.starts_with(&prefix), "{case}: fields in order {prefix}…: {}", answer.body);
    assert_eq!(json.as_object().map(|o| o.len()), Some(3), "{case}: {}", answer.body);
    assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()), "{case}: {}", answer.body);
}

async fn every_operator_answer_is_json_in_one_shape(engine: Engine) {
    let app = spawn_app(engine).await;
    let get = reqwest::Method::GET;
    let bad_path = app.admin("/admin/v1/dmt/abc", None).await;
    assert_one_shape("non-numeric ackno", &bad_path, 400, 8);
    assert!(bad_path.body.contains("abc"), "the message names the bad value: {}", bad_path.body);
    let bad_id = app.admin("/admin/v1/events/12x/redeliver", Some(json!({}))).await;
    assert_one_shape("non-numeric event id", &bad_id, 400, 8);
    let bad_query = app.admin("/admin/v1/events?limit=lots", None).await;
    assert_one_shape("bad query string", &bad_query, 400, 8);
    assert!(bad_query.body.contains("limit"), "{}", bad_query.body);
    assert_one_shape("unknown path", &app.admin("/admin/v1/nothing-here", None).await, 404, 8);
    assert_one_shape("unknown record", &app.admin("/admin/v1/dmt/999999", None).await, 404, 2);
    let wrong_method = app.admin_with(reqwest::Method::DELETE, "/admin/v1/dmt/1", None).await;
    assert_one_shape("wrong method", &wrong_method, 405, 8);
    let wrong_method = app.admin_with(get.clone(), "/admin/v1/dmt", None).await;
    assert_one_shape("GET on a POST route", &wrong_method, 405, 8);

    let send = |authorization: &'static str| {
        let request = app.http.get(app.url("/admin/v1/dmt/999999"));
        let request = if authorization.is_empty() { request } else { request.header("Authorization", authorization) };
        async move {
            let response = request.send().await.unwrap_or_else(|e| panic!("{e}"));
            let status = response.status().as_u16();
            let content_type =
                response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            Answer { status, content_type, retry_after: None, body: response.text().await.expect("a readable body") }
        }
    };
    assert_one_shape("no token", &send("").await, 401, 11);
    assert_one_shape("wrong token", &send("Bearer guess").await, 401, 11);
    assert_one_shape("not bearer", &send("Basic dGVzdA==").await, 401, 11);
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        let header: &'static str = Box::leak(format!("{scheme} {ADMIN_TOKEN}").into_boxed_str());
        assert_one_shape(scheme, &send(header).await, 404, 2);
    }
}
