"""Bounded edge queues, counted in frames and in bytes, with cancellation that wakes every waiter."""

from __future__ import annotations

import collections
import threading
from typing import Any


class Cancelled(Exception):
    """The run is being torn down; the waiting thread must exit."""


END = object()  # end-of-stream marker: no more frames will come on this edge


def _size(item: Any) -> int:
    return 0 if item is END else int(getattr(item, "nbytes", 0))


class EdgeQueue:
    """A FIFO bounded by ``max_frames`` items and ``max_bytes`` bytes.

    ``put`` blocks while either bound is reached (backpressure), except that an empty queue always admits one
    item, so a frame larger than the byte budget cannot deadlock the pipeline. ``cancel`` makes every blocked
    and future ``put``/``get`` raise :class:`Cancelled`.
    """

    def __init__(self, name: str, *, max_frames: int, max_bytes: int):
        self.name = name
        self.max_frames = max(1, max_frames)
        self.max_bytes = max(1, max_bytes)
        self._items: collections.deque[Any] = collections.deque()
        self._bytes = 0
        self._cancelled = False
        self._cond = threading.Condition()
        self.peak_frames = 0
        self.peak_bytes = 0

    def _full(self) -> bool:
        return bool(self._items) and (len(self._items) >= self.max_frames or self._bytes >= self.max_bytes)

    def put(self, item: Any) -> None:
        with self._cond:
            while not self._cancelled and item is not END and self._full():
                self._cond.wait()
            if self._cancelled:
                raise Cancelled
            self._items.append(item)
            self._bytes += _size(item)
            frames = len(self._items) - (1 if self._items[-1] is END else 0)
            self.peak_frames = max(self.peak_frames, frames)
            self.peak_bytes = max(self.peak_bytes, self._bytes)
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> Any:
        """The next item (possibly :data:`END`); blocks. With ``timeout``, returns None when nothing came."""
        with self._cond:
            while not self._cancelled and not self._items:
                if not self._cond.wait(timeout) and timeout is not None:
                    return None
            if self._cancelled:
                raise Cancelled
            item = self._items.popleft()
            if item is END:
                # END stays visible so every replica sharing this queue sees it
                self._items.appendleft(item)
            else:
                self._bytes -= _size(item)
            self._cond.notify_all()
            return item

    def get_nowait(self) -> Any:
        """The next frame, or None when empty or at END (END is left in place)."""
        with self._cond:
            if self._cancelled:
                raise Cancelled
            if not self._items or self._items[0] is END:
                return None
            item = self._items.popleft()
            self._bytes -= _size(item)
            self._cond.notify_all()
            return item

    def cancel(self) -> None:
        with self._cond:
            self._cancelled = True
            self._items.clear()
            self._bytes = 0
            self._cond.notify_all()

    def fill(self) -> tuple[int, int]:
        """(frames, bytes) waiting now."""
        with self._cond:
            n = len(self._items) - (1 if self._items and self._items[-1] is END else 0)
            return n, self._bytes
