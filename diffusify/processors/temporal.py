"""Temporal processors: ``interpolate.rife`` (frame interpolation), ``scene.detect``, ``dedup``.

Their parameters are defined so recipes validate; running them is not implemented yet.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from diffusify.core.stream import StreamInfo
from diffusify.processors.base import ModelRef, Params, PlanContext, Processor, Resources, Temporal


class InterpolateParams(Params):
    model: ModelRef = Field(description="RIFE model file.")
    multiplier: int = Field(2, ge=2, le=16, description="Output frames per input frame.")
    scene_threshold: float = Field(0.3, ge=0, le=1, description="Do not interpolate across scene changes above this.")


class Interpolate(Processor):
    """Frame interpolation with a RIFE-family model, exact output timestamps."""

    type_name = "interpolate.rife"
    Params = InterpolateParams
    temporal = Temporal.WINDOW
    window = (0, 1)
    resources = Resources(device="gpu", max_replicas=1, heavy=True)
    implemented = False

    @classmethod
    def infer_stream(cls, params: InterpolateParams, inputs: Mapping[str, StreamInfo],
                     ctx: PlanContext) -> StreamInfo | None:
        src = inputs["input"]
        frames = None if src.frames is None else (src.frames - 1) * params.multiplier + 1
        return src.replace(fps=src.fps * params.multiplier, frames=frames, vfr=False)


class SceneDetectParams(Params):
    threshold: float = Field(0.3, ge=0, le=1, description="Histogram distance that marks a scene change.")


class SceneDetect(Processor):
    """Mark scene changes in frame metadata."""

    type_name = "scene.detect"
    Params = SceneDetectParams
    temporal = Temporal.ORDERED
    resources = Resources(device="any", max_replicas=1)
    implemented = False


class DedupParams(Params):
    threshold: float = Field(0.002, ge=0, le=1, description="Mean absolute difference below which a frame is a duplicate.")


class Dedup(Processor):
    """Drop duplicate frames, keeping timestamps."""

    type_name = "dedup"
    Params = DedupParams
    temporal = Temporal.ORDERED
    resources = Resources(device="any", max_replicas=1)
    implemented = False

    @classmethod
    def infer_stream(cls, params: DedupParams, inputs: Mapping[str, StreamInfo],
                     ctx: PlanContext) -> StreamInfo | None:
        return inputs["input"].replace(frames=None, vfr=True)
