"""Segmented runs: a plan cut into frame ranges of its sources, each run apart (side by side, or on other
machines), written to files of its own, recorded in a journal, and joined without re-encoding.

Why and how:

- **Context.** Each segment reads the frames its temporal nodes need around it (:class:`SegmentRule` ``pre`` /
  ``post``, summed over the graph), and its sinks keep only the frames whose times fall in the segment's own span
  (``RunOptions.keep``), so joining loses and repeats nothing. Nodes that lay a time grid from their stream's
  first frame (interpolation to a rate) get segments that start on their grid, so their frames land exactly where
  the whole run's would.
- **The journal** (``journal.json`` in a folder named after the first output, ``OUTPUT.parts``) holds the plan's
  fingerprint (the recipe after params, the model files' hashes, the sources' identity), the segments, and each
  finished segment's files, frame counts and hashes. It is rewritten whole after every segment: a temporary file,
  fsync, rename, fsync of the folder, so a crash at any moment leaves the old journal or the new one, never half
  of one.
- **Resume** checks the fingerprint (a changed recipe, model or source is refused with the reason), verifies the
  finished segments' files (size, and the hash of the last one), removes files no journal entry names (a segment
  cut short) and runs what is left.
- **Join.** Each segment's video is Matroska; the pieces are joined with ffmpeg's concat demuxer (no re-encode),
  and the source's audio, subtitles, chapters and attachments are copied once for the whole span, as a whole run's
  writer does. Then the journal folder goes (unless asked to keep it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import queue
import resource
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from fractions import Fraction
from pathlib import Path
from typing import Any

from diffusify.core.errors import Interrupted, PipelineError, UsageError
from diffusify.io.paths import write_atomically
from diffusify.processors.base import Segment, path_fields
from diffusify.runtime.events import Hook
from diffusify.runtime.executor import Execution
from diffusify.runtime.plan import Plan
from diffusify.weights.pull import file_sha256

JOURNAL = "journal.json"
JOURNAL_VERSION = 1


# ---- the layout of segments -----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Layout:
    """What splitting a plan needs: its sources' frame count and rate, the context its temporal nodes need (in
    source frames), and the step segment starts must keep (for time grids)."""

    frames: int
    fps: Fraction
    pre: int
    post: int
    align: int


@dataclasses.dataclass(frozen=True)
class SegmentSpec:
    """One segment: its own span ``[start, end)`` of the sources, the range it reads (with context), and the times
    its sinks keep, relative to the first frame it reads."""

    index: int
    start: int
    end: int
    read: Segment
    keep: tuple[Fraction, Fraction | None]


def layout(plan: Plan) -> Layout:
    """How ``plan`` splits into segments.

    Raises:
        UsageError: a node cannot run in segments (the reason, naming it), or the sources cannot be split (no
            known frame count, variable or unequal frame rates).
    """
    sources = [n for n in plan.nodes.values() if n.cls.is_source()]
    reasons = []
    rates = set()
    counts = set()
    for n in sources:
        if n.output is None or n.output.frames is None:
            reasons.append(f"source '{n.id}' has no known frame count")
        elif n.output.vfr:
            reasons.append(f"source '{n.id}' has variable frame timestamps (segments need a constant rate)")
        else:
            rates.add(n.output.fps)
            counts.add(n.output.frames)
    if len(rates) > 1:
        reasons.append(f"the sources run at different rates ({', '.join(str(r) for r in sorted(rates))})")
    pre = post = 0
    align = 1
    fps = next(iter(rates)) if len(rates) == 1 else Fraction(1)
    for nid in plan.order:
        n = plan.nodes[nid]
        rule = n.cls.segmenting(n.params, n.input_streams, n.output)
        if isinstance(rule, str):
            reasons.append(f"node '{nid}': {rule}")
            continue
        # context counted at the node's input rate, turned into source frames (a rate below the source's
        # stretches it)
        ratio = min((s.fps / fps for s in n.input_streams.values() if s.fps), default=Fraction(1))
        scale = max(Fraction(1), 1 / ratio) if ratio > 0 else Fraction(1)
        pre += math.ceil(rule.pre * scale)
        post += math.ceil(rule.post * scale)
        if rule.grid is not None:
            # a segment starting at source frame s starts at s / fps: on the grid when s * grid / fps is whole
            align = math.lcm(align, (rule.grid / fps).denominator)
    if reasons:
        raise UsageError("this recipe cannot run in segments: " + "; ".join(reasons))
    if not sources or not counts:
        raise UsageError("this recipe cannot run in segments: it has no source with a known frame count")
    return Layout(frames=min(counts), fps=fps, pre=pre, post=post, align=align)


def split(lay: Layout, count: int) -> list[SegmentSpec]:
    """``count`` segments of about equal length (fewer for a short stream: each keeps at least ``align`` frames
    and more than its context)."""
    least = max(lay.align, lay.pre + lay.post + 1, 1)
    count = max(1, min(count, lay.frames // least))
    bounds = [round(i * lay.frames / count) for i in range(count + 1)]
    specs = []
    for i in range(count):
        start, end = bounds[i], bounds[i + 1]
        read_start = max(0, (start - lay.pre) // lay.align * lay.align)
        read_end = min(lay.frames, end + lay.post)
        last = i == count - 1
        keep = (Fraction(start - read_start) / lay.fps, None if last else Fraction(end - read_start) / lay.fps)
        specs.append(SegmentSpec(i, start, end, Segment(read_start, read_end), keep))
    return specs


# ---- the journal ------------------------------------------------------------------------------------------------
def fingerprint(plan: Plan) -> dict[str, Any]:
    """What a resumed run must share with the run that wrote the journal: every node's type, params (after the
    recipe's params) and inputs, each model file's hash, and each source file's identity (path, size,
    modification time)."""
    recipe = {nid: {"type": n.cls.type_name, "params": n.params.model_dump(mode="json"), "inputs": n.inputs}
              for nid, n in plan.nodes.items()}  # devices and replicas aside: they change no frame
    models: dict[str, str] = {}
    sources: dict[str, Any] = {}
    for nid in plan.order:
        n = plan.nodes[nid]
        for name, kind in path_fields(type(n.params)).items():
            value = getattr(n.params, name, None)
            if kind == "model" and isinstance(value, str) and os.path.isfile(value):
                models[f"{nid}.{name}"] = file_sha256(value)
        for path in n.cls.input_files(n.params):
            with contextlib.suppress(OSError):
                st = os.stat(path)
                sources[os.path.realpath(path)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()
    return {"recipe": digest, "models": models, "sources": sources}


def _fingerprint_change(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    if old.get("sources") != new["sources"]:
        return "a source file changed (or another one is named)"
    if old.get("models") != new["models"]:
        return "a model file changed (or another one is named)"
    if old.get("recipe") != new["recipe"]:
        return "the recipe or its params changed"
    return None


class Journal:
    """The record of a segmented run, in ``folder/journal.json``."""

    def __init__(self, folder: Path, data: dict[str, Any]):
        self.folder = folder
        self.data = data
        self._lock = threading.Lock()

    @property
    def done(self) -> dict[int, dict[str, Any]]:
        return {int(k): v for k, v in self.data["done"].items()}

    def save(self) -> None:
        write_atomically(self.folder / JOURNAL, json.dumps(self.data, indent=1, sort_keys=True))

    def record(self, index: int, files: dict[str, dict[str, Any]]) -> None:
        with self._lock:
            self.data["done"][str(index)] = {"files": files, "at": round(time.time(), 3)}
            self.save()


def open_journal(folder: Path, plan: Plan, specs: list[SegmentSpec], *, resume: bool, restart: bool) -> Journal:
    """The journal to run with: a new one, or the earlier one checked for a resume.

    Raises:
        UsageError: a journal exists and neither resume nor restart was asked for; it belongs to another recipe,
            model or source; or its files are missing or changed.
    """
    found = (folder / JOURNAL).is_file()
    if found and restart:
        shutil.rmtree(folder)
        found = False
    current = fingerprint(plan)
    layout_json = [[s.start, s.end] for s in specs]
    if found:
        if not resume:
            raise UsageError(f"{folder}: a journal of an earlier run of this output is there; --resume continues "
                             "it, --restart starts over (its finished segments are deleted)")
        try:
            data = json.loads((folder / JOURNAL).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UsageError(f"{folder / JOURNAL}: unreadable ({e}); --restart starts over") from None
        if data.get("version") != JOURNAL_VERSION:
            raise UsageError(f"{folder / JOURNAL}: written by another version; --restart starts over")
        change = _fingerprint_change(data.get("fingerprint", {}), current)
        if change is None and data.get("segments") != layout_json:
            change = "it was split into other segments (another --segments)"
        if change is not None:
            raise UsageError(f"{folder}: cannot resume: {change} since the journal was written; --restart starts "
                             "over (its finished segments are deleted)")
        journal = Journal(folder, data)
        _verify(journal)
        return journal
    folder.mkdir(parents=True, exist_ok=True)
    journal = Journal(folder, {"version": JOURNAL_VERSION, "fingerprint": current, "segments": layout_json,
                               "done": {}})
    journal.save()
    return journal


def _verify(journal: Journal) -> None:
    """Check the finished segments' files (sizes; the hash of the last one written) and remove every other file
    in the folder: what a crash cut short."""
    done = journal.done
    named = {JOURNAL}
    last = max(done, key=lambda i: done[i]["at"], default=None)
    for index, entry in done.items():
        for f in entry["files"].values():
            path = journal.folder / f["file"]
            named.add(f["file"])
            if not path.is_file() or path.stat().st_size != f["size"]:
                raise UsageError(f"{path}: a finished segment's file is missing or changed; --restart starts over")
            if index == last and file_sha256(path) != f["sha256"]:
                raise UsageError(f"{path}: the last finished segment's file does not match its hash; --restart "
                                 "starts over")
    for p in journal.folder.iterdir():
        if p.name not in named:
            p.unlink() if p.is_file() else shutil.rmtree(p, ignore_errors=True)


def _journal_segments(folder: Path) -> int | None:
    """How many segments the journal in ``folder`` was written for (None: no readable journal)."""
    try:
        return len(json.loads((folder / JOURNAL).read_text(encoding="utf-8"))["segments"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _frames(files: dict[str, dict[str, Any]]) -> int:
    """Frames of a finished segment (every sink of it has the same count)."""
    return next(iter(files.values()))["frames"] if files else 0


# ---- running ----------------------------------------------------------------------------------------------------
Replan = Callable[[Segment, dict[str, str], "list[str] | None"], Plan]
"""Plans the recipe again for one segment: ``(frame range, param overrides, devices) -> Plan``."""

def plan_segment(replan: Replan, spec: SegmentSpec, sets: dict[str, str], devices: list[str] | None) -> Plan:
    """The plan of one segment: the recipe planned again for its frame range, its sinks sent to their segment
    files (``sets``), keeping only the frames of the segment's own span."""
    plan = replan(spec.read, sets, devices)
    plan.options = dataclasses.replace(plan.options, keep=spec.keep, overwrite=True)
    return plan


def run_locally(plan: Plan, hooks: list[Hook], register: Callable[[Execution | None], None]) -> dict[str, Any]:
    """A segment in this process, on the local engine (``register`` learns the execution, for cancels)."""
    from diffusify.runtime.executor import LocalExecutor

    execution = LocalExecutor().prepare(plan, hooks=hooks)
    register(execution)
    try:
        return execution.run()
    finally:
        register(None)


class SegmentedExecution:
    """One segmented run (an :class:`~diffusify.runtime.executor.Execution`): its segments on ``workers``
    threads, each with its own engine on its own device, recorded in the journal, then joined.

    Args:
        plan: the whole run's plan (validated, its outputs checked).
        replan: plans one segment (see :data:`Replan`).
        hooks: event hooks.
        segments: how many segments.
        workers: segments run side by side.
        devices: one device per worker, in turn (None: the plan's own placement for every worker).
        resume: continue the journal found beside the output.
        restart: delete a journal found and start over.
        keep_segments: keep the journal folder after the join.
    """

    def __init__(self, plan: Plan, replan: Replan, *, hooks: Iterable[Hook] = (), segments: int | None = None,
                 workers: int = 1, devices: list[str] | None = None, resume: bool = False, restart: bool = False,
                 keep_segments: bool = False):
        self.plan = plan
        self.replan = replan
        self.hooks = list(hooks)
        self.sinks = [nid for nid in plan.order if plan.nodes[nid].cls.is_sink
                      and plan.nodes[nid].cls.type_name != "discard"]
        outputs = [plan.nodes[nid].params.path for nid in self.sinks]
        first = outputs[0] if outputs else f"{plan.recipe.name or 'run'}.discard"
        self.folder = Path(str(first) + ".parts")
        self.layout = layout(plan)
        if segments is None:  # a resume goes on with the journal's own segments; else one per worker, at least 2
            segments = (_journal_segments(self.folder) if resume else None) or max(2, workers)
        self.specs = split(self.layout, segments)
        self.workers = max(1, min(workers, len(self.specs)))
        self.devices = devices
        self.resume, self.restart, self.keep_segments = resume, restart, keep_segments
        self._lock = threading.Lock()
        self._running: dict[int, Execution] = {}
        self._stopping = False
        self._abort = False
        self._frames_done = 0
        self._progress: dict[int, int] = {}
        self._started = time.monotonic()
        self._finished: set[int] = set()

    # ---- the Execution protocol ----------------------------------------------------------------------------------
    def emit(self, event: str, **fields: Any) -> None:
        for h in self.hooks:
            h(event=event, **fields)

    def cancel(self, *, now: bool = False, reason: str = "cancel") -> None:
        with self._lock:
            first = not self._stopping
            self._stopping = True
            self._abort = self._abort or now
            running = list(self._running.values())
        if first:
            self.emit("interrupted", message="stopping: finishing the segments in flight is skipped; the finished "
                      f"ones stay in {self.folder} (resume with --resume)", signal=reason)
        for ex in running:
            ex.cancel(now=True, reason=reason)

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        journal = open_journal(self.folder, self.plan, self.specs, resume=self.resume, restart=self.restart)
        done = journal.done
        todo = [s for s in self.specs if s.index not in done]
        self._started = started
        self._frames_done = sum(_frames(e["files"]) for e in done.values())
        self.emit("start", name=self.plan.recipe.name, total_frames=self.plan.total_frames,
                  nodes=[{"id": nid, "type": self.plan.nodes[nid].cls.type_name,
                          "inputs": dict(self.plan.nodes[nid].inputs)} for nid in self.plan.order],
                  segments=len(self.specs), segments_done=len(done), journal=str(self.folder),
                  executor=self.executor_name)
        self._run_segments(todo, journal)
        if self._stopping:
            raise Interrupted(f"interrupted: {len(journal.done)} of {len(self.specs)} segments are finished in "
                              f"{self.folder}; run again with --resume to continue")
        outputs = self._join(journal)
        if not self.keep_segments:
            shutil.rmtree(self.folder, ignore_errors=True)
        elapsed = time.monotonic() - started
        frames = max((o["frames"] for o in outputs), default=self._frames_done)
        summary = {"name": self.plan.recipe.name, "frames": frames, "wall_seconds": round(elapsed, 3),
                   "fps": round(frames / elapsed, 3) if elapsed > 0 else 0.0, "segments": len(self.specs),
                   "segments_resumed": len(done), "workers": self.workers, "executor": self.executor_name,
                   "outputs": outputs, "nodes": [], "first_frame_seconds": None,
                   "peak_ram_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                   "peak_gpu_bytes": {}}
        self.emit("finished", summary=summary)
        return summary

    # ---- segments ----------------------------------------------------------------------------------------------
    executor_name = "local"

    def _run_segments(self, todo: list[SegmentSpec], journal: Journal) -> None:
        """Run ``todo`` on worker threads; raise the first error."""
        work: queue.Queue[SegmentSpec] = queue.Queue()
        for s in todo:
            work.put(s)
        errors: list[BaseException] = []
        threads = [threading.Thread(target=self._worker, args=(k, work, journal, errors),
                                    name=f"diffusify:segments-{k}", daemon=True)
                   for k in range(min(self.workers, max(1, len(todo))))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def _worker(self, k: int, work: queue.Queue[SegmentSpec], journal: Journal, errors: list[BaseException]) -> None:
        device = [self.devices[k % len(self.devices)]] if self.devices else None
        while not self._stopping and not errors:
            try:
                spec = work.get_nowait()
            except queue.Empty:
                return
            try:
                self._run_segment(spec, device, journal)
            except Interrupted:
                return
            except BaseException as e:  # noqa: BLE001 - the first error stops the others and is raised
                with self._lock:
                    errors.append(e)
                self.cancel(now=True, reason="error")
                return

    def segment_sets(self, spec: SegmentSpec) -> dict[str, str]:
        """The param overrides that send a segment's sinks to files of their own in the journal folder."""
        sets: dict[str, str] = {}
        for nid, name in self._files(spec).items():
            sets[f"{nid}.path"] = str(self.folder / name)
            sets[f"{nid}.copy_streams_from"] = "none"
        return sets

    def _files(self, spec: SegmentSpec) -> dict[str, str]:
        return {nid: f"{nid}-{spec.index:05d}.mkv" for nid in self.sinks}

    def on_progress(self, spec: SegmentSpec, event: str, fields: dict[str, Any]) -> None:
        """A segment's event, passed on: progress counted over the whole run, warnings and errors as they are."""
        if event == "progress":
            with self._lock:
                if spec.index in self._finished:  # a late line from a segment already counted whole
                    return
                self._progress[spec.index] = fields.get("frames", 0)
                done = self._frames_done + sum(self._progress.values())
            elapsed = time.monotonic() - self._started
            total = self.plan.total_frames
            fps = done / elapsed if elapsed > 0 else 0.0
            eta = (total - done) / fps if total and fps > 0 else None
            self.emit("progress", **{**fields, "frames": min(done, total or done), "total_frames": total,
                                     "fps": fps, "eta": eta, "elapsed": elapsed, "segment": spec.index})
        elif event == "start":
            self.emit("segment_started", segment=spec.index, start=spec.start, end=spec.end,
                      **{k: v for k, v in fields.items() if k in ("host", "pid")})
        elif event in ("warning", "error"):
            self.emit(event, **fields, segment=spec.index)

    def _run_segment(self, spec: SegmentSpec, device: list[str] | None, journal: Journal) -> None:
        plan = plan_segment(self.replan, spec, self.segment_sets(spec), device)

        def register(ex: Execution | None) -> None:
            with self._lock:
                if ex is None:
                    self._running.pop(spec.index, None)
                else:
                    self._running[spec.index] = ex
                    if self._stopping:
                        ex.cancel(now=True, reason="cancel")

        try:
            summary = run_locally(plan, [lambda *, event, **f: self.on_progress(spec, event, f)], register)
        except Interrupted:
            self.drop_partial(spec)
            raise
        self.finish_segment(spec, summary, journal)

    def drop_partial(self, spec: SegmentSpec) -> None:
        """Remove what a segment cut short wrote: it is no finished segment."""
        for name in self._files(spec).values():
            with contextlib.suppress(OSError):
                (self.folder / name).unlink()

    def finish_segment(self, spec: SegmentSpec, summary: dict[str, Any], journal: Journal) -> None:
        """Record a finished segment's files (frames, size, hash) in the journal."""
        by_sink = {o.get("node"): o for o in summary.get("outputs", [])}
        record = {}
        for nid, name in self._files(spec).items():
            path = self.folder / name
            out = by_sink.get(nid) or {}
            record[nid] = {"file": name, "frames": int(out.get("frames", 0)), "size": path.stat().st_size,
                           "sha256": file_sha256(path)}
        journal.record(spec.index, record)
        with self._lock:
            self._finished.add(spec.index)
            self._progress.pop(spec.index, None)
            self._frames_done += _frames(record)
        self.emit("segment_finished", segment=spec.index, start=spec.start, end=spec.end,
                  files={nid: str(self.folder / r["file"]) for nid, r in record.items()},
                  frames={nid: r["frames"] for nid, r in record.items()})
        elapsed = time.monotonic() - self._started
        fps = self._frames_done / elapsed if elapsed > 0 else 0.0
        total = self.plan.total_frames
        self.emit("progress", frames=self._frames_done, total_frames=total, fps=fps, elapsed=elapsed, nodes=[],
                  eta=(total - self._frames_done) / fps if total and fps > 0 else None, segment=spec.index)

    # ---- the join ----------------------------------------------------------------------------------------------
    def _join(self, journal: Journal) -> list[dict[str, Any]]:
        from diffusify.io.join import join_segments

        done = journal.done
        outputs = []
        for nid in self.sinks:
            node = self.plan.nodes[nid]
            parts = [self.folder / done[s.index]["files"][nid]["file"] for s in self.specs]
            frames = sum(done[s.index]["files"][nid]["frames"] for s in self.specs)
            stream = node.input_streams["input"]
            origin = node.cls.copy_origin(node.params, stream, node.refs)
            warnings = join_segments(parts, node.params.path, copy_from=origin.path if origin and origin.streams
                                     else None, copy_range=origin.span if origin else None,
                                     overwrite=self.plan.options.overwrite)
            for w in warnings:
                self.emit("warning", message=w, node=nid)
            if frames != stream.frames and stream.frames is not None:
                raise PipelineError(f"node '{nid}': the segments hold {frames} frames, the whole stream has "
                                    f"{stream.frames}; a node's segment rule is wrong")
            outputs.append({"node": nid, "path": str(node.params.path), "frames": frames})
        return outputs


class SegmentedExecutor:
    """Makes :class:`SegmentedExecution` s (an :class:`~diffusify.runtime.executor.Executor`); ``replan`` plans a
    segment of the same recipe, the other options are :class:`SegmentedExecution`'s."""

    name = "segments"

    def __init__(self, replan: Replan, **options: Any):
        self.replan = replan
        self.options = options

    def prepare(self, plan: Plan, *, hooks: Iterable[Hook] = ()) -> Execution:
        return SegmentedExecution(plan, self.replan, hooks=hooks, **self.options)
