"""Segmentation: ``segment`` produces a mask stream for ``compose.mask``."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from diffusify.core.stream import StreamInfo
from diffusify.processors.base import ModelRef, Params, PlanContext, Processor, Resources


class SegmentParams(Params):
    model: ModelRef = Field(description="A segmentation model (transformers folder or hub id).")
    labels: list[str] = Field(default_factory=lambda: ["person"], description="Classes kept in the mask.")
    threshold: float = Field(0.5, ge=0, le=1, description="Mask threshold.")


class Segment(Processor):
    """Segment each frame into a 1-channel mask in [0, 1]."""

    type_name = "segment"
    requires = ("transformers",)
    extra = "segment"
    Params = SegmentParams
    resources = Resources(device="gpu", heavy=True)
    implemented = False

    @classmethod
    def infer_stream(cls, params: SegmentParams, inputs: Mapping[str, StreamInfo],
                     ctx: PlanContext) -> StreamInfo | None:
        return inputs["input"].replace(channels=1, kind="mask")
