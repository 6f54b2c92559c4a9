"""The executor seam: how a :class:`~diffusify.runtime.plan.Plan` is carried out.

An executor turns a plan into an :class:`Execution`: something that runs to the end (``run``), can be stopped
gracefully or at once (``cancel``) and reports through keyword-only hooks (``emit``). The local executor runs the
plan in this process with threads; executors that split a plan into segments (frame ranges of its sources, see
:class:`~diffusify.processors.base.Segment`) to run on other GPUs or machines implement the same protocol, so
:class:`~diffusify.runtime.handle.Run`, the command line and the server work with any of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from diffusify.runtime.events import Hook
from diffusify.runtime.plan import Plan


@runtime_checkable
class Execution(Protocol):
    """One run of a plan."""

    def emit(self, event: str, **fields: Any) -> None:
        """Send an event to the run's hooks."""

    def cancel(self, *, now: bool = False, reason: str = "cancel") -> None:
        """Stop: drain what is in flight and finalise the outputs; with ``now``, at once (outputs stay playable).
        Safe from any thread and from a signal handler."""

    def run(self) -> dict[str, Any]:
        """Run to the end in the calling thread; the summary, or :class:`~diffusify.PipelineError` /
        :class:`~diffusify.Interrupted`."""


class Executor(Protocol):
    """Makes executions of plans."""

    name: str

    def prepare(self, plan: Plan, *, hooks: Iterable[Hook] = ()) -> Execution: ...


class LocalExecutor:
    """Runs a plan in this process: one thread per node replica, bounded queues (see
    :class:`~diffusify.runtime.engine.Engine`)."""

    name = "local"

    def __init__(self, *, progress_interval: float = 1.0):
        self.progress_interval = progress_interval

    def prepare(self, plan: Plan, *, hooks: Iterable[Hook] = ()) -> Execution:
        from diffusify.runtime.engine import Engine

        return Engine(plan, hooks=hooks, progress_interval=self.progress_interval)
