"""The broken-recipe corpus: every fixture states, in its comment header, the problems validation must report.

Header lines (before the YAML):

    # expect: LINE:COL: FRAGMENT          an error at LINE:COL whose formatted text contains FRAGMENT
    # expect-warning: LINE:COL: FRAGMENT  the same for a warning
    # expect-count: N                     exactly N errors
    # needs-video: NAME                   the test makes a tiny video NAME next to the recipe first

Fixtures are validated from a temporary folder, so relative paths in them never touch the repository.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from diffusify.cli import cli
from diffusify.core.problems import sort_problems
from diffusify.graph.validate import Validated, validate_file

ROOT = Path(__file__).resolve().parents[1]
BROKEN = sorted((ROOT / "tests" / "fixtures" / "broken").glob("*.yaml"))
VALID = sorted((ROOT / "tests" / "fixtures" / "valid").glob("*.yaml"))
PIPELINES = sorted((ROOT / "pipelines").glob("*.yaml"))

_EXPECT = re.compile(r"^#\s*(expect|expect-warning):\s*(\d+):(\d+):\s?(.*)$")
_LOCATION = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<rest>.+)$")


@dataclass
class Expectations:
    errors: list[tuple[int, int, str]] = field(default_factory=list)
    warnings: list[tuple[int, int, str]] = field(default_factory=list)
    count: int | None = None
    videos: list[str] = field(default_factory=list)


def read_expectations(path: Path) -> Expectations:
    exp = Expectations()
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        if m := _EXPECT.match(line):
            entry = (int(m.group(2)), int(m.group(3)), m.group(4).strip())
            (exp.errors if m.group(1) == "expect" else exp.warnings).append(entry)
        elif m := re.match(r"^#\s*expect-count:\s*(\d+)\s*$", line):
            exp.count = int(m.group(1))
        elif m := re.match(r"^#\s*needs-video:\s*(\S+)\s*$", line):
            exp.videos.append(m.group(1))
    return exp


def make_video(path: Path) -> None:
    """A tiny real clip (5 frames of 64x36 testsrc2) made with the ffmpeg that imageio-ffmpeg ships."""
    import imageio_ffmpeg

    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=64x36:rate=25:duration=0.2",
            "-pix_fmt",
            "yuv420p",
            str(path),
        ],
        check=True,
        timeout=60,
    )


def stage(fixture: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Expectations]:
    """Copy the fixture into tmp_path, make the media it needs, and work from there."""
    exp = read_expectations(fixture)
    target = tmp_path / fixture.name
    shutil.copyfile(fixture, target)
    for name in exp.videos:
        make_video(tmp_path / name)
    monkeypatch.chdir(tmp_path)
    return target, exp


def describe(v: Validated) -> str:
    return "\n".join(p.format() for p in v.problems) or "(no problems)"


def test_corpus_is_large_enough() -> None:
    assert len(BROKEN) >= 35
    for fixture in BROKEN:
        exp = read_expectations(fixture)
        assert exp.errors or exp.warnings, f"{fixture.name} has no '# expect:' header"


@pytest.mark.parametrize("fixture", BROKEN, ids=[f.stem for f in BROKEN])
def test_broken_fixture(fixture: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target, exp = stage(fixture, tmp_path, monkeypatch)
    v = validate_file(target.name)
    report = describe(v)

    for line, col, fragment in exp.errors:
        assert any(
            p.severity == "error" and (p.line, p.col) == (line, col) and fragment in p.format()
            for p in v.problems
        ), f"missing error {line}:{col}: {fragment}\ngot:\n{report}"
    for line, col, fragment in exp.warnings:
        assert any(
            p.severity == "warning" and (p.line, p.col) == (line, col) and fragment in p.format()
            for p in v.problems
        ), f"missing warning {line}:{col}: {fragment}\ngot:\n{report}"
    if exp.count is not None:
        assert len(v.errors) == exp.count, report
    if exp.errors:
        assert v.ok is False, report
    else:
        # warning-only fixtures are broken under --strict (tested through the CLI)
        assert v.ok and v.warnings, report

    assert v.problems == sort_problems(v.problems)
    for p in v.problems:
        assert p.file == target.name
        assert p.line >= 1 and p.col >= 1, p
        assert p.message.strip(), p
        assert "Traceback" not in p.message and "cannot plan this node" not in p.message, p


def test_several_problems_come_sorted_in_one_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target, exp = stage(BROKEN[0].parent / "many_problems_sorted.yaml", tmp_path, monkeypatch)
    v = validate_file(target.name)
    assert len(v.errors) == exp.count == len(exp.errors) >= 5
    positions = [(p.line, p.col) for p in v.problems]
    assert positions == sorted(positions)
    assert [(line, col) for line, col, _ in exp.errors] == [(p.line, p.col) for p in v.errors]


def _broken(*names: str) -> list[str]:
    return [str(BROKEN[0].parent / f"{n}.yaml") for n in names]


def test_cli_validate_several_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    files = _broken("unknown_input_ref", "cycle_three_nodes", "params_out_of_range_many")
    result = CliRunner().invoke(cli, ["validate", *files])
    assert result.exit_code == 2, result.output
    lines = result.stdout.strip().splitlines()

    expected = []
    for f in files:
        exp = read_expectations(Path(f))
        expected += [(f, line, col) for line, col, _ in exp.errors + exp.warnings]
    parsed = []
    for text in lines:
        m = _LOCATION.match(text)
        assert m, f"not file:line:col: path: message: {text!r}"
        assert re.match(r"^(warning: )?[\w.\[\]-]+: \S", m["rest"]), text
        parsed.append((m["file"], int(m["line"]), int(m["col"])))
    # files in the order given, each file's problems by line and column
    assert parsed == sorted(parsed, key=lambda t: (files.index(t[0]), t[1], t[2]))
    assert [f for f in dict.fromkeys(t[0] for t in parsed)] == files
    assert sorted(parsed) == sorted(expected)
    n_err = sum(len(read_expectations(Path(f)).errors) for f in files)
    n_warn = len(parsed) - n_err
    assert result.stderr.strip().splitlines()[-1] == (
        f"3 files: {n_err} errors, {n_warn} warning{'s' if n_warn != 1 else ''}"
    )


def test_cli_validate_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    files = _broken("unknown_param", "dead_end_warning", "yaml_tab")
    result = CliRunner().invoke(cli, ["validate", "--format", "json", *files])
    assert result.exit_code == 2, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["files"] == files
    seen = {(p["file"], p["line"], p["col"], p["severity"]) for p in doc["problems"]}
    for f in files:
        exp = read_expectations(Path(f))
        seen_here = {s for s in seen if s[0] == f}
        assert seen_here == {(f, line, col, "error") for line, col, _ in exp.errors} | {
            (f, line, col, "warning") for line, col, _ in exp.warnings
        }
    for p in doc["problems"]:
        assert set(p) >= {"file", "line", "col", "path", "message", "severity"}
        assert isinstance(p["line"], int) and isinstance(p["col"], int) and p["message"]
    unknown = next(p for p in doc["problems"] if p["file"] == files[0])
    assert unknown["path"] == "nodes.big.with.scael" and "did you mean 'scale'" in unknown["message"]


def test_cli_warning_only_fixture_fails_only_with_strict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    [f] = _broken("dead_end_warning")
    assert CliRunner().invoke(cli, ["validate", f]).exit_code == 0
    assert CliRunner().invoke(cli, ["validate", "--strict", f]).exit_code == 2


@pytest.mark.parametrize("recipe", VALID, ids=[f.stem for f in VALID])
def test_valid_fixture(recipe: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    v = validate_file(str(recipe))
    assert v.ok and not v.problems, describe(v)
    assert v.recipe is not None and v.order
    result = CliRunner().invoke(cli, ["validate", str(recipe)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""


def test_valid_fixtures_exist() -> None:
    assert len(VALID) >= 3


@pytest.mark.skipif(not PIPELINES, reason="the repository has no pipelines/*.yaml yet")
@pytest.mark.parametrize("recipe", PIPELINES or [None], ids=[f.stem for f in PIPELINES] or ["none"])
def test_repository_pipelines_validate(recipe: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # recipes name repository files (examples, weights) relative to the root
    rel = str(recipe.relative_to(ROOT))
    v = validate_file(rel)
    found = [m.group(1) for p in v.errors if (m := re.match(r"model not found: (\S+) ", p.message))]
    missing_models = set(found)
    if v.errors and len(found) == len(v.errors) and not any(Path(m).exists() for m in missing_models):
        pytest.skip(
            f"the model this recipe names is not in the repository yet: {', '.join(sorted(missing_models))}"
        )
    assert v.ok, describe(v)
    result = CliRunner().invoke(cli, ["validate", rel])
    assert result.exit_code == 0, result.output
