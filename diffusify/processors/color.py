"""Colour adjustment: ``color`` (brightness, contrast, saturation, gamma)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pydantic import Field

from diffusify.processors.base import Params, Processor

if TYPE_CHECKING:
    import torch

    from diffusify.core.frame import Frame
    from diffusify.core.stream import StreamInfo
    from diffusify.ops.samples import LevelTables


class ColorParams(Params):
    brightness: float = Field(0.0, ge=-1, le=1, description="Added to every channel (0 = unchanged).")
    contrast: float = Field(1.0, ge=0, le=4, description="Scales around mid grey (1 = unchanged).")
    saturation: float = Field(1.0, ge=0, le=4, description="Scales the distance from luma (1 = unchanged, 0 = gray).")
    gamma: float = Field(1.0, gt=0, le=5, description="Output = input ** (1 / gamma) (1 = unchanged).")


class Color(Processor):
    """Adjust brightness, contrast, saturation and gamma.

    Input and output: ``(3, H, W)`` float32 in [0, 1] on the node's device (output clamped to [0, 1]), or native
    samples: then, unless saturation mixes the channels, the output stays native, each sample looked up in a
    table of every level made by the float path's arithmetic (bit-identical to the float path and a writer's
    rounding, at a fraction of its cost: one gather instead of widening, four float passes and narrowing).
    Without a gamma the table is that arithmetic in numpy and the node runs without torch on the CPU.
    """

    type_name = "color"
    Params = ColorParams
    native = True

    @classmethod
    def native_for(cls, params: ColorParams) -> bool:
        return params.saturation == 1.0

    @classmethod
    def torch_free(cls, params: ColorParams, *, device: str, widen_output: bool,
                   inputs: Mapping[str, StreamInfo]) -> bool:
        """Brightness and contrast on the CPU: a table made in numpy (a gamma's power differs from torch's in
        the last bit, which would move 16-bit levels, so a gamma's table is made by the float path in torch)."""
        return device == "cpu" and not widen_output and cls.native_for(params) and params.gamma == 1.0

    @staticmethod
    def _affine(p: ColorParams) -> tuple[float, float]:
        """Brightness and contrast as one scale and one offset: ``(x - 0.5) * contrast + 0.5 + brightness``."""
        return p.contrast, 0.5 + p.brightness - 0.5 * p.contrast

    def _process(self, frames: Mapping[str, Frame]) -> Any:
        from diffusify.ops.samples import is_native, widen

        x = frames["input"].data
        if is_native(x):
            if self.native_for(self.params) or x.shape[0] == 1:
                return self._tables.lookup(x)
            x = widen(x)
        return self._adjust(x)

    @cached_property
    def _tables(self) -> LevelTables:
        from diffusify.ops.samples import LevelTables

        if self.params.gamma == 1.0:  # saturation is 1, or the samples are gray (it leaves them as they are)
            return LevelTables(affine=self._affine(self.params))
        return LevelTables(self._adjust)

    def _adjust(self, x: torch.Tensor) -> torch.Tensor:
        """The float path: ``x`` is read-only, the result a new tensor clamped to [0, 1]."""
        p = self.params
        # one scale and one offset: the input is shared (read-only), so the first pass allocates the output and
        # every later pass works in place on it (a 1080p frame is 25 MB; each pass saved is about 1.5 ms on one
        # CPU thread). affine_table does the same steps in numpy.
        scale, offset = self._affine(p)
        if scale != 1.0:
            y = x.mul(scale).add_(offset)
        elif offset != 0.0:
            y = x.add(offset)
        else:
            y = x.clone()
        if p.saturation != 1.0 and y.shape[0] == 3:
            luma = (0.2126 * y[0] + 0.7152 * y[1] + 0.0722 * y[2]).unsqueeze(0)
            y.sub_(luma).mul_(p.saturation).add_(luma)
        y.clamp_(0, 1)
        if p.gamma != 1.0:
            y.pow_(1.0 / p.gamma)
        return y
