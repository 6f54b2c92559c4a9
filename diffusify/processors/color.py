"""Colour adjustment: ``color`` (brightness, contrast, saturation, gamma)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from pydantic import Field

from diffusify.processors.base import Params, Processor

if TYPE_CHECKING:
    import torch

    from diffusify.runtime.frame import Frame


class ColorParams(Params):
    brightness: float = Field(0.0, ge=-1, le=1, description="Added to every channel (0 = unchanged).")
    contrast: float = Field(1.0, ge=0, le=4, description="Scales around mid grey (1 = unchanged).")
    saturation: float = Field(1.0, ge=0, le=4, description="Scales the distance from luma (1 = unchanged, 0 = gray).")
    gamma: float = Field(1.0, gt=0, le=5, description="Output = input ** (1 / gamma) (1 = unchanged).")


class Color(Processor):
    """Adjust brightness, contrast, saturation and gamma.

    Input and output: ``(3, H, W)`` float32 in [0, 1] on the node's device (output clamped to [0, 1]).
    """

    type_name = "color"
    Params = ColorParams

    def _process(self, frames: Mapping[str, Frame]) -> torch.Tensor:
        p = self.params
        x = frames["input"].data
        if p.contrast != 1.0 or p.brightness != 0.0:
            x = (x - 0.5) * p.contrast + (0.5 + p.brightness)
        if p.saturation != 1.0 and x.shape[0] == 3:
            luma = (0.2126 * x[0] + 0.7152 * x[1] + 0.0722 * x[2]).unsqueeze(0)
            x = luma + (x - luma) * p.saturation
        x = x.clamp(0, 1)
        if p.gamma != 1.0:
            x = x.pow(1.0 / p.gamma)
        return x
