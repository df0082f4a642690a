use serde_json::{Value, json};

use super::*;

fn check(input: Value, expected: Value) {
    assert_eq!(clean(&input), expected, "input: {input}");
}

#[test]
fn rule_1_refs_are_inlined() {
    check(
        json!({"type": "object", "properties": {"p": {"$ref": "#/$defs/Point", "description": "where"}},
               "$defs": {"Point": {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}}}),
        json!({"type": "object", "properties": {"p": {"type": "object", "description": "where", "properties": {"x": {"type": "number"}}, "required": ["x"]}}}),
    );
    check(
        json!({"properties": {"a": {"$ref": "#/definitions/A"}}, "definitions": {"A": {"type": "string"}}}),
        json!({"type": "object", "properties": {"a": {"type": "string"}}}),
    );
}

#[test]
fn rule_1_recursive_and_unknown_refs_stop() {
    let tree = json!({"$defs": {"Node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}}}},
                      "type": "object", "properties": {"root": {"$ref": "#/$defs/Node"}}});
    check(
        tree,
        json!({"type": "object", "properties": {"root": {"type": "object", "properties": {
            "child": {"type": "string", "description": "a Node (recursive or external schema reference)"}}}}}),
    );
    check(
        json!({"$ref": "https://example.com/schema.json"}),
        json!({"description": "a schema.json (recursive or external schema reference)"}),
    );
}

#[test]
fn rule_2_type_lists() {
    check(
        json!({"type": ["string", "null"]}),
        json!({"type": "string", "nullable": true}),
    );
    check(
        json!({"type": ["string", "integer"]}),
        json!({"anyOf": [{"type": "string"}, {"type": "integer"}]}),
    );
    check(json!({"type": "null"}), json!({}));
}

#[test]
fn rule_3_nullable_unions_flatten() {
    check(
        json!({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}], "description": "count"}),
        json!({"type": "integer", "minimum": 0, "description": "count", "nullable": true}),
    );
    check(
        json!({"oneOf": [{"type": "null"}, {"type": "array", "items": {"type": "string"}}]}),
        json!({"type": "array", "items": {"type": "string"}, "nullable": true}),
    );
}

#[test]
fn rule_4_one_of_and_all_of() {
    check(
        json!({"oneOf": [{"type": "string"}, {"type": "number"}]}),
        json!({"anyOf": [{"type": "string"}, {"type": "number"}]}),
    );
    check(
        json!({"allOf": [
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            {"properties": {"b": {"type": "integer"}}, "required": ["b"]}
        ]}),
        json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}, "required": ["a", "b"]}),
    );
}

#[test]
fn rule_5_const_and_null_in_enum() {
    check(
        json!({"const": "fixed"}),
        json!({"type": "string", "enum": ["fixed"]}),
    );
    check(
        json!({"type": "string", "enum": ["c", "f", null]}),
        json!({"type": "string", "enum": ["c", "f"], "nullable": true}),
    );
}

#[test]
fn rule_6_types_are_only_derived_never_invented() {
    // An enum-only schema of strings is a string, not an object.
    check(
        json!({"enum": ["a", "b"]}),
        json!({"type": "string", "enum": ["a", "b"]}),
    );
    // Mixed enums get no type at all (their values move to the description: rule 11).
    check(
        json!({"enum": [1, "a"]}),
        json!({"description": "(enum: [1,\"a\"])"}),
    );
    check(
        json!({"properties": {}}),
        json!({"type": "object", "properties": {}}),
    );
    check(
        json!({"description": "anything"}),
        json!({"description": "anything"}),
    );
}

#[test]
fn rule_7_required_names_must_exist() {
    check(
        json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a", "ghost"]}),
        json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}),
    );
    check(
        json!({"type": "object", "properties": {}, "required": ["ghost"]}),
        json!({"type": "object", "properties": {}}),
    );
}

#[test]
fn rule_8_constraints_move_into_the_description() {
    check(
        json!({"type": "string", "minLength": 1, "pattern": "^[a-z]+$", "description": "a slug"}),
        json!({"type": "string", "description": "a slug (minLength: 1, pattern: \"^[a-z]+$\")"}),
    );
    check(
        json!({"type": "array", "uniqueItems": true, "maxItems": 3, "items": {"type": "string"}}),
        json!({"type": "array", "maxItems": 3, "items": {"type": "string"}, "description": "(uniqueItems: true)"}),
    );
}

#[test]
fn rule_9_unsupported_keywords_are_dropped() {
    check(
        json!({
            "$schema": "http://json-schema.org/draft-07/schema#", "$id": "x", "title": "T", "examples": [1],
            "default": 3, "additionalProperties": false, "patternProperties": {"^x": {}},
            "if": {}, "then": {}, "else": {}, "readOnly": true, "$comment": "c",
            "type": "integer", "format": "int32", "minimum": 1, "maximum": 9
        }),
        json!({"type": "integer", "format": "int32", "minimum": 1, "maximum": 9}),
    );
}

#[test]
fn tuple_items_use_the_first_schema() {
    check(
        json!({"type": "array", "items": [{"type": "number"}, {"type": "string"}]}),
        json!({"type": "array", "items": {"type": "number"}}),
    );
}

/// `schema` as the type of property `p`, where the nested rules apply.
fn nested(schema: Value) -> Value {
    json!({"type": "object", "properties": {"p": schema}})
}

#[test]
fn rule_10_only_formats_gemini_knows_are_kept() {
    check(
        json!({"type": "string", "format": "uri", "description": "The page"}),
        json!({"type": "string", "description": "The page (format: \"uri\")"}),
    );
    for format in ["email", "date", "int64", "uuid", "byte"] {
        check(
            json!({"type": "string", "format": format}),
            json!({"type": "string", "description": format!("(format: \"{format}\")")}),
        );
    }
    check(
        json!({"type": "integer", "format": "uint32", "minLength": 1}),
        json!({"type": "integer", "description": "(minLength: 1, format: \"uint32\")"}),
    );
    for (ty, format) in [
        ("string", "date-time"),
        ("integer", "int32"),
        ("integer", "int64"),
        ("number", "float"),
        ("number", "double"),
    ] {
        check(
            json!({"type": ty, "format": format}),
            json!({"type": ty, "format": format}),
        );
    }
    check(
        json!({"type": "string", "format": "enum", "enum": ["a", "b"]}),
        json!({"type": "string", "format": "enum", "enum": ["a", "b"]}),
    );
}

#[test]
fn rule_11_enums_are_strings_or_hints() {
    check(
        json!({"type": "integer", "enum": [1, 2, 3], "description": "Verbosity"}),
        json!({"type": "integer", "description": "Verbosity (enum: [1,2,3])"}),
    );
    check(
        json!({"enum": [true, false]}),
        json!({"type": "boolean", "description": "(enum: [true,false])"}),
    );
    check(
        json!({"enum": [0.5, 1]}),
        json!({"type": "number", "description": "(enum: [0.5,1])"}),
    );
    check(
        json!({"const": 3}),
        json!({"type": "integer", "description": "(enum: [3])"}),
    );
    // Mixed values: no type can be derived at the top; a nested one falls to rule 14.
    check(
        json!({"enum": [1, "a"]}),
        json!({"description": "(enum: [1,\"a\"])"}),
    );
    check(
        nested(json!({"enum": [1, "a"]})),
        nested(json!({"type": "string", "description": "(enum: [1,\"a\"])"})),
    );
    // A declared string keeps its enum, every value spelled as a string.
    check(
        json!({"type": "string", "enum": ["a", 1, true]}),
        json!({"type": "string", "enum": ["a", "1", "true"]}),
    );
    check(
        json!({"type": "integer", "enum": [1, null]}),
        json!({"type": "integer", "nullable": true, "description": "(enum: [1])"}),
    );
}

#[test]
fn rule_12_arrays_always_have_items() {
    check(
        json!({"type": "array"}),
        json!({"type": "array", "items": {"type": "string"}}),
    );
    check(
        json!({"type": "array", "items": {}}),
        json!({"type": "array", "items": {"type": "string"}}),
    );
    check(
        nested(json!({"type": "array", "items": {"type": "array"}})),
        nested(json!({"type": "array", "items": {"type": "array", "items": {"type": "string"}}})),
    );
}

#[test]
fn rule_13_nested_objects_without_properties_travel_as_json_text() {
    check(
        nested(
            json!({"type": "object", "additionalProperties": {"type": "string"}, "description": "Extra headers"}),
        ),
        nested(
            json!({"type": "string", "description": "Extra headers (a JSON object written as JSON text)"}),
        ),
    );
    check(
        nested(json!({"type": "object", "properties": {}, "required": ["x"]})),
        nested(json!({"type": "string", "description": "(a JSON object written as JSON text)"})),
    );
    check(
        json!({"type": "array", "items": {"type": "object"}}),
        json!({"type": "array", "items": {"type": "string", "description": "(a JSON object written as JSON text)"}}),
    );
    // The top of a schema is its caller's business (see `clean_parameters`, `clean_response`).
    check(json!({"type": "object"}), json!({"type": "object"}));
}

#[test]
fn rule_14_nested_schemas_without_a_type_are_strings() {
    check(
        nested(json!({"description": "Anything to send"})),
        nested(json!({"type": "string", "description": "Anything to send"})),
    );
    check(nested(json!({})), nested(json!({"type": "string"})));
    check(nested(json!(true)), nested(json!({"type": "string"})));
    // A union needs no type of its own.
    check(
        nested(json!({"anyOf": [{"type": "string"}, {"type": "integer"}]})),
        nested(json!({"anyOf": [{"type": "string"}, {"type": "integer"}]})),
    );
    check(json!({"description": "top"}), json!({"description": "top"}));
}

#[test]
fn parameters_without_properties_are_left_out() {
    for schema in [
        json!({}),
        json!(null),
        json!({"type": "object"}),
        json!({"type": "object", "properties": {}, "additionalProperties": false}),
        json!({"type": "object", "additionalProperties": {"type": "string"}}),
    ] {
        assert_eq!(clean_parameters(&schema), None, "{schema}");
    }
    assert_eq!(
        clean_parameters(&json!({"properties": {"a": {"type": "string"}}})),
        Some(json!({"type": "object", "properties": {"a": {"type": "string"}}}))
    );
}

#[test]
fn response_schemas_gemini_cannot_take_are_left_out() {
    assert_eq!(clean_response(&json!({"type": "object"})), None);
    assert_eq!(clean_response(&json!({})), None);
    assert_eq!(
        clean_response(
            &json!({"type": "array", "items": {"type": "object", "properties": {"a": {"type": "integer"}}}})
        ),
        Some(
            json!({"type": "array", "items": {"type": "object", "properties": {"a": {"type": "integer"}}}})
        )
    );
}
