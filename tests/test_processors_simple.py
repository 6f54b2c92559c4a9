"""The simple nodes' values against independent float64 references: color, crop, resize, stack, blend, diff, mask.

Each processor is built the way the engine builds it (params model, stream info from ``infer_stream``) and fed
frames through ``push``, which also checks that the shared input is left untouched."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest
import torch

from diffusify.core.frame import Frame
from diffusify.processors.base import Processor
from diffusify.processors.color import Color
from diffusify.processors.compose import Blend, Diff, MaskComposite, Stack
from diffusify.processors.geometry import Crop, Resize
from tests._helpers import make_processor, push_one, stream_of


def _run(cls: type[Processor], params: dict[str, Any], **inputs: torch.Tensor) -> torch.Tensor:
    proc = make_processor(cls, params, streams={port: stream_of(t) for port, t in inputs.items()})
    before = {port: t.clone() for port, t in inputs.items()}
    out = push_one(proc, {port: Frame(7, Fraction(7, 25), t) for port, t in inputs.items()})
    for port, t in inputs.items():
        assert torch.equal(t, before[port]), f"{cls.type_name} wrote into its shared input '{port}'"
    assert out.index == 7 and out.pts == Fraction(7, 25)
    return out.data


@pytest.fixture
def img() -> torch.Tensor:
    return torch.rand(3, 12, 20, generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize(
    "params",
    [{"brightness": 0.1}, {"brightness": -0.2, "contrast": 1.5}, {"contrast": 0.5}, {"saturation": 0.0},
     {"saturation": 2.0, "gamma": 2.2}, {"gamma": 0.5}, {}],
)
def test_color_matches_its_formula(img, params):
    b, c = params.get("brightness", 0.0), params.get("contrast", 1.0)
    s, g = params.get("saturation", 1.0), params.get("gamma", 1.0)
    x = img.double()
    y = (x - 0.5) * c + 0.5 + b
    luma = 0.2126 * y[0] + 0.7152 * y[1] + 0.0722 * y[2]
    y = (luma + (y - luma) * s).clamp(0, 1) ** (1 / g)
    out = _run(Color, params, input=img)
    assert out.dtype == torch.float32 and out.shape == img.shape
    assert (out.double() - y).abs().max().item() < 1e-6


def test_color_saturation_zero_is_gray(img):
    out = _run(Color, {"saturation": 0.0}, input=img)
    assert torch.allclose(out[0], out[1]) and torch.allclose(out[1], out[2])


def test_crop_keeps_the_rectangle(img):
    out = _run(Crop, {"x": 3, "y": 2, "width": 10, "height": 5}, input=img)
    assert torch.equal(out, img[:, 2:7, 3:13])
    assert torch.equal(_run(Crop, {"x": 4, "y": 1}, input=img), img[:, 1:, 4:])


def test_resize_nearest_2x_repeats_pixels(img):
    out = _run(Resize, {"scale": 2, "method": "nearest"}, input=img)
    assert torch.equal(out, img.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2))


@pytest.mark.parametrize("method", ["lanczos", "bicubic", "bilinear", "area"])
def test_resize_keeps_flat_fields_and_the_aspect(method):
    flat = torch.full((3, 40, 64), 0.25)
    out = _run(Resize, {"width": 32, "height": 32, "method": method}, input=flat)
    assert out.shape == (3, 20, 32)  # fits inside 32x32 keeping 64:40
    assert (out - 0.25).abs().max().item() < 1e-5


def test_resize_area_averages_blocks(img):
    out = _run(Resize, {"width": 10, "height": 6, "keep_aspect": False, "method": "area"}, input=img)
    expected = img.double().view(3, 6, 2, 10, 2).mean(dim=(2, 4))
    assert (out.double() - expected).abs().max().item() < 1e-6


def test_stack_side_by_side_and_top_bottom(img):
    other = torch.rand(3, 12, 8)
    out = _run(Stack, {"axis": "horizontal"}, left=img, right=other)
    assert torch.equal(out, torch.cat([img, other], dim=2))
    top = torch.rand(3, 4, 20)
    out = _run(Stack, {"axis": "vertical"}, left=img, right=top)
    assert torch.equal(out, torch.cat([img, top], dim=1))


def test_stack_fits_the_smaller_input_to_the_larger_height(img):
    small = torch.full((3, 6, 10), 0.5)
    out = _run(Stack, {"axis": "horizontal", "fit": "largest"}, left=img, right=small)
    assert out.shape == (3, 12, 40)
    assert torch.equal(out[:, :, :20], img)
    assert (out[:, :, 20:] - 0.5).abs().max().item() < 1e-5


def test_blend_diff_and_mask(img):
    other = torch.rand(3, 12, 20, generator=torch.Generator().manual_seed(6))
    out = _run(Blend, {"weight": 0.25}, a=img, b=other)
    assert (out.double() - (0.75 * img.double() + 0.25 * other.double())).abs().max().item() < 1e-6
    out = _run(Diff, {"gain": 3.0}, a=img, b=other)
    assert (out.double() - (3 * (img.double() - other.double()).abs()).clamp(max=1)).abs().max().item() < 1e-6
    mask = torch.zeros(1, 12, 20)
    mask[:, :, 10:] = 1.0
    mask[:, 0, 0] = 0.5
    out = _run(MaskComposite, {}, background=img, foreground=other, mask=mask)
    assert torch.equal(out[:, :, 10:], other[:, :, 10:]) and torch.equal(out[:, 1:, :10], img[:, 1:, :10])
    assert torch.allclose(out[:, 0, 0], (img[:, 0, 0] + other[:, 0, 0]) / 2)
    inverted = _run(MaskComposite, {"invert": True}, background=img, foreground=other, mask=mask)
    assert torch.equal(inverted[:, :, 10:], img[:, :, 10:])
