"""The command line around validation: validate, graph, processors, schema, run --dry-run, --set, light imports."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from diffusify.cli import cli
from diffusify.processors.registry import default_registry

ROOT = Path(__file__).resolve().parents[1]
BROKEN = ROOT / "tests" / "fixtures" / "broken"

PATTERN_RECIPE = """\
version: 1
name: cli_pattern
params:
  output: out/cli.mp4
  scale: 2.0
  frames: 5
nodes:
  src: {type: pattern, with: {kind: bars, width: 64, height: 36, frames: "${frames}"}}
  big: {type: resize, input: src, with: {scale: "${scale}"}}
  soft: {type: denoise, input: src}
  side: {type: compose.stack, inputs: {left: big, right: soft}}
  out: {type: video.write, input: side, with: {path: "${output}", crf: 20}}
"""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def pattern_recipe(write_recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    return write_recipe(PATTERN_RECIPE, "pattern.yaml")


# ---- validate -------------------------------------------------------------------------------------------------
def test_validate_valid(runner: CliRunner, pattern_recipe: str) -> None:
    result = runner.invoke(cli, ["validate", pattern_recipe])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr.strip() == "1 file: 0 errors, 0 warnings"


def test_validate_invalid(runner: CliRunner, write_recipe) -> None:
    path = write_recipe("""\
        version: 1
        nodes:
          src: {type: pattern, with: {width: 64, height: 36, frames: 3}}
          big: {type: resize, input: srcc, with: {scale: 2}}
          out: {type: video.write, input: big, with: {path: out/x.mp4, crf: 99}}
        """)
    result = runner.invoke(cli, ["validate", path])
    assert result.exit_code == 2
    assert result.stdout.splitlines() == [
        f"{path}:3:3: warning: nodes.src: the output of 'src' goes nowhere (connect it, or remove the node)",
        f"{path}:4:30: nodes.big.input: unknown node 'srcc' (did you mean 'src'?)",
        f"{path}:5:69: nodes.out.with.crf: must be <= 63 (got 99)",
    ]
    assert result.stderr.strip() == "1 file: 2 errors, 1 warning"


def test_validate_missing_file(runner: CliRunner, tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    result = runner.invoke(cli, ["validate", missing])
    assert result.exit_code == 2
    assert result.stdout.startswith(f"{missing}: cannot read the recipe:")


def test_validate_strict_turns_warnings_into_failures(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    fixture = str(BROKEN / "dead_end_warning.yaml")
    relaxed = runner.invoke(cli, ["validate", fixture])
    strict = runner.invoke(cli, ["validate", "--strict", fixture])
    assert relaxed.exit_code == 0 and strict.exit_code == 2
    assert "warning: nodes.big: the output of 'big' goes nowhere" in strict.stdout
    doc = json.loads(runner.invoke(cli, ["validate", "--strict", "--format", "json", fixture]).stdout)
    assert doc["ok"] is False and [p["severity"] for p in doc["problems"]] == ["warning"]


def test_validate_json_is_clean_json(runner: CliRunner, pattern_recipe: str) -> None:
    result = runner.invoke(cli, ["validate", "--format", "json", pattern_recipe])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"ok": True, "files": [pattern_recipe], "problems": []}


# ---- graph ----------------------------------------------------------------------------------------------------
def test_graph_text(runner: CliRunner, pattern_recipe: str) -> None:
    result = runner.invoke(cli, ["graph", pattern_recipe])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "cli_pattern" in out
    for node in ("src", "big", "soft", "side", "out"):
        assert re.search(rf"^\s*{node} \[", out, re.M), out
    assert "128x72" in out and "256x72" in out  # stack scales soft (64x36) to big's height: 128 + 128


def test_graph_mermaid(runner: CliRunner, pattern_recipe: str) -> None:
    result = runner.invoke(cli, ["graph", "--format", "mermaid", pattern_recipe])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("flowchart")
    assert any(re.search(r"big -->\|left\| side", ln) for ln in lines), result.stdout
    assert any(re.search(r"soft -->\|right\| side", ln) for ln in lines), result.stdout


def test_graph_dot(runner: CliRunner, pattern_recipe: str) -> None:
    result = runner.invoke(cli, ["graph", "--format", "dot", pattern_recipe])
    assert result.exit_code == 0, result.output
    out = result.stdout.strip()
    assert out.startswith("digraph") and out.endswith("}")
    assert '"src" -> "big"' in out and '"side" -> "out"' in out


def test_graph_json(runner: CliRunner, pattern_recipe: str) -> None:
    result = runner.invoke(cli, ["graph", "--format", "json", pattern_recipe])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    nodes = {n["id"]: n for n in doc["nodes"]}
    assert set(nodes) == {"src", "big", "soft", "side", "out"}
    assert nodes["side"]["inputs"] == {"left": "big", "right": "soft"}
    assert (nodes["big"]["stream"]["width"], nodes["big"]["stream"]["height"]) == (128, 72)
    assert nodes["big"]["stream"]["frames"] == 5


def test_graph_of_a_broken_recipe_exits_2(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["graph", str(BROKEN / "cycle_three_nodes.yaml")])
    assert result.exit_code == 2
    assert "cycle: a -> b -> c -> a" in result.output


# ---- processors and schema ------------------------------------------------------------------------------------
def test_processors_list(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["processors"])
    assert result.exit_code == 0, result.output
    listed = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    assert listed == default_registry().names()
    assert {"pattern", "resize", "video.read", "video.write", "compose.blend"} <= set(listed)


def test_processors_one(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["processors", "resize"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("resize:")
    for param in ("width", "height", "scale", "method", "keep_aspect", "even"):
        assert re.search(rf"^\s+{param} \(", out, re.M), out
    assert "lanczos" in out and "ports: input" in out


def test_processors_unknown_suggests(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["processors", "resise"])
    assert result.exit_code == 2
    assert "unknown processor type 'resise' (did you mean 'resize'?)" in result.stderr
    assert result.stdout == ""


def test_schema_is_json_schema_with_a_variant_per_type(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["schema"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    variants = schema["properties"]["nodes"]["additionalProperties"]["oneOf"]
    types = []
    for variant in variants:
        ref = variant["$ref"]
        assert ref.startswith("#/$defs/")
        types.append(schema["$defs"][ref.removeprefix("#/$defs/")]["properties"]["type"]["const"])
    assert sorted(types) == default_registry().names()
    assert len(types) == len(set(types))


# ---- run ------------------------------------------------------------------------------------------------------
def test_run_dry_run_prints_the_plan(runner: CliRunner, pattern_recipe: str, tmp_path: Path) -> None:
    out_file = tmp_path / "dry.mp4"
    result = runner.invoke(
        cli, ["run", "--dry-run", pattern_recipe, "-o", str(out_file), "--set", "frames=3"]
    )
    assert result.exit_code == 0, result.output
    plan = result.stdout
    assert "cli_pattern" in plan
    for node in ("src", "big", "soft", "side", "out"):
        assert re.search(rf"^\s+{node}\s", plan, re.M), plan
    assert "3 frames" in plan
    assert not out_file.exists(), "a dry run writes nothing"


def test_run_set_unknown_param(runner: CliRunner, pattern_recipe: str) -> None:
    result = runner.invoke(cli, ["run", pattern_recipe, "--set", "scal=3"])
    assert result.exit_code == 2
    assert (
        "<command line>: --set scal=...: the recipe has no parameter 'scal' (did you mean 'scale'?)"
        in result.stderr
    )
    assert not Path("out/cli.mp4").exists()


def test_run_set_wrong_type(runner: CliRunner, pattern_recipe: str) -> None:
    result = runner.invoke(cli, ["run", "--dry-run", pattern_recipe, "--set", "frames=many"])
    assert result.exit_code == 2
    assert "<command line>: --set frames: expected an integer (the default is 5), got 'many'" in result.stderr


def test_run_set_value_that_fails_the_param_model(runner: CliRunner, pattern_recipe: str) -> None:
    result = runner.invoke(cli, ["run", "--dry-run", pattern_recipe, "--set", "scale=40"])
    assert result.exit_code == 2
    assert re.search(r"pattern\.yaml:9:\d+: nodes\.big\.with\.scale: must be <= 16", result.stderr), (
        result.stderr
    )


def test_run_input_flag_without_an_input_param(runner: CliRunner, pattern_recipe: str) -> None:
    result = runner.invoke(cli, ["run", "--dry-run", pattern_recipe, "-i", "clip.mp4"])
    assert result.exit_code == 2
    assert (
        "<command line>: -i: the recipe has no parameter 'input' (its params: frames, output, scale); declare 'input:' under params"
        in result.stderr
    )


def test_run_set_without_equals(runner: CliRunner, pattern_recipe: str) -> None:
    result = runner.invoke(cli, ["run", "--dry-run", pattern_recipe, "--set", "scale"])
    assert result.exit_code == 2
    assert "--set takes name=value" in result.stderr


def test_run_bad_device_flag(runner: CliRunner, pattern_recipe: str) -> None:
    result = runner.invoke(cli, ["run", "--dry-run", pattern_recipe, "--device", "gpu0"])
    assert result.exit_code == 2
    assert "<command line>: --device: bad device 'gpu0'" in result.stderr


# ---- light imports --------------------------------------------------------------------------------------------
HEAVY = ("torch", "numpy", "spandrel", "diffusers", "transformers", "safetensors")

_PROBE = textwrap.dedent("""\
    import contextlib, io, json, sys
    args, heavy = json.loads(sys.argv[1]), set(json.loads(sys.argv[2]))
    from diffusify.cli import main
    sys.argv = ["diffusify", *args]
    code = 0
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            main()
        except SystemExit as e:
            code = e.code or 0
    print(json.dumps({"code": code, "heavy": sorted(m for m in sys.modules if m.split(".")[0] in heavy)}))
""")


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--help"], 0),
        (["processors"], 0),
        (["processors", "upscale.spandrel"], 0),
        (["schema"], 0),
        (["validate", "PATTERN"], 0),
        (["validate", str(BROKEN / "many_problems_sorted.yaml")], 2),
    ],
    ids=["help", "processors", "processors-spandrel", "schema", "validate", "validate-broken"],
)
def test_commands_do_not_import_heavy_backends(
    args: list[str], code: int, write_recipe, tmp_path: Path
) -> None:
    args = [write_recipe(PATTERN_RECIPE) if a == "PATTERN" else a for a in args]
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(args), json.dumps(HEAVY)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["heavy"] == [], f"diffusify {' '.join(args)} imported {result['heavy']}"
    assert result["code"] == code


def test_run_passes_recipe_warnings_on_as_events(tmp_path: Path) -> None:
    from tests._media import make_clip

    clip = make_clip(
        tmp_path / "tv.mpg", size="64x48", frames=3, codec="mpeg2video",
        extra=("-flags", "+ildct+ilme", "-field_order", "bb"),
    )  # fmt: skip
    recipe = tmp_path / "tv.yaml"
    recipe.write_text(textwrap.dedent(f"""\
        version: 1
        nodes:
          src: {{type: video.read, with: {{path: "{clip}", deinterlace: "off"}}}}
          out: {{type: video.write, input: src, with: {{path: "{tmp_path / 'out.mkv'}"}}}}
        """))
    result = CliRunner().invoke(cli, ["run", str(recipe), "--json-events"])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    warning = next(e for e in events if e["event"] == "warning")
    assert warning["problem"]["path"] == "nodes.src.with.deinterlace" and warning["problem"]["line"] == 3
    assert "is interlaced (bottom field first) and deinterlace is off" in warning["problem"]["message"]
    # people get the same line once, in the compiler style
    people = CliRunner().invoke(cli, ["run", str(recipe), "--overwrite"])
    assert people.exit_code == 0
    assert f"{recipe}:3:" in people.output and people.output.count("warning:") == 1
