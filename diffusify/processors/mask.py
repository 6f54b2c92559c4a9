"""Masks from video: ``mask`` turns an RGB stream into a 1-channel mask stream for ``compose.mask``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from diffusify.core.stream import StreamInfo
from diffusify.processors.base import Params, PlanContext, Processor

if TYPE_CHECKING:
    import torch

    from diffusify.core.frame import Frame

# BT.709 luma weights on (gamma-encoded) RGB: what "brightness" means for a matte drawn or keyed in video
_LUMA = (0.2126, 0.7152, 0.0722)


class MaskParams(Params):
    channel: Literal["luma", "red", "green", "blue"] = Field(
        "luma", description="What becomes the mask: the picture's luma, or one of its channels.")
    threshold: float | None = Field(
        None, ge=0, le=1, description="Make the mask hard: 1 where the value is at least this, else 0; empty "
                                      "keeps soft values.")
    invert: bool = Field(False, description="Use 1 - mask.")


class Mask(Processor):
    """Turn a video stream into a mask stream (luma or one channel, optionally thresholded).

    Input: ``(3, H, W)`` float32 RGB in [0, 1]. Output: ``(1, H, W)`` float32 in [0, 1], a ``mask`` stream.
    """

    type_name = "mask"
    Params = MaskParams

    @classmethod
    def infer_stream(cls, params: MaskParams, inputs: Mapping[str, StreamInfo],
                     ctx: PlanContext) -> StreamInfo | None:
        return inputs["input"].replace(channels=1, kind="mask")

    def _process(self, frames: Mapping[str, Frame]) -> torch.Tensor:
        x = frames["input"].data
        p = self.params
        if p.channel == "luma":
            w = x.new_tensor(_LUMA).view(3, 1, 1)
            m = (x[:3] * w).sum(0, keepdim=True)
        else:
            m = x[("red", "green", "blue").index(p.channel)].unsqueeze(0)
        if p.threshold is not None:
            m = (m >= p.threshold).to(x.dtype)
        if p.invert:
            m = 1 - m
        return m.clamp(0, 1)
