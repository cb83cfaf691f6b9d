"""Per-task call parameters: what is accepted, how it is stored, and the message for each bad value."""

from __future__ import annotations

import json

import pytest

from llmadmin.services.task_params import (
    ParamError,
    clean_param,
    clean_params,
    display_value,
    schema_problem,
)


@pytest.mark.parametrize(
    "name, raw, stored",
    [
        ("temperature", "0", 0.0),
        ("temperature", " 1.5 ", 1.5),
        ("temperature", 2, 2.0),
        ("top_p", "0.9", 0.9),
        ("max_tokens", "1", 1),
        ("max_tokens", 1_000_000, 1_000_000),
        ("seed", "-42", -42),
        ("seed", str(2**63 - 1), 2**63 - 1),
        ("stop", "END\n###", '["END", "###"]'),
        ("stop", '["\\n\\n", "END"]', '["\\n\\n", "END"]'),
        ("stop", ["a", "b", "c", "d"], '["a", "b", "c", "d"]'),
        ("response_format", "text", '{"type": "text"}'),
        ("response_format", "json_object", '{"type": "json_object"}'),
        ("temperature", "", None),
        ("stop", "   ", None),
        ("response_format", None, None),
    ],
)
def test_good_values_are_stored_in_one_form(name, raw, stored):
    assert clean_param(name, raw) == stored


def test_a_schema_is_wrapped_as_openai_json_schema_and_cleaning_is_idempotent():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    stored = clean_param("response_format", json.dumps(schema))
    assert json.loads(stored) == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": schema},
    }
    assert clean_param("response_format", stored) == stored
    full = {
        "type": "json_schema",
        "json_schema": {"name": "Row_1", "schema": schema, "strict": True},
    }
    assert json.loads(clean_param("response_format", full))["json_schema"]["strict"] is True
    for name, value in clean_params({"stop": "X", "temperature": "0.3"}).items():
        assert clean_param(name, value) == value


@pytest.mark.parametrize(
    "name, raw, message",
    [
        ("temperature", "hot", "Temperature must be a number from 0 to 2."),
        ("temperature", "2.01", "Temperature must be a number from 0 to 2."),
        ("temperature", "-0.1", "Temperature must be a number from 0 to 2."),
        ("temperature", "nan", "Temperature must be a number from 0 to 2."),
        ("temperature", "inf", "Temperature must be a number from 0 to 2."),
        ("top_p", "1.5", "Top p must be a number from 0 to 1."),
        ("frequency_penalty", "2.5", "Frequency penalty must be a number from -2 to 2."),
        ("frequency_penalty", "lots", "Frequency penalty must be a number from -2 to 2."),
        ("presence_penalty", "-2.01", "Presence penalty must be a number from -2 to 2."),
        ("max_tokens", "0", "Max tokens must be a whole number from 1 to 1,000,000."),
        ("max_tokens", "1000001", "Max tokens must be a whole number from 1 to 1,000,000."),
        ("max_tokens", "12.5", "Max tokens must be a whole number"),
        ("max_tokens", 3.0, "Max tokens must be a whole number"),
        ("seed", "abc", "Seed must be a whole number (64-bit)."),
        ("seed", str(2**63), "Seed must be a whole number (64-bit)."),
        ("seed", "1\x00", "Seed contains a NUL byte."),
        ("stop", "a\nb\nc\nd\ne", "At most 4 stop sequences are allowed (5 given)."),
        ("stop", '["a", ', "the list is not valid JSON"),
        ("stop", '["a", 1]', "Stop sequences must be text"),
        ("stop", '["a", ""]', "A stop sequence cannot be empty."),
        ("stop", "x" * 201, "at most 200 characters"),
        ("response_format", "yaml", 'must be "text", "json_object" or a JSON schema object'),
        ("response_format", "[1, 2]", 'must be "text", "json_object" or a JSON schema object'),
        ("response_format", '{"type": "objekt"}', "is not a JSON type"),
        ("response_format", '{"type": "json_object", "x": 1}', "takes no options"),
        ("response_format", '{"type": "json_schema"}', "needs json_schema.schema"),
        (
            "response_format",
            '{"type": "json_schema", "json_schema": {"name": "a b", "schema": {}}}',
            "The schema name may use letters",
        ),
        (
            "response_format",
            '{"type": "object", "properties": {"a": {"type": "strng"}}}',
            "#/properties/a/type",
        ),
        ("response_format", '{"type": "object", "required": "a"}', "required must be a list"),
        ("response_format", '{"type": "string", "pattern": "("}', "not a valid regular expression"),
        ("response_format", '{"type": "array", "items": 3}', "#/items: a schema must be an object"),
        ("response_format", '{"anyOf": []}', "anyOf must be a non-empty list"),
        (
            "response_format",
            '{"type": "string", "maxLength": -1}',
            "maxLength must be a whole number",
        ),
    ],
)
def test_each_bad_value_is_refused_with_a_message_naming_its_field(name, raw, message):
    with pytest.raises(ParamError) as caught:
        clean_param(name, raw)
    assert caught.value.field == name
    assert message in str(caught.value), str(caught.value)


def test_unknown_parameters_are_refused():
    with pytest.raises(Exception, match="Unknown parameter"):
        clean_params({"logit_bias": "1"})


def test_a_valid_nested_schema_has_no_problem():
    schema = {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/$defs/item"}, "minItems": 1},
            "kind": {"enum": ["a", "b"]},
            "note": {"type": ["string", "null"]},
        },
        "required": ["items", "kind"],
        "additionalProperties": False,
        "$defs": {"item": {"type": "object", "properties": {"n": {"type": "number"}}}},
    }
    assert schema_problem(schema) is None


def test_stored_values_display_as_typed():
    assert display_value("stop", '["END", "###"]') == "END\n###"
    assert display_value("stop", '["\\n\\n"]') == '["\\n\\n"]'  # not one-per-line safe: JSON
    assert display_value("response_format", '{"type": "json_object"}') == "json_object"
    assert display_value("temperature", 0.5) == "0.5"
    assert display_value("seed", None) == ""


def test_penalties_are_numbers_from_minus_two_to_two():
    assert clean_params({"frequency_penalty": "-2", "presence_penalty": 1.5}) == {
        "frequency_penalty": -2.0,
        "presence_penalty": 1.5,
    }
    assert clean_param("presence_penalty", "") is None
