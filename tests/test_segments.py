"""Segmented runs: the layout of segments, joins that lose and repeat nothing (with an interpolation node), the
journal's refusals, and resuming after kill -9 at random moments to the same frames as an uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest

import diffusify
from diffusify.core.errors import Interrupted, UsageError
from diffusify.runtime.segments import layout, split
from tests._media import framemd5

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "media" / "sample.mp4"


def _recipe(folder: Path, middle: str, frames: int = 75, name: str = "r.yaml") -> Path:
    path = folder / name
    path.write_text(f"""
version: 1
params:
  output: out.mkv
nodes:
  src: {{type: video.read, with: {{path: "{SAMPLE}", end: {frames}}}}}
{middle}
  out: {{type: video.write, input: last, with: {{path: "${{output}}", codec: ffv1}}}}
""")
    return path


SHARPEN = "  last: {type: sharpen, input: src, with: {amount: 0.5}}"
INTERPOLATE = """  cuts: {type: scene.detect, input: src}
  last: {type: interpolate.rife, input: cuts, with: {multiplier: 2}}"""


def test_layout_sums_context_and_aligns_to_time_grids(tmp_path):
    p, _ = diffusify.plan(_recipe(tmp_path, INTERPOLATE))
    lay = layout(p)
    assert (lay.frames, lay.fps, lay.pre, lay.post, lay.align) == (75, 25, 3, 2, 1)  # scene.detect 2 + rife 1
    specs = split(lay, 3)
    assert [(s.start, s.end) for s in specs] == [(0, 25), (25, 50), (50, 75)]
    assert [(s.read.start, s.read.end) for s in specs] == [(0, 27), (22, 52), (47, 75)]
    assert specs[1].keep == (Fraction(3, 25), Fraction(28, 25)) and specs[2].keep[1] is None
    # 25 -> 59.94 fps: a segment must start where the output grid has a frame: every 1001 source frames
    p, _ = diffusify.plan(_recipe(tmp_path, INTERPOLATE.replace("multiplier: 2", 'fps: "60000/1001"')))
    assert layout(p).align == 1001
    assert len(split(layout(p), 4)) == 1  # 75 frames hold no second segment


def test_what_cannot_run_in_segments_is_named(tmp_path):
    p, _ = diffusify.plan(_recipe(tmp_path, "  last: {type: dedup, input: src}"))
    with pytest.raises(UsageError, match="cannot run in segments: node 'last': dedup compares each frame"):
        layout(p)


@pytest.mark.slow
def test_a_segmented_run_with_interpolation_equals_the_whole_run(tmp_path):
    """Three segments on two workers, RIFE x2 after scene detection: every frame and audio packet identical."""
    recipe = _recipe(tmp_path, INTERPOLATE, frames=30)
    whole = diffusify.run(recipe, output=str(tmp_path / "whole.mkv"))
    events: list[dict] = []
    seg = diffusify.run(recipe, output=str(tmp_path / "seg.mkv"), segments=3, workers=2,
                        hooks=[lambda **e: events.append(e)])
    assert seg["frames"] == whole["frames"] == 60 and seg["segments"] == 3
    assert framemd5(tmp_path / "seg.mkv") == framemd5(tmp_path / "whole.mkv")
    assert sorted(e["segment"] for e in events if e["event"] == "segment_finished") == [0, 1, 2]
    assert not (tmp_path / "seg.mkv.parts").exists()


def test_a_changed_recipe_is_refused_and_restart_starts_over(tmp_path):
    recipe = _recipe(tmp_path, SHARPEN, frames=30)
    out = str(tmp_path / "out.mkv")
    handle = diffusify.start(recipe, output=out, segments=3)
    for e in handle.events():
        if e["event"] == "segment_finished":
            handle.cancel()
            break
    with pytest.raises(Interrupted, match=r"segments are finished in .*out.mkv.parts; run again with --resume"):
        handle.result()
    journal = json.loads((tmp_path / "out.mkv.parts" / "journal.json").read_text())
    assert journal["done"] and len(journal["segments"]) == 3
    changed = _recipe(tmp_path, SHARPEN.replace("0.5", "0.6"), frames=30, name="changed.yaml")
    with pytest.raises(UsageError, match=r"cannot resume: the recipe or its params changed .*--restart"):
        diffusify.run(changed, output=out, segments=3, resume=True)
    with pytest.raises(UsageError, match="a journal of an earlier run of this output is there; --resume"):
        diffusify.run(recipe, output=out, segments=3)
    with pytest.raises(UsageError, match="cannot resume: it was split into other segments"):
        diffusify.run(recipe, output=out, segments=2, resume=True)
    s = diffusify.run(changed, output=out, segments=3, restart=True)
    assert s["frames"] == 30 and s["segments_resumed"] == 0 and not (tmp_path / "out.mkv.parts").exists()


@pytest.mark.slow
def test_resume_after_kill_9_at_random_moments_gives_the_uninterrupted_frames(tmp_path):
    """Ten runs in 6 segments, each killed (the process group, with SIGKILL) at a seeded random moment: after
    a random number of the run's events and a random part of a second more, so the moments spread over the whole
    run, start-up and join included, whatever the machine's load. Each resume gives the uninterrupted frames."""
    recipe = _recipe(tmp_path, SHARPEN)
    whole = tmp_path / "whole.mkv"
    diffusify.run(recipe, output=str(whole))
    want = framemd5(whole)
    cmd = [sys.executable, "-m", "diffusify", "run", str(recipe), "--segments", "6"]
    rng = random.Random(1234)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    resumed_with_work = 0
    for attempt in range(10):
        out = tmp_path / f"out{attempt}.mkv"
        proc = subprocess.Popen([*cmd, "-o", str(out), "--json-events"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, start_new_session=True, text=True)
        assert proc.stdout is not None
        for _ in range(rng.randint(0, 14)):  # start, segment_started/finished and progress lines
            if not proc.stdout.readline():
                break
        time.sleep(rng.uniform(0, 0.4))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the run and its ffmpeg children, at once
        proc.wait()
        proc.stdout.close()
        journal = out.with_name(out.name + ".parts") / "journal.json"
        if journal.exists():
            resumed_with_work += bool(json.loads(journal.read_text())["done"])
        if out.exists() and not journal.exists():
            continue  # it had finished before the kill
        # --resume alone goes on with the journal's own segments
        resume = [c for c in cmd if c not in ("--segments", "6")]
        done = subprocess.run([*resume, "-q", "-o", str(out), "--resume"], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert framemd5(out) == want, f"attempt {attempt}"
        assert not out.with_name(out.name + ".parts").exists()
    assert resumed_with_work >= 3  # kills after a finished segment: the resume kept its work
