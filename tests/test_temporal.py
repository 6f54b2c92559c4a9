"""Temporal processors on real media: scene cuts at the exact frame, dedup keeping times and duration, and frame
rate conversion on an exact grid."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch

import diffusify
from diffusify.io.probe import probe
from tests._media import make_clip, make_twos_clip
from tests.conftest import ROOT, CollectSink

SAMPLE = ROOT / "examples" / "media" / "sample.mp4"


def _collect(registry, text: str) -> list:
    diffusify.run(text, registry=registry)
    return CollectSink.results.pop("collected")


def test_scene_detect_finds_the_samples_hard_cut_at_its_frame_and_nothing_else(registry, tmp_path):
    cuts = tmp_path / "cuts.csv"
    frames = _collect(registry, f"""
version: 1
nodes:
  src: {{type: video.read, with: {{path: "{SAMPLE}"}}}}
  scenes: {{type: scene.detect, input: src, with: {{cuts: "{cuts}"}}}}
  out: {{type: test.collect, input: scenes}}
""")
    assert len(frames) == 75
    assert [i for i, f in enumerate(frames) if f.meta["scene_change"]] == [45]  # the cut at 1.8 s
    others = max(f.meta["scene_score"] for i, f in enumerate(frames) if i != 45)
    assert frames[45].meta["scene_score"] >= 10 > 1 > others  # the default threshold, with a wide margin
    lines = cuts.read_text().splitlines()
    assert lines[0] == "frame,time,score" and len(lines) == 2
    assert lines[1].startswith("45,1.800000,")
    src = probe(SAMPLE)
    assert all(f.pts == src.frame_time(i) for i, f in enumerate(frames))  # frames pass through with their times


def test_dedup_drops_repeats_keeps_times_and_the_duration(registry, tmp_path):
    clip = make_twos_clip(tmp_path / "twos.mkv")
    info = probe(clip)
    assert info.video is not None and info.video.frames == 24
    frames = _collect(registry, f"""
version: 1
nodes:
  src: {{type: video.read, with: {{path: "{clip}"}}}}
  once: {{type: dedup, input: src}}
  out: {{type: test.collect, input: once}}
""")
    kept = [f.meta["source_index"] for f in frames]
    assert kept == list(range(0, 24, 2)) + [23]  # every picture once, and the last frame so the length holds
    assert [f.pts for f in frames] == [info.frame_time(i) for i in kept]
    assert [f.index for f in frames] == list(range(len(frames)))
    out = tmp_path / "o.mkv"
    diffusify.run(f"""
version: 1
nodes:
  src: {{type: video.read, with: {{path: "{clip}"}}}}
  once: {{type: dedup, input: src}}
  out: {{type: video.write, input: once, with: {{path: "{out}"}}}}
""")
    got = probe(out)
    assert got.video is not None and got.video.frames == 13 and got.video.vfr
    assert abs(float(got.video_duration) - float(info.video_duration)) <= 0.002


def test_dedup_keeps_a_frame_every_max_drop_in_a_still_stretch(registry, tmp_path):
    still = make_clip(tmp_path / "still.mkv", size="64x48", rate="25", frames=20, source="color",
                      codec="ffv1", pix_fmt="yuv444p")
    frames = _collect(registry, f"""
version: 1
nodes:
  src: {{type: video.read, with: {{path: "{still}"}}}}
  once: {{type: dedup, input: src, with: {{max_drop: 4}}}}
  out: {{type: test.collect, input: once}}
""")
    assert [f.meta["source_index"] for f in frames] == [0, 5, 10, 15, 19]
    assert [f.meta["dropped_before"] for f in frames] == [0, 4, 4, 4, 3]


@pytest.mark.parametrize(("rate", "target"), [("25", "50"), ("24000/1001", "60000/1001"), ("30", "24")])
def test_fps_puts_frames_on_an_exact_grid_and_keeps_the_duration(registry, rate, target):
    n = 30
    frames = _collect(registry, f"""
version: 1
nodes:
  src: {{type: pattern, with: {{kind: noise, width: 16, height: 8, frames: {n}, fps: "{rate}"}}}}
  conv: {{type: fps, input: src, with: {{fps: "{target}"}}}}
  out: {{type: test.collect, input: conv}}
""")
    r_in, r_out = Fraction(rate), Fraction(target)
    expected = math.ceil(n * r_out / r_in)
    assert len(frames) == expected
    assert [f.pts for f in frames] == [k / r_out for k in range(expected)]
    assert frames[-1].pts < n / r_in <= frames[-1].pts + 1 / r_out  # the same length, to the frame
    for f in frames:  # each output is the source frame nearest its time (a tie goes to the earlier)
        i = min(n - 1, math.floor(f.pts * r_in + Fraction(1, 2) - Fraction(1, 10**9)))
        g = torch.Generator().manual_seed(i)
        assert torch.equal(f.data, torch.rand(3, 8, 16, generator=g)), (f.pts, i)


def test_fps_blend_mixes_the_two_frames_around_each_time(registry):
    frames = _collect(registry, """
version: 1
nodes:
  src: {type: pattern, with: {kind: noise, width: 16, height: 8, frames: 4, fps: 10}}
  conv: {type: fps, input: src, with: {fps: 40, mode: blend}}
  out: {type: test.collect, input: conv}
""")
    src = [torch.rand(3, 8, 16, generator=torch.Generator().manual_seed(i)) for i in range(4)]
    assert len(frames) == 16
    for k, f in enumerate(frames):
        i, w = divmod(k, 4)
        want = src[i] if i == 3 else src[i].lerp(src[i + 1], w / 4)  # after the last frame: the last frame
        assert torch.allclose(f.data, want, atol=1e-6), k


def test_fps_after_dedup_gives_constant_rate_video_of_the_same_length(tmp_path):
    clip = make_twos_clip(tmp_path / "twos.mkv", frames=48)
    out = tmp_path / "o.mkv"
    diffusify.run(f"""
version: 1
nodes:
  src: {{type: video.read, with: {{path: "{clip}"}}}}
  once: {{type: dedup, input: src}}
  smooth: {{type: fps, input: once, with: {{fps: 24, mode: blend}}}}
  out: {{type: video.write, input: smooth, with: {{path: "{out}"}}}}
""")
    got, src = probe(out), probe(clip)
    assert got.video is not None and not got.video.vfr and got.video.frames == 48
    assert abs(float(got.video_duration) - float(src.video_duration)) <= 0.002


def test_fps_blend_never_mixes_across_a_marked_cut(registry):
    frames = _collect(registry, f"""
version: 1
nodes:
  src: {{type: video.read, with: {{path: "{SAMPLE}"}}}}
  scenes: {{type: scene.detect, input: src}}
  conv: {{type: fps, input: scenes, with: {{fps: 50, mode: blend}}}}
  out: {{type: test.collect, input: conv}}
""")
    assert len(frames) == 150
    # output 89 lies between source 44 (before the cut) and 45: it repeats 44 instead of mixing two scenes
    assert frames[89].meta["source_pts"] == frames[88].meta["source_pts"] and "blend" not in frames[89].meta
    assert torch.equal(frames[89].data, frames[88].data)
    assert frames[91].meta["blend"] == 0.5  # within a scene, frames mix
