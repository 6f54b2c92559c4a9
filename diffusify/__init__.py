"""Diffusify Engine: declarative video AI pipelines.

The public API is what this module exports; everything else is internal. Importing it is light (no torch).
"""

from __future__ import annotations

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

__version__ = "0.1.0"

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
    "Window",
    "UsageError",
    "__version__",
    "check",
    "default_registry",
    "plan",
    "run",
    "start",
    "validate",
]
