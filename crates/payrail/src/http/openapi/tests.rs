use payrail_client::wire::{BillStatusBody, BillStatusData, DmtStatusBody};
use serde_json::Value;

use super::check::{component, validate};
use super::*;

fn doc() -> Value {
    serde_json::from_str(document()).unwrap_or_else(|e| panic!("the document is not JSON: {e}"))
}

/// Every `$ref` in `value`.
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|v| refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// Each operation: (method, path, operation).
fn each_operation(doc: &Value) -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            found.push((method.clone(), path.clone(), operation.clone()));
        }
    }
    found
}

#[test]
fn the_document_is_openapi_3_1_and_every_ref_resolves() {
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "payrail");
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 50, "the operations refer to their schemas");
    for reference in all {
        let name = reference.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("{reference}"));
        assert!(component(&doc, name).is_some(), "{reference} names no schema");
    }
    let mut ids = Vec::new();
    for (method, path, operation) in each_operation(&doc) {
        let id = operation["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
        assert!(!ids.contains(&id.to_owned()), "operationId {id} twice");
        ids.push(id.to_owned());
        assert!(operation["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path}: no responses");
        assert!(operation["security"].is_array(), "{method} {path}: no security");
        for name in path.split('{').skip(1).filter_map(|rest| rest.split_once('}')).map(|(name, _)| name) {
            let declared = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true);
            assert!(declared, "{method} {path}: path parameter {name} is not declared");
        }
    }
}

#[test]
fn every_operator_operation_has_the_bearer_scheme_and_its_role_from_route_roles() {
    let doc = doc();
    for route in ROUTE_ROLES {
        let operation = &doc["paths"][route.path][route.method.to_lowercase()];
        assert_eq!(operation["x-payrail-role"], route.role.to_string(), "{} {}", route.method, route.path);
        assert_eq!(operation["security"][0]["AdminBearer"], serde_json::json!([]), "{} {}", route.method, route.path);
    }
    for (method, path, operation) in each_operation(&doc) {
        if path.starts_with("/api/") {
            assert_eq!(operation["security"][0]["Token"], serde_json::json!([]), "{method} {path}");
            assert!(operation.get("x-payrail-role").is_none());
        }
    }
}

#[test]
fn every_sample_in_the_document_fits_its_schema() {
    let doc = doc();
    let mut samples = 0;
    for (method, path, operation) in each_operation(&doc) {
        let body = &operation["requestBody"]["content"]["application/json"];
        if let Some(example) = body.get("example") {
            validate(&doc, &body["schema"], example).unwrap_or_else(|e| panic!("{method} {path} request sample: {e}"));
            samples += 1;
        }
        for (status, response) in operation["responses"].as_object().into_iter().flatten() {
            if let Some(example) = response["content"]["application/json"].get("example") {
                let schema = &response["content"]["application/json"]["schema"];
                validate(&doc, schema, example).unwrap_or_else(|e| panic!("{method} {path} {status} sample: {e}"));
                samples += 1;
            }
        }
    }
    assert!(samples > 50, "only {samples} samples");
}

/// The top-level keys of a serialised object, in the order written.
fn keys(value: &impl serde::Serialize) -> Vec<String> {
    let text = serde_json::to_string(value).unwrap_or_default();
    let (mut keys, mut depth, mut current, mut in_string, mut escaped) = (Vec::new(), 0, String::new(), false, false);
    let mut last_string = String::new();
    for c in text.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => {
                    in_string = false;
                    last_string = std::mem::take(&mut current);
                    continue;
                }
                _ => {}
            }
            current.push(c);
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            ':' if depth == 1 => keys.push(std::mem::take(&mut last_string)),
            _ => {}
        }
    }
    keys
}

/// The properties of schema `T`, in the document's order.
fn properties<T: utoipa::PartialSchema>() -> Vec<String> {
    match T::schema() {
        RefOr::T(Schema::Object(object)) => object.properties.keys().cloned().collect(),
        _ => panic!("not an object schema"),
    }
}

/// The status pages' answers are `payrail_client`'s types, described here
/// by a schema of their own: field for field and in order, the same.
#[test]
fn the_status_pages_answers_have_the_shape_the_document_declares() {
    let doc = doc();
    let found = DmtStatusBody {
        status: true,
        response_code: 1,
        utr: None,
        amount: "100".into(),
        ackno: "128".into(),
        referenceid: "12345678927".into(),
        account: "918882541913".into(),
        txn_status: "1".into(),
        message: "Transaction Successful".into(),
        customercharge: "10.00".into(),
        gst: "1.53".into(),
        discount: "1.53".into(),
        tds: "0.19".into(),
        netcommission: "4.78".into(),
        daterefunded: None,
        refundtxnid: None,
    };
    assert_eq!(keys(&found), properties::<partner::DmtStatusFound>());
    let found = serde_json::to_value(found).unwrap_or_default();
    validate(&doc, &serde_json::json!({"$ref": "#/components/schemas/DmtStatusFound"}), &found)
        .unwrap_or_else(|e| panic!("{e}"));
    let bill = BillStatusBody {
        response_code: 1,
        status: true,
        data: BillStatusData {
            txnid: "1".into(),
            operatorname: "Indane Gas".into(),
            canumber: "102277100".into(),
            amount: "500".into(),
            ad1: None,
            ad2: None,
            ad3: None,
            comm: "1.05".into(),
            tds: "0.02".into(),
            status: "1".into(),
            refid: "123456".into(),
            operatorid: Some("OP1".into()),
            dateadded: "2026-12-04 10:00:00".into(),
            refunded: "0".into(),
            refundtxnid: None,
            daterefunded: None,
        },
        message: "Transaction Successful".into(),
    };
    assert_eq!(keys(&bill), properties::<partner::BillStatusFound>());
    assert_eq!(keys(&bill.data), properties::<partner::BillStatusData>());
    let bill = serde_json::to_value(bill).unwrap_or_default();
    validate(&doc, &serde_json::json!({"$ref": "#/components/schemas/BillStatusFound"}), &bill)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn the_refusal_shape_is_the_one_every_error_has() {
    let doc = doc();
    let refusal = component(&doc, "Refusal").unwrap_or_else(|| panic!("no Refusal"));
    assert_eq!(refusal["required"], serde_json::json!(["status", "response_code", "message"]));
    for body in [
        r#"{"status":false,"response_code":8,"message":"MobileNumber: is missing"}"#,
        r#"{"response_code":11,"status":false,"message":"Authentication failed"}"#,
    ] {
        let body: Value = serde_json::from_str(body).unwrap_or_default();
        validate(&doc, &serde_json::json!({"$ref": "#/components/schemas/Refusal"}), &body)
            .unwrap_or_else(|e| panic!("{e}"));
    }
}
