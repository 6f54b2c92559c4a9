"""Frames at their native depth: 8- or 16-bit samples (``uint8``/``uint16`` tensors) as decoded, and their widening
to float32 in [0, 1] where a processor computes.

Edges carry what the decoder produced until a node needs float (see ``Processor.native``); the widening happens
once, on the consumer's device, and is exact (``x / 255`` or ``x / 65535`` in float32, as a float-producing
reader would have made). Writers pack native samples straight into their bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the processor base imports this module at validation time, which must not import torch
    import torch

__all__ = ["is_native", "peak", "widen"]


def is_native(data: torch.Tensor) -> bool:
    """The tensor holds integer samples (native depth), not float values in [0, 1]."""
    return not data.is_floating_point()


def peak(data: torch.Tensor) -> float:
    """The largest sample value of a native tensor: 255 for ``uint8``, 65535 for ``uint16``."""
    return 255.0 if data.element_size() == 1 else 65535.0


def widen(data: torch.Tensor) -> torch.Tensor:
    """Float32 values in [0, 1] for native samples (a float tensor comes back as it is)."""
    if data.is_floating_point():
        return data
    return data.float().div_(peak(data))
