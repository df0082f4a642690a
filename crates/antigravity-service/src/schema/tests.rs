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
            "child": {"description": "a Node (recursive or external schema reference)"}}}}}),
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
    // Mixed enums get no type at all.
    check(json!({"enum": [1, "a"]}), json!({"enum": [1, "a"]}));
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

#[test]
fn parameters_are_always_objects() {
    assert_eq!(
        clean_parameters(&json!({})),
        json!({"type": "object", "properties": {}})
    );
    assert_eq!(
        clean_parameters(&json!(null)),
        json!({"type": "object", "properties": {}})
    );
    assert_eq!(
        clean_parameters(&json!({"type": "object"})),
        json!({"type": "object", "properties": {}})
    );
}
