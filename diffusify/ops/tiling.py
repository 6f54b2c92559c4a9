"""Tiled inference with overlap and feathered blending: big frames through models that cannot take them
whole, without visible seams."""

from __future__ import annotations

from collections.abc import Callable

import torch


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering ``size`` with tiles of ``tile`` overlapping by at least ``overlap``."""
    if size <= tile:
        return [0]
    step = max(1, tile - overlap)
    starts = list(range(0, size - tile, step))
    starts.append(size - tile)
    return starts


def _ramp(length: int, feather: int, fade_in: bool, fade_out: bool, device: torch.device) -> torch.Tensor:
    w = torch.ones(length, device=device)
    if feather > 0:
        ramp = (torch.arange(feather, device=device, dtype=torch.float32) + 0.5) / feather
        if fade_in:
            w[:feather] = torch.minimum(w[:feather], ramp)
        if fade_out:
            w[length - feather:] = torch.minimum(w[length - feather:], ramp.flip(0))
    return w


def tiled(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, tile: int, overlap: int,
          scale: int, out_channels: int | None = None) -> torch.Tensor:
    """Run ``fn`` over ``x`` ``(N, C, H, W)`` in tiles of ``tile`` pixels.

    Each tile is extended by ``overlap`` pixels of real context on every inner side; outputs are blended with
    linear weights over the overlap (never at the frame border), so each output pixel is a weighted mix of tiles
    that all saw at least half the overlap around it. ``fn`` maps a ``(N, C, h, w)`` tile to
    ``(N, C', h * scale, w * scale)``.
    """
    n, _, h, w = x.shape
    if tile >= h and tile >= w:
        return fn(x)
    ov = min(overlap, tile // 2)
    ys, xs = tile_starts(h, tile, 2 * ov), tile_starts(w, tile, 2 * ov)
    out: torch.Tensor | None = None
    weight: torch.Tensor | None = None
    for y0 in ys:
        th = min(tile, h - y0)
        for x0 in xs:
            tw = min(tile, w - x0)
            y = fn(x[..., y0:y0 + th, x0:x0 + tw])
            if out is None:
                c = out_channels or y.shape[1]
                out = torch.zeros(n, c, h * scale, w * scale, device=y.device, dtype=torch.float32)
                weight = torch.zeros(1, 1, h * scale, w * scale, device=y.device, dtype=torch.float32)
            wy = _ramp(th * scale, 2 * ov * scale, y0 > 0, y0 + th < h, y.device)
            wx = _ramp(tw * scale, 2 * ov * scale, x0 > 0, x0 + tw < w, y.device)
            wgt = wy[:, None] * wx[None, :]
            sy, sx = y0 * scale, x0 * scale
            out[..., sy:sy + th * scale, sx:sx + tw * scale] += y.float() * wgt
            weight[..., sy:sy + th * scale, sx:sx + tw * scale] += wgt  # type: ignore[index]
    assert out is not None and weight is not None
    return out / weight
