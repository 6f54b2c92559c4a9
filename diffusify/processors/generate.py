"""Generation sources (diffusers): ``generate.text2video`` and ``generate.image2video``.

Their parameters are defined so recipes validate; running them is not implemented yet.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from diffusify.core.stream import StreamInfo
from diffusify.processors.base import (
    FrameRate,
    ModelRef,
    Params,
    PlanContext,
    Processor,
    Resources,
    Temporal,
    parse_fps,
)


class TextToVideoParams(Params):
    model: ModelRef = Field(description="A local diffusers model folder or a hub id.")
    prompt: str = Field(description="What to generate.")
    negative_prompt: str = Field("", description="What to avoid.")
    width: int = Field(512, ge=64, le=4096, multiple_of=8, description="Frame width (multiple of 8).")
    height: int = Field(320, ge=64, le=4096, multiple_of=8, description="Frame height (multiple of 8).")
    frames: int = Field(16, ge=1, le=1024, description="Number of frames to generate.")
    fps: FrameRate = Field("8", description="Frame rate of the generated clip.")
    steps: int = Field(25, ge=1, le=500, description="Denoising steps.")
    guidance: float = Field(7.5, ge=0, le=50, description="Classifier-free guidance scale.")
    seed: int = Field(0, description="Random seed (the same seed gives the same clip).")
    precision: str = Field("auto", pattern="^(auto|fp32|fp16|bf16)$", description="Weights' precision.")


class TextToVideo(Processor):
    """Generate a clip from a text prompt with a diffusers text-to-video pipeline."""

    type_name = "generate.text2video"
    requires = ("diffusers", "transformers")
    extra = "generate"
    Params = TextToVideoParams
    inputs = ()
    temporal = Temporal.ORDERED
    resources = Resources(device="gpu", max_replicas=1, heavy=True)
    implemented = False

    @classmethod
    def infer_stream(cls, params: TextToVideoParams, inputs: Mapping[str, StreamInfo],
                     ctx: PlanContext) -> StreamInfo | None:
        return StreamInfo(width=params.width, height=params.height, fps=parse_fps(params.fps), frames=params.frames)


class ImageToVideoParams(TextToVideoParams):
    strength: float = Field(1.0, ge=0, le=1, description="How far the clip may move away from the image.")


class ImageToVideo(Processor):
    """Animate each input image with a diffusers image-to-video pipeline."""

    type_name = "generate.image2video"
    requires = ("diffusers", "transformers")
    extra = "generate"
    Params = ImageToVideoParams
    temporal = Temporal.ORDERED
    resources = Resources(device="gpu", max_replicas=1, heavy=True)
    implemented = False

    @classmethod
    def infer_stream(cls, params: ImageToVideoParams, inputs: Mapping[str, StreamInfo],
                     ctx: PlanContext) -> StreamInfo | None:
        return StreamInfo(width=params.width, height=params.height, fps=parse_fps(params.fps), frames=params.frames)
