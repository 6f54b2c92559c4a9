"""Cheap picture measures shared by temporal processors: a small luma thumbnail and the mean absolute
difference of two of them (ffmpeg's ``scdet`` measures cuts the same way)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# BT.709 luma weights on gamma-encoded RGB
_LUMA = (0.2126, 0.7152, 0.0722)


def luma_thumbnail(x: torch.Tensor, max_side: int = 256) -> torch.Tensor:
    """The ``(H', W')`` float32 luma of a ``(C, H, W)`` frame in [0, 1], area-downscaled so that its longer side
    is at most ``max_side`` (noise and compression grain average out; the measure costs little at 4K)."""
    x = x.float()
    y = x[0] if x.shape[0] == 1 else (x[:3] * x.new_tensor(_LUMA).view(3, 1, 1)).sum(0)
    h, w = y.shape
    factor = max(1, -(-max(h, w) // max_side))
    if factor > 1:
        y = F.avg_pool2d(y[None, None], factor, ceil_mode=True)[0, 0]
    return y


def mean_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean absolute difference of two thumbnails, in percent of full scale (0-100)."""
    return float((a - b).abs().mean()) * 100.0
