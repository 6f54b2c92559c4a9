"""Padding primitives: reflect-pad a batch to a model's size requirements and crop back."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_to(x: torch.Tensor, *, border: int = 0, multiple_of: int = 1, minimum: int = 0,
           square: bool = False) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Pad ``(N, C, H, W)`` by ``border`` on every side (reflect), then on the bottom/right up to a multiple of
    ``multiple_of`` and at least ``minimum`` (and square when asked). Returns the padded tensor and
    ``(left, right, top, bottom)``. Falls back to replicate padding where the frame is too small to reflect."""
    h, w = x.shape[-2:]
    th, tw = h + 2 * border, w + 2 * border
    th, tw = max(th, minimum), max(tw, minimum)
    if square:
        th = tw = max(th, tw)
    th = -(-th // multiple_of) * multiple_of
    tw = -(-tw // multiple_of) * multiple_of
    pads = (border, tw - w - border, border, th - h - border)
    if not any(pads):
        return x, pads
    mode = "reflect" if max(pads[0], pads[1]) < w and max(pads[2], pads[3]) < h else "replicate"
    return F.pad(x, pads, mode=mode), pads


def crop_padding(y: torch.Tensor, pads: tuple[int, int, int, int], scale: float) -> torch.Tensor:
    """Undo :func:`pad_to` on a model output that is ``scale`` times the input size."""
    left, right, top, bottom = (int(round(p * scale)) for p in pads)
    h, w = y.shape[-2:]
    return y[..., top:h - bottom, left:w - right]
