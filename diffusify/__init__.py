"""Diffusify Engine: declarative video AI pipelines.

The public API is what this module exports; everything else is internal. Importing it is light: each name is
loaded on first use (no torch, and the command line's signal handlers go in before the engine's modules load).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from diffusify.api import check, plan, run, start, validate
    from diffusify.core.errors import DiffusifyError, Interrupted, PipelineError, RecipeError, UsageError
    from diffusify.core.frame import Frame, Window
    from diffusify.core.problems import Problem
    from diffusify.core.stream import ColorInfo, Origin, StreamInfo
    from diffusify.processors.base import (
        Params,
        PlanContext,
        Port,
        Processor,
        Resources,
        RunOptions,
        Segment,
        SinkResult,
        StreamError,
        Temporal,
    )
    from diffusify.processors.registry import Registry, default_registry
    from diffusify.runtime.events import JsonEvents, ProgressDisplay
    from diffusify.runtime.handle import Run
    from diffusify.runtime.tuning import tune_process

__version__ = "0.1.0"

_EXPORTS = {
    "diffusify.api": ("check", "plan", "run", "start", "validate"),
    "diffusify.core.errors": ("DiffusifyError", "Interrupted", "PipelineError", "RecipeError", "UsageError"),
    "diffusify.core.frame": ("Frame", "Window"),
    "diffusify.core.problems": ("Problem",),
    "diffusify.core.stream": ("ColorInfo", "Origin", "StreamInfo"),
    "diffusify.processors.base": ("Params", "PlanContext", "Port", "Processor", "Resources", "RunOptions", "Segment",
                                  "SinkResult", "StreamError", "Temporal"),
    "diffusify.processors.registry": ("Registry", "default_registry"),
    "diffusify.runtime.events": ("JsonEvents", "ProgressDisplay"),
    "diffusify.runtime.handle": ("Run",),
    "diffusify.runtime.tuning": ("tune_process",),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "ColorInfo",
    "DiffusifyError",
    "Frame",
    "Interrupted",
    "JsonEvents",
    "Origin",
    "Params",
    "PipelineError",
    "PlanContext",
    "Port",
    "Problem",
    "Processor",
    "ProgressDisplay",
    "RecipeError",
    "Registry",
    "Resources",
    "Run",
    "RunOptions",
    "Segment",
    "SinkResult",
    "StreamError",
    "StreamInfo",
    "Temporal",
    "UsageError",
    "Window",
    "__version__",
    "check",
    "default_registry",
    "plan",
    "run",
    "start",
    "tune_process",
    "validate",
]




def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'diffusify' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
