"""Merges: ``compose.stack`` (side by side / top-bottom), ``compose.blend``, ``compose.diff``,
``compose.mask`` (masked composite). Inputs are joined by frame index."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from diffusify.core.stream import StreamInfo, merged_origin
from diffusify.ops.samples import is_array
from diffusify.processors.base import Params, PlanContext, Port, Processor, StreamError

if TYPE_CHECKING:
    import torch

    from diffusify.core.frame import Frame
    from diffusify.ops.samples import LevelTables


def _fps(s: StreamInfo) -> str:
    return f"{s.fps.numerator}/{s.fps.denominator}" if s.fps.denominator != 1 else str(s.fps.numerator)


def check_timing(inputs: Mapping[str, StreamInfo]) -> StreamInfo:
    """Merged inputs must agree on frame rate and frame count; returns the first input's stream, with the
    origin they share (None when they come from different files)."""
    (first_port, first), *rest = inputs.items()
    for port, s in rest:
        if s.fps != first.fps:
            raise StreamError(f"frame rates differ: {first_port} is {_fps(first)} fps, {port} is {_fps(s)} fps "
                              "(insert an interpolate or pass frames at the same rate)", port=port)
        if s.frames is not None and first.frames is not None and s.frames != first.frames:
            raise StreamError(f"frame counts differ: {first_port} has {first.frames}, {port} has {s.frames} "
                              "(trim the longer one with start/end on its source)", port=port)
    return first.replace(origin=merged_origin(list(inputs.values())))


def check_size(inputs: Mapping[str, StreamInfo]) -> None:
    (first_port, first), *rest = inputs.items()
    for port, s in rest:
        if (s.width, s.height) != (first.width, first.height):
            raise StreamError(f"resolutions differ: {first_port} is {first.width}x{first.height}, {port} is "
                              f"{s.width}x{s.height} (add a resize before the merge)", port=port)


def _rgb(x: Any) -> Any:
    """Three channels of a frame's data (a tensor or numpy samples): a mask's one channel repeated, a fourth
    dropped."""
    if x.shape[0] != 1:
        return x[:3]
    if is_array(x):
        import numpy as np

        return np.broadcast_to(x, (3, *x.shape[1:]))
    return x.expand(3, -1, -1)


class StackParams(Params):
    axis: Literal["horizontal", "vertical"] = Field("horizontal", description="Side by side or top over bottom.")
    fit: Literal["largest", "none"] = Field(
        "largest", description="largest: scale the smaller input to the larger one's height (horizontal) or "
                               "width (vertical); none: sizes must already match along the shared edge.")
    method: Literal["lanczos", "bicubic", "bilinear", "area", "nearest"] = Field(
        "bicubic", description="Kernel used when fitting sizes.")


class Stack(Processor):
    """Put two streams side by side (or one over the other) for comparison.

    Ports ``left`` (or top) and ``right`` (or bottom): ``(C, H, W)`` float32 in [0, 1], or native samples, same
    index. Output: one ``(3, H, W1 + W2)`` (or ``(3, H1 + H2, W)``) frame: native samples when both inputs come
    at the same depth and need no resizing (a copy, exact; numpy samples on the CPU, without torch), float32
    otherwise.
    """

    type_name = "compose.stack"
    Params = StackParams
    inputs = ("left", "right")
    native = True

    @staticmethod
    def _sizes(p: StackParams, a: StreamInfo, b: StreamInfo) -> tuple[tuple[int, int], tuple[int, int]]:
        if p.axis == "horizontal":
            if a.height == b.height or p.fit == "none":
                return (a.width, a.height), (b.width, b.height)
            h = max(a.height, b.height)
            return (round(a.width * h / a.height), h), (round(b.width * h / b.height), h)
        if a.width == b.width or p.fit == "none":
            return (a.width, a.height), (b.width, b.height)
        w = max(a.width, b.width)
        return (w, round(a.height * w / a.width)), (w, round(b.height * w / b.width))

    @classmethod
    def infer_stream(cls, params: StackParams, inputs: Mapping[str, StreamInfo],
                     ctx: PlanContext) -> StreamInfo | None:
        first = check_timing(inputs)
        (aw, ah), (bw, bh) = cls._sizes(params, inputs["left"], inputs["right"])
        if params.axis == "horizontal":
            if ah != bh:
                raise StreamError(f"heights differ ({ah} vs {bh}) and fit is none", param="fit")
            return first.replace(width=aw + bw, height=ah, channels=3, kind="video")
        if aw != bw:
            raise StreamError(f"widths differ ({aw} vs {bw}) and fit is none", param="fit")
        return first.replace(width=aw, height=ah + bh, channels=3, kind="video")

    @classmethod
    def torch_free(cls, params: StackParams, *, device: str, widen_output: bool,
                   inputs: Mapping[str, StreamInfo]) -> bool:
        """On the CPU when nothing is resampled: the inputs' sizes are the stacked ones."""
        if device != "cpu" or widen_output or set(inputs) != {"left", "right"}:
            return False
        sizes = cls._sizes(params, inputs["left"], inputs["right"])
        return sizes == ((inputs["left"].width, inputs["left"].height), (inputs["right"].width, inputs["right"].height))

    def _process(self, frames: Mapping[str, Frame]) -> Any:
        (aw, ah), (bw, bh) = self._sizes(self.params, self.input_streams["left"], self.input_streams["right"])
        a, b = _rgb(frames["left"].data), _rgb(frames["right"].data)
        axis = 2 if self.params.axis == "horizontal" else 1
        # both inputs are numpy samples (this node runs without torch) or both tensors (the base class's wrapping)
        if a.dtype != b.dtype or tuple(a.shape[-2:]) != (ah, aw) or tuple(b.shape[-2:]) != (bh, bw):
            from diffusify.ops.resample import resize
            from diffusify.ops.samples import widen

            a = resize(widen(a), ah, aw, self.params.method).clamp(0, 1)
            b = resize(widen(b), bh, bw, self.params.method).clamp(0, 1)
        # else nothing to resample: the samples as they are, at any depth
        if is_array(a):
            import numpy as np

            return np.concatenate([a, b], axis=axis)
        import torch

        return torch.cat([a, b], dim=axis)


class BlendParams(Params):
    weight: float = Field(0.5, ge=0, le=1, description="Share of input b in the mix (0 = only a, 1 = only b).")


class _PairMerge(Processor):
    """Two inputs ``a`` and ``b`` of the same size, frame rate and count; output like ``a``. Native samples of one
    depth on the CPU are merged in numpy, without torch."""

    inputs = ("a", "b")
    native = True

    @classmethod
    def infer_stream(cls, params: Params, inputs: Mapping[str, StreamInfo],
                     ctx: PlanContext) -> StreamInfo | None:
        check_size(inputs)
        return check_timing(inputs)

    @classmethod
    def torch_free(cls, params: Params, *, device: str, widen_output: bool,
                   inputs: Mapping[str, StreamInfo]) -> bool:
        return device == "cpu" and not widen_output

    def _process(self, frames: Mapping[str, Frame]) -> Any:
        from diffusify.ops.samples import is_native, widen

        a, b = frames["a"].data, frames["b"].data
        if is_native(a) and is_native(b) and a.dtype == b.dtype:
            return self._samples(a, b)
        return self._floats(widen(a), widen(b))

    def _samples(self, a: Any, b: Any) -> Any:
        """The merge of native samples of one dtype (tensors or numpy arrays), at their depth."""
        raise NotImplementedError

    def _floats(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The merge in float (the reference)."""
        raise NotImplementedError


class Blend(_PairMerge):
    """Weighted mix of two streams of the same size: ``(1 - weight) * a + weight * b``.

    Ports ``a`` and ``b``: ``(C, H, W)`` float32 in [0, 1], same size and index. Output: same shape. Native
    samples of one depth stay native: the nearest level to the exact mix, halves up (what the float path and a
    writer's rounding give, but within float error of a half level); 8-bit samples in 16-bit integers for a
    weight in 128ths (0.5, 0.25...), else looked up in a table of every pair (one gather).
    """

    type_name = "compose.blend"
    Params = BlendParams

    def _samples(self, a: Any, b: Any) -> Any:
        from diffusify.ops.samples import depth, mix, pair_lookup

        if depth(a) == 8 and not (self.params.weight * 128).is_integer():
            return pair_lookup(a, b, self._table)
        return mix(a, b, self.params.weight)

    def _floats(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a.lerp(b.to(a.dtype), self.params.weight)

    @cached_property
    def _table(self) -> Any:
        from diffusify.ops.samples import mix_table

        return mix_table(self.params.weight)


class DiffParams(Params):
    gain: float = Field(4.0, gt=0, le=100, description="Multiplier on the absolute difference, to make it visible.")


class Diff(_PairMerge):
    """Absolute difference of two streams, amplified: ``min(1, gain * |a - b|)``.

    Ports ``a`` and ``b``: ``(C, H, W)`` float32 in [0, 1], same size and index. Output: same shape. Native
    samples of one depth stay native, the nearest level to the exact value: 8-bit ones looked up in a table of
    every pair, 16-bit ones ``|a - b|`` in integers, then in a table of every difference.
    """

    type_name = "compose.diff"
    Params = DiffParams

    def _samples(self, a: Any, b: Any) -> Any:
        from diffusify.ops.samples import depth, difference, pair_lookup

        if depth(a) == 8:
            return pair_lookup(a, b, self._pair)
        return self._tables.lookup(difference(a, b))

    def _floats(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return ((a - b).abs_() * self.params.gain).clamp_(0, 1)

    @cached_property
    def _pair(self) -> Any:
        from diffusify.ops.samples import pair_table

        return pair_table(lambda a, b: abs(a - b) * self.params.gain)

    @cached_property
    def _tables(self) -> LevelTables:
        from diffusify.ops.samples import LevelTables

        return LevelTables(affine=(self.params.gain, 0.0))  # (t * gain).clamp(0, 1): _floats on one difference


class MaskCompositeParams(Params):
    invert: bool = Field(False, description="Use 1 - mask.")


class MaskComposite(Processor):
    """Composite ``foreground`` over ``background`` where ``mask`` is 1.

    Ports ``background``, ``foreground``: ``(3, H, W)`` float32 video; ``mask``: a mask stream, ``(1, H, W)``
    float32 in [0, 1] (from ``segment`` or ``mask``). All the same size and index. Output: ``(3, H, W)``.
    """

    type_name = "compose.mask"
    Params = MaskCompositeParams
    inputs = (Port("background"), Port("foreground"), Port("mask", "mask"))

    @classmethod
    def infer_stream(cls, params: MaskCompositeParams, inputs: Mapping[str, StreamInfo],
                     ctx: PlanContext) -> StreamInfo | None:
        check_size(inputs)
        return check_timing(inputs).replace(channels=3, kind="video")

    def _process(self, frames: Mapping[str, Frame]) -> torch.Tensor:
        m = frames["mask"].data
        m = m.mean(0, keepdim=True) if m.shape[0] != 1 else m
        if self.params.invert:
            m = 1 - m
        return _rgb(frames["background"].data).lerp(_rgb(frames["foreground"].data), m)
