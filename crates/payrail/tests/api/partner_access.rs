//! A partner without tokens must have an IP allowlist: otherwise anyone who
//! guesses its sequential RegistrationID can act as it.

use crate::both_engines;
use crate::helpers::{payrail, spawn_app, text, Engine};

both_engines!(a_token_free_partner_without_a_real_allowlist_is_refused_and_nothing_is_written);

async fn a_token_free_partner_without_a_real_allowlist_is_refused_and_nothing_is_written(engine: Engine) {
    let app = spawn_app(engine).await;
    let add =
        |extra: &[&str]| payrail(&app, &[&["partner", "add", "--name", "Open Ltd", "--json"][..], extra].concat());
    for open in [
        &["--no-token"][..],
        &["--no-token", "--allow-ip", "0.0.0.0/0"],
        &["--no-token", "--allow-ip", "::/0"],
        &["--no-token", "--allow-ip", "203.0.113.0/24", "--allow-ip", "0.0.0.0/0"],
    ] {
        let out = add(open);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{open:?} was accepted: {}", text(&out.stdout));
        assert!(stderr.contains("without tokens must have an IP allowlist"), "{open:?}: {stderr}");
        assert!(stderr.contains("--allow-ip"), "the message says what to do: {stderr}");
    }
    let partners = app.store.list_partners().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(partners.is_empty(), "nothing written on a refusal: {partners:?}");

    // With a real list, or with tokens, the partner is added.
    let listed = add(&["--no-token", "--allow-ip", "127.0.0.1/32"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let created: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap_or_else(|e| panic!("{e}"));
    let id = created["registration_id"].as_str().expect("registration_id is a string");
    assert_eq!(app.dmt_status(id, "ref", None).await.status, 200, "loopback is on its list");
    assert!(add(&[]).status.success(), "tokens required, no list: fine");
    assert_eq!(app.store.list_partners().await.unwrap_or_else(|e| panic!("{e}")).len(), 2);
}
