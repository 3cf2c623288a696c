//! What an operator can do with a transfer on hold (issue 11: the docs
//! listed "on hold → in process", which was refused): release it as the
//! upstream's word (at the bank, paid, failed); never back to in process.

use serde_json::json;

use crate::both_engines;
use crate::helpers::{spawn_app, Engine};

both_engines!(a_held_transfer_is_released_to_the_bank_paid_or_failed_never_back_to_in_process);

async fn a_held_transfer_is_released_to_the_bank_paid_or_failed_never_back_to_in_process(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(false, &[]).await;
    let create =
        json!({"registration_id": partner.name(), "reference_id": "H-1", "amount": "1000", "account": "50100200300"});
    let created = app.admin("/admin/v1/dmt", Some(create)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let ackno = created.json()["ackno"].as_i64().expect("ackno is a number");
    let path = format!("/admin/v1/dmt/{ackno}/transition");
    assert_eq!(app.admin(&path, Some(json!({"to": "on_hold"}))).await.status, 200);

    for to in ["in_process", "2"] {
        let refused = app.admin(&path, Some(json!({"to": to}))).await;
        assert_eq!(refused.status, 400, "{}", refused.body);
        let message = refused.json()["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.contains("sent_to_bank, success, on_hold, failed, refunded"), "{message}");
    }
    assert_eq!(app.dmt_status(&partner.name(), "H-1", None).await.json()["txn_status"], "4", "still on hold");

    let released = app.admin(&path, Some(json!({"to": "sent_to_bank", "reason": "upstream: at the bank"}))).await;
    assert_eq!(released.status, 200, "{}", released.body);
    let shown = app.admin(&format!("/admin/v1/dmt/{ackno}"), None).await.json();
    let states: Vec<&str> =
        shown["history"].as_array().map(|h| h.iter().filter_map(|e| e["to"].as_str()).collect()).unwrap_or_default();
    assert_eq!(states, ["in_process", "on_hold", "sent_to_bank"]);
}
