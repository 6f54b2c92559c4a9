"""Segments as Ray tasks: the same recipe, unchanged, segment-parallel over a Ray cluster.

Ray does what Ray does well, and nothing of it is made here again: scheduling (each segment is one task asking for
a CPU, or a GPU when the plan places nodes on one), retries (a task whose worker or node dies is run again,
``max_retries``), and moving data (the segment's plan goes to the task; its events come back through a
``ray.util.queue.Queue`` and join the run's own events and progress display). The segment files are written to
storage every node sees (the journal folder beside the output, which must be shared when the cluster has more
than one machine); the journal, the resume and the join are the segmented run's own (:mod:`.segments`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from typing import Any

from diffusify.core.errors import DiffusifyError, PipelineError, UsageError
from diffusify.runtime.segments import (
    Journal,
    Replan,
    SegmentedExecution,
    SegmentSpec,
    plan_segment,
    run_locally,
)


def _segment_task(replan: Replan, spec: SegmentSpec, sets: dict[str, str], events: Any) -> dict[str, Any]:
    """One segment, inside a Ray worker: plan it there (the worker's own devices), run it, return its summary."""
    plan = plan_segment(replan, spec, sets, None)

    def forward(*, event: str, **fields: Any) -> None:
        if event in ("start", "progress", "warning", "error"):
            if event == "start":
                fields = {"host": socket.gethostname(), "pid": os.getpid()}
            with contextlib.suppress(Exception):  # a full queue drops a progress line, never the segment
                events.put_nowait({"segment": spec.index, "event": event, "fields": fields})

    return run_locally(plan, [forward], lambda _execution: None)


def connect(address: str | None) -> Any:
    """The ``ray`` module, connected: to ``address`` (``auto``, ``ray://host:10001``), or to a local instance
    started here when None; a connection made earlier in this process is reused."""
    try:
        import ray
    except ImportError:
        raise UsageError("the ray executor needs Ray, which comes with the 'ray' extra: "
                         "pip install 'diffusify[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    return ray


class RayExecution(SegmentedExecution):
    """A segmented run whose segments are Ray tasks (see the module's description).

    Args:
        address: the cluster (``auto``, ``ray://...``); None starts a local one.
        max_retries: times a segment is run again after its worker or node died.
        options: :class:`~diffusify.runtime.segments.SegmentedExecution`'s.
    """

    executor_name = "ray"

    def __init__(self, plan: Any, replan: Replan, *, address: str | None = None, max_retries: int = 3,
                 **options: Any):
        super().__init__(plan, replan, **options)
        self.address = address
        self.max_retries = max_retries
        self.workers = 0  # Ray decides how many run at once

    def _run_segments(self, todo: list[SegmentSpec], journal: Journal) -> None:
        if not todo:
            return
        ray = connect(self.address)
        from ray.util.queue import Empty, Queue

        events = Queue(maxsize=10_000)
        gpus = 1 if any(d.startswith("cuda") for n in self.plan.nodes.values() for d in n.devices) else 0
        task = ray.remote(_segment_task).options(num_cpus=1, num_gpus=gpus, max_retries=self.max_retries,
                                                 retry_exceptions=False)
        refs = {task.remote(self.replan, spec, self.segment_sets(spec), events): spec for spec in todo}
        by_index = {spec.index: spec for spec in todo}
        finished = threading.Event()

        def drain() -> None:
            while True:
                last = finished.is_set()  # read before the queue: what was put before the end is still taken
                try:
                    batch = events.get_nowait_batch(max(1, min(64, events.qsize())))
                except Empty:
                    if last:
                        return
                    finished.wait(0.2)
                    continue
                for e in batch:
                    self.on_progress(by_index[e["segment"]], e["event"], e["fields"])

        drainer = threading.Thread(target=drain, name="diffusify:ray-events", daemon=True)
        drainer.start()
        pending = list(refs)
        try:
            while pending:
                if self._stopping:
                    for ref in pending:
                        ray.cancel(ref, force=True)
                        self.drop_partial(refs[ref])
                    return
                ready, pending = ray.wait(pending, num_returns=1, timeout=0.5)
                for ref in ready:
                    try:
                        summary = ray.get(ref)
                    except ray.exceptions.RayTaskError as e:
                        cause = e.as_instanceof_cause()
                        if isinstance(cause, DiffusifyError):
                            raise PipelineError(f"segment {refs[ref].index}: {cause}") from None
                        raise PipelineError(f"segment {refs[ref].index} failed in its Ray task: "
                                            f"{str(e).strip().splitlines()[-1]}") from None
                    except ray.exceptions.RayError as e:
                        raise PipelineError(f"segment {refs[ref].index} failed after {self.max_retries} "
                                            f"retries: {type(e).__name__}: {str(e).splitlines()[0]}") from None
                    self.finish_segment(refs[ref], summary, journal)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        finally:
            finished.set()
            drainer.join(timeout=10)
            with contextlib.suppress(Exception):
                ray.kill(events.actor)


class RayExecutor:
    """Makes :class:`RayExecution` s (an :class:`~diffusify.runtime.executor.Executor`)."""

    name = "ray"

    def __init__(self, replan: Replan, **options: Any):
        self.replan = replan
        self.options = options

    def prepare(self, plan: Any, *, hooks: Any = ()) -> RayExecution:
        return RayExecution(plan, self.replan, hooks=hooks, **self.options)
