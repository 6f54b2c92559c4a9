"""Segmentation: ``segment`` turns each frame into a mask of chosen classes.

Three kinds of model, told apart without importing anything heavy:

- the bundled MediaPipe selfie segmentation models (``.tflite``, run by the ``ai-edge-litert`` runtime): a
  foreground probability, classes ``foreground`` and ``background``;
- transformers semantic segmentation models (SegFormer, UPerNet, DPT, BEiT, MobileViT... anything
  ``AutoModelForSemanticSegmentation`` loads): class probabilities per pixel (softmax over the classes);
- transformers query-based instance/panoptic models (Mask2Former, MaskFormer, OneFormer, DETR, EoMT: anything
  ``AutoModelForUniversalSegmentation`` loads): each query is a segment with a class distribution and a mask. The
  mask is either the share of the chosen classes in every pixel (semantic reading) or, with ``instances``, the
  union of the best-scoring segments of those classes (one person of a crowd: ``instances: 1``).

The frame is prepared as the model says (its size, mean and std), on the node's device, without a round trip
through PIL; the result is resized back to the frame bilinearly, soft or thresholded.
"""

from __future__ import annotations

import json
import math
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

BUNDLED = "selfie-segmentation"
# transformers model types whose heads are queries (a class distribution and a mask each)
QUERY_MODELS = frozenset({"detr", "eomt", "eomt_dinov3", "mask2former", "maskformer", "oneformer", "videomt"})
LITERT_LABELS = {0: "background", 1: "foreground"}


class SegmentParams(Params):
    model: ModelRef | None = Field(
        None, description="A segmentation model: a .tflite selfie model or its name from weights/models.yaml "
                          "(selfie-segmentation, selfie-segmentation-landscape), or a transformers model folder "
                          "or Hub id (semantic, instance or panoptic); empty uses the bundled selfie model.")
    classes: list[str] | None = Field(
        None, min_length=1, description="Class names kept in the mask, as the model names them; empty: "
                                        "'foreground' for the selfie models, 'person' for the others.")
    threshold: float | None = Field(
        None, ge=0, le=1, description="Make the mask hard at this probability; empty keeps soft probabilities.")
    instances: int | None = Field(
        None, ge=1, le=1000, description="Instance/panoptic models only: keep the N best-scoring segments of the "
                                         "chosen classes (their union); empty keeps every pixel of those classes.")
    min_score: float = Field(
        0.5, ge=0, le=1, description="With instances: the least class score a segment needs to be kept.")


def _model_path(name: str | None) -> str:
    """A file or folder for ``name``: the path itself, a manifest entry's file, or the bundled selfie model; a
    Hub id comes back unchanged."""
    name = name or BUNDLED
    if os.path.exists(name):
        return name
    from diffusify.weights.manifest import resolve_file

    return resolve_file(name) or name


def _kind(path: str) -> str:
    """``litert``, ``semantic``, ``query`` or ``unknown`` (a Hub id not on this machine)."""
    if path.lower().endswith(".tflite"):
        return "litert"
    config = os.path.join(path, "config.json")
    if not os.path.isfile(config):
        return "unknown"
    return "query" if str(_config(path).get("model_type")) in QUERY_MODELS else "semantic"


def _config(path: str) -> dict[str, Any]:
    config = os.path.join(path, "config.json")
    try:
        with open(config, encoding="utf-8") as fh:
            raw = json.load(fh)
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        return raw
    except (OSError, ValueError) as e:
        raise StreamError(f"{config}: cannot read the model's configuration ({e})", param="model") from None


def _labels(path: str, kind: str) -> dict[int, str] | None:
    """The class names of a model (None for a Hub id not on this machine)."""
    if kind == "litert":
        return dict(LITERT_LABELS)
    if kind == "unknown":
        return None
    try:
        return {int(k): str(v) for k, v in (_config(path).get("id2label") or {}).items()}
    except (ValueError, AttributeError) as e:
        raise StreamError(f"{path}: cannot read the class names ({e})", param="model") from None


def _classes(params: SegmentParams, kind: str) -> list[str]:
    return list(params.classes or (["foreground"] if kind == "litert" else ["person"]))


def _class_ids(labels: Mapping[int, str], classes: list[str]) -> list[int]:
    names = {v: k for k, v in labels.items()}
    for c in classes:
        if c not in names:
            shown = list(names)
            raise StreamError(f"the model has no class '{c}'{did_you_mean(c, shown)} (its classes: "
                              f"{', '.join(shown[:40])}{'...' if len(shown) > 40 else ''})", param="classes")
    return [names[c] for c in classes]


def _input_size(size: Mapping[str, int] | None, height: int, width: int, divisor: int) -> tuple[int, int]:
    """The network input size for a ``height`` x ``width`` frame, as an image processor's ``size`` says
    (``height``/``width``, or ``shortest_edge`` capped by ``longest_edge``), rounded up to ``divisor``."""
    size = size or {}
    if "height" in size and "width" in size:
        h, w = int(size["height"]), int(size["width"])
    elif "shortest_edge" in size:
        scale = size["shortest_edge"] / min(height, width)
        if size.get("longest_edge") and max(height, width) * scale > size["longest_edge"]:
            scale = size["longest_edge"] / max(height, width)
        h, w = max(1, round(height * scale)), max(1, round(width * scale))
    else:
        h, w = height, width
    if divisor > 1:
        h, w = math.ceil(h / divisor) * divisor, math.ceil(w / divisor) * divisor
    return h, w


class Segment(Processor):
    """Segment each frame into a mask of the chosen classes (a probability, soft or thresholded).

    Input: ``(3, H, W)`` float32 RGB in [0, 1]. Output: ``(1, H, W)`` float32 in [0, 1], a ``mask`` stream with the
    input's size, index and time, on the input's device.
    """

    type_name = "segment"
    requires = ("transformers",)
    extra = "segment"
    Params = SegmentParams
    resources = Resources(device="gpu", heavy=True)

    @classmethod
    def requirements(cls, params: Any = None) -> tuple[str, ...]:
        litert = params is not None and _kind(_model_path(params.model)) == "litert"
        return ("ai_edge_litert",) if litert else cls.requires

    @classmethod
    def infer_stream(cls, params: SegmentParams, inputs: Mapping[str, StreamInfo],
                     ctx: PlanContext) -> StreamInfo | None:
        path = _model_path(params.model)
        if params.model is None and not os.path.isfile(path):
            raise StreamError(f"the bundled model {BUNDLED} is missing from the weights folder; reinstall, or "
                              "name a model", param="model")
        kind = _kind(path)
        labels = _labels(path, kind)
        if labels is not None:
            _class_ids(labels, _classes(params, kind))
        if params.instances is not None and kind in ("litert", "semantic"):
            ctx.error(f"instances needs an instance or panoptic model (Mask2Former, MaskFormer, OneFormer, DETR, "
                      f"EoMT); {params.model or BUNDLED} gives one probability per class and pixel: remove "
                      "instances", param="instances")
        return inputs["input"].replace(channels=1, kind="mask")

    def setup(self) -> None:
        path = _model_path(self.params.model)
        self.kind = _kind(path)
        if self.kind == "litert":
            self._setup_litert(path)
        else:
            self._setup_transformers(path)

    # ---- MediaPipe selfie models (LiteRT) ----------------------------------------------------------------------
    def _setup_litert(self, path: str) -> None:
        import torch
        from ai_edge_litert.interpreter import Interpreter

        try:
            # As many threads as the engine gives this node's torch kernels (its policy for heavy and cheap
            # nodes, see Engine._worker_threads): on an idle 2-core machine 2 threads ran the model 1.2x faster
            # than 1, under outside load 1 thread was faster. The models' custom op
            # (Convolution2DTransposeBias) resolves only with the default XNNPACK delegate.
            self.interpreter = Interpreter(model_path=path, num_threads=max(1, torch.get_num_threads()))
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise StreamError(f"{path}: LiteRT cannot load this model ({str(e).splitlines()[0]})",
                              param="model") from None
        inp, out = self.interpreter.get_input_details()[0], self.interpreter.get_output_details()[0]
        shape = tuple(int(v) for v in inp["shape"])
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 3 or tuple(out["shape"])[-1] != 1:
            raise StreamError(f"{path}: expected a 1xHxWx3 image in and a 1xHxWx1 mask out (got {shape} -> "
                              f"{tuple(out['shape'])})", param="model")
        self._in, self._out = inp["index"], out["index"]
        self.size = (shape[1], shape[2])
        self.keep = _class_ids(LITERT_LABELS, _classes(self.params, "litert"))

    def _litert(self, x: torch.Tensor) -> torch.Tensor:
        """Foreground probability ``(1, 1, h, w)`` at the model's size for a ``(3, H, W)`` frame."""
        import numpy as np
        import torch
        from torch.nn import functional as F

        y = F.interpolate(x[None].float().cpu(), size=self.size, mode="bilinear", align_corners=False,
                          antialias=True)
        self.interpreter.set_tensor(self._in, np.ascontiguousarray(y.permute(0, 2, 3, 1).numpy()))
        self.interpreter.invoke()
        fg = torch.from_numpy(self.interpreter.get_tensor(self._out).copy()).permute(0, 3, 1, 2)
        return fg.to(x.device)

    # ---- transformers ------------------------------------------------------------------------------------------
    def _setup_transformers(self, path: str) -> None:
        import torch
        from transformers import AutoConfig, AutoImageProcessor

        dev = self._torch_device()
        config = AutoConfig.from_pretrained(path)
        self.kind = "query" if config.model_type in QUERY_MODELS else "semantic"
        if self.kind == "query":
            from transformers import AutoModelForUniversalSegmentation as Auto
        else:
            from transformers import AutoModelForSemanticSegmentation as Auto
        if self.params.instances is not None and self.kind != "query":
            raise StreamError(f"instances needs an instance or panoptic model; {path} is a semantic one",
                              param="instances")
        self.net = Auto.from_pretrained(path).eval().to(dev)
        labels = {int(k): str(v) for k, v in config.id2label.items()}
        self.keep = torch.tensor(_class_ids(labels, _classes(self.params, self.kind)), device=dev)
        proc = AutoImageProcessor.from_pretrained(path)
        self.size_rule = dict(getattr(proc, "size", None) or {})
        self.divisor = int(getattr(proc, "size_divisor", 0) or 0)
        normalize = getattr(proc, "do_normalize", True)
        mean = getattr(proc, "image_mean", None) if normalize else None
        std = getattr(proc, "image_std", None) if normalize else None
        self.mean = torch.tensor(mean, device=dev).view(1, -1, 1, 1) if mean is not None else None
        self.std = torch.tensor(std, device=dev).view(1, -1, 1, 1) if std is not None else None
        self.extra_inputs: dict[str, Any] = {}
        if config.model_type == "oneformer":
            # OneFormer conditions on a task prompt; its tokens do not depend on the image, so make them once
            import numpy as np
            from transformers import AutoProcessor

            task = "instance" if self.params.instances is not None else "semantic"
            prompt = AutoProcessor.from_pretrained(path)(images=[np.zeros((32, 32, 3), np.uint8)],
                                                         task_inputs=[task], return_tensors="pt")
            self.extra_inputs["task_inputs"] = prompt["task_inputs"].to(dev)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """The ``(1, 3, h, w)`` network input for a ``(3, H, W)`` frame in [0, 1], as the image processor says."""
        from torch.nn import functional as F

        y = x[None].float()
        size = _input_size(self.size_rule, y.shape[-2], y.shape[-1], self.divisor)
        if size != tuple(y.shape[-2:]):
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False, antialias=True)
        if self.mean is not None and self.std is not None:
            y = (y - self.mean) / self.std
        return y

    def _semantic(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(pixel_values=self.prepare(x)).logits
        return logits.softmax(dim=1).index_select(1, self.keep).sum(1, keepdim=True)

    def _query(self, x: torch.Tensor) -> torch.Tensor:
        """The chosen classes' mask at the mask head's size, ``(1, 1, h, w)``: their share of every pixel, or the
        union of the best segments of those classes."""
        import torch

        out = self.net(pixel_values=self.prepare(x), **self.extra_inputs)
        class_logits = getattr(out, "class_queries_logits", None)
        class_logits = out.logits if class_logits is None else class_logits
        mask_logits = getattr(out, "masks_queries_logits", None)
        mask_logits = out.pred_masks if mask_logits is None else mask_logits
        probs = class_logits[0].softmax(-1)[:, :-1]  # (Q, C): the last class is "no object"
        masks = mask_logits[0].sigmoid()  # (Q, h, w)
        if self.params.instances is None:
            per_class = torch.einsum("qc,qhw->chw", probs, masks)
            share = per_class.index_select(0, self.keep).sum(0) / per_class.sum(0).clamp_min(1e-6)
            return share[None, None]
        scores, labels = probs.max(-1)
        chosen = torch.isin(labels, self.keep) & (scores >= self.params.min_score)
        order = torch.argsort(torch.where(chosen, scores, -1.0), descending=True)[: self.params.instances]
        order = order[chosen[order]]
        if order.numel() == 0:
            return masks.new_zeros((1, 1, *masks.shape[-2:]))
        return masks.index_select(0, order).amax(0)[None, None]

    def _process(self, frames: Mapping[str, Frame]) -> Any:
        from torch.nn import functional as F

        x = frames["input"].data
        if self.kind == "litert":
            fg = self._litert(x)
            if len(self.keep) == 2:
                mask = fg.new_ones(fg.shape)
            else:
                mask = fg if self.keep[0] == 1 else 1 - fg
        else:
            mask = self._query(x) if self.kind == "query" else self._semantic(x)
        mask = F.interpolate(mask, size=x.shape[-2:], mode="bilinear", align_corners=False)[0].clamp_(0, 1)
        if self.params.threshold is not None:
            mask = (mask >= self.params.threshold).to(mask.dtype)
        return mask
