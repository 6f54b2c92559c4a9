"""Spatial filters shared by processors: a separable gaussian blur and morphological grow/shrink of masks."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``(C, H, W)`` blurred with a gaussian of ``sigma`` pixels (separable; the borders reflected, and the kernel
    kept within the frame so a small frame works too)."""
    h, w = x.shape[-2:]
    radius = max(1, min(int(round(sigma * 3)), h - 1, w - 1))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t * t) / (2 * sigma * sigma))
    k = k / k.sum()
    c = x.shape[0]
    y = F.pad(x.unsqueeze(0), (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    y = F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return y.squeeze(0)


def dilate(x: torch.Tensor, radius: int) -> torch.Tensor:
    """``(C, H, W)`` grown by ``radius`` pixels: the maximum over an octagon (3x3 squares and crosses in turn,
    close to a disc, without a square's corners). ``erode`` is ``1 - dilate(1 - x)``."""
    y = x.unsqueeze(0)
    for i in range(radius):
        if i % 2 == 0:
            y = F.max_pool2d(y, 3, stride=1, padding=1)
        else:  # a cross: the maximum of the horizontal and the vertical 3-pixel lines
            y = torch.maximum(F.max_pool2d(y, (1, 3), stride=1, padding=(0, 1)),
                              F.max_pool2d(y, (3, 1), stride=1, padding=(1, 0)))
    return y.squeeze(0)
