//! SPEC §3: partner authentication, each refusal with its code.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use payrail::domain::PartnerStatus;
use payrail::services::partners;
use payrail_client::token::sign_raw;
use payrail_client::{sign_token, TokenClaims};
use serde_json::json;

use crate::both_engines;
use crate::helpers::{spawn_app, spawn_app_with, AppOptions, Engine, TestPartner};

const AUTH_FAILED: &str = r#"{"response_code":11,"status":false,"message":"Authentication failed"}"#;
const BAD_TOKEN: &str = r#"{"status":false,"response_code":10,"message":"Invalid JWT Token sent in Header."}"#;
const BAD_ENCODING: &str = r#"{"status":false,"response_code":7,"message":"Invalid signature encoding"}"#;

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn claims(partner: &TestPartner, timestamp: i64) -> TokenClaims {
    TokenClaims { timestamp, partner_id: partner.name(), reqid: format!("r-{}", rand::random::<u64>()) }
}

fn with_header(partner: &TestPartner, header: &str) -> String {
    let body = serde_json::to_vec(&claims(partner, now())).expect("claims serialise");
    sign_raw(partner.secret.as_bytes(), header.as_bytes(), &body)
}

both_engines!(
    every_token_defect_is_refused_with_its_code,
    a_replayed_reqid_is_refused,
    a_partner_call_refuses_a_replayed_reqid_and_a_changed_partner,
    partner_state_and_address_checks_refuse_with_code_11,
    forwarded_for_is_believed_only_from_trusted_proxies,
    an_authorised_key_when_configured_must_match,
    a_rotated_secret_keeps_working_for_the_overlap,
    tokens_are_strict_even_when_validly_signed,
);

async fn every_token_defect_is_refused_with_its_code(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    let other = app.add_partner(true, &[]).await;
    let name = partner.name();
    let valid = partner.token();
    let (head, _) = valid.rsplit_once('.').expect("a token has dots");
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("no token where required", None, AUTH_FAILED),
        ("wrong key", Some(sign_token(b"not the secret", &claims(&partner, now()))), BAD_TOKEN),
        ("alg none", Some(with_header(&partner, r#"{"alg":"none","typ":"JWT"}"#)), BAD_TOKEN),
        (
            "alg none, unsigned",
            Some(format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
                URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(&partner, now())).expect("claims serialise"))
            )),
            BAD_TOKEN,
        ),
        ("alg HS512", Some(with_header(&partner, r#"{"alg":"HS512","typ":"JWT"}"#)), BAD_TOKEN),
        ("signature not base64url", Some(format!("{head}.%%%not*base64%%%")), BAD_ENCODING),
        ("two segments", Some(head.to_owned()), BAD_TOKEN),
        ("four segments", Some(format!("{valid}.extra")), BAD_TOKEN),
        ("stale timestamp", Some(sign_token(partner.secret.as_bytes(), &claims(&partner, now() - 400))), BAD_TOKEN),
        ("future timestamp", Some(sign_token(partner.secret.as_bytes(), &claims(&partner, now() + 400))), BAD_TOKEN),
        (
            "partnerId is another partner",
            Some(sign_token(partner.secret.as_bytes(), &TokenClaims::now(&other.name()))),
            AUTH_FAILED,
        ),
        ("another partner's valid token", Some(other.token()), BAD_TOKEN),
    ];
    for (case, token, expected) in cases {
        let answer = app.dmt_status(&name, "ref", token.as_deref()).await;
        assert_eq!(answer.status, 401, "{case}: {}", answer.body);
        assert_eq!(answer.body, expected, "{case}");
    }
    let accepted = app.dmt_status(&name, "ref", Some(&valid)).await;
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    let bill = app.bill_status(&name, "ref", Some(&partner.token())).await;
    assert_eq!(bill.status, 200, "{}", bill.body);
}

async fn a_replayed_reqid_is_refused(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    let token = partner.token();
    assert_eq!(app.dmt_status(&partner.name(), "ref", Some(&token)).await.status, 200);
    let replay = app.dmt_status(&partner.name(), "ref", Some(&token)).await;
    assert_eq!((replay.status, replay.body.as_str()), (401, BAD_TOKEN));
    let replay_elsewhere = app.bill_status(&partner.name(), "ref", Some(&token)).await;
    assert_eq!(replay_elsewhere.status, 401, "a reqid is spent across endpoints");
    // The same reqid belongs to nobody else: another partner may use it.
    let other = app.add_partner(true, &[]).await;
    let mut same_reqid = claims(&other, now());
    same_reqid.reqid = "shared-reqid".into();
    let mut mine = claims(&partner, now());
    mine.reqid = "shared-reqid".into();
    assert_eq!(
        app.dmt_status(&partner.name(), "r", Some(&sign_token(partner.secret.as_bytes(), &mine))).await.status,
        200
    );
    assert_eq!(
        app.dmt_status(&other.name(), "r", Some(&sign_token(other.secret.as_bytes(), &same_reqid))).await.status,
        200
    );
}

/// A partner call's partner and `reqid` come in one round trip where the
/// engine can, checked against the partner as last read: a replay is
/// refused however often it comes, across partner calls and status lookups,
/// and a partner changed since it was read is checked as it now is.
async fn a_partner_call_refuses_a_replayed_reqid_and_a_changed_partner(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    let operators = |token: String| {
        let body = json!({"RegistrationID": partner.name(), "category": "electricity"}).to_string();
        let app = &app;
        async move { app.post_raw("/api/AOP/BillPaymentOperators", body, &[("Token", token.as_str())]).await }
    };
    for round in 0..3 {
        let token = partner.token();
        let first = operators(token.clone()).await;
        assert_eq!(first.status, 200, "round {round}: {}", first.body);
        for again in 0..2 {
            let replay = operators(token.clone()).await;
            assert_eq!((replay.status, replay.body.as_str()), (401, BAD_TOKEN), "round {round}, replay {again}");
        }
        let looked_up = app.dmt_status(&partner.name(), "ref", Some(&token)).await;
        assert_eq!(looked_up.status, 401, "round {round}: a reqid is spent across endpoints");
    }
    let looked_up = partner.token();
    assert_eq!(app.dmt_status(&partner.name(), "ref", Some(&looked_up)).await.status, 200);
    assert_eq!(operators(looked_up).await.status, 401, "a lookup's reqid is spent for partner calls");
    partners::set_status(&*app.store, partner.id, PartnerStatus::Suspended).await.unwrap_or_else(|e| panic!("{e}"));
    let suspended = operators(partner.token()).await;
    assert_eq!((suspended.status, suspended.body.as_str()), (401, AUTH_FAILED), "suspended since last read");
    partners::set_status(&*app.store, partner.id, PartnerStatus::Active).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(operators(partner.token()).await.status, 200, "active again");
}

async fn partner_state_and_address_checks_refuse_with_code_11(engine: Engine) {
    let app = spawn_app(engine).await;
    let remote_only = app.add_partner(false, &["10.0.0.0/8"]).await;
    let answer = app.dmt_status(&remote_only.name(), "ref", None).await;
    assert_eq!((answer.status, answer.body.as_str()), (401, AUTH_FAILED), "address outside the allowlist");

    let loopback = app.add_partner(false, &["127.0.0.1/32"]).await;
    assert_eq!(app.dmt_status(&loopback.name(), "ref", None).await.status, 200);
    partners::set_status(&*app.store, loopback.id, PartnerStatus::Suspended).await.unwrap_or_else(|e| panic!("{e}"));
    let suspended = app.dmt_status(&loopback.name(), "ref", None).await;
    assert_eq!((suspended.status, suspended.body.as_str()), (401, AUTH_FAILED), "suspended partner");
    let token_too = app.dmt_status(&loopback.name(), "ref", Some(&loopback.token())).await;
    assert_eq!(token_too.body, AUTH_FAILED, "a valid token does not revive a suspended partner");

    for unknown in ["AOP-999999", "nobody", "AOP-"] {
        let answer = app.dmt_status(unknown, "ref", None).await;
        assert_eq!((answer.status, answer.body.as_str()), (401, AUTH_FAILED), "{unknown}");
    }
}

async fn forwarded_for_is_believed_only_from_trusted_proxies(engine: Engine) {
    let behind_proxy = AppOptions {
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap_or_else(|e| panic!("{e}"))],
        ..AppOptions::default()
    };
    let app = spawn_app_with(engine, behind_proxy).await;
    let partner = app.add_partner(false, &["203.0.113.0/24"]).await;
    let body = json!({"ReferanceID": "ref", "RegistrationID": partner.name()}).to_string();
    let path = "/api/AOP/DMTV1/TransactionStatus";
    let from = |xff: &'static str| [("X-Forwarded-For", xff)];
    assert_eq!(app.post_raw(path, body.clone(), &from("203.0.113.7")).await.status, 200);
    assert_eq!(app.post_raw(path, body.clone(), &from("198.51.100.1")).await.status, 401);
    // A client cannot smuggle an allowed address in front of its own.
    assert_eq!(app.post_raw(path, body.clone(), &from("203.0.113.7, 198.51.100.1")).await.status, 401);
    assert_eq!(app.post_raw(path, body.clone(), &[]).await.status, 401, "the proxy itself is not allowed");

    let direct = spawn_app(engine).await;
    let partner = direct.add_partner(false, &["203.0.113.0/24"]).await;
    let body = json!({"ReferanceID": "ref", "RegistrationID": partner.name()}).to_string();
    assert_eq!(
        direct.post_raw(path, body, &from("203.0.113.7")).await.status,
        401,
        "untrusted peers' headers are ignored"
    );
}

async fn an_authorised_key_when_configured_must_match(engine: Engine) {
    let app = spawn_app(engine).await;
    let request = partners::PartnerRequest {
        number: None,
        name: "keyed".into(),
        // Token-free partners must have an allowlist (issue 9 item 8).
        allowlist: payrail::domain::IpAllowlist::parse(["127.0.0.1"]).unwrap_or_else(|e| panic!("{e}")),
        require_token: false,
        authorised_key: Some("the-authorised-key".to_owned().into()),
    };
    let added =
        partners::add_partner(&*app.store, &*app.time, &app.key, request).await.unwrap_or_else(|e| panic!("{e}"));
    let body = json!({"ReferanceID": "ref", "RegistrationID": added.partner.registration_id.to_string()}).to_string();
    let path = "/api/AOP/DMTV1/TransactionStatus";
    assert_eq!(app.post_raw(path, body.clone(), &[]).await.body, AUTH_FAILED);
    assert_eq!(app.post_raw(path, body.clone(), &[("Authorisedkey", "wrong")]).await.body, AUTH_FAILED);
    assert_eq!(app.post_raw(path, body, &[("Authorisedkey", "the-authorised-key")]).await.status, 200);
}

async fn a_rotated_secret_keeps_working_for_the_overlap(engine: Engine) {
    let app = spawn_app_with(engine, AppOptions::default().on_manual_clock()).await;
    let partner = app.add_partner(true, &[]).await;
    let overlap = std::time::Duration::from_secs(3600);
    let (new_secret, _) = partners::rotate_secret(&*app.store, app.clock(), &app.key, partner.id, overlap)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rotated = TestPartner { id: partner.id, secret: secrecy::ExposeSecret::expose_secret(&new_secret).to_owned() };
    assert_eq!(
        app.dmt_status(&partner.name(), "ref", Some(&partner.token())).await.status,
        200,
        "old secret in overlap"
    );
    assert_eq!(app.dmt_status(&partner.name(), "ref", Some(&rotated.token())).await.status, 200, "new secret");
    // With no overlap the old secret stops at once.
    let (newest, _) =
        partners::rotate_secret(&*app.store, app.clock(), &app.key, partner.id, std::time::Duration::ZERO)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    // The overlap ends at the second of the rotation: one second later the old secret is refused.
    assert_eq!(app.dmt_status(&partner.name(), "ref", Some(&rotated.token())).await.status, 200, "until that second");
    app.clock().advance(std::time::Duration::from_secs(1));
    assert_eq!(app.dmt_status(&partner.name(), "ref", Some(&rotated.token())).await.body, BAD_TOKEN);
    let newest = TestPartner { id: partner.id, secret: secrecy::ExposeSecret::expose_secret(&newest).to_owned() };
    assert_eq!(app.dmt_status(&partner.name(), "ref", Some(&newest.token())).await.status, 200);
}

/// RFC 8725: oversized tokens, `crit` headers and claims of the wrong JSON
/// type are refused with code 10 although the signature is good.
async fn tokens_are_strict_even_when_validly_signed(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    let name = partner.name();
    let signed =
        |header: &str, claims: String| sign_raw(partner.secret.as_bytes(), header.as_bytes(), claims.as_bytes());
    let hs256 = r#"{"alg":"HS256","typ":"JWT"}"#;
    let claims = |timestamp: &str, partner_id: &str, reqid: &str| {
        format!(r#"{{"timestamp":{timestamp},"partnerId":{partner_id},"reqid":{reqid}}}"#)
    };
    let fresh = || format!("\"s-{}\"", rand::random::<u64>());
    let quoted_name = format!("\"{name}\"");
    let ts = now().to_string();
    let padding = "p".repeat(4096);
    let cases: Vec<(&str, String)> = vec![
        ("timestamp as a string", signed(hs256, claims(&format!("\"{ts}\""), &quoted_name, &fresh()))),
        ("timestamp as a float", signed(hs256, claims(&format!("{ts}.5"), &quoted_name, &fresh()))),
        ("reqid a number", signed(hs256, claims(&ts, &quoted_name, &rand::random::<u32>().to_string()))),
        ("reqid an object", signed(hs256, claims(&ts, &quoted_name, r#"{"id":"x"}"#))),
        ("partnerId a number", signed(hs256, claims(&ts, &partner.id.number().to_string(), &fresh()))),
        ("crit header", signed(r#"{"alg":"HS256","typ":"JWT","crit":["exp"]}"#, claims(&ts, &quoted_name, &fresh()))),
        ("empty crit header", signed(r#"{"alg":"HS256","crit":[]}"#, claims(&ts, &quoted_name, &fresh()))),
        (
            "token over 4 KiB",
            signed(
                hs256,
                format!(r#"{{"timestamp":{ts},"partnerId":{quoted_name},"reqid":{},"pad":"{padding}"}}"#, fresh()),
            ),
        ),
    ];
    for (case, token) in cases {
        let answer = app.dmt_status(&name, "ref", Some(&token)).await;
        assert_eq!((answer.status, answer.body.as_str()), (401, BAD_TOKEN), "{case}");
        let bill = app.bill_status(&name, "ref", Some(&token)).await;
        assert_eq!((bill.status, bill.body.as_str()), (401, BAD_TOKEN), "{case} (BBPS)");
    }
    // The same construction with the right types is accepted: the refusals
    // above are for the types, not for the hand-made token.
    let good = signed(hs256, claims(&ts, &quoted_name, &fresh()));
    let accepted = app.dmt_status(&name, "ref", Some(&good)).await;
    assert_eq!(accepted.status, 200, "{}", accepted.body);
}
