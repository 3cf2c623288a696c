//! The OpenAPI document (`GET /openapi.json`, `payrail openapi`) cannot
//! drift from the server: every route has an operation and every operation
//! a route, and every operation's example, sent to a server, gets a status
//! the document lists, with an answer of the schema it declares.

use std::collections::BTreeSet;
use std::sync::Arc;

use payrail::http::admin_auth::ROUTE_ROLES;
use payrail::http::openapi::check::validate;
use payrail::http::{admin_paths, routed_paths, AppState, EdgeSettings};
use payrail::services::demo::load_demo;
use serde_json::Value;

use crate::both_engines;
use crate::helpers::{payrail, spawn_app, spawn_app_with, text, AppOptions, Engine, TestUpstream, ADMIN_TOKEN};

fn document() -> Value {
    serde_json::from_str(payrail::http::openapi::document()).unwrap_or_else(|e| panic!("not JSON: {e}"))
}

/// The document's operations: (METHOD, path as written).
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in item.as_object().into_iter().flatten().map(|(m, _)| m) {
            found.insert((method.to_uppercase(), path.clone()));
        }
    }
    found
}

#[tokio::test]
async fn the_document_is_served_without_a_token_and_printed_by_the_cli_byte_for_byte() {
    let app = spawn_app(Engine::Sqlite).await;
    let response = app.http.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let served = response.text().await.unwrap();
    assert_eq!(served, payrail::http::openapi::document());

    let printed = payrail(&app, &["openapi"]);
    assert!(printed.status.success(), "{}", text(&printed.stderr));
    assert_eq!(text(&printed.stdout), served, "`payrail openapi` prints the bytes the server serves");
    // As docs/API.md shows its first lines.
    assert!(
        served.starts_with("{\n  \"openapi\": \"3.1.0\",\n  \"info\": {\n    \"title\": \"payrail\","),
        "{served:.120}"
    );
    let doc: Value = serde_json::from_str(&served).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
}

#[tokio::test]
async fn every_route_has_an_operation_and_every_operation_a_route() {
    let app = spawn_app(Engine::Sqlite).await;
    let state = AppState::new(app.store.clone(), app.key.clone(), EdgeSettings::default(), app.time.clone());
    let routed: BTreeSet<String> = routed_paths(Arc::new(state))
        .into_iter()
        .filter(|p| ["/api/", "/admin/", "/upstream/", "/sandbox/"].iter().any(|prefix| p.starts_with(prefix)))
        .collect();
    assert!(routed.len() > 50, "the router's listing: {routed:?}");
    let doc = document();
    let documented = operations(&doc);
    // Partner paths route lower-cased; the document writes AOPay's mixed case.
    let documented_paths: BTreeSet<String> = documented
        .iter()
        .map(|(_, path)| if path.starts_with("/api/") { path.to_ascii_lowercase() } else { path.clone() })
        .collect();
    let undocumented: Vec<_> = routed.difference(&documented_paths).collect();
    assert!(undocumented.is_empty(), "routes without an operation: {undocumented:?}");
    let unrouted: Vec<_> = documented_paths.difference(&routed).collect();
    assert!(unrouted.is_empty(), "operations without a route: {unrouted:?}");

    // Every partner operation is a POST at AOPay's path, in its case.
    for (method, path) in documented.iter().filter(|(_, p)| p.starts_with("/api/")) {
        assert_eq!(method, "POST", "{path}");
        assert!(path.starts_with("/api/AOP/"), "{path}: AOPay's case");
    }
    // The operator API: the router's paths, and each method and path the roles table has.
    let admin: BTreeSet<String> = admin_paths().into_iter().collect();
    let documented_admin: BTreeSet<String> =
        documented.iter().filter(|(_, p)| p.starts_with("/admin/")).map(|(_, p)| p.clone()).collect();
    assert_eq!(documented_admin, admin);
    let roles: BTreeSet<(String, String)> =
        ROUTE_ROLES.iter().map(|r| (r.method.to_owned(), r.path.to_owned())).collect();
    let operator_operations: BTreeSet<(String, String)> =
        documented.iter().filter(|(_, p)| p.starts_with("/admin/") || p.starts_with("/sandbox/")).cloned().collect();
    assert_eq!(operator_operations, roles, "the document's operator operations are ROUTE_ROLES's");
    for route in ROUTE_ROLES {
        let operation = &doc["paths"][route.path][route.method.to_lowercase()];
        assert_eq!(operation["x-payrail-role"], route.role.to_string(), "{} {}", route.method, route.path);
    }
}

both_engines!(every_example_gets_a_documented_status_and_an_answer_of_the_declared_schema);

/// `path` with each path parameter replaced by its example.
fn filled(path: &str, operation: &Value) -> String {
    let mut path = path.to_owned();
    for param in operation["parameters"].as_array().into_iter().flatten().filter(|p| p["in"] == "path") {
        let name = param["name"].as_str().unwrap();
        let value = match &param["example"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        path = path.replace(&format!("{{{name}}}"), &value);
    }
    path
}

async fn every_example_gets_a_documented_status_and_an_answer_of_the_declared_schema(engine: Engine) {
    let options = AppOptions { upstream: TestUpstream::Sandbox { step_secs: 60 }, ..AppOptions::default() };
    let app = spawn_app_with(engine, options).await;
    load_demo(&*app.store, &*app.time, &app.key, 10).await.unwrap_or_else(|e| panic!("{e:#}"));
    let doc = document();
    // The partner API first (as the demo's AOP-554, from loopback, without a
    // token), then the operator API, whose examples change partners.
    let mut all: Vec<(String, String)> = operations(&doc).into_iter().collect();
    all.sort_by_key(|(_, path)| !path.starts_with("/api/"));
    let mut statuses = BTreeSet::new();
    for (method, path) in all {
        let operation = &doc["paths"][&path][method.to_lowercase()];
        let url = app.url(&filled(&path, operation));
        let mut request = app.http.request(method.parse().unwrap(), url);
        if let Some(example) = operation["requestBody"]["content"]["application/json"].get("example") {
            request = request.header("Content-Type", "application/json").body(example.to_string());
        }
        if operation["security"][0].get("AdminBearer").is_some() {
            request = request.bearer_auth(ADMIN_TOKEN);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
        let body = response.text().await.unwrap();
        let declared = &operation["responses"][status.to_string()];
        assert!(declared.is_object(), "{method} {path}: {status} is not documented: {body}");
        statuses.insert(status);
        let content_type = content_type.unwrap_or_default();
        let media = content_type.split(';').next().unwrap_or_default();
        let content = declared["content"].as_object().unwrap();
        let (_, declared_media) = content
            .iter()
            .find(|(name, _)| name.split(';').next() == Some(media))
            .unwrap_or_else(|| panic!("{method} {path}: {status} answered {content_type}, not declared"));
        if media == "application/json" {
            let answer: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {body}"));
            validate(&doc, &declared_media["schema"], &answer)
                .unwrap_or_else(|e| panic!("{method} {path} {status}: {e}\n{body}"));
        }
    }
    // The examples reach the handlers, not only the refusals.
    for status in [200, 201, 202] {
        assert!(statuses.contains(&status), "no example was answered {status}: {statuses:?}");
    }
    // The seed records (DMT ackno 128, BBPS txnid 55), whose answers the examples' numbers do not reach.
    for (template, path) in [
        ("/admin/v1/dmt/{ackno}", "/admin/v1/dmt/128"),
        ("/admin/v1/dmt/{ackno}/timeline", "/admin/v1/dmt/128/timeline"),
        ("/admin/v1/bbps/{txnid}", "/admin/v1/bbps/55"),
        ("/admin/v1/bbps/{txnid}/timeline", "/admin/v1/bbps/55/timeline"),
    ] {
        let answer = app.admin(path, None).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        let schema = &doc["paths"][template]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
        validate(&doc, schema, &answer.json()).unwrap_or_else(|e| panic!("{path}: {e}\n{}", answer.body));
    }
}

both_engines!(a_malformed_field_is_refused_before_the_transfer_or_remitter_is_looked_up);

/// Found by schemathesis: these were answered 200 `Transaction not found` /
/// `Remitter not found`, the lookup coming before the field's check.
async fn a_malformed_field_is_refused_before_the_transfer_or_remitter_is_looked_up(engine: Engine) {
    let app = spawn_app(engine).await;
    let partner = app.add_partner(true, &[]).await;
    let cases = [
        ("/api/AOP/DMTV1/ClaimRefund", serde_json::json!({"ackno": 418502913, "otp": "246810", "Stateresp": {}})),
        ("/api/AOP/DMTV1/ClaimRefund", serde_json::json!({"ackno": 418502913, "otp": "246810", "referenceid": -1})),
        ("/api/AOP/DMTV1/RefundOtp", serde_json::json!({"ackno": 418502913, "referenceid": "no spaces here"})),
        (
            "/api/AOP/DMTV1/PennyDrop",
            serde_json::json!({"mobile": "9876543210", "bene_id": "12", "referenceid": "PD-1", "ifsccode": "-1"}),
        ),
    ];
    for (path, fields) in cases {
        let answer = app.call(path, &partner, fields.clone()).await;
        assert_eq!(answer.status, 400, "{path} {fields}: {}", answer.body);
        assert_eq!(answer.json()["response_code"], 8, "{}", answer.body);
    }
}
