//! Partners over HTTP (`/admin/v1/partners…`): each route end to end as
//! the partner API sees it, roles, the audit log, and never a secret in a
//! read or an audit entry.

use payrail::domain::RegistrationId;
use payrail_client::{sign_token, TokenClaims};
use reqwest::Method;
use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::{spawn_app_with, AppOptions, Engine, TestApp, ADMIN_TOKEN};
use crate::operators::{call, operator_with_token};

both_engines!(
    a_partner_is_added_suspended_activated_and_rotated_over_http_as_the_partner_api_sees_it,
    a_partners_allowlist_and_authorised_key_are_set_over_http,
    bad_partner_changes_are_refused_naming_the_field_and_change_nothing,
);

/// A token signed with `secret` at the app's (manual) time.
fn token_at(app: &TestApp, partner: &str, secret: &str) -> String {
    let claims = TokenClaims {
        timestamp: app.time.now().unix(),
        partner_id: partner.to_owned(),
        reqid: format!("r-{}", rand::random::<u64>()),
    };
    sign_token(secret.as_bytes(), &claims)
}

/// A status request as `partner`, signed with `secret` (if any), with extra headers.
async fn status_as(app: &TestApp, partner: &str, secret: Option<&str>, headers: &[(&str, &str)]) -> u16 {
    let body = json!({"ReferanceID": "nothing-yet", "RegistrationID": partner}).to_string();
    let token = secret.map(|s| token_at(app, partner, s));
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    if let Some(token) = token.as_deref() {
        all.push(("Token", token));
    }
    app.post_raw("/api/AOP/DMTV1/TransactionStatus", body, &all).await.status
}

async fn admin(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, Value, String) {
    let answer = call(app, method, path, Some(ADMIN_TOKEN), body.as_ref()).await;
    let json = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
    (answer.status, json, answer.body)
}

/// The audit entries about `partner`, oldest first, and their raw text.
async fn audit_of(app: &TestApp, partner: &str) -> (Vec<Value>, String) {
    let (status, page, raw) = admin(app, Method::GET, &format!("/admin/v1/audit?target=partner:{partner}"), None).await;
    assert_eq!(status, 200, "{raw}");
    let mut entries = page["entries"].as_array().cloned().unwrap_or_default();
    entries.reverse();
    (entries, raw)
}

async fn a_partner_is_added_suspended_activated_and_rotated_over_http_as_the_partner_api_sees_it(engine: Engine) {
    let app = spawn_app_with(engine, AppOptions::default().on_manual_clock()).await;
    let admin_token = operator_with_token(&app, "admin@example.in", "admin", &[]);
    let viewer = operator_with_token(&app, "viewer@example.in", "viewer", &[]);

    let body = json!({"name": "Kirana Pay", "allow_ips": [], "require_token": true});
    let added = call(&app, Method::POST, "/admin/v1/partners", Some(&admin_token), Some(&body)).await;
    assert_eq!(added.status, 201, "{}", added.body);
    let added = added.json();
    let id = added["registration_id"].as_str().expect("a registration id").to_owned();
    let secret = added["secret"].as_str().expect("the secret, shown once").to_owned();
    assert!(RegistrationId::parse(&id).is_ok() && secret.len() >= 32, "{added}");
    assert_eq!(added["partner"]["status"], "active", "{added}");
    assert_eq!(status_as(&app, &id, Some(&secret), &[]).await, 200, "the new partner is served");

    // Reads: a viewer sees the partner, never a secret.
    let shown = call(&app, Method::GET, &format!("/admin/v1/partners/{id}"), Some(&viewer), None).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    let order = [
        "registration_id",
        "name",
        "status",
        "require_token",
        "allow_ips",
        "authorised_key_set",
        "previous_secret_valid_until",
        "created_at",
    ];
    let at = |key: &str| shown.body.find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("no {key}: {}", shown.body));
    assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "fields in order {order:?}: {}", shown.body);
    assert_eq!(shown.json()["name"], "Kirana Pay");
    let listed = call(&app, Method::GET, "/admin/v1/partners", Some(&viewer), None).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert!(listed.json()["partners"]
        .as_array()
        .is_some_and(|p| p.iter().any(|p| p["registration_id"] == id.as_str())));
    for read in [&shown.body, &listed.body] {
        assert!(!read.contains(&secret) && !read.contains("\"secret\""), "a read shows a secret: {read}");
    }
    let missing = call(&app, Method::GET, "/admin/v1/partners/AOP-999999", Some(&viewer), None).await;
    assert_eq!(missing.status, 404, "{}", missing.body);

    // A viewer may not change a partner.
    let refused = call(&app, Method::POST, &format!("/admin/v1/partners/{id}/suspend"), Some(&viewer), None).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(status_as(&app, &id, Some(&secret), &[]).await, 200, "a refused suspension changes nothing");

    // Suspend: the partner API refuses it; activate: served again.
    let suspended =
        call(&app, Method::POST, &format!("/admin/v1/partners/{id}/suspend"), Some(&admin_token), None).await;
    assert_eq!((suspended.status, &suspended.json()["status"]), (200, &json!("suspended")), "{}", suspended.body);
    assert_eq!(status_as(&app, &id, Some(&secret), &[]).await, 401, "a suspended partner is refused");
    let active = call(&app, Method::POST, &format!("/admin/v1/partners/{id}/activate"), Some(&admin_token), None).await;
    assert_eq!((active.status, &active.json()["status"]), (200, &json!("active")), "{}", active.body);
    assert_eq!(status_as(&app, &id, Some(&secret), &[]).await, 200, "active again");

    // Rotate with an hour's overlap: both secrets work until the cutoff, then only the new one.
    let path = format!("/admin/v1/partners/{id}/rotate-secret");
    let rotated = call(&app, Method::POST, &path, Some(&admin_token), Some(&json!({"overlap_hours": 1}))).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let rotated = rotated.json();
    let new_secret = rotated["secret"].as_str().expect("the new secret").to_owned();
    let cutoff = app.time.now().plus_secs(3600).to_ist_string();
    assert_eq!(rotated["previous_secret_valid_until"], cutoff.as_str(), "{rotated}");
    assert_ne!(new_secret, secret);
    assert_eq!(status_as(&app, &id, Some(&secret), &[]).await, 200, "the old secret in the overlap");
    assert_eq!(status_as(&app, &id, Some(&new_secret), &[]).await, 200, "the new secret");
    let shown = admin(&app, Method::GET, &format!("/admin/v1/partners/{id}"), None).await.1;
    assert_eq!(shown["previous_secret_valid_until"], cutoff.as_str(), "{shown}");
    app.clock().advance(std::time::Duration::from_secs(3600));
    assert_eq!(status_as(&app, &id, Some(&secret), &[]).await, 200, "until the cutoff's second");
    app.clock().advance(std::time::Duration::from_secs(1));
    assert_ne!(status_as(&app, &id, Some(&secret), &[]).await, 200, "the old secret after its cutoff");
    assert_eq!(status_as(&app, &id, Some(&new_secret), &[]).await, 200, "the new secret after the cutoff");

    // The audit log: each change, by whom, before and after, and no secret anywhere.
    let (entries, raw) = audit_of(&app, &id).await;
    let actions: Vec<&str> = entries.iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions, ["partner.add", "partner.suspend", "partner.activate", "partner.rotate_secret"], "{raw}");
    assert!(entries.iter().all(|e| e["operator"] == "admin@example.in"), "{raw}");
    assert_eq!(
        (&entries[1]["before"]["status"], &entries[1]["after"]["status"]),
        (&json!("active"), &json!("suspended"))
    );
    assert_eq!(entries[0]["before"], Value::Null, "{raw}");
    assert_eq!(entries[3]["after"]["previous_secret_valid_until"], cutoff.as_str(), "{raw}");
    assert!(!raw.contains(&secret) && !raw.contains(&new_secret), "a secret in the audit log: {raw}");
}

async fn a_partners_allowlist_and_authorised_key_are_set_over_http(engine: Engine) {
    let app = spawn_app_with(engine, AppOptions::default().on_manual_clock()).await;
    let partner = app.add_partner(true, &[]).await;
    let (id, secret) = (partner.name(), partner.secret.clone());
    assert_eq!(status_as(&app, &id, Some(&secret), &[]).await, 200);

    // An allowlist without the tests' loopback address keeps the partner out; an empty one lets it in.
    let path = format!("/admin/v1/partners/{id}/allowlist");
    let (status, set, raw) =
        admin(&app, Method::PUT, &path, Some(json!({"allow_ips": ["203.0.113.0/24", "198.51.100.7"]}))).await;
    assert_eq!(status, 200, "{raw}");
    assert_eq!(set["allow_ips"], json!(["203.0.113.0/24", "198.51.100.7/32"]), "{raw}");
    assert_ne!(status_as(&app, &id, Some(&secret), &[]).await, 200, "called from outside the list");
    let (status, _, raw) = admin(&app, Method::PUT, &path, Some(json!({"allow_ips": ["127.0.0.0/8", "::1"]}))).await;
    assert_eq!(status, 200, "{raw}");
    assert_eq!(status_as(&app, &id, Some(&secret), &[]).await, 200, "called from inside the list");
    // With the list in place, tokens may be dropped.
    let (status, set, raw) =
        admin(&app, Method::PUT, &path, Some(json!({"allow_ips": ["127.0.0.0/8", "::1"], "require_token": false})))
            .await;
    assert_eq!((status, &set["require_token"]), (200, &json!(false)), "{raw}");
    assert_eq!(status_as(&app, &id, None, &[]).await, 200, "no token needed now");

    // An Authorisedkey: required once set, shown only as set; null clears it.
    let key_path = format!("/admin/v1/partners/{id}/authorised-key");
    let (status, set, raw) =
        admin(&app, Method::PUT, &key_path, Some(json!({"authorised_key": "ak-7f3e-SECRET"}))).await;
    assert_eq!((status, &set["authorised_key_set"]), (200, &json!(true)), "{raw}");
    assert!(!raw.contains("ak-7f3e-SECRET"), "{raw}");
    assert_eq!(status_as(&app, &id, None, &[]).await, 401, "without the Authorisedkey");
    assert_eq!(status_as(&app, &id, None, &[("Authorisedkey", "ak-7f3e-SECRET")]).await, 200, "with it");
    let (status, set, raw) = admin(&app, Method::PUT, &key_path, Some(json!({"authorised_key": null}))).await;
    assert_eq!((status, &set["authorised_key_set"]), (200, &json!(false)), "{raw}");
    assert_eq!(status_as(&app, &id, None, &[]).await, 200, "no key needed now");

    let (entries, raw) = audit_of(&app, &id).await;
    let actions: Vec<&str> = entries.iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(
        actions,
        [
            "partner.set_allowlist",
            "partner.set_allowlist",
            "partner.set_allowlist",
            "partner.set_authorised_key",
            "partner.set_authorised_key"
        ],
        "{raw}"
    );
    assert_eq!(entries[0]["before"]["allow_ips"], json!([]), "{raw}");
    assert_eq!(
        (&entries[3]["before"]["authorised_key_set"], &entries[3]["after"]["authorised_key_set"]),
        (&json!(false), &json!(true))
    );
    assert!(!raw.contains("ak-7f3e-SECRET") && !raw.contains(&secret), "a secret in the audit log: {raw}");
}

/// The partners and the audit log, as the bootstrap token reads them.
async fn everything(app: &TestApp) -> (String, String) {
    let list = admin(app, Method::GET, "/admin/v1/partners", None).await.2;
    let audit = admin(app, Method::GET, "/admin/v1/audit", None).await.2;
    (list, audit)
}

async fn bad_partner_changes_are_refused_naming_the_field_and_change_nothing(engine: Engine) {
    let app = spawn_app_with(engine, AppOptions::default().on_manual_clock()).await;
    let partner = app.add_partner(true, &[]).await;
    let id = partner.name();
    let start = everything(&app).await;
    let cases: Vec<(Method, String, Value, &str)> = vec![
        (Method::POST, "/admin/v1/partners".into(), json!({"name": ""}), "name"),
        (Method::POST, "/admin/v1/partners".into(), json!({"allow_ips": []}), "name"),
        (Method::POST, "/admin/v1/partners".into(), json!({"name": "X", "allow_ips": ["not-an-ip"]}), "allow_ips"),
        (Method::POST, "/admin/v1/partners".into(), json!({"name": "X", "require_token": false}), "allow_ips"),
        (
            Method::POST,
            "/admin/v1/partners".into(),
            json!({"name": "X", "allow_ips": ["0.0.0.0/0"], "require_token": false}),
            "allow_ips",
        ),
        (Method::POST, "/admin/v1/partners".into(), json!({"name": "X", "authorised_key": " "}), "authorised_key"),
        (
            Method::POST,
            format!("/admin/v1/partners/{id}/rotate-secret"),
            json!({"overlap_hours": 721}),
            "overlap_hours",
        ),
        (Method::PUT, format!("/admin/v1/partners/{id}/allowlist"), json!({"allow_ips": ["300.1.1.1"]}), "allow_ips"),
        (
            Method::PUT,
            format!("/admin/v1/partners/{id}/allowlist"),
            json!({"allow_ips": [], "require_token": false}),
            "allow_ips",
        ),
        (Method::PUT, format!("/admin/v1/partners/{id}/allowlist"), json!({}), "allow_ips"),
        (Method::PUT, format!("/admin/v1/partners/{id}/authorised-key"), json!({}), "authorised_key"),
        (
            Method::PUT,
            format!("/admin/v1/partners/{id}/authorised-key"),
            json!({"authorised_key": ""}),
            "authorised_key",
        ),
    ];
    for (method, path, body, field) in cases {
        let (status, answer, raw) = admin(&app, method.clone(), &path, Some(body.clone())).await;
        assert_eq!(
            (status, &answer["status"], &answer["response_code"]),
            (400, &json!(false), &json!(8)),
            "{method} {path} {body}: {raw}"
        );
        assert!(
            answer["message"].as_str().is_some_and(|m| m.contains(field)),
            "{method} {path} {body}: {raw} names {field}"
        );
    }
    assert!(start == everything(&app).await, "a refused change wrote something");
    let (status, _, raw) = admin(&app, Method::POST, "/admin/v1/partners/AOP-999999/suspend", None).await;
    assert_eq!(status, 404, "{raw}");
}
