//! A small JSON Schema check, enough for the schemas this document has
//! (`$ref` into `components/schemas`, `type` one or several, `properties`,
//! `required`, `additionalProperties`, `items`, `enum`, `const`, `anyOf`,
//! `oneOf`, `allOf`; other keywords are not checked): the tests hold the
//! server's real answers and the document's samples to it.

use serde_json::Value;

/// Whether `value` conforms to `schema`, whose `$ref`s point into `doc`;
/// the first mismatch, with where it is (`$.data[0].bankid`), when not.
pub fn validate(doc: &Value, schema: &Value, value: &Value) -> Result<(), String> {
    check(doc, schema, value, "$", 0)
}

/// The schema `name` in `doc`'s components.
pub fn component<'a>(doc: &'a Value, name: &str) -> Option<&'a Value> {
    doc.get("components")?.get("schemas")?.get(name)
}

fn check(doc: &Value, schema: &Value, value: &Value, at: &str, depth: usize) -> Result<(), String> {
    if depth > 64 {
        return Err(format!("{at}: schema nesting too deep (a $ref cycle?)"));
    }
    let Some(schema) = schema.as_object() else {
        // `true` (or an empty schema) takes anything; `false` nothing.
        return if schema == &Value::Bool(false) { Err(format!("{at}: no value is allowed here")) } else { Ok(()) };
    };
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.strip_prefix("#/components/schemas/").ok_or_else(|| format!("{at}: $ref {reference}"))?;
        let target = component(doc, name).ok_or_else(|| format!("{at}: $ref to a missing schema {name}"))?;
        check(doc, target, value, at, depth + 1)?;
    }
    if let Some(types) = schema.get("type") {
        let allowed: Vec<&str> = match types {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => return Err(format!("{at}: a `type` that is neither a string nor a list")),
        };
        if !allowed.iter().any(|t| is_type(value, t)) {
            return Err(format!("{at}: {} is not of type {}", short(value), allowed.join(" or ")));
        }
    }
    if let Some(choices) = schema.get("enum").and_then(Value::as_array) {
        if !choices.contains(value) {
            return Err(format!("{at}: {} is not one of {}", short(value), Value::Array(choices.clone())));
        }
    }
    if let Some(constant) = schema.get("const") {
        if constant != value {
            return Err(format!("{at}: {} is not {constant}", short(value)));
        }
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for part in all {
            check(doc, part, value, at, depth + 1)?;
        }
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
        let failures: Vec<String> =
            any.iter().filter_map(|part| check(doc, part, value, at, depth + 1).err()).collect();
        if failures.len() == any.len() {
            return Err(format!("{at}: matches none of anyOf: {}", failures.join("; ")));
        }
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array) {
        let matching = one.iter().filter(|part| check(doc, part, value, at, depth + 1).is_ok()).count();
        if matching != 1 {
            return Err(format!("{at}: matches {matching} of oneOf, not exactly one"));
        }
    }
    if let Value::Object(fields) = value {
        let properties = schema.get("properties").and_then(Value::as_object);
        for name in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            let name = name.as_str().unwrap_or_default();
            if !fields.contains_key(name) {
                return Err(format!("{at}: the required field {name:?} is missing"));
            }
        }
        for (name, field) in fields {
            let here = format!("{at}.{name}");
            match properties.and_then(|p| p.get(name)) {
                Some(property) => check(doc, property, field, &here, depth + 1)?,
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => return Err(format!("{here}: a field the schema does not have")),
                    Some(extra @ Value::Object(_)) => check(doc, extra, field, &here, depth + 1)?,
                    _ => {}
                },
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            check(doc, item_schema, item, &format!("{at}[{i}]"), depth + 1)?;
        }
    }
    Ok(())
}

fn is_type(value: &Value, name: &str) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    }
}

/// A value, cut for a message.
fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn types_required_fields_refs_and_any_of_are_checked() {
        let doc = json!({"components": {"schemas": {
            "Row": {"type": "object", "required": ["id", "name"], "properties": {
                "id": {"type": "integer"}, "name": {"type": ["string", "null"]},
                "tags": {"type": "array", "items": {"type": "string"}}}},
            "Strict": {"type": "object", "additionalProperties": false, "properties": {"a": {"type": "boolean"}}}
        }}});
        let row = json!({"$ref": "#/components/schemas/Row"});
        assert_eq!(validate(&doc, &row, &json!({"id": 1, "name": null, "tags": ["x"]})), Ok(()));
        assert!(validate(&doc, &row, &json!({"id": "1", "name": "a"})).is_err_and(|e| e.contains("$.id")));
        assert!(validate(&doc, &row, &json!({"id": 1})).is_err_and(|e| e.contains("\"name\"")));
        assert!(validate(&doc, &row, &json!({"id": 1, "name": "a", "tags": [1]})).is_err_and(|e| e.contains("tags[0]")));
        let strict = json!({"$ref": "#/components/schemas/Strict"});
        assert!(validate(&doc, &strict, &json!({"a": true, "b": 1})).is_err());
        let either = json!({"anyOf": [{"$ref": "#/components/schemas/Strict"}, {"type": "string"}]});
        assert_eq!(validate(&doc, &either, &json!("text")), Ok(()));
        assert!(validate(&doc, &either, &json!(3)).is_err());
        assert!(validate(&doc, &json!({"$ref": "#/components/schemas/Nope"}), &json!(1)).is_err());
        assert!(validate(&doc, &json!({"enum": ["a", "b"]}), &json!("c")).is_err());
    }
}
