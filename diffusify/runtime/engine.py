"""The local executor: one thread per node replica, bounded queues on every edge, first error wins.

Frames flow from sources to sinks through :class:`~diffusify.runtime.queues.EdgeQueue` objects owned by the
consumer (one per input port). A fan-out puts the same frame object in each consumer's queue (no copy). Merges
read one frame from each port and check that the indices agree.

Numbering: a filter node numbers the work it takes (input frame sets, or the windows the framework gathers for
window processors) 0, 1, 2... under its read lock. Whatever a replica emits for work item ``k`` (zero, one or
many frames) waits in a reorder buffer until every item before ``k`` has been delivered, so replicas restore
the order by the engine's own numbers, never by ``frame.index``. At the end of its input each replica's
``flush`` output follows, in replica order. Frames leave every node renumbered densely (index 0, 1, 2...), and
their times must not go backwards.

GPUs: each replica of a neural node on a CUDA device runs its setup and steps on a CUDA stream of its own, and
finishes its queued work before it hands frames on; a consumer that uses them on another stream marks them as
used there (see ``Processor.use_cuda_stream``). A node on a GPU whose consumers all run on the CPU copies its
frames back itself, asynchronously into page-locked memory, narrowed on the GPU to the samples its consumers
pack when they are writers that all say at which depth (see :func:`host_output`).

Stopping: :meth:`Engine.stop` (a graceful cancel) makes sources stop reading; the frames in flight drain and
every output is finalised. :meth:`Engine.abort` (an error, or cancel(now=True)) cancels every queue, which
wakes every blocked thread; sinks finalise what they have.
"""

from __future__ import annotations

import collections
import contextlib
import resource
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from diffusify.core.errors import Interrupted, PipelineError
from diffusify.core.frame import Frame, Window
from diffusify.processors.base import HostOutput, Processor, SinkResult, Temporal
from diffusify.runtime.events import Hook
from diffusify.runtime.plan import NodePlan, Plan
from diffusify.runtime.queues import END, Cancelled, EdgeQueue
from diffusify.runtime.window import WindowGatherer

JOIN_TIMEOUT = 2.0

# Runs in this process that compute a neural node on the CPU: while any does, no run lowers the intra-op thread
# count of its cheap nodes (see Engine._worker_threads), since that would slow the other run's kernels.
_cpu_heavy_runs = 0
_cpu_heavy_lock = threading.Lock()
_heavy_setup_lock = threading.Lock()


@dataclass
class NodeState:
    """Runtime state of one node, printable for the progress display."""

    plan: NodePlan
    processors: list[Processor]
    queues: dict[str, EdgeQueue]
    frames_out: int = 0
    frames_in: int = 0
    finished_replicas: int = 0
    read_lock: threading.Lock = field(default_factory=threading.Lock)
    emit_lock: threading.Lock = field(default_factory=threading.Lock)
    setup_lock: threading.Lock = field(default_factory=threading.Lock)
    # work items numbered under read_lock; outputs wait in `pending` until every earlier item is delivered
    assigned: int = 0
    ready: collections.deque[tuple[int, Any]] = field(default_factory=collections.deque)
    ended: bool = False
    pending: dict[int, list[Frame]] = field(default_factory=dict)
    next_seq: int = 0
    gatherer: WindowGatherer | None = None
    last_pts: Any = None
    source_busy: float = 0.0
    result: SinkResult | None = None
    last_frame: int | None = None
    setup_seconds: float = 0.0
    ready_replicas: int = 0

    def setup(self, proc: Processor) -> None:
        """Run a replica's setup (model loading, opening files), keeping the longest time it took."""
        # Loading a model may patch torch process-wide for a moment (accelerate's empty-weight init swaps
        # nn.Module.register_parameter; diffusers sets the default dtype): a model built in another thread
        # meanwhile lands on the meta device. Neural nodes therefore load one at a time.
        cls = self.plan.cls
        with _heavy_setup_lock if proc.resources.heavy else contextlib.nullcontext():
            t0 = time.perf_counter()
            if cls.resources.heavy and not cls.is_sink and not cls.is_source():
                proc.use_cuda_stream()
            with proc.on_cuda_stream():  # weights, warm-up and compiled kernels go where the frames will run
                proc.setup()
        with self.setup_lock:
            self.setup_seconds = max(self.setup_seconds, time.perf_counter() - t0)
            self.ready_replicas += 1

    @property
    def is_ready(self) -> bool:
        """Every replica has finished its setup."""
        return self.ready_replicas == len(self.processors)

    @property
    def busy(self) -> float:
        return self.source_busy + sum(p.busy_seconds for p in self.processors)

    def __str__(self) -> str:
        q = ", ".join(f"{p}:{q.fill()[0]}/{q.max_frames}" for p, q in self.queues.items())
        return f"{self.plan.id}: {self.frames_in} in, {self.frames_out} out, busy {self.busy:.1f}s, queues [{q}]"


class Engine:
    """Runs a :class:`Plan` in this process. Create one per run; several may run at once in one process."""

    def __init__(self, plan: Plan, *, hooks: Iterable[Hook] = (), progress_interval: float = 1.0):
        # Frames are torch tensors, but where every node is torch-free (a decoder's numpy samples straight to
        # writers); run() imports torch where the plan needs it.
        self.needs_torch = plan.needs_torch
        self.torch_import_seconds = 0.0
        self._cpu_started = 0.0

        self.plan = plan
        self.hooks = list(hooks)
        self.progress_interval = progress_interval
        self.stop_event = threading.Event()
        self.abort_event = threading.Event()
        self._error_lock = threading.Lock()
        self.error: tuple[BaseException, str, str, int | None] | None = None
        self.cancels = 0
        self.cancel_reason = ""
        self.first_output: float | None = None
        self._announced = False
        self.states: dict[str, NodeState] = {}
        self._cpu_heavy = any(n.cls.resources.heavy and any(d == "cpu" for d in n.devices)
                              for n in plan.nodes.values())
        for nid in plan.order:
            n = plan.nodes[nid]
            queues = {port: EdgeQueue(f"{ref}->{nid}.{port}", max_frames=n.queue.frames, max_bytes=n.queue.bytes)
                      for port, ref in n.inputs.items()}
            st = NodeState(n, plan.processors(nid), queues)
            handoff = host_output(plan, nid)
            for proc, device in zip(st.processors, n.devices, strict=True):
                proc.host_output = handoff if device.startswith("cuda") else None
            if n.cls.temporal is Temporal.WINDOW:
                st.gatherer = WindowGatherer(*n.cls.window)
            self.states[nid] = st

    # ---- events ----------------------------------------------------------------------------------------------
    def emit(self, event: str, **fields: Any) -> None:
        for hook in self.hooks:
            try:
                hook(event=event, **fields)
            except Exception as e:  # a broken hook must not break the run
                print(f"diffusify: hook {hook!r} failed: {e}", file=sys.stderr)

    # ---- control ---------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop reading; drain what is in flight; finalise outputs."""
        self.stop_event.set()

    def abort(self) -> None:
        """Stop now: wake every blocked thread; sinks finalise what they have."""
        self.stop_event.set()
        self.abort_event.set()
        for st in self.states.values():
            for q in st.queues.values():
                q.cancel()

    def cancel(self, *, now: bool = False, reason: str = "cancel") -> None:
        """The user's stop: graceful (drain and finalise) unless ``now``; the run ends with :class:`Interrupted`.

        Safe to call from any thread, and from a signal handler: it only sets flags and wakes threads."""
        self.cancels += 1
        self.cancel_reason = self.cancel_reason or reason
        if now:
            self.abort()
        else:
            self.stop()

    def _fail(self, exc: BaseException, st: NodeState, frame: int | None) -> None:
        with self._error_lock:
            if self.error is None:
                self.error = (exc, st.plan.id, st.plan.cls.type_name, frame)
        self.abort()

    def _announce_stop(self) -> None:
        if self.cancels and not self._announced:
            self._announced = True
            self.emit("interrupted", message="stopping: finishing the frames in flight and closing outputs "
                      "(press Ctrl-C again to stop at once)", signal=self.cancel_reason)

    # ---- data flow -------------------------------------------------------------------------------------------
    def _push(self, st: NodeState, frame: Frame) -> None:
        """Hand one frame to every consumer, numbered densely on this node's output."""
        if st.last_pts is not None and frame.pts < st.last_pts:
            raise PipelineError(f"emitted a frame at {float(frame.pts):.6f} s after one at "
                                f"{float(st.last_pts):.6f} s (times must not go backwards)")
        if frame.index != st.frames_out:
            frame = Frame(st.frames_out, frame.pts, frame.data, frame.meta)
        for consumer, port in st.plan.consumers:
            self.states[consumer].queues[port].put(frame)
        st.last_pts = frame.pts
        st.frames_out += 1
        st.last_frame = frame.index

    def _deliver(self, st: NodeState, seq: int, frames: list[Frame]) -> None:
        """Deliver what work item ``seq`` produced, once every earlier item's output has gone."""
        with st.emit_lock:
            st.pending[seq] = frames
            while st.next_seq in st.pending:
                for f in st.pending.pop(st.next_seq):
                    self._push(st, f)
                st.next_seq += 1

    def _end(self, st: NodeState) -> None:
        for consumer, port in st.plan.consumers:
            self.states[consumer].queues[port].put(END)

    def _read_set(self, st: NodeState) -> dict[str, Frame] | None:
        """One frame set (one frame per port, same index), or None at the end of the stream."""
        got: dict[str, Any] = {port: q.get() for port, q in st.queues.items()}
        ended = [p for p, item in got.items() if item is END]
        if ended:
            if len(ended) != len(got):
                live = [p for p in got if p not in ended]
                idx = got[live[0]].index
                raise PipelineError(f"input '{ended[0]}' ended at frame {idx} while '{live[0]}' goes on "
                                    "(merged streams must have the same frame count)")
            return None
        indices = {f.index for f in got.values()}
        if len(indices) > 1:
            raise PipelineError(f"inputs are out of step: frames {sorted(indices)} arrived together")
        st.frames_in += 1
        return got

    def _take(self, st: NodeState, count: int) -> list[tuple[int, Any]]:
        """Up to ``count`` numbered work items (frame sets, or windows); [] once the input has ended."""
        out: list[tuple[int, Any]] = []
        with st.read_lock:
            while len(out) < count:
                if st.ready:
                    out.append(st.ready.popleft())
                    continue
                if st.ended:
                    break
                got = self._read_set(st)
                if got is None:
                    st.ended = True
                    items: list[Any] = st.gatherer.finish() if st.gatherer else []
                elif st.gatherer is not None:
                    items = st.gatherer.add(got)
                else:
                    items = [got]
                for item in items:
                    st.ready.append((st.assigned, item))
                    st.assigned += 1
        return out

    # ---- workers ---------------------------------------------------------------------------------------------
    def _source(self, st: NodeState) -> None:
        proc = st.processors[0]
        frame_no: int | None = None
        try:
            st.setup(proc)
            if not st.plan.torch_free:  # a decoder handing numpy samples on does not wait for torch
                self._worker_threads(st)
            it = iter(proc.frames(self.stop_event))
            while not self.stop_event.is_set():
                t0 = time.perf_counter()
                frame = next(it, None)
                st.source_busy += time.perf_counter() - t0
                if frame is None:
                    break
                frame_no = frame.index
                self._push(st, frame)
            self._end(st)
        except Cancelled:
            pass
        except BaseException as e:  # noqa: BLE001 - any failure stops the run and is reported
            self._fail(e, st, frame_no)
        finally:
            self._teardown(st, proc)

    def _filter(self, st: NodeState, replica: int) -> None:
        proc = st.processors[replica]
        items: list[tuple[int, Any]] = []
        try:
            self._worker_threads(st)
            st.setup(proc)
            batch_size = proc.batch_size  # known once set up (a batch chosen from measured memory)
            while True:
                items = self._take(st, batch_size)
                if not items:
                    break
                outs = [proc.push(items[0][1])] if len(items) == 1 else proc.push_batch([w for _, w in items])
                for (seq, _), frames in zip(items, outs, strict=True):
                    self._deliver(st, seq, frames)
                items = []
            # every work item is numbered now: the flushes follow them, in replica order
            self._deliver(st, st.assigned + replica, proc.flush())
        except Cancelled:
            pass
        except BaseException as e:  # noqa: BLE001
            self._fail(e, st, _input_index(items[0][1]) if items else None)
        finally:
            self._teardown(st, proc)
            with st.emit_lock:
                st.finished_replicas += 1
                last = st.finished_replicas == len(st.processors)
            if last and not self.abort_event.is_set():
                try:
                    self._check_counts(st)
                    self._end(st)
                except Cancelled:
                    pass
                except BaseException as e:  # noqa: BLE001
                    self._fail(e, st, None)

    def _check_counts(self, st: NodeState) -> None:
        """Every frame a node emitted went on, and as many as its stream declares when its input was whole."""
        if st.pending:
            held = sum(len(v) for v in st.pending.values())
            raise PipelineError(f"{held} frames could not be delivered in order (work items "
                                f"{sorted(st.pending)[:5]} wait for {st.next_seq}); this is a bug in the engine")
        declared = st.plan.output.frames if st.plan.output else None
        whole = bool(st.plan.input_streams) and all(s.frames is not None and s.frames == st.frames_in
                                                    for s in st.plan.input_streams.values())
        if declared is not None and whole and not self.stop_event.is_set() and st.frames_out != declared:
            raise PipelineError(f"emitted {st.frames_out} frames for {st.frames_in} input frames, but its stream "
                                f"declares {declared}; the processor's infer_stream and its output disagree")

    def _sink(self, st: NodeState) -> None:
        proc = st.processors[0]
        frame_no: int | None = None
        keep = self.plan.options.keep
        kept = 0
        try:
            st.setup(proc)
            self._worker_threads(st)
            while True:
                got = self._read_set(st)  # a sink's other ports (a matte beside the picture) join by index
                if got is None:
                    break
                frame_no = got["input"].index
                if keep is not None:
                    # a segment's context frames (before and after its own span) are for temporal nodes only
                    pts = got["input"].pts
                    if pts < keep[0] or (keep[1] is not None and pts >= keep[1]):
                        continue
                    got = {p: Frame(kept, f.pts - keep[0], f.data, f.meta) for p, f in got.items()}
                    kept += 1
                t0 = time.perf_counter()
                proc.write_set(got)
                proc.busy_seconds += time.perf_counter() - t0
                st.frames_out += 1
                if self.first_output is None:
                    self.first_output = time.monotonic()
        except Cancelled:
            pass
        except BaseException as e:  # noqa: BLE001
            self._fail(e, st, frame_no)
        finally:
            try:
                result = proc.finish(aborted=self.abort_event.is_set())
                st.result = result if isinstance(result, SinkResult) else None
            except BaseException as e:  # noqa: BLE001
                self._fail(e, st, None)
            self._teardown(st, proc)

    def _worker_threads(self, st: NodeState) -> None:
        """Cheap nodes compute with one intra-op thread: every node already runs in its own thread, and OpenMP
        teams stall at their barriers (or spin) while other nodes and ffmpeg hold the cores. Measured on 2 and on
        16 cores: a share of the cores per node (16 cores / workers) made 1080p graphs slower and doubled their
        CPU time. Not when a neural node computes on the CPU (in this run or another in the process): lowering
        the thread count in any thread then slows that node's kernels (about 1.15 vs 0.62 fps for the bundled
        model), which costs far more."""
        if self.needs_torch and not st.plan.cls.resources.heavy and not self._cpu_heavy and not _cpu_heavy_runs:
            import torch

            torch.set_num_threads(1)

    def _teardown(self, st: NodeState, proc: Processor) -> None:
        try:
            proc.teardown()
        except BaseException as e:  # noqa: BLE001
            self._fail(e, st, None)

    # ---- the run ---------------------------------------------------------------------------------------------
    def _progress(self, started: float) -> dict[str, Any]:
        elapsed = time.monotonic() - started
        sinks = [st for st in self.states.values() if st.plan.cls.is_sink]
        done = min((st.frames_out for st in sinks), default=0)
        total = self.plan.total_frames
        fps = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / fps if total and fps > 0 else None
        nodes = []
        for st in self.states.values():
            fills = [q.fill() for q in st.queues.values()]
            cap = sum(q.max_frames for q in st.queues.values())
            nodes.append({"id": st.plan.id, "frames": st.frames_out, "fps": st.frames_out / elapsed if elapsed else 0.0,
                          "busy": min(1.0, st.busy / (elapsed * st.plan.replicas)) if elapsed else 0.0,
                          "queue_frames": sum(f for f, _ in fills), "queue_capacity": cap,
                          "queue_bytes": sum(b for _, b in fills), "ready": st.is_ready})
            # what a long-running node is doing inside a frame (a generator's denoising step), when it says
            status = st.processors[0].status if st.processors else None
            if status:
                nodes[-1]["status"] = dict(status)
        return {"frames": done, "total_frames": total, "fps": fps, "eta": eta, "elapsed": elapsed, "nodes": nodes}

    def run(self) -> dict[str, Any]:
        """Run to the end in the calling thread. Returns the summary; raises PipelineError or Interrupted."""
        global _cpu_heavy_runs
        started = time.monotonic()
        self._cpu_started = time.process_time()
        self.emit("start", **self.plan.to_json())
        threads: list[threading.Thread] = []
        early: list[threading.Thread] = []
        for st in self.states.values():
            cls = st.plan.cls
            if cls.is_source():
                targets = [(self._source, (st,))]
            elif cls.is_sink:
                targets = [(self._sink, (st,))]
            else:
                targets = [(self._filter, (st, i)) for i in range(st.plan.replicas)]
            for i, (fn, args) in enumerate(targets):
                t = threading.Thread(target=fn, args=args, name=f"diffusify:{st.plan.id}:{i}", daemon=True)
                threads.append(t)
                # a torch-free filter starts early only where nothing imports torch: in a plan that does, it
                # may get tensors and set its thread count, and would wait on the import lock
                if cls.is_sink or st.plan.torch_free and (cls.is_source() or not self.needs_torch):
                    early.append(t)
        with _cpu_heavy_lock:
            _cpu_heavy_runs += int(self._cpu_heavy)
        try:
            # Nodes that do not wait for torch start first: a decoder and encoders start their ffmpeg processes
            # and decode the first frame while torch is imported here (0.25 s sooner done, median of 12 rounds on
            # 2 cores, for one 1080p frame read -> colour -> write). Sinks get ready meanwhile and wait for torch
            # only then; every other worker starts once it is in (not in a worker of its own: each would wait on
            # the import lock, measured 1.5 s on 2 cores and 3 s on 16 before the first frame).
            for t in early:
                t.start()
            if self.needs_torch:
                t0 = time.monotonic()
                import torch  # noqa: F401

                self.torch_import_seconds = time.monotonic() - t0
            for t in threads:
                if t not in early:
                    t.start()
            last = time.monotonic()
            abort_seen: float | None = None
            while True:
                alive = [t for t in threads if t.is_alive()]
                if not alive:
                    break
                alive[0].join(timeout=0.1)
                self._announce_stop()
                now = time.monotonic()
                if now - last >= self.progress_interval:
                    last = now
                    self.emit("progress", **self._progress(started))
                if self.abort_event.is_set():
                    abort_seen = abort_seen or now
                    # a worker stuck in a long kernel cannot be interrupted; once the sinks have finalised
                    # their outputs, stop waiting for it (threads are daemons)
                    if now - abort_seen > JOIN_TIMEOUT and not any(self._is_sink_thread(t) for t in alive):
                        break
        finally:
            with _cpu_heavy_lock:
                _cpu_heavy_runs -= int(self._cpu_heavy)
        self._announce_stop()
        summary = self._summary(started)
        for st in self.states.values():
            self.emit("node_finished", node=st.plan.id, type=st.plan.cls.type_name, frames=st.frames_out,
                      busy_seconds=round(st.busy, 3))
        for st in self.states.values():
            for w in (st.result.warnings if st.result else []):
                self.emit("warning", message=f"{st.plan.id}: {w}", node=st.plan.id)
        if self.error is not None:
            exc, node, typ, frame = self.error
            err = exc if isinstance(exc, PipelineError) and exc.node else None
            message = err.detail if err else (str(exc) or type(exc).__name__)
            if not isinstance(exc, (PipelineError,)) and type(exc).__module__.split(".")[0] not in ("diffusify",):
                message = f"{type(exc).__name__}: {message}"
            error = PipelineError(message.splitlines()[0] if message else "failed", node=node, node_type=typ,
                                  frame=frame)
            error.summary = summary  # type: ignore[attr-defined]
            self.emit("error", message=str(error), node=node, type=typ, frame=frame, summary=summary)
            raise error from exc
        if self.cancels:
            written = ", ".join(f"{o['frames']} frames to {o['path']}" for o in summary["outputs"]) or "nothing"
            intr = Interrupted(f"interrupted: wrote {written}")
            intr.summary = summary  # type: ignore[attr-defined]
            self.emit("interrupted", message=str(intr), summary=summary)
            raise intr
        self.emit("finished", summary=summary)
        return summary

    def _is_sink_thread(self, t: threading.Thread) -> bool:
        nid = t.name.split(":")[1]
        return self.states[nid].plan.cls.is_sink

    def _summary(self, started: float) -> dict[str, Any]:
        wall = time.monotonic() - started
        sinks = [st for st in self.states.values() if st.plan.cls.is_sink]
        frames = min((st.frames_out for st in sinks), default=0)
        nodes = []
        for st in self.states.values():
            share = min(1.0, st.busy / (wall * st.plan.replicas)) if wall > 0 else 0.0
            nodes.append({"id": st.plan.id, "type": st.plan.cls.type_name, "frames": st.frames_out,
                          "busy_seconds": round(st.busy, 3), "busy_share": round(share, 3),
                          "setup_seconds": round(st.setup_seconds, 3),
                          "replicas": st.plan.replicas, "devices": st.plan.devices,
                          # how its replicas run (precision, the batch chosen, a decoder's fallback), said once
                          "notes": list(dict.fromkeys(n for p in st.processors for n in p.notes))})
        bottleneck = max(nodes, key=lambda n: n["busy_share"])["id"] if nodes else None
        return {
            "name": self.plan.recipe.name,
            "frames": frames,
            "wall_seconds": round(wall, 3),
            "fps": round(frames / wall, 3) if wall > 0 else 0.0,
            # start-up (importing torch, model loading, warm-up, compiling, opening files) until the first frame
            # reached a sink; of it, the wait for torch's import (0 where it was loaded or not needed)
            "first_frame_seconds": None if self.first_output is None else round(self.first_output - started, 3),
            "torch_import_seconds": round(self.torch_import_seconds, 3),
            # CPU time of this process over the run, every thread (ffmpeg's processes not included; another run in
            # the same process is): what the engine itself costs a machine whose cores are all busy
            "process_cpu_seconds": round(time.process_time() - self._cpu_started, 3),
            "peak_ram_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "peak_gpu_bytes": _peak_gpu(),
            "nodes": nodes,
            "bottleneck": bottleneck,
            "outputs": [{"node": st.plan.id, "path": st.result.path, "frames": st.result.frames}
                        for st in sinks if st.result is not None and st.result.path],
        }


def host_output(plan: Plan, nid: str) -> HostOutput | None:
    """How the GPU replicas of filter node ``nid`` hand their frames on: None (as they are, on the GPU) unless
    every consumer runs on the CPU only; then they copy them back themselves, narrowed to the consumers' sample
    depth when every consumer is a sink taking them on its ``input`` port at one declared depth (see
    :meth:`Processor.sample_depth`), as they are otherwise."""
    n = plan.nodes[nid]
    if n.cls.is_sink or n.cls.is_source() or not n.consumers or not any(d.startswith("cuda") for d in n.devices):
        return None
    depths: set[int | None] = set()
    for consumer, port in n.consumers:
        c = plan.nodes[consumer]
        if any(d != "cpu" for d in c.devices):
            return None
        depths.add(c.cls.sample_depth(c.params, c.input_streams) if c.cls.is_sink and port == "input" else None)
    return HostOutput(depths.pop() if len(depths) == 1 else None)


def _peak_gpu() -> dict[str, int]:
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {}
    return {f"cuda:{i}": int(torch.cuda.max_memory_allocated(i)) for i in range(torch.cuda.device_count())}


def _input_index(item: Any) -> int | None:
    """The index of the input frame a work item is about (a window's centre), for error messages."""
    sets = item.center if isinstance(item, Window) else item
    return next(iter(sets.values())).index if sets else None


__all__ = ["Engine", "NodeState", "host_output"]
