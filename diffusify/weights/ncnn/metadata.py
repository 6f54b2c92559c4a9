"""The ``diffusify.*`` metadata of converted model files, read at run time: post-scale and pre-padding.

This module must stay light: the run path imports it to read a model's post-scale without loading the
importer (parser, matchers, interpreter, converter).
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from diffusify.weights.errors import WeightsError

if TYPE_CHECKING:
    import torch

META_PREFIX = "diffusify."

_RESIZE_MODES = {1: "nearest", 2: "bilinear", 3: "bicubic"}


@dataclass(frozen=True)
class ModelMetadata:
    """The ``diffusify.*`` metadata of a converted model file.

    Attributes:
        post_scale: resize factor to apply after the network, None when there is none.
        post_resize: the resize mode of that step (``bicubic``, ``bilinear``, ``nearest``).
        pre_pad: mirror padding in pixels to add around a frame before the network (0: none).
        architecture: spandrel architecture id recorded at conversion, None when unknown.
        scale: network scale recorded at conversion, None when unknown.
        raw: all string metadata of the file.
    """

    post_scale: float | None = None
    post_resize: str | None = None
    pre_pad: int = 0
    architecture: str | None = None
    scale: int | None = None
    raw: dict[str, str] = field(default_factory=dict)

    @property
    def effective_scale(self) -> float | None:
        """Network scale times post-scale, None when the network scale is unknown."""
        if self.scale is None:
            return None
        return self.scale * (self.post_scale if self.post_scale is not None else 1.0)


def _safetensors_metadata(path: Path) -> dict[str, str]:
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
            if len(head) != 8:
                raise WeightsError(f"{path} is not a safetensors file (too short)")
            (length,) = struct.unpack("<Q", head)
            if length > 100_000_000:
                raise WeightsError(f"{path} is not a safetensors file (header length {length})")
            header = json.loads(fh.read(length))
    except OSError as exc:
        raise WeightsError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError):
        raise WeightsError(f"{path} is not a safetensors file (bad header)") from None
    meta = header.get("__metadata__") or {}
    return {str(k): str(v) for k, v in meta.items()}


def read_metadata(path: str | Path) -> ModelMetadata:
    """Read the conversion metadata of a model file.

    Files other than ``.safetensors`` (``.pth``, ``.ckpt``...) carry none; they get the defaults (no
    post-scale, no pre-padding).

    Args:
        path: the model file.

    Returns:
        The metadata.

    Raises:
        WeightsError: the file is unreadable, or a ``.safetensors`` file with a malformed header or
            malformed ``diffusify.*`` values.
    """
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        return ModelMetadata()
    raw = _safetensors_metadata(path)
    try:
        post_scale = float(raw["diffusify.post_scale"]) if "diffusify.post_scale" in raw else None
        pre_pad = int(raw.get("diffusify.pre_pad", "0"))
        scale = int(raw["diffusify.scale"]) if "diffusify.scale" in raw else None
    except ValueError as exc:
        raise WeightsError(f"{path}: malformed diffusify metadata ({exc})") from None
    if post_scale is not None and not (0.0 < post_scale < 64.0):
        raise WeightsError(f"{path}: diffusify.post_scale {post_scale} is out of range")
    post_resize = raw.get("diffusify.post_resize", "bicubic" if post_scale is not None else None)
    if post_resize is not None and post_resize not in _RESIZE_MODES.values():
        raise WeightsError(f"{path}: unknown diffusify.post_resize {post_resize!r}")
    return ModelMetadata(
        post_scale=post_scale,
        post_resize=post_resize if post_scale is not None else None,
        pre_pad=pre_pad,
        architecture=raw.get("diffusify.architecture"),
        scale=scale,
        raw=raw,
    )


def read_post_scale(path: str | Path) -> float | None:
    """The resize factor to apply after the network of a converted model, None when there is none.

    The model's effective scale is ``network scale x post_scale`` (``4 x 0.5`` for
    ``realesr-animevideov3-x2``).

    Args:
        path: the model file.

    Returns:
        The post-scale factor, or None.
    """
    return read_metadata(path).post_scale


def apply_post_scale(image: torch.Tensor, post_scale: float, mode: str = "bicubic") -> torch.Tensor:
    """Resize a network output by ``post_scale`` the way ncnn's Interp layer does.

    Apply it to the *unclamped* network output (``descriptor.model(x)``), then clamp: the ncnn graph
    resizes before the runtime clamps to 8 bits, and the cubic kernel's overshoot at highlights matters
    (clamping first, as calling a spandrel descriptor does, drops the agreement with ncnn from about 91 dB
    to about 67 dB PSNR).

    ncnn resizes with half-pixel centres (``align_corners=False``), the cubic kernel with ``a = -0.75``,
    clamped borders and no antialiasing: the same as :func:`torch.nn.functional.interpolate` with those
    settings. The output size is ``floor(size * post_scale)``.

    Args:
        image: ``(N, C, H, W)`` or ``(C, H, W)`` float tensor.
        post_scale: the factor, e.g. 0.5.
        mode: ``bicubic``, ``bilinear`` or ``nearest``.

    Returns:
        The resized tensor (not clamped; clamp when converting to pixels).
    """
    import torch.nn.functional as F

    if mode not in _RESIZE_MODES.values():
        raise WeightsError(f"unknown post-resize mode {mode!r} (use bicubic, bilinear or nearest)")
    squeeze = image.dim() == 3
    x = image.unsqueeze(0) if squeeze else image
    h, w = x.shape[-2:]
    size = (int(math.floor(h * post_scale + 1e-6)), int(math.floor(w * post_scale + 1e-6)))
    kwargs: dict[str, Any] = {} if mode == "nearest" else {"align_corners": False}
    y = F.interpolate(x, size=size, scale_factor=None, mode=mode, **kwargs)
    return y.squeeze(0) if squeeze else y

