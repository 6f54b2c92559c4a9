"""The unit that flows on every edge."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass(slots=True)
class Frame:
    """One frame on an edge.

    Attributes:
        index: 0-based frame index in the stream (merges join on it).
        pts: presentation time in seconds, exact.
        data: ``(C, H, W)`` float32 tensor in [0, 1], RGB (or 1 channel for masks), on any device.
            Consumers must treat it as read-only: a fan-out hands the same tensor to every consumer.
        meta: per-frame metadata (``scene_change``, ``source_index``...).
    """

    index: int
    pts: Fraction
    data: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return self.data.element_size() * self.data.nelement()

    def with_data(self, data: torch.Tensor) -> Frame:
        """A new frame with the same index, time and metadata."""
        return Frame(self.index, self.pts, data, dict(self.meta))
