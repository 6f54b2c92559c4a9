"""Property tests: whatever text a user feeds the validator, the answer is a list of problems, never a crash.

Three sources of input: random text (biased towards YAML punctuation), random YAML documents built from
recursive strategies (biased towards the recipe's own key names), and mutations of a valid recipe (keys deleted,
replaced or added, types swapped, node references and numbers randomised, characters edited).
"""

from __future__ import annotations

import copy
import io
import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from diffusify.core.problems import sort_problems
from diffusify.graph.validate import Validated, validate_text
from diffusify.processors.registry import default_registry

pytestmark = pytest.mark.slow  # many generated cases; CI runs slow tests too

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TYPES = default_registry().names()
PARAM_NAMES = sorted({name for cls in default_registry() for name in cls.Params.model_fields})
WORDS = [
    "version",
    "name",
    "description",
    "params",
    "nodes",
    "devices",
    "queue",
    "frames",
    "bytes",
    "type",
    "input",
    "inputs",
    "with",
    "device",
    "replicas",
    "a",
    "b",
    "left",
    "right",
    "src",
    "out",
    "mid",
    "cpu",
    "cuda:0",
    "auto",
    "${input}",
    "${nope}",
    "$${x}",
    "none",
    *TYPES,
    *PARAM_NAMES,
]

VALID = {
    "version": 1,
    "name": "fuzz_base",
    "params": {"output": "out/fuzz.mp4", "scale": 2.0, "frames": 4},
    "devices": ["cpu"],
    "queue": {"frames": 4, "bytes": "64MB"},
    "nodes": {
        "src": {
            "type": "pattern",
            "with": {"width": 32, "height": 18, "frames": "${frames}", "kind": "bars"},
        },
        "big": {"type": "resize", "input": "src", "with": {"scale": "${scale}"}},
        "small": {"type": "resize", "input": "src", "with": {"width": 64, "height": 36}},
        "mix": {"type": "compose.blend", "inputs": {"a": "big", "b": "small"}, "with": {"weight": 0.5}},
        "look": {"type": "color", "input": "mix", "replicas": 2, "with": {"gamma": 1.1}},
        "out": {
            "type": "video.write",
            "input": "look",
            "with": {"path": "${output}", "codec": "libx264", "crf": 20, "copy_streams_from": "none"},
        },
        "png": {"type": "image.write", "input": "mix", "with": {"path": "out/frames", "bit_depth": 16}},
    },
}


@pytest.fixture(scope="module", autouse=True)
def _empty_cwd() -> Iterator[None]:
    """Fuzzed paths resolve in an empty folder: nothing there to probe or load."""
    old = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            yield
        finally:
            os.chdir(old)


def dump(data: Any) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = None
    buf = io.StringIO()
    yaml.dump(data, buf)
    return buf.getvalue()


def check(text: str) -> Validated:
    """Validate and check the shape of the answer; any exception fails the test with the input shown."""
    v = validate_text(text, "fuzz.yaml")
    assert isinstance(v, Validated)
    n_lines = text.count("\n") + text.count("\r") + 2
    for p in v.problems:
        assert isinstance(p.line, int) and isinstance(p.col, int)
        assert 0 <= p.line <= n_lines, p
        assert p.col >= 0, p
        assert isinstance(p.message, str) and p.message.strip(), p
        assert p.severity in ("error", "warning")
        assert p.format()
        json.dumps(p.to_json())
    assert v.problems == sort_problems(v.problems)
    assert v.ok == (not v.errors)
    return v


# ---- (a) random text ------------------------------------------------------------------------------------------
YAML_CHARS = st.sampled_from(
    list("abcxyz019_.-:[]{},#&*!|>'\"?%@`$ \t\n") + ["\n  ", ": ", "- ", "\r\n", "\ufeff"]
)


@FUZZ
@given(
    st.one_of(
        st.text(max_size=300),
        st.lists(st.one_of(YAML_CHARS, st.sampled_from(WORDS)), max_size=80).map("".join),
    )
)
def test_random_text(text: str) -> None:
    check(text)


# ---- (b) random YAML documents --------------------------------------------------------------------------------
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(WORDS),
)
KEYS = st.one_of(st.sampled_from(WORDS), st.text(max_size=8), st.integers(-3, 3), st.booleans(), st.none())
DOCS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=5)),
    max_leaves=25,
)
RECIPE_LIKE = st.fixed_dictionaries(
    {
        "version": st.one_of(st.just(1), SCALARS),
        "nodes": st.dictionaries(
            st.sampled_from(["src", "a", "b", "out", "mid"]),
            st.fixed_dictionaries(
                {"type": st.sampled_from(TYPES)},
                optional={
                    "input": st.sampled_from(["src", "a", "b", "mid", "x"]),
                    "inputs": DOCS,
                    "with": DOCS,
                    "device": DOCS,
                    "replicas": DOCS,
                    "queue": DOCS,
                },
            ),
            max_size=5,
        ),
    },
    optional={"params": DOCS, "devices": DOCS, "queue": DOCS, "name": DOCS},
)


@FUZZ
@given(st.one_of(DOCS, RECIPE_LIKE))
def test_random_documents(data: Any) -> None:
    check(dump(data))


# ---- (c) mutations of a valid recipe --------------------------------------------------------------------------
def test_base_recipe_is_valid() -> None:
    v = check(dump(VALID))
    assert v.ok and not v.problems, [p.format() for p in v.problems]


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, prefix + (i,))
    return out


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


def _swap_type(value: Any) -> Any:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return [value] if value % 2 else str(value)
    if isinstance(value, str):
        return {value: value} if len(value) % 2 else 7
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    if isinstance(value, dict):
        return list(value.values())
    return "null"


MUTATIONS = ["delete", "replace", "insert", "swap", "ref", "number", "duplicate"]


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    data = copy.deepcopy(VALID)
    node_ids = list(VALID["nodes"]) + ["srcc", "ghost", "", "${output}"]
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(data)
        path = draw(st.sampled_from(paths))
        kind = draw(st.sampled_from(MUTATIONS))
        if not path:
            if kind == "swap":
                data = _swap_type(data)
            continue
        parent, key = _get(data, path[:-1]), path[-1]
        if kind == "delete":
            del parent[key]
        elif kind == "replace":
            parent[key] = draw(DOCS)
        elif kind == "insert":
            target = parent[key] if isinstance(parent[key], (dict, list)) else parent
            if isinstance(target, dict):
                target[draw(KEYS)] = draw(DOCS)
            else:
                target.insert(draw(st.integers(0, len(target))), draw(DOCS))
        elif kind == "swap":
            parent[key] = _swap_type(parent[key])
        elif kind == "ref":
            parent[key] = draw(st.sampled_from(node_ids))
        elif kind == "number":
            parent[key] = draw(
                st.one_of(
                    st.integers(-(2**40), 2**40),
                    st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0, -1, 1, 2, 31, 32, 63, 64, 65, 16385, 2**63]),
                )
            )
        elif kind == "duplicate" and isinstance(parent, dict):
            parent[f"{key}_copy"] = copy.deepcopy(parent[key])
    return data


@FUZZ
@given(mutated())
def test_mutated_recipe(data: Any) -> None:
    check(dump(data))


@st.composite
def edited_text(draw: st.DrawFn) -> str:
    text = dump(VALID)
    for _ in range(draw(st.integers(1, 5))):
        i = draw(st.integers(0, len(text)))
        j = min(len(text), i + draw(st.integers(0, 6)))
        text = text[:i] + draw(st.one_of(st.just(""), YAML_CHARS, st.sampled_from(WORDS))) + text[j:]
    return text


@FUZZ
@given(edited_text())
def test_edited_recipe_text(text: str) -> None:
    check(text)


@FUZZ
@given(
    mutated(),
    st.dictionaries(
        st.sampled_from(["output", "scale", "frames", "input", "scal", "2k"]),
        st.text(max_size=10),
        max_size=3,
    ),
    st.lists(st.sampled_from(["cpu", "cuda", "cuda:1", "gpu", "", "mps", "cuda:x"]), max_size=3),
)
def test_mutated_recipe_with_overrides(data: Any, overrides: dict[str, str], devices: list[str]) -> None:
    v = validate_text(dump(data), "fuzz.yaml", overrides=overrides, devices=devices or None)
    for p in v.problems:
        assert p.line >= 0 and p.message.strip(), p


# ---- hostile documents a random search rarely builds -----------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "a: &x {b: *x}\n",
        "&x [*x]\n",
        "version: 1\nnodes: &n {src: *n}\n",
        "[" * 600 + "]" * 600,
        "a:\n" + "".join("  " * i + "- \n" for i in range(1, 200)),
        "l0: &l0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
        + "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 9)),
        'version: 1\nnodes:\n  src: {type: pattern}\n  out: {type: video.write, input: src, with: {path: "o\\0.mp4"}}\n',
        "version: 1\nnodes:\n  <<: {src: {type: pattern}}\n",
        "version: 1\nnodes:\n  ? [a, b]\n  : {type: pattern}\n",
        "version: 1\nnodes:\n  1: {type: pattern}\n  2: {type: video.write, input: 1, with: {path: o.mp4}}\n",
        "\ufeffversion: 1\r\nnodes: {}\r\n",
    ],
    ids=[
        "alias-loop-map",
        "alias-loop-list",
        "alias-loop-nodes",
        "deep-flow",
        "deep-block",
        "alias-bomb",
        "nul-in-path",
        "merge-key",
        "complex-key",
        "int-ids",
        "bom-crlf",
    ],
)
def test_hostile_documents(text: str) -> None:
    v = check(text)
    assert not v.ok
