"""Diffusify Engine: declarative video AI pipelines.

The public API is what this module exports; everything else is internal. Importing it is light (no torch).
"""

from __future__ import annotations

from diffusify.errors import DiffusifyError, Interrupted, PipelineError, RecipeError, UsageError
from diffusify.graph.stream import ColorInfo, StreamInfo
from diffusify.pipeline import check, plan, run, validate
from diffusify.processors.base import Params, PlanContext, Processor, Resources, StreamError, Temporal
from diffusify.processors.registry import Registry, default_registry
from diffusify.runtime.events import JsonEvents, ProgressDisplay
from diffusify.spec.problems import Problem

__version__ = "0.1.0"

__all__ = [
    "ColorInfo",
    "DiffusifyError",
    "Interrupted",
    "JsonEvents",
    "Params",
    "PipelineError",
    "PlanContext",
    "Problem",
    "Processor",
    "ProgressDisplay",
    "RecipeError",
    "Registry",
    "Resources",
    "StreamError",
    "StreamInfo",
    "Temporal",
    "UsageError",
    "__version__",
    "check",
    "default_registry",
    "plan",
    "run",
    "validate",
]
