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
//!    type gets `type: object`. Nothing else gets an invented type at the top of a schema.
//! 7. `required` keeps only names that are in `properties`.
//! 8. `minLength`, `maxLength`, `pattern`, `exclusiveMinimum`, `exclusiveMaximum`, `multipleOf`,
//!    `uniqueItems`, `minProperties`, `maxProperties` move into the description.
//! 9. Everything else (`$schema`, `$id`, `$defs`, `title`, `examples`, `default`,
//!    `additionalProperties`, `patternProperties`, `if`/`then`/`else`, ...) is dropped.
//! 10. `format` stays only where Gemini takes it (`enum` and `date-time` on strings, `int32` and
//!     `int64` on integers, `float` and `double` on numbers); any other (`uri`, `email`, `date`,
//!     `int64` on a string, ...) moves into the description, so the model still learns it (a real
//!     upstream 400: "only 'enum' and 'date-time' are supported for STRING type").
//! 11. Gemini's enums are strings. An enum of other values keeps its type (derived from the
//!     values when none is declared: all booleans, all integers, all numbers) and moves its values
//!     into the description: converting them to strings would make the model answer `"1"` where
//!     the client's tool checks for `1`. A declared string type keeps its enum, every value
//!     spelled as a string.
//! 12. An array without `items` gets string items (Gemini requires `items`; a string can carry any
//!     value).
//! 13. An object without properties (a free-form map, `additionalProperties` only) is refused
//!     by Gemini ("properties: should be non-empty for OBJECT type"). Nested, it becomes a string
//!     described as JSON text; at the top, the caller decides: a function's parameters are left
//!     out ([`clean_parameters`]), as is a response schema ([`clean_response`]), leaving JSON mode.
//! 14. A nested schema without a type (`{}`, a description only, an unresolvable reference) is
//!     refused by Gemini ("type: must be specified when not using one_of, any_of or all_of"): it
//!     becomes a string. A union (`anyOf`) needs no type of its own.

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

const KEPT: &[&str] = &["description", "minimum", "maximum", "minItems", "maxItems"];

/// The formats Gemini takes, per type (rule 10).
const FORMATS: &[(&str, &[&str])] = &[
    ("string", &["enum", "date-time"]),
    ("integer", &["int32", "int64"]),
    ("number", &["float", "double"]),
];

/// What a nested object without properties becomes (rule 13), said in its description.
const OBJECT_AS_TEXT: &str = "a JSON object written as JSON text";

/// Clean a function's `parameters`: an object schema with properties, or `None` when the
/// function takes none (Gemini refuses an object without properties; a declaration without
/// `parameters` is its form of a function without arguments).
pub(crate) fn clean_parameters(schema: &Value) -> Option<Value> {
    let mut cleaned = clean(schema);
    let map = cleaned.as_object_mut()?;
    map.entry("type").or_insert_with(|| json!("object"));
    if map.get("type") == Some(&json!("object")) && !has_properties(map) {
        return None;
    }
    Some(cleaned)
}

/// Clean a response schema: `None` when nothing Gemini takes is left (no schema, an untyped
/// one, an object without properties), which leaves plain JSON mode.
pub(crate) fn clean_response(schema: &Value) -> Option<Value> {
    if schema.is_null() {
        return None;
    }
    let cleaned = clean(schema);
    let map = cleaned.as_object()?;
    let usable = match map.get("type").and_then(Value::as_str) {
        Some("object") => has_properties(map),
        Some(_) => true,
        None => map.contains_key("anyOf"),
    };
    usable.then_some(cleaned)
}

/// Clean any schema (a response schema, or a nested one). The rules for nested schemas (13 and
/// 14) apply below the top only.
pub(crate) fn clean(schema: &Value) -> Value {
    let defs = definitions(schema);
    Cleaner {
        defs,
        visiting: Vec::new(),
    }
    .clean(schema, false)
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

fn has_properties(map: &Map<String, Value>) -> bool {
    map.get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| !p.is_empty())
}

/// The type every value of a non-string enum has, when they share one (rule 11).
fn enum_type(values: &[Value]) -> Option<&'static str> {
    if values.iter().all(Value::is_boolean) {
        Some("boolean")
    } else if values.iter().all(|v| v.is_i64() || v.is_u64()) {
        Some("integer")
    } else if values.iter().all(Value::is_number) {
        Some("number")
    } else {
        None
    }
}

/// Rule 14: a nested schema without a type (and no union) is a string.
fn type_nested(out: &mut Map<String, Value>, nested: bool) {
    if nested && !out.contains_key("type") && !out.contains_key("anyOf") {
        out.insert("type".into(), json!("string"));
    }
}

struct Cleaner {
    defs: Map<String, Value>,
    visiting: Vec<String>,
}

impl Cleaner {
    /// Clean one schema; `nested` when it is a property, an item or a union member of another.
    fn clean(&mut self, schema: &Value, nested: bool) -> Value {
        let Value::Object(input) = schema else {
            // `true` / `false` / garbage: an unconstrained schema.
            let mut out = Map::new();
            type_nested(&mut out, nested);
            return Value::Object(out);
        };
        if let Some(reference) = input.get("$ref").and_then(Value::as_str) {
            return self.inline(reference, input, nested);
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

        let mut enum_note = None;
        let mut values: Option<Vec<Value>> = input.get("enum").and_then(Value::as_array).cloned();
        if let Some(constant) = input.get("const") {
            values = Some(vec![constant.clone()]);
        }
        if let Some(values) = values {
            nullable |= values.iter().any(Value::is_null);
            let values: Vec<Value> = values.into_iter().filter(|v| !v.is_null()).collect();
            let declared = out.get("type").and_then(Value::as_str).map(str::to_owned);
            match declared.as_deref() {
                _ if values.is_empty() => {}
                None | Some("string") if values.iter().all(Value::is_string) => {
                    out.insert("type".into(), json!("string"));
                    out.insert("enum".into(), Value::Array(values));
                }
                Some("string") => {
                    let spelled = values
                        .into_iter()
                        .map(|v| match v {
                            Value::String(text) => Value::String(text),
                            other => Value::String(other.to_string()),
                        })
                        .collect();
                    out.insert("enum".into(), Value::Array(spelled));
                }
                declared => {
                    if declared.is_none()
                        && let Some(ty) = enum_type(&values)
                    {
                        out.insert("type".into(), json!(ty));
                    }
                    enum_note = Some(format!("enum: {}", Value::Array(values)));
                }
            }
        }

        if let Some(Value::Object(properties)) = input.get("properties") {
            let cleaned: Map<String, Value> = properties
                .iter()
                .map(|(name, schema)| (name.clone(), self.clean(schema, true)))
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
                Value::Array(list) => {
                    let first = list.first().cloned().unwrap_or_else(|| json!({}));
                    self.clean(&first, true)
                }
                single => self.clean(single, true),
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
                // Flattened into this schema, whose own rules follow.
                [one] => merge_into(&mut out, self.clean(one, false)),
                many => {
                    let cleaned: Vec<Value> = many.iter().map(|v| self.clean(v, true)).collect();
                    out.insert("anyOf".into(), Value::Array(cleaned));
                }
            }
        }
        if let Some(Value::Array(parts)) = input.get("allOf") {
            for part in parts {
                merge_into(&mut out, self.clean(part, false));
            }
        }

        let ty = out.get("type").and_then(Value::as_str).map(str::to_owned);
        if ty.as_deref() == Some("array") && !out.contains_key("items") {
            out.insert("items".into(), json!({"type": "string"}));
        }
        let mut object_note = None;
        if nested
            && ty.as_deref() == Some("object")
            && !has_properties(&out)
            && !out.contains_key("anyOf")
        {
            out.insert("type".into(), json!("string"));
            out.remove("properties");
            out.remove("required");
            object_note = Some(OBJECT_AS_TEXT.to_owned());
        }
        type_nested(&mut out, nested);

        // Rule 10, once the type is settled; a format a flattened union brought is its own.
        let format = input.get("format").or_else(|| out.get("format")).cloned();
        out.remove("format");
        if let Some(format) = format {
            let ty = out.get("type").and_then(Value::as_str);
            let taken = format.as_str().is_some_and(|f| {
                (f != "enum" || out.contains_key("enum"))
                    && FORMATS
                        .iter()
                        .any(|(t, formats)| Some(*t) == ty && formats.contains(&f))
            });
            if taken {
                out.insert("format".into(), format);
            } else {
                notes.push(format!("format: {format}"));
            }
        }
        notes.extend(enum_note);
        notes.extend(object_note);

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

    fn inline(&mut self, reference: &str, input: &Map<String, Value>, nested: bool) -> Value {
        let description = input.get("description").cloned();
        let target = self.defs.get(reference).cloned();
        let mut resolved = match target {
            Some(target) if !self.visiting.iter().any(|r| r == reference) => {
                self.visiting.push(reference.to_owned());
                let cleaned = self.clean(&target, nested);
                self.visiting.pop();
                cleaned
            }
            _ => {
                let name = reference.rsplit('/').next().unwrap_or(reference);
                let mut out = Map::new();
                out.insert(
                    "description".into(),
                    json!(format!("a {name} (recursive or external schema reference)")),
                );
                type_nested(&mut out, nested);
                Value::Object(out)
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
