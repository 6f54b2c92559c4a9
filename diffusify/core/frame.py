"""The unit that flows on every edge, and the window of neighbours the framework gathers for temporal filters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass(slots=True)
class Frame:
    """One frame on an edge.

    Attributes:
        index: 0-based position on its edge. The engine numbers every edge densely (0, 1, 2...) in the order it
            delivers frames; merges join on it. A processor may leave it as it comes: the engine renumbers.
        pts: presentation time in seconds, exact. Processors that make new frames set it.
        data: ``(C, H, W)`` float32 tensor in [0, 1], RGB (or 1 channel for masks), on any device; or native
            ``uint8``/``uint16`` samples (see :mod:`diffusify.ops.samples`), which straight from a decoder on the
            CPU are a numpy array (so are the outputs of nodes that run without torch; other processors get
            tensors: their base class wraps the array without a copy).
            Consumers must treat it as read-only: a fan-out hands the same tensor to every consumer.
        meta: per-frame metadata (``scene_change``, ``source_index``...).
    """

    index: int
    pts: Fraction
    data: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

    def with_data(self, data: torch.Tensor) -> Frame:
        """A new frame with the same index, time and metadata."""
        return Frame(self.index, self.pts, data, dict(self.meta))

    def derive(self, data: torch.Tensor | None = None, *, pts: Fraction | None = None,
               meta: Mapping[str, Any] | None = None) -> Frame:
        """A new frame like this one with new data, time or metadata (``meta`` is merged into a copy)."""
        new_meta = dict(self.meta)
        if meta:
            new_meta.update(meta)
        return Frame(self.index, self.pts if pts is None else Fraction(pts),
                     self.data if data is None else data, new_meta)


@dataclass(frozen=True, slots=True)
class Window:
    """The frames around one input position, gathered by the framework for a ``window`` processor.

    ``sets[i]`` maps each input port to its frame; ``sets[before]`` is the centre. At the ends of the stream the
    first or last frame set is repeated to fill the window (as VapourSynth does), and ``padded_before`` /
    ``padded_after`` say how many entries are such repeats.

    Attributes:
        sets: ``before + 1 + after`` frame sets, oldest first.
        before: how many sets precede the centre.
        position: the centre's 0-based position in the node's input.
        padded_before: entries at the start that repeat the first frame set.
        padded_after: entries at the end that repeat the last frame set (> 0 only near the end of the stream).
    """

    sets: tuple[Mapping[str, Frame], ...]
    before: int
    position: int
    padded_before: int = 0
    padded_after: int = 0

    def at(self, offset: int, port: str = "input") -> Frame:
        """The frame ``offset`` positions from the centre (negative: earlier) on ``port``."""
        return self.sets[self.before + offset][port]

    @property
    def center(self) -> Mapping[str, Frame]:
        return self.sets[self.before]

    @property
    def is_last(self) -> bool:
        """The centre is the last frame of the stream (known for windows that look ahead, ``after >= 1``)."""
        return self.padded_after > 0
