"""The checked-in JSON Schema is current, valid draft 2020-12, and accepts every bundled recipe."""

from __future__ import annotations

import json

import jsonschema
import pytest
from ruamel.yaml import YAML

from diffusify.processors.registry import default_registry
from diffusify.recipe.schema import build_schema, schema_json
from tests.conftest import ROOT

RECIPES = sorted((ROOT / "pipelines").glob("*.yaml"))


def test_checked_in_schema_is_current():
    checked_in = (ROOT / "schemas" / "pipeline.schema.json").read_text()
    assert checked_in == schema_json(), "schemas/pipeline.schema.json is stale: run " \
        "`diffusify schema > schemas/pipeline.schema.json`"


def test_schema_is_valid_2020_12_with_a_variant_per_processor():
    schema = build_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    variants = schema["properties"]["nodes"]["additionalProperties"]["oneOf"]
    assert len(variants) == len(default_registry().names())
    for cls in default_registry():
        node = schema["$defs"]["node_" + cls.type_name.replace(".", "_")]
        assert node["properties"]["type"]["const"] == cls.type_name
        for name, prop in node["properties"]["with"]["properties"].items():
            assert prop.get("description"), f"{cls.type_name}.{name} has no description"


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.name for r in RECIPES])
def test_recipes_match_schema_and_point_editors_at_it(recipe):
    text = recipe.read_text()
    assert text.startswith("# yaml-language-server: $schema=../schemas/pipeline.schema.json")
    validator = jsonschema.Draft202012Validator(build_schema())
    errors = [e.message for e in validator.iter_errors(YAML(typ="safe").load(text))]
    assert errors == []


def test_schema_rejects_unknown_parameter():
    validator = jsonschema.Draft202012Validator(build_schema())
    doc = {"version": 1, "nodes": {"a": {"type": "resize", "input": "b", "with": {"scael": 2}}}}
    assert list(validator.iter_errors(doc))
    doc["nodes"]["a"]["with"] = {"scale": "${s}"}
    assert not list(validator.iter_errors(doc))
    assert json.loads(schema_json())["$schema"].endswith("2020-12/schema")
