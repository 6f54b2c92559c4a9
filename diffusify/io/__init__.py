"""Video and image I/O through the bundled ffmpeg binary.

Importing this package stays light (no torch, no numpy): probing and listing are available at validation time,
and the classes that produce or consume tensors are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from diffusify.io.codecs import CODEC_PRESETS, CONTAINERS, CodecPreset
from diffusify.io.errors import MediaError
from diffusify.io.ffmpeg import available_encoders, ffmpeg_exe
from diffusify.io.images import list_images, probe_images
from diffusify.io.probe import MediaInfo, MediaStream, clear_probe_cache, probe

if TYPE_CHECKING:
    from diffusify.io.images import ImageSequenceReader, ImageSequenceWriter
    from diffusify.io.reader import VideoReader
    from diffusify.io.writer import VideoWriter, WriteResult

__all__ = [
    "CODEC_PRESETS",
    "CONTAINERS",
    "CodecPreset",
    "ImageSequenceReader",
    "ImageSequenceWriter",
    "MediaError",
    "MediaInfo",
    "MediaStream",
    "VideoReader",
    "VideoWriter",
    "WriteResult",
    "available_encoders",
    "clear_probe_cache",
    "ffmpeg_exe",
    "list_images",
    "probe",
    "probe_images",
]

_LAZY = {
    "VideoReader": "diffusify.io.reader",
    "VideoWriter": "diffusify.io.writer",
    "WriteResult": "diffusify.io.writer",
    "ImageSequenceReader": "diffusify.io.images",
    "ImageSequenceWriter": "diffusify.io.images",
}


def __getattr__(name: str) -> Any:
    # Deferred so that "import diffusify.io" does not pull in torch.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
