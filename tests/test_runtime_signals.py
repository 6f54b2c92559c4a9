"""Stopping safely: SIGINT/SIGTERM on a real `diffusify run`, failures mid-run, no stray ffmpeg."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio_ffmpeg
import pytest

from diffusify import PipelineError, run

pytestmark = pytest.mark.slow  # runs the command in subprocesses; CI runs slow tests too


def count_frames(path: Path) -> int:
    """Decode the whole file with ffmpeg and count the frames (fails if it does not decode)."""
    out = subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-v",
            "error",
            "-i",
            str(path),
            "-map",
            "0:v:0",
            "-f",
            "framecrc",
            "-",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sum(1 for line in out.splitlines() if line and not line.startswith("#"))


def ffmpeg_children_of(pid: int) -> list[int]:
    """ffmpeg processes whose parent is ``pid`` (they run in their own session, so check by parent)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if fields.get("PPid", "").strip() == str(pid) and "ffmpeg" in fields.get("Name", ""):
            found.append(int(entry.name))
    return found


def _endless_recipe(tmp_path: Path, suffix: str = ".mkv") -> tuple[Path, Path]:
    out = tmp_path / f"out{suffix}"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"""
version: 1
nodes:
  src: {{type: pattern, with: {{kind: moving, width: 320, height: 240, frames: 1000000}}}}
  big: {{type: resize, input: src, with: {{scale: 2, method: bicubic}}}}
  out: {{type: video.write, input: big, with: {{path: "{out}", codec: libx264, preset: ultrafast}}}}
""")
    return recipe, out


def _pattern_recipe(tmp_path: Path, frames: int, between: str = "", write: str = "") -> tuple[Path, Path]:
    """A recipe writing ``frames`` frames of a small test pattern to ``o.mkv``, through the ``mid`` node that
    ``between`` defines (YAML of its type and parameters, its input being ``src``), if any."""
    out, recipe = tmp_path / "o.mkv", tmp_path / "r.yaml"
    mid = f"\n  mid: {{{between}, input: src}}" if between else ""
    recipe.write_text(f"""
version: 1
nodes:
  src: {{type: pattern, with: {{width: 64, height: 48, frames: {frames}}}}}{mid}
  out: {{type: video.write, input: {'mid' if between else 'src'}, with: {{path: "{out}"{write}}}}}
""")
    return recipe, out


def _start(recipe: Path, tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "diffusify", "run", str(recipe), "--json-events"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )


def _wait_for_frames(proc: subprocess.Popen[str], n: int) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        event = json.loads(line)
        if event["event"] == "progress" and event["frames"] >= n:
            return
        assert time.monotonic() < deadline, "no progress"
    raise AssertionError(f"run ended early: {proc.stderr.read() if proc.stderr else ''}")


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_sigint_drains_finalises_and_exits_130(tmp_path, suffix):
    recipe, out = _endless_recipe(tmp_path, suffix)
    proc = _start(recipe, tmp_path)
    _wait_for_frames(proc, 10)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    events = [json.loads(line) for line in stdout.splitlines()]
    final = [e for e in events if e["event"] == "interrupted" and "summary" in e][-1]
    written = final["summary"]["outputs"][0]["frames"]
    assert written >= 10
    assert f"wrote {written} frames to {out}" in stderr
    assert count_frames(out) == written
    assert ffmpeg_children_of(proc.pid) == []


def test_second_sigint_stops_within_two_seconds_and_output_plays(tmp_path):
    recipe, out = _endless_recipe(tmp_path)
    proc = _start(recipe, tmp_path)
    _wait_for_frames(proc, 5)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, _ = proc.communicate(timeout=30)  # the clip is endless: only the stop ends it
    assert proc.returncode == 130
    events = [json.loads(line) for line in stdout.splitlines()]
    assert [e["event"] for e in events][-1] == "interrupted"
    assert count_frames(out) > 0


def test_sigterm_is_handled_like_sigint(tmp_path):
    recipe, out = _endless_recipe(tmp_path)
    proc = _start(recipe, tmp_path)
    _wait_for_frames(proc, 5)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert count_frames(out) >= 5


def test_failure_mid_run_keeps_output_and_leaves_no_ffmpeg(tmp_path, registry):
    recipe, out = _pattern_recipe(tmp_path, 500, "type: test.slow, with: {ms: 1, fail_at: 40}")
    with pytest.raises(PipelineError) as info:
        run(str(recipe), registry=registry)
    assert (info.value.node, info.value.frame) == ("mid", 40)
    src = next(n for n in info.value.summary["nodes"] if n["id"] == "src")
    assert src["frames"] < 100  # stopped at the error, not at the end of the 500 frames
    written = info.value.summary["outputs"][0]["frames"]
    assert 0 < written <= 40
    assert count_frames(out) == written
    assert ffmpeg_children_of(os.getpid()) == []


def test_cli_failure_exits_1_with_one_line(tmp_path):
    recipe, _out = _pattern_recipe(tmp_path, 5, write=', extra_args: ["-bogus_option", "1"]')
    proc = subprocess.run(
        [sys.executable, "-m", "diffusify", "run", "-q", str(recipe)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("diffusify: node 'out' (video.write)")


def test_interrupt_before_the_run_starts_exits_130_with_an_event(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from diffusify import api, cli

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt  # Ctrl-C while validating or probing, in a host that keeps Python's handler

    monkeypatch.setattr(api, "plan", interrupted)
    recipe, out = _endless_recipe(tmp_path)
    result = CliRunner().invoke(cli.cli, ["run", str(recipe), "--json-events"])
    assert result.exit_code == 130
    event = json.loads(result.stdout.strip().splitlines()[-1])
    assert event == {"event": "interrupted", "message": "interrupted before the run started; nothing was written"}
    assert "diffusify: interrupted before the run started" in result.stderr
    assert not out.exists()


def test_a_finished_run_leaves_with_its_output_flushed_and_atexit_handlers_run(tmp_path):
    """The command ends a finished run without the interpreter's teardown (half a second with torch loaded), but
    after everything a normal exit does that matters: the last event and summary lines are out, the output is
    final, atexit handlers (temporary folders, a local Ray cluster) have run."""
    recipe, out = _pattern_recipe(tmp_path, 7)
    marker, torn = tmp_path / "atexit-ran", tmp_path / "torn-down"
    code = ("import atexit, pathlib, sys\n"
            f"atexit.register(lambda: pathlib.Path({str(marker)!r}).write_text('yes'))\n"
            "class Teardown:\n"
            f"    def __del__(self): pathlib.Path({str(torn)!r}).write_text('yes')\n"
            "kept = Teardown()  # freed by the interpreter's teardown, which the command skips\n"
            "sys.argv = ['diffusify', 'run', sys.argv[1], '--json-events']\n"
            "from diffusify.__main__ import main\n"
            "main()\n")
    proc = subprocess.run([sys.executable, "-c", code, str(recipe)], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]  # every line is an event: none was cut
    assert events[-1]["event"] == "finished" and events[-1]["summary"]["frames"] == 7
    assert marker.read_text() == "yes"
    assert not torn.exists()
    assert count_frames(out) == 7
