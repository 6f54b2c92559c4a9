"""The ground floor: value types every layer shares (frames, stream info, problems, errors).

It imports nothing else of ours, so a plugin or a layer above can use it without pulling in any runtime.
"""

from __future__ import annotations

from diffusify.core.errors import DiffusifyError, Interrupted, PipelineError, RecipeError, UsageError
from diffusify.core.frame import Frame
from diffusify.core.problems import Problem, did_you_mean, sort_problems
from diffusify.core.stream import ColorInfo, Origin, StreamInfo

__all__ = [
    "ColorInfo",
    "DiffusifyError",
    "Frame",
    "Interrupted",
    "Origin",
    "PipelineError",
    "Problem",
    "RecipeError",
    "StreamInfo",
    "UsageError",
    "did_you_mean",
    "sort_problems",
]
