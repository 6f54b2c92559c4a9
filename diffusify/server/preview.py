"""The preview tap: a sink the worker attaches to one node of a job, writing that node's latest frame as a small
JPEG at most about once a second (atomically: a reader never sees half a file)."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from pydantic import Field

from diffusify.processors.base import Params, Port, Processor, Resources, SinkResult, Temporal

if TYPE_CHECKING:
    from diffusify.core.frame import Frame

PREVIEW_TYPE = "server.preview"
PREVIEW_NODE = "_server_preview"


class PreviewParams(Params):
    path: str = Field(description="The JPEG file to (re)write.")
    width: int = Field(320, ge=16, le=1920, description="The preview's width in pixels (height keeps the aspect).")
    interval: float = Field(1.0, ge=0.1, description="Seconds between two previews.")


class PreviewSink(Processor):
    """Write the latest frame, small, as a JPEG: the job server's preview of a running job.

    Input: ``(C, H, W)`` (C = 3 RGB or 1 for masks), float in [0, 1] or integer samples, on any device. Only
    the frames it keeps are moved to the CPU, so a GPU pipeline pays one download a second, not one per frame.
    """

    type_name = PREVIEW_TYPE
    Params = PreviewParams
    is_sink = True
    temporal = Temporal.ORDERED
    resources = Resources(device="any", max_replicas=1)
    inputs = (Port("input", "any"),)

    def setup(self) -> None:
        self._last = 0.0

    def write(self, frame: Frame) -> None:
        self.frames_done += 1
        now = time.monotonic()
        if now - self._last < self.params.interval:
            return
        self._last = now
        self._save(frame.data)

    def _save(self, data: Any) -> None:
        import torch
        from PIL import Image

        x = data.detach()
        if x.dim() == 3 and x.shape[0] not in (1, 3, 4) and x.shape[-1] in (1, 3, 4):
            x = x.permute(2, 0, 1)  # samples kept as (H, W, C)
        x = x[:3].float()
        if not data.is_floating_point():
            x = x / float(torch.iinfo(data.dtype).max)
        if x.shape[0] == 1:
            x = x.expand(3, -1, -1)
        h, w = x.shape[-2:]
        width = min(self.params.width, w)
        height = max(1, round(h * width / w))
        x = torch.nn.functional.interpolate(x.unsqueeze(0), size=(height, width), mode="area")[0]
        pixels = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        tmp = f"{self.params.path}.tmp"
        Image.fromarray(pixels).save(tmp, format="JPEG", quality=80)
        os.replace(tmp, self.params.path)

    def finish(self, *, aborted: bool) -> SinkResult:
        return SinkResult(None, self.frames_done)
