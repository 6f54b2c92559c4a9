"""Shared test helpers: build a processor the way the engine does, push frames through it, check the processor
contract, and the tiny random-weight spandrel models (saved to a temporary folder, loaded by the real code)."""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel

from diffusify.core.frame import Frame
from diffusify.core.stream import StreamInfo
from diffusify.processors.base import Params, PlanContext, Port, Processor, Resources, RunOptions, Temporal


def stream_of(t: torch.Tensor, **changes: Any) -> StreamInfo:
    """The stream info of frames shaped like ``t`` (``(C, H, W)``)."""
    kind = "mask" if t.shape[0] == 1 else "video"
    return StreamInfo(width=t.shape[-1], height=t.shape[-2], channels=t.shape[0], kind=kind).replace(**changes)


def make_processor(cls: type[Processor], params: Mapping[str, Any] | BaseModel | None = None, *,
                   streams: Mapping[str, StreamInfo] | None = None, device: str = "cpu",
                   options: RunOptions | None = None) -> Processor:
    """A processor built as the engine builds it: params validated by its model, output from ``infer_stream``."""
    p = params if isinstance(params, BaseModel) else cls.Params(**dict(params or {}))
    streams = dict(streams or {})
    return cls("n", p, inputs=streams, output=cls.infer_stream(p, streams, PlanContext()), device=device,
               options=options)


def push_one(proc: Processor, frames: Mapping[str, Frame]) -> Frame:
    """Push one frame set through a one-in, one-out processor; its single output."""
    out = proc.push(frames)
    assert len(out) == 1, f"{proc.type_name} emitted {len(out)} frames for one input"
    return out[0]


def frame(index: int, data: torch.Tensor, fps: int = 25, **meta: Any) -> Frame:
    return Frame(index, Fraction(index, fps), data, dict(meta))


_KINDS = {"video", "mask", "any"}


def assert_processor_contract(cls: type[Processor]) -> None:
    """What every processor declares, checked without running it (the engine relies on each of these)."""
    name = cls.type_name
    assert name and name == name.strip() and " " not in name, f"{cls.__qualname__}: bad type_name {name!r}"
    assert cls.summary(), f"{name}: the class docstring's first line is its summary"
    assert issubclass(cls.Params, Params), f"{name}: Params must derive from diffusify.Params"
    assert cls.Params.model_config.get("extra") == "forbid", f"{name}: unknown parameters must be refused"
    for field, info in cls.Params.model_fields.items():
        assert info.description, f"{name}: parameter '{field}' has no description (it is the editor tooltip)"
    for port in cls.ports():
        assert isinstance(port, Port) and port.kind in _KINDS, f"{name}: port {port!r}"
    assert len(set(cls.port_names())) == len(cls.port_names()), f"{name}: duplicate port names"
    assert isinstance(cls.temporal, Temporal)
    before, after = cls.window
    assert before >= 0 and after >= 0
    if cls.temporal is Temporal.WINDOW:
        assert before + after > 0, f"{name}: a window processor needs neighbours"
        assert cls._process_window is not Processor._process_window or not cls.implemented, \
            f"{name}: no _process_window"
    else:
        assert (before, after) == (0, 0), f"{name}: a window without temporal: window"
    assert isinstance(cls.resources, Resources)
    assert cls.resources.device in ("any", "cpu", "gpu")
    assert cls.resources.offload in ("none", "model", "sequential")
    if cls.batching:
        assert "batch" in cls.Params.model_fields, f"{name}: batching needs a 'batch' parameter"
        assert cls._process_batch is not Processor._process_batch, f"{name}: batching without _process_batch"
    for ref in cls.node_refs:
        assert ref in cls.Params.model_fields, f"{name}: node_refs names '{ref}', which is no parameter"
    if cls.is_sink:
        assert cls.write is not Processor.write or not cls.implemented, f"{name}: a sink without write"
        assert not cls.replicable()
    elif cls.is_source():
        assert cls.frames is not Processor.frames or not cls.implemented, f"{name}: a source without frames"
        assert not cls.replicable()
    elif cls.implemented:
        steps = (cls._process, cls._process_window, cls.push)
        bases = (Processor._process, Processor._process_window, Processor.push)
        assert any(s is not b for s, b in zip(steps, bases, strict=True)), f"{name}: a filter with no step"


# ---- tiny spandrel models, random weights, saved where the test says ------------------------------------------
def tiny_compact(scale: int = 2) -> torch.nn.Module:
    from spandrel.architectures.Compact import Compact

    return Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=scale)


def tiny_esrgan(scale: int = 4) -> torch.nn.Module:
    from spandrel.architectures.ESRGAN import ESRGAN

    return ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=scale)


def tiny_span(scale: int = 2) -> torch.nn.Module:
    from spandrel.architectures.SPAN import SPAN

    return SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=scale)


TINY_MODELS = {"Compact": tiny_compact, "ESRGAN": tiny_esrgan, "SPAN": tiny_span}


def save_model(net: torch.nn.Module, path: Path) -> Path:
    """Write a model's state dict as safetensors (``.safetensors``) or a weights-only pickle (other suffixes)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path
