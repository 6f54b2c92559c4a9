"""Synthetic ends of a pipeline for tests, previews and benchmarks: the ``pattern`` source (colour bars,
gradients, moving shapes, noise) and the ``discard`` sink."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Mapping
from fractions import Fraction
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from diffusify.core.stream import ColorInfo, StreamInfo
from diffusify.processors.base import (
    FrameRate,
    NoParams,
    Params,
    PlanContext,
    Port,
    Processor,
    Resources,
    SegmentRule,
    SinkResult,
    Temporal,
    parse_fps,
)

if TYPE_CHECKING:
    import torch

    from diffusify.core.frame import Frame


class PatternParams(Params):
    kind: Literal["bars", "gradient", "moving", "noise", "solid"] = Field(
        "moving", description="What to draw; solid: one colour (see color), e.g. a background to composite over.")
    color: str = Field("#000000", pattern=r"^#[0-9A-Fa-f]{6}$", description="The colour of kind solid, as #RRGGBB.")
    width: int = Field(640, ge=2, le=16384, description="Frame width in pixels.")
    height: int = Field(360, ge=2, le=16384, description="Frame height in pixels.")
    fps: FrameRate = Field("25", description="Frame rate, e.g. 25 or 30000/1001.")
    frames: int = Field(100, ge=1, description="Number of frames.")
    seed: int = Field(0, description="Seed for the noise pattern.")


class TestPattern(Processor):
    """Generate a synthetic test pattern (bars, gradient, moving shapes or noise).

    Output: ``(3, H, W)`` float32 in [0, 1] on its consumers' device, deterministic for a given seed.
    """

    type_name = "pattern"
    Params = PatternParams
    inputs = ()
    temporal = Temporal.ORDERED
    resources = Resources(device="cpu", max_replicas=1)

    @classmethod
    def infer_stream(cls, params: PatternParams, inputs: Mapping[str, StreamInfo],
                     ctx: PlanContext) -> StreamInfo | None:
        first, stop = ctx.source_range(0, params.frames)
        frames = (stop or params.frames) - first
        frames = frames if ctx.max_frames is None else min(frames, ctx.max_frames)
        return StreamInfo(width=params.width, height=params.height, fps=parse_fps(params.fps), frames=frames,
                          color=ColorInfo("bt709", "tv", "bt709", "bt709"))

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        import torch

        from diffusify.core.frame import Frame

        stream = self.output_stream
        assert stream is not None and stream.frames is not None
        device = torch.device(self.output_device)
        segment = self.options.segment
        first = segment.clip(0, self.params.frames)[0] if segment else 0
        for i in range(stream.frames):
            if stop.is_set():
                break
            # drawn as frame `first + i` of the whole pattern; times restart at the segment's first frame
            yield Frame(i, Fraction(i) / stream.fps, self._draw(first + i, stream.width, stream.height, device))

    def _draw(self, i: int, w: int, h: int, device: torch.device) -> torch.Tensor:
        """Frame ``i``, drawn on ``device`` (noise is drawn on the CPU, so every device gets the same values)."""
        import torch

        p = self.params
        if p.kind == "solid":
            rgb = torch.tensor([int(p.color[i:i + 2], 16) / 255 for i in (1, 3, 5)], device=device)
            return rgb.view(3, 1, 1).expand(3, h, w).contiguous()
        if p.kind == "bars":
            colors = torch.tensor([[.75, .75, .75], [.75, .75, 0], [0, .75, .75], [0, .75, 0], [.75, 0, .75],
                                   [.75, 0, 0], [0, 0, .75]], device=device)
            idx = (torch.arange(w, device=device) * 7 // w).clamp(max=6)
            return colors[idx].T.unsqueeze(1).expand(3, h, w).contiguous()
        if p.kind == "noise":
            g = torch.Generator().manual_seed(p.seed * 1_000_003 + i)
            return torch.rand(3, h, w, generator=g).to(device)
        y = torch.linspace(0, 1, h, device=device).view(h, 1).expand(h, w)
        x = torch.linspace(0, 1, w, device=device).view(1, w).expand(h, w)
        if p.kind == "gradient":
            return torch.stack([x, y, (x + y) / 2])
        t = i / max(float(self.output_stream.fps), 1.0)  # type: ignore[union-attr]
        cx, cy = 0.5 + 0.35 * math.cos(t * 1.3), 0.5 + 0.35 * math.sin(t * 0.9)
        disc = (((x - cx) * w / h) ** 2 + (y - cy) ** 2 < 0.02).float()
        base = torch.stack([x * 0.8, y * 0.6 + 0.2 * torch.sin(x * 20 + t * 3), 0.5 - 0.3 * x])
        return (base * (1 - disc) + disc).clamp(0, 1)


class NullSink(Processor):
    """Discard every frame (after waiting for its computation): measure a pipeline without encoding.

    Input: ``(C, H, W)`` float32 on any device.
    """

    type_name = "discard"
    Params = NoParams
    is_sink = True
    temporal = Temporal.ORDERED
    resources = Resources(device="any", max_replicas=1)
    inputs = (Port("input", "any"),)
    native = True

    @classmethod
    def torch_free(cls, params: NoParams, *, device: str, widen_output: bool,
                   inputs: Mapping[str, StreamInfo]) -> bool:
        return True

    @classmethod
    def segmenting(cls, params: NoParams, inputs: Mapping[str, StreamInfo],
                   output: StreamInfo | None) -> SegmentRule | str:
        return SegmentRule()

    def write(self, frame: Frame) -> None:
        if getattr(frame.data, "is_cuda", False):  # a decoder's numpy array is on the CPU
            import torch

            # wait for the kernels that produced it (issued before it was queued, on the device's default
            # stream) without downloading it: a 4K float frame is 100 MB, an encoder downloads 8-bit samples
            torch.cuda.current_stream(frame.data.device).synchronize()
        self.frames_done += 1

    def finish(self, *, aborted: bool) -> SinkResult:
        return SinkResult(None, self.frames_done)
