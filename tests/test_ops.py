"""Shared tensor primitives: tiling covers every pixel with weights summing to one; padding round-trips."""

from __future__ import annotations

import pytest
import torch

from diffusify.ops.padding import crop_padding, pad_to
from diffusify.ops.resample import resize
from diffusify.ops.tiling import tile_spans, tiled


@pytest.mark.parametrize("size,tile,overlap", [(290, 128, 16), (500, 128, 16), (64, 64, 8), (65, 64, 8),
                                               (1000, 96, 32)])
def test_tile_spans_cover_and_overlap(size, tile, overlap):
    spans = tile_spans(size, tile, overlap)
    assert spans[0][0] == 0 and spans[-1][0] + spans[-1][1] == size
    assert all(length <= tile for _, length in spans)
    for (a, la), (b, _) in zip(spans, spans[1:], strict=False):
        assert a + la - b >= min(overlap, tile // 2), "neighbours must share the overlap"


def test_tiled_identity_model_is_exact():
    x = torch.rand(2, 3, 100, 130)

    def up2(t: torch.Tensor) -> torch.Tensor:
        return t.repeat_interleave(2, -1).repeat_interleave(2, -2)

    y = tiled(up2, x, tile=48, overlap=12, scale=2)
    assert torch.allclose(y, up2(x), atol=1e-6)


def test_pad_and_crop_round_trip():
    x = torch.rand(1, 3, 37, 50)
    padded, pads = pad_to(x, border=10, multiple_of=8)
    assert padded.shape[-2] % 8 == 0 and padded.shape[-1] % 8 == 0
    assert torch.equal(crop_padding(padded, pads, 1), x)


def test_lanczos_resize_keeps_flat_fields_and_size():
    x = torch.full((3, 20, 30), 0.25)
    y = resize(x, 40, 60, "lanczos")
    assert y.shape == (3, 40, 60) and torch.allclose(y, x.new_full(y.shape, 0.25), atol=1e-5)
