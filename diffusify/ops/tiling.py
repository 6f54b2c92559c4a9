"""Tiled inference with overlap and feathered blending: big frames through models that cannot take them
whole, without visible seams."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def tile_spans(size: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """``(start, length)`` of tiles covering ``size``: as few tiles of at most ``tile`` pixels as can overlap
    their neighbours by at least ``overlap``, all the same length and spread evenly (no redundant last tile)."""
    if size <= tile:
        return [(0, size)]
    overlap = min(overlap, tile // 2)
    n = math.ceil((size - overlap) / (tile - overlap))
    length = min(tile, math.ceil((size + (n - 1) * overlap) / n))
    return [(round(i * (size - length) / (n - 1)), length) for i in range(n)]


def _weights(spans: list[tuple[int, int]], i: int, scale: int, device: torch.device) -> torch.Tensor:
    """Linear ramps over exactly the region shared with each neighbour, so overlapping weights sum to 1."""
    start, length = spans[i]
    w = torch.ones(length * scale, device=device)
    if i > 0:
        prev_start, prev_len = spans[i - 1]
        shared = (prev_start + prev_len - start) * scale
        if shared > 0:
            w[:shared] = (torch.arange(shared, device=device, dtype=torch.float32) + 0.5) / shared
    if i + 1 < len(spans):
        shared = (start + length - spans[i + 1][0]) * scale
        if shared > 0:
            w[length * scale - shared:] = torch.minimum(
                w[length * scale - shared:],
                1 - (torch.arange(shared, device=device, dtype=torch.float32) + 0.5) / shared)
    return w


def tiled(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, tile: int, overlap: int,
          scale: int, out_channels: int | None = None) -> torch.Tensor:
    """Run ``fn`` over ``x`` ``(N, C, H, W)`` in tiles of at most ``tile`` pixels sharing at least
    ``overlap`` pixels with each neighbour; outputs are blended with linear weights across each shared band.

    ``fn`` maps a ``(N, C, h, w)`` tile to ``(N, C', h * scale, w * scale)``. Returns float32.
    """
    n, _, h, w = x.shape
    if tile >= h and tile >= w:
        return fn(x)
    ys, xs = tile_spans(h, tile, overlap), tile_spans(w, tile, overlap)
    out: torch.Tensor | None = None
    for iy, (y0, th) in enumerate(ys):
        for ix, (x0, tw) in enumerate(xs):
            y = fn(x[..., y0:y0 + th, x0:x0 + tw])
            if out is None:
                out = torch.zeros(n, out_channels or y.shape[1], h * scale, w * scale, device=y.device,
                                  dtype=torch.float32)
            wgt = _weights(ys, iy, scale, y.device)[:, None] * _weights(xs, ix, scale, y.device)[None, :]
            sy, sx = y0 * scale, x0 * scale
            out[..., sy:sy + th * scale, sx:sx + tw * scale] += y.float() * wgt
    assert out is not None
    return out
