"""Geometry: ``resize`` (lanczos, bicubic, bilinear, area, nearest) and ``crop``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from diffusify.core.stream import StreamInfo
from diffusify.processors.base import Params, PlanContext, Port, Processor, StreamError

if TYPE_CHECKING:
    import torch

    from diffusify.core.frame import Frame


class ResizeParams(Params):
    width: int | None = Field(None, ge=1, le=32768, description="Target width; empty = from height and aspect.")
    height: int | None = Field(None, ge=1, le=32768, description="Target height; empty = from width and aspect.")
    scale: float | None = Field(None, gt=0, le=16, description="Scale factor (instead of width/height).")
    method: Literal["lanczos", "bicubic", "bilinear", "area", "nearest"] = Field(
        "lanczos", description="Resampling kernel.")
    keep_aspect: bool = Field(True, description="With both width and height: fit inside them keeping the aspect.")
    even: bool = Field(True, description="Round the size to even numbers (what 4:2:0 encoders need).")

    @model_validator(mode="after")
    def _one_way(self) -> ResizeParams:
        if self.scale is None and self.width is None and self.height is None:
            raise ValueError("give scale, or width and/or height")
        if self.scale is not None and (self.width is not None or self.height is not None):
            raise ValueError("give scale or width/height, not both")
        return self


MIN_SIDE = 2
"""The smallest width or height a resize may make: a size that rounds below it is a typo (1e-9 for 1e-1), not a
picture."""


def _target(p: ResizeParams, w: int, h: int) -> tuple[int, int]:
    if p.scale is not None:
        tw, th = w * p.scale, h * p.scale
    elif p.width is not None and p.height is not None:
        if p.keep_aspect:
            f = min(p.width / w, p.height / h)
            tw, th = w * f, h * f
        else:
            tw, th = p.width, p.height
    elif p.width is not None:
        tw, th = p.width, h * p.width / w
    else:
        assert p.height is not None
        tw, th = w * p.height / h, p.height
    if round(tw) < MIN_SIDE or round(th) < MIN_SIDE:
        given = (f"scale {p.scale:g}" if p.scale is not None
                 else ", ".join(f"{k} {v}" for k, v in (("width", p.width), ("height", p.height)) if v is not None))
        raise StreamError(f"{given} makes {w}x{h} frames {tw:.4g}x{th:.4g}, below the {MIN_SIDE}x{MIN_SIDE} "
                          "minimum; check the value",
                          param="scale" if p.scale is not None else ("width" if p.width is not None else "height"))
    if p.even:
        return int(round(tw / 2)) * 2, int(round(th / 2)) * 2
    return int(round(tw)), int(round(th))


class Resize(Processor):
    """Resize frames by a scale factor or to a target size.

    Input and output: ``(C, H, W)`` float32 in [0, 1] on the node's device. With ``method: nearest`` native
    samples stay native (each output sample a copy of one input sample: exact).
    """

    type_name = "resize"
    native = True
    Params = ResizeParams
    inputs = (Port("input", "any"),)  # video or mask: the kind goes through

    @classmethod
    def infer_stream(cls, params: ResizeParams, inputs: Mapping[str, StreamInfo],
                     ctx: PlanContext) -> StreamInfo | None:
        src = inputs["input"]
        w, h = _target(params, src.width, src.height)
        return src.replace(width=w, height=h)

    @classmethod
    def native_for(cls, params: ResizeParams) -> bool:
        return params.method == "nearest"

    def _process(self, frames: Mapping[str, Frame]) -> torch.Tensor:
        from diffusify.ops.resample import nearest_samples, resize
        from diffusify.ops.samples import is_native, widen

        out = self.output_stream
        assert out is not None
        x = frames["input"].data
        if is_native(x) and self.params.method == "nearest":
            return nearest_samples(x, out.height, out.width)
        return resize(widen(x), out.height, out.width, self.params.method).clamp_(0, 1)


class CropParams(Params):
    x: int = Field(0, ge=0, description="Left edge of the kept area.")
    y: int = Field(0, ge=0, description="Top edge of the kept area.")
    width: int | None = Field(None, ge=1, description="Kept width; empty = to the right edge.")
    height: int | None = Field(None, ge=1, description="Kept height; empty = to the bottom edge.")


class Crop(Processor):
    """Keep a rectangle of each frame.

    Input and output: ``(C, H, W)`` on the node's device, float32 or native samples as they come (a view, no
    copy, no widening: exact at any depth; a decoder's numpy samples stay numpy, without torch).
    """

    type_name = "crop"
    Params = CropParams
    inputs = (Port("input", "any"),)
    native = True

    @classmethod
    def torch_free(cls, params: CropParams, *, device: str, widen_output: bool,
                   inputs: Mapping[str, StreamInfo]) -> bool:
        return device == "cpu" and not widen_output

    @classmethod
    def infer_stream(cls, params: CropParams, inputs: Mapping[str, StreamInfo],
                     ctx: PlanContext) -> StreamInfo | None:
        src = inputs["input"]
        w = params.width if params.width is not None else src.width - params.x
        h = params.height if params.height is not None else src.height - params.y
        if params.x + w > src.width or w <= 0:
            raise StreamError(f"x + width = {params.x + w} exceeds the input width {src.width}", param="width")
        if params.y + h > src.height or h <= 0:
            raise StreamError(f"y + height = {params.y + h} exceeds the input height {src.height}", param="height")
        return src.replace(width=w, height=h)

    def _process(self, frames: Mapping[str, Frame]) -> Any:
        out = self.output_stream
        assert out is not None
        p = self.params
        return frames["input"].data[:, p.y:p.y + out.height, p.x:p.x + out.width]
