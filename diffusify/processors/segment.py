"""Segmentation: ``segment`` turns each frame into a mask of chosen classes, with a transformers semantic
segmentation model (SegFormer, UPerNet, DPT, BEiT, MobileViT... anything ``AutoModelForSemanticSegmentation``
loads), by local folder or Hub id.

The frame is prepared as the model's image processor describes (its size, mean and std), on the node's device,
without a round trip through PIL; the class scores are resized back to the frame bilinearly and turned into
probabilities (softmax over the classes); the mask is the summed probability of the chosen classes, soft or
thresholded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import Field

from diffusify.core.problems import did_you_mean
from diffusify.core.stream import StreamInfo
from diffusify.processors.base import ModelRef, Params, PlanContext, Processor, Resources, StreamError

if TYPE_CHECKING:
    import torch

    from diffusify.core.frame import Frame


class SegmentParams(Params):
    model: ModelRef = Field(description="A transformers semantic segmentation model: a local folder (its "
                                        "config.json names the classes) or a Hub id.")
    classes: list[str] = Field(default_factory=lambda: ["person"], min_length=1,
                               description="Class names kept in the mask, as the model's config names them.")
    threshold: float | None = Field(
        None, ge=0, le=1, description="Make the mask hard at this probability; empty keeps soft probabilities.")


def _labels(model: str) -> dict[int, str] | None:
    """The class names of a local model folder (its config.json), None when not local."""
    config = os.path.join(model, "config.json")
    if not os.path.isfile(config):
        return None
    try:
        with open(config, encoding="utf-8") as fh:
            raw = json.load(fh).get("id2label") or {}
        return {int(k): str(v) for k, v in raw.items()}
    except (OSError, ValueError, AttributeError) as e:
        raise StreamError(f"{config}: cannot read the class names ({e})", param="model") from None


class Segment(Processor):
    """Segment each frame into a mask of the chosen classes (summed class probabilities, soft or thresholded).

    Input: ``(3, H, W)`` float32 RGB in [0, 1]. Output: ``(1, H, W)`` float32 in [0, 1], a ``mask`` stream with the
    input's size, index and time.
    """

    type_name = "segment"
    requires = ("transformers",)
    extra = "segment"
    Params = SegmentParams
    resources = Resources(device="gpu", heavy=True)

    @classmethod
    def infer_stream(cls, params: SegmentParams, inputs: Mapping[str, StreamInfo],
                     ctx: PlanContext) -> StreamInfo | None:
        labels = _labels(params.model)
        if labels is not None:
            names = list(labels.values())
            for c in params.classes:
                if c not in names:
                    raise StreamError(f"the model has no class '{c}'{did_you_mean(c, names)} (its classes: "
                                      f"{', '.join(names[:40])}{'...' if len(names) > 40 else ''})", param="classes")
        return inputs["input"].replace(channels=1, kind="mask")

    def setup(self) -> None:
        import torch
        from transformers import AutoConfig, AutoImageProcessor, AutoModelForSemanticSegmentation

        dev = self._torch_device()
        model = self.params.model
        self.net = AutoModelForSemanticSegmentation.from_pretrained(model).eval().to(dev)
        config = AutoConfig.from_pretrained(model)
        names = {str(v): int(k) for k, v in config.id2label.items()}
        missing = [c for c in self.params.classes if c not in names]
        if missing:
            raise StreamError(f"the model has no class '{missing[0]}'{did_you_mean(missing[0], names)}",
                              param="classes")
        self.keep = torch.tensor([names[c] for c in self.params.classes], device=dev)
        proc = AutoImageProcessor.from_pretrained(model)
        size = getattr(proc, "size", None) or {}
        self.size = (size["height"], size["width"]) if "height" in size else None
        normalize = getattr(proc, "do_normalize", True)
        mean = getattr(proc, "image_mean", None) if normalize else None
        std = getattr(proc, "image_std", None) if normalize else None
        self.mean = torch.tensor(mean, device=dev).view(1, -1, 1, 1) if mean is not None else None
        self.std = torch.tensor(std, device=dev).view(1, -1, 1, 1) if std is not None else None

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """The ``(1, 3, h, w)`` network input for a ``(3, H, W)`` frame in [0, 1], as the image processor says."""
        from torch.nn import functional as F

        y = x[None].float()
        if self.size is not None:
            y = F.interpolate(y, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        if self.mean is not None and self.std is not None:
            y = (y - self.mean) / self.std
        return y

    def _process(self, frames: Mapping[str, Frame]) -> Any:
        from torch.nn import functional as F

        x = frames["input"].data
        logits = self.net(pixel_values=self.prepare(x)).logits
        logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        mask = logits.softmax(dim=1)[0].index_select(0, self.keep).sum(0, keepdim=True).clamp_(0, 1)
        if self.params.threshold is not None:
            mask = (mask >= self.params.threshold).to(mask.dtype)
        return mask
