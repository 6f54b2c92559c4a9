"""The framework side of window processors: gather each position's neighbours, repeating the first and last
frame set at the stream's ends (as VapourSynth does), so that no processor keeps a buffer of its own."""

from __future__ import annotations

from collections.abc import Mapping

from diffusify.core.frame import Frame, Window


class WindowGatherer:
    """Turns a stream of frame sets into :class:`Window` objects, each as soon as its last neighbour arrived.

    Holds at most ``before + after + 1`` frame sets.
    """

    def __init__(self, before: int, after: int):
        self.before = before
        self.after = after
        self._sets: dict[int, Mapping[str, Frame]] = {}
        self._count = 0  # frame sets received
        self._next = 0  # the next centre to hand out

    def add(self, frames: Mapping[str, Frame]) -> list[Window]:
        """Take the next frame set; return the windows it completes (one, or none while the first ``after``
        sets arrive)."""
        self._sets[self._count] = frames
        self._count += 1
        out = []
        while self._next + self.after < self._count:
            out.append(self._window(self._next, last=None))
        return out

    def finish(self) -> list[Window]:
        """The stream ended: the windows of the last positions, padded with the last frame set."""
        out = []
        while self._next < self._count:
            out.append(self._window(self._next, last=self._count - 1))
        return out

    def _window(self, c: int, last: int | None) -> Window:
        hi = last if last is not None else self._count - 1
        sets = tuple(self._sets[min(max(q, 0), hi)] for q in range(c - self.before, c + self.after + 1))
        window = Window(sets, self.before, c, padded_before=max(0, self.before - c),
                        padded_after=max(0, c + self.after - hi) if last is not None else 0)
        self._next = c + 1
        for q in [q for q in self._sets if q < self._next - self.before]:
            del self._sets[q]
        return window
