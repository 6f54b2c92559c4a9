"""Resampling primitives: torch's interpolation plus a separable Lanczos kernel (torch has none)."""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

METHODS = ("lanczos", "bicubic", "bilinear", "area", "nearest")


@lru_cache(maxsize=64)
def _lanczos_taps(n_in: int, n_out: int, a: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(n_out, taps)`` and normalised weights ``(n_out, taps)`` for a 1-D Lanczos resample.

    When downscaling the kernel is stretched by the scale factor so it also low-passes (no aliasing).
    """
    scale = n_out / n_in
    support = a / min(scale, 1.0)
    taps = int(math.ceil(support)) * 2 + 1
    centers = (torch.arange(n_out, dtype=torch.float64) + 0.5) / scale - 0.5
    first = torch.floor(centers - support).long() + 1
    idx = first.unsqueeze(1) + torch.arange(taps).unsqueeze(0)
    x = (idx.double() - centers.unsqueeze(1)) * min(scale, 1.0)
    w = torch.where(x.abs() < a, torch.sinc(x) * torch.sinc(x / a), torch.zeros_like(x))
    w = w / w.sum(dim=1, keepdim=True)
    return idx.clamp(0, n_in - 1).to(device), w.float().to(device)


def _lanczos_axis(x: torch.Tensor, n_out: int, dim: int, a: int) -> torch.Tensor:
    n_in = x.shape[dim]
    if n_in == n_out:
        return x
    idx, w = _lanczos_taps(n_in, n_out, a, str(x.device))
    x = x.movedim(dim, -1)
    gathered = x.index_select(-1, idx.flatten()).unflatten(-1, idx.shape)
    out = (gathered * w.to(x.dtype)).sum(-1)
    return out.movedim(-1, dim)


def resize(img: torch.Tensor, height: int, width: int, method: str = "lanczos") -> torch.Tensor:
    """Resize a ``(C, H, W)`` or ``(N, C, H, W)`` float tensor. Values may overshoot [0, 1] slightly for
    lanczos/bicubic; callers clamp where they need to."""
    batched = img.dim() == 4
    x = img if batched else img.unsqueeze(0)
    if (x.shape[-2], x.shape[-1]) == (height, width):
        return img
    if method == "lanczos":
        out = _lanczos_axis(_lanczos_axis(x, width, -1, 3), height, -2, 3)
    elif method == "area":
        out = F.interpolate(x, size=(height, width), mode="area")
    elif method == "nearest":
        out = F.interpolate(x, size=(height, width), mode="nearest-exact")
    else:
        down = height < x.shape[-2] or width < x.shape[-1]
        out = F.interpolate(x, size=(height, width), mode=method, align_corners=False, antialias=down)
    return out if batched else out.squeeze(0)


def nearest_samples(img: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``resize(img, height, width, "nearest")`` for a ``(C, H, W)`` tensor of any dtype (native samples included):
    the same samples picked, since the indices come from the same kernel run on each axis's positions."""

    def picks(n_in: int, n_out: int) -> torch.Tensor:
        positions = torch.arange(n_in, dtype=torch.float32, device=img.device).view(1, 1, n_in)
        return F.interpolate(positions, size=n_out, mode="nearest-exact").view(-1).to(torch.int64)

    if (img.shape[-2], img.shape[-1]) == (height, width):
        return img
    return img.index_select(-2, picks(img.shape[-2], height)).index_select(-1, picks(img.shape[-1], width))
