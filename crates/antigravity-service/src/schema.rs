//! JSON-schema cleaning for function declarations and response schemas.
//!
//! Gemini accepts an OpenAPI 3.0 subset. The cleaner keeps what it understands (`type`, `format`,
//! `description`, `nullable`, `enum`, `items`, `properties`, `required`, `anyOf`, `minimum`,
//! `maximum`, `minItems`, `maxItems`), rewrites what it can express differently, keeps the meaning
//! of constraints it cannot express in the description, and drops the rest. Rules:
//!
//! 1. `$ref` to `#/$defs/X` or `#/definitions/X` is inlined (recursion stops at the second visit).
//! 2. `type: [T, "null"]` becomes `type: T, nullable: true`; several non-null types become `anyOf`.
//! 3. `anyOf` / `oneOf` of one schema and `{"type": "null"}` is flattened into that schema, nullable.
//! 4. Other `oneOf` becomes `anyOf`; `allOf` of object schemas is merged.
//! 5. `const` becomes a one-value `enum`; `null` inside `enum` becomes `nullable`.
//! 6. An enum of strings without a type gets `type: string`; a schema with `properties` and no
//!    type gets `type: object`. Nothing else gets an invented type.
//! 7. `required` keeps only names that are in `properties`.
//! 8. `minLength`, `maxLength`, `pattern`, `exclusiveMinimum`, `exclusiveMaximum`, `multipleOf`,
//!    `uniqueItems`, `minProperties`, `maxProperties` move into the description.
//! 9. Everything else (`$schema`, `$id`, `$defs`, `title`, `examples`, `default`,
//!    `additionalProperties`, `patternProperties`, `if`/`then`/`else`, ...) is dropped.

use serde_json::{Map, Value, json};

const CONSTRAINTS: &[&str] = &[
    "minLength",
    "maxLength",
    "pattern",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "uniqueItems",
    "minProperties",
    "maxProperties",
];

const KEPT: &[&str] = &[
    "format",
    "description",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
];

/// Clean a function's `parameters`: the result is always an object schema.
pub(crate) fn clean_parameters(schema: &Value) -> Value {
    let mut cleaned = clean(schema);
    if let Value::Object(map) = &mut cleaned {
        if !map.contains_key("type") {
            map.insert("type".into(), json!("object"));
        }
        if map.get("type") == Some(&json!("object")) && !map.contains_key("properties") {
            map.insert("properties".into(), json!({}));
        }
        cleaned
    } else {
        json!({"type": "object", "properties": {}})
    }
}

/// Clean any schema (a response schema, or a nested one).
pub(crate) fn clean(schema: &Value) -> Value {
    let defs = definitions(schema);
    Cleaner {
        defs,
        visiting: Vec::new(),
    }
    .clean(schema)
}

fn definitions(root: &Value) -> Map<String, Value> {
    let mut defs = Map::new();
    for key in ["definitions", "$defs"] {
        if let Some(Value::Object(map)) = root.get(key) {
            for (name, schema) in map {
                defs.insert(format!("#/{key}/{name}"), schema.clone());
            }
        }
    }
    defs
}

struct Cleaner {
    defs: Map<String, Value>,
    visiting: Vec<String>,
}

impl Cleaner {
    fn clean(&mut self, schema: &Value) -> Value {
        let Value::Object(input) = schema else {
            // `true` / `false` / garbage: an unconstrained schema.
            return json!({});
        };
        if let Some(reference) = input.get("$ref").and_then(Value::as_str) {
            return self.inline(reference, input);
        }
        let mut out = Map::new();
        let mut notes: Vec<String> = Vec::new();
        let mut nullable = input.get("nullable") == Some(&Value::Bool(true));

        match input.get("type") {
            Some(Value::String(ty)) if ty != "null" => {
                out.insert("type".into(), json!(ty));
            }
            Some(Value::Array(types)) => {
                let non_null: Vec<&Value> = types
                    .iter()
                    .filter(|t| t.as_str() != Some("null"))
                    .collect();
                nullable |= non_null.len() < types.len();
                match non_null.as_slice() {
                    [] => {}
                    [one] => {
                        out.insert("type".into(), (*one).clone());
                    }
                    many => {
                        let variants: Vec<Value> =
                            many.iter().map(|t| json!({"type": t})).collect();
                        out.insert("anyOf".into(), Value::Array(variants));
                    }
                }
            }
            _ => {}
        }

        for key in KEPT {
            if let Some(value) = input.get(*key) {
                out.insert((*key).into(), value.clone());
            }
        }
        for key in CONSTRAINTS {
            if let Some(value) = input.get(*key) {
                notes.push(format!("{key}: {value}"));
            }
        }

        let mut values: Option<Vec<Value>> = input.get("enum").and_then(Value::as_array).cloned();
        if let Some(constant) = input.get("const") {
            values = Some(vec![constant.clone()]);
        }
        if let Some(values) = values {
            nullable |= values.iter().any(Value::is_null);
            let values: Vec<Value> = values.into_iter().filter(|v| !v.is_null()).collect();
            if !out.contains_key("type")
                && !values.is_empty()
                && values.iter().all(Value::is_string)
            {
                out.insert("type".into(), json!("string"));
            }
            out.insert("enum".into(), Value::Array(values));
        }

        if let Some(Value::Object(properties)) = input.get("properties") {
            let cleaned: Map<String, Value> = properties
                .iter()
                .map(|(name, schema)| (name.clone(), self.clean(schema)))
                .collect();
            if let Some(Value::Array(required)) = input.get("required") {
                let required: Vec<Value> = required
                    .iter()
                    .filter(|name| name.as_str().is_some_and(|n| cleaned.contains_key(n)))
                    .cloned()
                    .collect();
                if !required.is_empty() {
                    out.insert("required".into(), Value::Array(required));
                }
            }
            out.insert("properties".into(), Value::Object(cleaned));
            out.entry("type").or_insert_with(|| json!("object"));
        }
        if let Some(items) = input.get("items") {
            let items = match items {
                // Tuple form: Gemini has none; the first schema is the best single description.
                Value::Array(list) => list.first().map_or(json!({}), |s| self.clean(s)),
                single => self.clean(single),
            };
            out.insert("items".into(), items);
        }

        for key in ["anyOf", "oneOf"] {
            let Some(Value::Array(variants)) = input.get(key) else {
                continue;
            };
            let non_null: Vec<&Value> = variants
                .iter()
                .filter(|v| v.get("type").and_then(Value::as_str) != Some("null"))
                .collect();
            nullable |= non_null.len() < variants.len();
            match non_null.as_slice() {
                [] => {}
                [one] => merge_into(&mut out, self.clean(one)),
                many => {
                    let cleaned: Vec<Value> = many.iter().map(|v| self.clean(v)).collect();
                    out.insert("anyOf".into(), Value::Array(cleaned));
                }
            }
        }
        if let Some(Value::Array(parts)) = input.get("allOf") {
            for part in parts {
                merge_into(&mut out, self.clean(part));
            }
        }

        if nullable {
            out.insert("nullable".into(), json!(true));
        }
        if !notes.is_empty() {
            let note = format!("({})", notes.join(", "));
            let description = match out.get("description").and_then(Value::as_str) {
                Some(text) if !text.is_empty() => format!("{text} {note}"),
                _ => note,
            };
            out.insert("description".into(), json!(description));
        }
        Value::Object(out)
    }

    fn inline(&mut self, reference: &str, input: &Map<String, Value>) -> Value {
        let description = input.get("description").cloned();
        let target = self.defs.get(reference).cloned();
        let mut resolved = match target {
            Some(target) if !self.visiting.iter().any(|r| r == reference) => {
                self.visiting.push(reference.to_owned());
                let cleaned = self.clean(&target);
                self.visiting.pop();
                cleaned
            }
            _ => {
                let name = reference.rsplit('/').next().unwrap_or(reference);
                json!({"description": format!("a {name} (recursive or external schema reference)")})
            }
        };
        if let (Some(description), Value::Object(map)) = (description, &mut resolved) {
            map.insert("description".into(), description);
        }
        resolved
    }
}

/// Merge `extra` into `out`: properties and required lists are unioned, other keys filled in.
fn merge_into(out: &mut Map<String, Value>, extra: Value) {
    let Value::Object(extra) = extra else { return };
    for (key, value) in extra {
        match (key.as_str(), out.get_mut(&key), value) {
            ("properties", Some(Value::Object(mine)), Value::Object(theirs)) => {
                mine.extend(theirs);
            }
            ("required", Some(Value::Array(mine)), Value::Array(theirs)) => {
                for name in theirs {
                    if !mine.contains(&name) {
                        mine.push(name);
                    }
                }
            }
            (_, Some(_), _) => {}
            (_, None, value) => {
                out.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests;
