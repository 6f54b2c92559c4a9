"""The run handle: a pipeline running in the background, its events, its cancellation and its result."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from diffusify.core.errors import DiffusifyError, PipelineError
from diffusify.runtime.events import Hook, event_record
from diffusify.runtime.executor import Execution

_ids = itertools.count(1)


class Run:
    """A running pipeline. Made by :func:`diffusify.start`; it starts at once, in a thread of its own.

    * :meth:`events` yields the run's events as dicts, the same objects ``--json-events`` prints, from the first
      one on (each call replays them all), and ends after the last.
    * :meth:`cancel` stops it gracefully (stop reading, finish the frames in flight, finalise every output, as a
      first Ctrl-C does); ``cancel(now=True)`` stops at once (the second Ctrl-C; outputs stay playable).
    * :meth:`result` waits for the end and returns the summary, or raises what :func:`diffusify.run` raises:
      :class:`~diffusify.PipelineError` or :class:`~diffusify.Interrupted` (also after a cancel).

    Several runs may live in one process; a run installs no signal handler and changes no process setting.
    """

    def __init__(self, prepare: Callable[[list[Hook]], Execution], *, hooks: Iterable[Hook] = (),
                 warnings: Iterable[Any] = (), name: str = ""):
        """``prepare(hooks)`` makes the execution that reports to ``hooks`` (an executor's ``prepare``)."""
        self.id = f"run-{next(_ids)}"
        self.name = name
        self._user_hooks = list(hooks)
        self._warnings = list(warnings)
        self._events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._finished = False
        self._summary: dict[str, Any] | None = None
        self._error: BaseException | None = None
        self._execution = prepare([self.hook, *self._user_hooks])
        self._thread = threading.Thread(target=self._main, name=f"diffusify:{self.id}", daemon=True)
        self._thread.start()

    # ---- the run's thread ------------------------------------------------------------------------------------
    def hook(self, *, event: str, **fields: Any) -> None:
        """Record an event (the execution's first hook; the user's hooks follow it)."""
        with self._cond:
            self._events.append(event_record(event, fields))
            self._cond.notify_all()

    def _main(self) -> None:
        try:
            for w in self._warnings:
                self._execution.emit("warning", message=w.format(), node=None, problem=w.to_json())
            self._summary = self._execution.run()
        except BaseException as e:  # noqa: BLE001 - kept for result()
            if not isinstance(e, DiffusifyError):
                e = PipelineError(f"internal error: {type(e).__name__}: {e}")
            self._error = e
        finally:
            with self._cond:
                self._finished = True
                self._cond.notify_all()

    # ---- the caller's side -----------------------------------------------------------------------------------
    def events(self, *, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Every event, in order, as it happens; ends after the run's last event. With ``timeout``, stops
        waiting for the next event after that many seconds (and ends)."""
        i = 0
        while True:
            with self._cond:
                deadline = None if timeout is None else time.monotonic() + timeout
                while i >= len(self._events) and not self._finished:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return
                    self._cond.wait(0.2 if left is None else min(left, 0.2))
                batch = self._events[i:]
                done = self._finished
            i += len(batch)
            yield from batch
            if done and not batch:
                return

    def cancel(self, *, now: bool = False, reason: str = "cancel") -> None:
        """Stop the run: gracefully (outputs finalised with every frame in flight), or at once with ``now``.
        Safe from any thread and from a signal handler. ``reason`` is reported in the ``interrupted`` event."""
        self._execution.cancel(now=now, reason=reason)

    def done(self) -> bool:
        """The run has ended (successfully or not)."""
        return self._finished

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the end; False when ``timeout`` passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: self._finished, timeout)

    def result(self, timeout: float | None = None) -> dict[str, Any]:
        """The summary, once the run has ended; raises its error. ``TimeoutError`` when ``timeout`` passes."""
        # wait in short steps so that a signal handler in the main thread runs promptly
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.wait(0.1):
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"{self.id} is still running")
        if self._error is not None:
            raise self._error
        assert self._summary is not None
        return self._summary

    def __repr__(self) -> str:
        state = "running" if not self._finished else ("failed" if self._error else "finished")
        return f"<Run {self.id} {self.name!r} {state}>"
