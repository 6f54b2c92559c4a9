"""Mask streams: making a mask from a picture, and the mask operations, against independent references; and the
mask port kinds in a graph."""

from __future__ import annotations

import pytest
import torch

import diffusify
from diffusify.graph.validate import validate_text
from diffusify.processors.mask import (
    Mask,
    MaskCombine,
    MaskDilate,
    MaskErode,
    MaskFeather,
    MaskInvert,
    MaskThreshold,
)
from tests._helpers import frame, make_processor, push_one, stream_of
from tests.conftest import CollectSink


def _run(cls, params, **inputs: torch.Tensor) -> torch.Tensor:
    proc = make_processor(cls, params, streams={p: stream_of(t) for p, t in inputs.items()})
    out = push_one(proc, {p: frame(3, t) for p, t in inputs.items()})
    assert out.data.shape[0] == 1 and out.pts == frame(3, out.data).pts
    return out.data


def _dot(size: int = 21, at: int = 10) -> torch.Tensor:
    m = torch.zeros(1, size, size)
    m[0, at, at] = 1
    return m


def test_mask_from_luma_and_a_channel():
    x = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(1))
    luma = 0.2126 * x[0] + 0.7152 * x[1] + 0.0722 * x[2]
    assert torch.allclose(_run(Mask, {}, input=x)[0], luma, atol=1e-6)
    assert torch.equal(_run(Mask, {"channel": "green", "threshold": 0.5}, input=x)[0], (x[1] >= 0.5).float())


def test_threshold_hard_and_soft():
    m = torch.linspace(0, 1, 11).view(1, 1, 11)
    assert _run(MaskThreshold, {"level": 0.5}, input=m)[0, 0].tolist() == [0.0] * 5 + [1.0] * 6
    soft = _run(MaskThreshold, {"level": 0.5, "softness": 0.2}, input=m)[0, 0]
    assert soft[3] == 0 and soft[7] == 1 and abs(float(soft[5]) - 0.5) < 1e-6
    assert all(a <= b for a, b in zip(soft, soft[1:], strict=False))


@pytest.mark.parametrize("radius", [1, 2, 3, 6])
def test_dilate_grows_a_dot_into_an_octagon_and_erode_takes_it_back(radius):
    grown = _run(MaskDilate, {"radius": radius}, input=_dot())[0]
    ys, xs = torch.nonzero(grown, as_tuple=True)
    assert int(ys.min()) == 10 - radius and int(ys.max()) == 10 + radius  # the radius along the axes
    assert int(xs.min()) == 10 - radius and int(xs.max()) == 10 + radius
    corner = grown[10 - radius, 10 - radius]
    assert corner == (1 if radius == 1 else 0)  # a disc-like shape: no square corners past the first step
    back = _run(MaskErode, {"radius": radius}, input=grown[None])
    assert torch.equal(back, _dot())


def test_erode_removes_specks_smaller_than_the_radius():
    m = torch.zeros(1, 20, 20)
    m[0, 2, 2] = 1  # a speck
    m[0, 8:16, 8:16] = 1  # a block
    out = _run(MaskErode, {"radius": 2}, input=m)[0]
    assert out[2, 2] == 0 and out[11, 11] == 1 and out[8, 8] == 0


def test_feather_softens_the_edge_and_keeps_the_inside():
    m = torch.zeros(1, 40, 40)
    m[0, 10:30, 10:30] = 1
    out = _run(MaskFeather, {"radius": 4}, input=m)[0]
    assert out[20, 20] > 0.999 and out[2, 2] < 1e-3
    row = out[20, 4:17]
    assert all(a <= b + 1e-7 for a, b in zip(row, row[1:], strict=False)) and 0.3 < float(out[20, 10]) < 0.7


def test_invert_and_combine():
    a = torch.tensor([[[0.0, 0.3, 1.0, 0.6]]])
    b = torch.tensor([[[1.0, 0.5, 0.2, 0.6]]])
    assert torch.allclose(_run(MaskInvert, {}, input=a), 1 - a)
    assert torch.equal(_run(MaskCombine, {"op": "union"}, a=a, b=b), torch.maximum(a, b))
    assert torch.equal(_run(MaskCombine, {"op": "intersection"}, a=a, b=b), torch.minimum(a, b))
    assert torch.allclose(_run(MaskCombine, {"op": "difference"}, a=a, b=b),
                          torch.tensor([[[0.0, 0.0, 0.8, 0.0]]]))


def test_a_matte_pipeline_runs_and_video_on_a_mask_port_is_refused(registry):
    text = """
version: 1
nodes:
  src: {type: pattern, with: {kind: moving, width: 64, height: 36, frames: 3}}
  matte: {type: mask, input: src, with: {threshold: 0.6}}
  grown: {type: mask.dilate, input: matte, with: {radius: 2}}
  soft: {type: mask.feather, input: grown, with: {radius: 3}}
  blurred: {type: denoise, input: src, with: {method: gaussian, strength: 3}}
  comp: {type: compose.mask, inputs: {background: blurred, foreground: src, mask: soft}}
  out: {type: test.collect, input: comp}
"""
    diffusify.run(text, registry=registry)
    assert len(CollectSink.results["collected"]) == 3
    v = validate_text(text.replace("input: grown", "input: src"))
    assert any("port 'input' of mask.feather takes mask frames, but 'src' gives a video stream" in p.format()
               for p in v.errors)
