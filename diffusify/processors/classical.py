"""Classical restoration for when no model fits: ``denoise`` (bilateral or non-local means) and ``sharpen``
(unsharp mask)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from diffusify.processors.base import Params, Port, Processor

if TYPE_CHECKING:
    import torch

    from diffusify.core.frame import Frame


def _shifts(x: torch.Tensor, radius: int):
    """Yield (dy, dx, shifted) for every offset in the window, reflect-padded at the borders."""
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    pad = F.pad(x.unsqueeze(0), (radius,) * 4, mode="reflect").squeeze(0)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            yield dy, dx, pad[:, radius + dy:radius + dy + h, radius + dx:radius + dx + w]


def bilateral(x: torch.Tensor, radius: int, sigma_space: float, sigma_color: float) -> torch.Tensor:
    import torch

    num = torch.zeros_like(x)
    den = torch.zeros_like(x[:1])
    for dy, dx, s in _shifts(x, radius):
        ws = torch.exp(torch.tensor(-(dy * dy + dx * dx) / (2 * sigma_space**2)))
        wc = torch.exp(-((s - x) ** 2).sum(0, keepdim=True) / (2 * sigma_color**2)) * ws
        num += s * wc
        den += wc
    return num / den


def nl_means(x: torch.Tensor, radius: int, patch: int, h: float) -> torch.Tensor:
    """Non-local means with a box patch distance, computed with shifted images (no unfold blow-up)."""
    import torch
    import torch.nn.functional as F

    num = torch.zeros_like(x)
    den = torch.zeros_like(x[:1])
    k = 2 * patch + 1
    for _, _, s in _shifts(x, radius):
        d = ((s - x) ** 2).mean(0, keepdim=True).unsqueeze(0)
        d = F.avg_pool2d(F.pad(d, (patch,) * 4, mode="reflect"), k, stride=1).squeeze(0)
        wgt = torch.exp(-d / (h * h))
        num += s * wgt
        den += wgt
    return num / den


class DenoiseParams(Params):
    method: Literal["bilateral", "nlmeans", "gaussian"] = Field("bilateral", description="Denoising algorithm.")
    strength: float = Field(0.5, ge=0, le=4, description="How much noise to remove (0 = none).")
    radius: int = Field(2, ge=1, le=7, description="Search radius in pixels (bilateral, nlmeans).")


class Denoise(Processor):
    """Classical spatial denoise: edge-preserving bilateral, non-local means, or a gaussian blur.

    Input and output: ``(C, H, W)`` float32 in [0, 1] on the node's device.
    """

    type_name = "denoise"
    Params = DenoiseParams

    def _process(self, frames: Mapping[str, Frame]) -> torch.Tensor:
        from diffusify.ops.filters import gaussian_blur

        p = self.params
        x = frames["input"].data
        if p.strength == 0:
            return x
        if p.method == "gaussian":
            return gaussian_blur(x, 0.5 + p.strength)
        if p.method == "nlmeans":
            return nl_means(x, p.radius, 1, 0.02 + 0.06 * p.strength).clamp_(0, 1)
        return bilateral(x, p.radius, sigma_space=max(0.5, p.radius / 1.5),
                         sigma_color=0.02 + 0.08 * p.strength).clamp_(0, 1)


class BlurParams(Params):
    radius: float = Field(8.0, gt=0, le=512, description="Blur radius in pixels (a gaussian of sigma radius / 2).")


class Blur(Processor):
    """Blur frames (a gaussian): a background effect behind a mask, or softening a mask.

    Input and output: ``(C, H, W)`` float32 in [0, 1], video or mask (the kind goes through).
    """

    type_name = "blur"
    Params = BlurParams
    inputs = (Port("input", "any"),)

    def _process(self, frames: Mapping[str, Frame]) -> torch.Tensor:
        from diffusify.ops.filters import gaussian_blur

        return gaussian_blur(frames["input"].data, self.params.radius / 2).clamp_(0, 1)


class SharpenParams(Params):
    amount: float = Field(0.5, ge=0, le=5, description="Strength of the unsharp mask (0 = none).")
    radius: float = Field(1.0, gt=0, le=10, description="Gaussian sigma of the blur that is subtracted.")
    threshold: float = Field(0.0, ge=0, le=1, description="Ignore differences smaller than this (protects noise).")


class Sharpen(Processor):
    """Unsharp mask: ``x + amount * (x - blur(x))`` where the difference exceeds ``threshold``.

    Input and output: ``(C, H, W)`` float32 in [0, 1] on the node's device.
    """

    type_name = "sharpen"
    Params = SharpenParams

    def _process(self, frames: Mapping[str, Frame]) -> torch.Tensor:
        from diffusify.ops.filters import gaussian_blur

        p = self.params
        x = frames["input"].data
        detail = x - gaussian_blur(x, p.radius)
        if p.threshold > 0:
            detail = detail * (detail.abs() > p.threshold)
        return (x + p.amount * detail).clamp_(0, 1)
