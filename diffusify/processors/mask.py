"""Masks: ``mask`` makes a mask stream from a picture (luma or a channel); ``mask.threshold``, ``mask.dilate``,
``mask.erode``, ``mask.feather``, ``mask.invert``, ``mask.smooth`` (over time) and ``mask.combine`` work on mask
streams (1 channel, [0, 1]), for ``compose.mask`` and mattes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from diffusify.core.stream import StreamInfo
from diffusify.processors.base import NoParams, Params, PlanContext, Port, Processor, Temporal

if TYPE_CHECKING:
    import torch

    from diffusify.core.frame import Frame, Window

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


class _MaskOp(Processor):
    """A mask in, a mask out: ``(1, H, W)`` float32 in [0, 1], same size, index and time."""

    inputs = (Port("input", "mask"),)


class ThresholdParams(Params):
    level: float = Field(0.5, ge=0, le=1, description="Values at or above this become 1, the rest 0.")
    softness: float = Field(0.0, ge=0, le=0.5, description="Half-width of a smooth ramp around the level "
                                                           "(0: a hard edge).")


class MaskThreshold(_MaskOp):
    """Make a mask hard (0 or 1) at a level, or steep with a smooth ramp around it.

    Input and output: ``(1, H, W)`` float32 masks in [0, 1].
    """

    type_name = "mask.threshold"
    Params = ThresholdParams

    def _process(self, frames: Mapping[str, Frame]) -> torch.Tensor:
        m, p = frames["input"].data, self.params
        if p.softness == 0:
            return (m >= p.level).to(m.dtype)
        t = ((m - (p.level - p.softness)) / (2 * p.softness)).clamp(0, 1)
        return t * t * (3 - 2 * t)  # smoothstep


class RadiusParams(Params):
    radius: int = Field(2, ge=1, le=256, description="Pixels to grow (dilate) or shrink (erode) the mask by.")


class MaskDilate(_MaskOp):
    """Grow a mask by a radius (an octagon, close to a disc): covers halos and hair at the edge.

    Input and output: ``(1, H, W)`` float32 masks in [0, 1].
    """

    type_name = "mask.dilate"
    Params = RadiusParams

    def _process(self, frames: Mapping[str, Frame]) -> torch.Tensor:
        from diffusify.ops.filters import dilate

        return dilate(frames["input"].data, self.params.radius)


class MaskErode(_MaskOp):
    """Shrink a mask by a radius (an octagon, close to a disc): drops specks and pulls edges in.

    Input and output: ``(1, H, W)`` float32 masks in [0, 1].
    """

    type_name = "mask.erode"
    Params = RadiusParams

    def _process(self, frames: Mapping[str, Frame]) -> torch.Tensor:
        from diffusify.ops.filters import dilate

        return 1 - dilate(1 - frames["input"].data, self.params.radius)


class FeatherParams(Params):
    radius: float = Field(4.0, gt=0, le=256, description="Width of the soft edge in pixels (a gaussian of "
                                                         "sigma radius / 2).")


class MaskFeather(_MaskOp):
    """Soften a mask's edge (a gaussian blur), so a composite shows no hard seam.

    Input and output: ``(1, H, W)`` float32 masks in [0, 1].
    """

    type_name = "mask.feather"
    Params = FeatherParams

    def _process(self, frames: Mapping[str, Frame]) -> torch.Tensor:
        from diffusify.ops.filters import gaussian_blur

        return gaussian_blur(frames["input"].data, self.params.radius / 2).clamp_(0, 1)


class MaskInvert(_MaskOp):
    """Swap inside and outside: ``1 - mask``.

    Input and output: ``(1, H, W)`` float32 masks in [0, 1].
    """

    type_name = "mask.invert"
    Params = NoParams

    def _process(self, frames: Mapping[str, Frame]) -> torch.Tensor:
        return 1 - frames["input"].data


class SmoothParams(Params):
    mode: Literal["median", "mean"] = Field(
        "median", description="median: a pixel keeps the middle of its three values in time (a one-frame flicker "
                              "goes, edges stay sharp); mean: their average (softer).")


class MaskSmooth(_MaskOp):
    """Steady a mask over time: each frame from itself and its two neighbours, centred, so a still subject does
    not flicker and a moving one is not followed late (the stream's ends repeat the first/last frame).

    Input and output: ``(1, H, W)`` float32 masks in [0, 1].
    """

    type_name = "mask.smooth"
    Params = SmoothParams
    temporal = Temporal.WINDOW
    window = (1, 1)

    def _process_window(self, window: Window) -> torch.Tensor:
        import torch

        stack = torch.stack([window.at(-1).data, window.at(0).data, window.at(1).data])
        return stack.median(dim=0).values if self.params.mode == "median" else stack.mean(dim=0)


class CombineParams(Params):
    op: Literal["union", "intersection", "difference"] = Field(
        "union", description="union: in either (max); intersection: in both (min); difference: in a but not in "
                             "b (a - min(a, b)).")


class MaskCombine(Processor):
    """Combine two masks of the same size: union, intersection or difference (soft values kept).

    Ports ``a`` and ``b``: ``(1, H, W)`` float32 masks in [0, 1], same size and index. Output: a mask.
    """

    type_name = "mask.combine"
    Params = CombineParams
    inputs = (Port("a", "mask"), Port("b", "mask"))

    @classmethod
    def infer_stream(cls, params: CombineParams, inputs: Mapping[str, StreamInfo],
                     ctx: PlanContext) -> StreamInfo | None:
        from diffusify.processors.compose import check_size, check_timing

        check_size(inputs)
        return check_timing(inputs)

    def _process(self, frames: Mapping[str, Frame]) -> torch.Tensor:
        import torch

        a, b = frames["a"].data, frames["b"].data
        if self.params.op == "union":
            return torch.maximum(a, b)
        if self.params.op == "intersection":
            return torch.minimum(a, b)
        return a - torch.minimum(a, b)
